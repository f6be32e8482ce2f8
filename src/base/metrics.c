/* base/metrics — the one instance and the histogram; see metrics.h. */
#include "base/metrics.h"

wsc_metrics_t wsc_metrics;

/* 100 us to 5 s: a commit batch on a fast disk to a stalled one. */
const double wsc_hist_bounds[WSC_HIST_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

const char *const wsc_cutoff_names[WSC_CUTOFF_REASONS] = {
    [WSC_CUTOFF_SLOW_CONSUMER] = "slow_consumer",
    [WSC_CUTOFF_PROTOCOL_ERROR] = "protocol_error",
    [WSC_CUTOFF_HEARTBEAT] = "heartbeat_timeout",
    [WSC_CUTOFF_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [WSC_CUTOFF_CONNECTION_LIMIT] = "connection_limit",
    [WSC_CUTOFF_HTTP_OVERFLOW] = "http_overflow",
    [WSC_CUTOFF_HTTP_EXPIRED] = "http_expired",
    [WSC_CUTOFF_HTTP_HELD_LIMIT] = "http_held_limit",
};

void wsc_hist_observe_ns(wsc_hist_t *h, int64_t ns) {
  if (ns < 0) ns = 0;
  double s = (double)ns / 1e9;
  int i = 0;
  while (i < WSC_HIST_BUCKETS - 1 && s > wsc_hist_bounds[i]) i++;
  h->buckets[i]++;
  h->count++;
  h->sum_ns += (uint64_t)ns;
}
