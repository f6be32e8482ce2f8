/* http/metrics — renders base/metrics as Prometheus text (GET /metrics). */
#ifndef WSC_HTTP_METRICS_H
#define WSC_HTTP_METRICS_H

#include <stddef.h>

/* Writes the exposition into out; returns its length (truncated to cap-1). */
size_t metrics_render(char *out, size_t cap);

#endif
