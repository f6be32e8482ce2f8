/* net/carrier — see carrier.h. The TCP carrier: net_conn_t's own calls. */
#include "net/carrier.h"

#include "net/net.h"

int wsc_carrier_send_copy(wsc_carrier_t c, const void *data, size_t len) {
  wsc_buf_t *b = wsc_buf_from(0, data, len);
  if (!b) return -1;
  int rc = c.ops->send(c.h, b, WSC_SEND_FORCE);
  wsc_buf_unref(b);
  return rc;
}

static int tcp_send(void *h, wsc_buf_t *b, unsigned flags) {
  if (flags & WSC_SEND_FORCE) return net_conn_send_force(h, b);
  if (flags & WSC_SEND_LAZY) return net_conn_send_lazy(h, b);
  return net_conn_send(h, b);
}

static int tcp_hold(void *h) { return net_conn_hold(h); }
static size_t tcp_queued(const void *h) { return ((const net_conn_t *)h)->queued; }
static void tcp_close(void *h) { net_conn_close(h); }
static void tcp_abort(void *h) { net_conn_abort(h); }
static void tcp_pause(void *h) { net_conn_pause(h); }
static void tcp_backpressure(void *h) { net_conn_backpressure(h); }
static int tcp_in_backpressure(const void *h) { return net_conn_in_backpressure(h); }
static int tcp_is_closing(const void *h) { return net_conn_is_closing(h); }
static void tcp_peer(const void *h, char *out, size_t cap) { net_conn_peer(h, out, cap); }

const wsc_carrier_ops_t wsc_tcp_carrier_ops = {
    .name = "http1",
    .kind = WSC_CARRIER_HTTP1,
    .attach = NULL,
    .send = tcp_send,
    .hold = tcp_hold,
    .queued = tcp_queued,
    .close = tcp_close,
    .abort = tcp_abort,
    .pause = tcp_pause,
    .backpressure = tcp_backpressure,
    .in_backpressure = tcp_in_backpressure,
    .is_closing = tcp_is_closing,
    .peer = tcp_peer,
};
