/* base/clock — wall-clock and monotonic milliseconds. */
#ifndef WSC_BASE_CLOCK_H
#define WSC_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch: the protocol's `ts`. */
static inline int64_t wsc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds: for timeouts and rate limits. */
static inline int64_t wsc_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic nanoseconds: for latency metrics. */
static inline int64_t wsc_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
