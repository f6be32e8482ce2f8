#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static uint64_t bucket_mid(unsigned i) {
  if (i < HIST_SUB) return i;
  unsigned k = i - HIST_SUB;
  unsigned e = k / HIST_SUB + HIST_SUB_BITS;
  uint64_t sub = k % HIST_SUB;
  uint64_t width = (uint64_t)1 << (e - HIST_SUB_BITS);
  uint64_t lo = (HIST_SUB + sub) << (e - HIST_SUB_BITS);
  return lo + width / 2;
}

uint64_t hist_percentile(const hist *h, double p) {
  if (h->total == 0) return 0;
  uint64_t target = (uint64_t)ceil(p / 100.0 * (double)h->total);
  if (target < 1) target = 1;
  if (target > h->total) target = h->total;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= target) {
      uint64_t v = bucket_mid(i);
      if (v > h->max) v = h->max;
      if (v < h->min) v = h->min;
      return v;
    }
  }
  return h->max;
}

double hist_mean(const hist *h) { return h->total ? h->sum / (double)h->total : 0.0; }
