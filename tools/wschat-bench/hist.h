/* hist — a log-linear latency histogram in the style of HdrHistogram.
 *
 * Values (nanoseconds) below 2^HIST_SUB_BITS are counted exactly; above that
 * each power of two is split into 2^HIST_SUB_BITS equal buckets, so a
 * recorded value is known to within 1/128 (< 0.8 %). Fixed size (about
 * 37 KiB), no per-sample storage, no allocation. The exact maximum and the
 * sum are kept beside the buckets.
 */
#ifndef WSB_HIST_H
#define WSB_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 44 /* 2^44 ns is almost 5 hours; larger values clamp */
#define HIST_BUCKETS (HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS) * HIST_SUB)

typedef struct hist {
  uint64_t counts[HIST_BUCKETS];
  uint64_t total;
  uint64_t max;
  uint64_t min;
  double sum;
} hist;

void hist_init(hist *h);
static inline unsigned hist_index(uint64_t v) {
  if (v < HIST_SUB) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v);
  if (e >= HIST_MAX_EXP) return HIST_BUCKETS - 1;
  unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
  return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB + sub;
}
static inline void hist_record(hist *h, uint64_t v) {
  h->counts[hist_index(v)]++;
  h->total++;
  h->sum += (double)v;
  if (v > h->max) h->max = v;
  if (v < h->min) h->min = v;
}
/* The value at percentile p (0..100): the middle of the bucket holding the
 * ceil(p% * total)-th smallest sample, never above the exact maximum.
 * 0 for an empty histogram. */
uint64_t hist_percentile(const hist *h, double p);
double hist_mean(const hist *h);

#endif
