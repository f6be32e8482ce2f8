/* h3b — WebSockets over HTTP/3 (RFC 9220) for wschat-bench and the h3ws
 * test client: the client side on Debian's ngtcp2 0.12 (GnuTLS helper) and
 * nghttp3 0.8, sharing no code with the server. WebSocket number i travels
 * on a stream of QUIC connection i / per_conn, opened with extended CONNECT
 * (:protocol websocket) once the handshake is done. The caller keeps its own
 * WebSocket framing: this module only moves bytes.
 *
 * The server's certificate is not verified (test certificates).
 *
 * Ownership: h3b owns its connections and streams; WebSockets are named by
 * their index. Bytes given to h3b_send are copied.
 */
#ifndef WSB_H3B_H
#define WSB_H3B_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct h3b_cb {
  void (*on_open)(int ws);                                 /* :status 200 */
  void (*on_data)(int ws, uint8_t *data, size_t len);      /* DATA payload */
  void (*on_fail)(int ws, const char *why, int status);    /* non-200 (status), reset, connection lost (0) */
} h3b_cb;

/* Sets up room for n_ws WebSockets, per_conn to a QUIC connection. Returns 0 or -1. */
int h3b_init(uv_loop_t *loop, const char *addr, int port, const char *authority, int n_ws,
             int per_conn, const h3b_cb *cb);
/* Extra request header for every CONNECT (e.g. "origin", "https://x"); at most 4. */
void h3b_add_header(const char *name, const char *value);
/* Opens WebSocket ws on `path` (connecting its QUIC connection if needed). */
void h3b_open(int ws, const char *path);
/* Queues bytes on ws's stream (copied). Returns 0, or -1 past the backlog limit. */
int h3b_send(int ws, const uint8_t *data, size_t len);
/* Ends ws's stream (FIN after what is queued) or, with reset, resets it now. */
void h3b_close(int ws, int reset);
/* Stops / restarts reading ws's stream (its flow-control window stays shut). */
void h3b_stall(int ws, int stalled);
/* Number of QUIC connections in use. */
int h3b_connections(void);
/* Frees everything (connections closed without a goodbye). */
void h3b_free(void);

#endif
