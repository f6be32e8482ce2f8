/* h2b — WebSockets over HTTP/2 (RFC 8441) for wschat-bench: the nghttp2
 * client side. WebSocket number i travels on a stream of h2 connection
 * i / per_conn (h2c with prior knowledge), opened with extended CONNECT once
 * the server's SETTINGS allow it. The bench keeps its own WebSocket framing
 * (wsc) per WebSocket: this module only moves bytes.
 *
 * Ownership: h2b owns its connections and streams; the bench's WebSockets
 * are named by their index. Bytes given to h2b_send are copied.
 */
#ifndef WSB_H2B_H
#define WSB_H2B_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct h2b_cb {
  void (*on_open)(int ws);                                 /* :status 200 */
  void (*on_data)(int ws, uint8_t *data, size_t len);      /* stream DATA */
  void (*on_fail)(int ws, const char *why, int uv_err);    /* refused, reset, connection lost */
} h2b_cb;

/* Sets up room for n_ws WebSockets, per_conn to a connection. Returns 0 or -1. */
int h2b_init(uv_loop_t *loop, const char *addr, int port, const char *authority, int n_ws,
             int per_conn, const h2b_cb *cb);
/* Opens WebSocket ws on `path` (connecting its h2 connection if needed). */
void h2b_open(int ws, const char *path);
/* Queues bytes on ws's stream (copied). Returns 0, or -1 past the backlog limit. */
int h2b_send(int ws, const uint8_t *data, size_t len);
/* Resets ws's stream (CANCEL); no more callbacks for it. */
void h2b_close(int ws);
/* Number of h2 connections in use. */
int h2b_connections(void);

#endif
