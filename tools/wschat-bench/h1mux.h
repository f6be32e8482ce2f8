/* h1mux — several rooms on ONE HTTP/1.1 WebSocket for wschat-bench
 * (--mux N): the HTTP/1.1 side of the head-of-line comparison. Bench
 * WebSocket number i is a member of its room through TCP connection
 * i / per_conn: one plain WebSocket to /ws per connection, and one chat
 * protocol `join` per room on it. So a segment lost on that connection
 * stalls every room it carries, as one QUIC connection's loss does not.
 *
 * The bench keeps speaking its own per-room WebSocket (frames as on
 * /ws/{room}); this module translates: a text frame the bench sends for
 * room R goes out as {"type":"send","room":R,"text":...} on the shared
 * WebSocket, and each server message that names a room comes back to that
 * room's bench WebSocket as a frame of its own (the JSON unchanged). The
 * `joined` of room R opens its bench WebSocket. Server messages that name
 * no room (welcome, pong) stay here; a close or a lost connection fails
 * every room on it.
 *
 * Ownership: h1mux owns its connections; bench WebSockets are named by
 * their index. Bytes given to h1mux_send are parsed, not kept.
 */
#ifndef WSB_H1MUX_H
#define WSB_H1MUX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct h1mux_cb {
  void (*on_open)(int ws);                                 /* the room's `joined` */
  void (*on_data)(int ws, uint8_t *data, size_t len);      /* WebSocket frames for the bench */
  void (*on_fail)(int ws, const char *why, int uv_err);    /* refused, closed, connection lost */
} h1mux_cb;

/* Room for n_ws bench WebSockets, per_conn to a TCP connection. Returns 0 or -1. */
int h1mux_init(uv_loop_t *loop, const char *addr, int port, const char *host, int n_ws, int per_conn,
               const h1mux_cb *cb);
/* Joins ws to `room` (connecting its TCP connection first if needed). */
void h1mux_open(int ws, const char *room);
/* The bench's client frames for ws (masked). Returns 0, or -1 past the backlog limit. */
int h1mux_send(int ws, const uint8_t *data, size_t len);
/* Leaves ws's room (the connection stays for the others). */
void h1mux_close(int ws);
/* TCP connections in use. */
int h1mux_connections(void);

#endif
