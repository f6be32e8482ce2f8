/* net/carrier — the seam between a WebSocket and whatever carries its
 * bytes: a TCP connection after the HTTP/1.1 101, an HTTP/2 stream after
 * extended CONNECT (RFC 8441, h2/), an HTTP/3 stream (RFC 9220, h3/).
 *
 * The WebSocket transport (transport/ws_transport) talks to its carrier only
 * through this interface, so ws/ sessions and chat never know which HTTP
 * version is underneath. It sits in net/ because every carrier lives at or
 * above net and below transport.
 *
 * Down (the WebSocket side calls the carrier): a carrier is a pair
 * {ops, h} — a static table of functions and the carrier's own object
 * (net_conn_t for TCP, an HTTP/2 stream, ...). The pair costs the
 * WebSocket two pointers and no allocation.
 *
 *   send        queue a reference to b's bytes [off, off+len) — never a
 *               copy: a broadcast's frame is shared by every recipient on
 *               every carrier. flags: WSC_SEND_LAZY (may wait NET_LAZY_MS,
 *               up to NET_LAZY_MAX_MS in a storm: net.h's presence budget,
 *               to share a write), WSC_SEND_FORCE (ignore the
 *               queue limit: control frames, replies, echoes). Without
 *               FORCE, returns -1 and queues nothing when the bytes would
 *               take queued() past config->send_queue_limit. -1 also when
 *               the carrier is closing.
 *   hold        optional (TCP only): the WebSocket side keeps lazy bytes
 *               for now and queues them when the carrier asks (TCP: net's
 *               on_fill, net_conn_hold) — before anything else it queues,
 *               and before the carrier writes. -1: not held (send them).
 *   queued      bytes queued and not yet taken by the peer (the limit
 *               check: compare with config->send_queue_limit). For an
 *               HTTP/2 stream these are the bytes its flow-control window
 *               has not let out yet.
 *   close       flush what is queued, then end (TCP: FIN; h2: END_STREAM).
 *               Idempotent. The carrier enforces a grace deadline.
 *   abort       end now, dropping the queue (TCP: close; h2: RST_STREAM).
 *   pause       stop reading for good (after a cut-off).
 *   backpressure  stop reading until queued() has drained to half the
 *               limit, then read again by itself.
 *   in_backpressure, is_closing, peer (address as text, for logs).
 *   name, kind  "http1", "h2", "h3" and WSC_CARRIER_*: the metrics label
 *               and index (wsc_metrics.websockets_by_carrier).
 *
 * Up (the carrier calls the WebSocket side): wsc_carrier_cb_t with the ud
 * given to ops->attach. on_data bytes are valid (and writable: unmasking)
 * only during the call. on_close is called exactly once, when the carrier
 * is gone (peer closed, reset, aborted, or closed after a close); the ud
 * is freed by the WebSocket side there. After it, the carrier pair must
 * not be used.
 *
 * TCP is wired a little differently: the TCP carrier's up direction is
 * net's own net_handler_t (the WebSocket transport installs its handler on
 * the net_conn), so ops->attach is NULL for it; its down direction is
 * wsc_tcp_carrier_ops below.
 *
 * Ownership: the carrier object belongs to its carrier module; the
 * WebSocket side owns ud. Single-threaded (the loop thread).
 */
#ifndef WSC_NET_CARRIER_H
#define WSC_NET_CARRIER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum {
  WSC_SEND_LAZY = 1 << 0,
  WSC_SEND_FORCE = 1 << 1,
};

enum { WSC_CARRIER_HTTP1 = 0, WSC_CARRIER_H2 = 1, WSC_CARRIER_H3 = 2 };

typedef struct wsc_carrier_cb {
  void (*on_data)(void *ud, uint8_t *data, size_t len);
  /* Every NET_TICK_MS (timeouts, heartbeat); may close or abort. */
  void (*on_tick)(void *ud, int64_t now);
  /* The server is shutting down: start closing (1001). */
  void (*on_shutdown)(void *ud);
  /* The carrier is gone; free ud. Called once. */
  void (*on_close)(void *ud);
} wsc_carrier_cb_t;

typedef struct wsc_carrier_ops {
  const char *name;
  unsigned kind;
  void (*attach)(void *h, const wsc_carrier_cb_t *cb, void *ud);
  int (*send)(void *h, wsc_buf_t *b, unsigned flags);
  int (*hold)(void *h);
  size_t (*queued)(const void *h);
  void (*close)(void *h);
  void (*abort)(void *h);
  void (*pause)(void *h);
  void (*backpressure)(void *h);
  int (*in_backpressure)(const void *h);
  int (*is_closing)(const void *h);
  void (*peer)(const void *h, char *out, size_t cap);
} wsc_carrier_ops_t;

typedef struct wsc_carrier {
  const wsc_carrier_ops_t *ops;
  void *h;
} wsc_carrier_t;

/* A TCP net_conn_t after the 101 (h is the net_conn_t). */
extern const wsc_carrier_ops_t wsc_tcp_carrier_ops;

/* Convenience wrappers. */
static inline int wsc_carrier_send(wsc_carrier_t c, wsc_buf_t *b, unsigned flags) {
  return c.ops->send(c.h, b, flags);
}
static inline size_t wsc_carrier_queued(wsc_carrier_t c) { return c.ops->queued(c.h); }
/* Copies data into a new buffer and force-queues it (control frames). */
int wsc_carrier_send_copy(wsc_carrier_t c, const void *data, size_t len);

#endif
