/* base/metrics — the one instance; see metrics.h. */
#include "base/metrics.h"

wsc_metrics_t wsc_metrics;
