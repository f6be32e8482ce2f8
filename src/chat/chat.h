/* chat/chat — the connection manager: rooms, members, names, sessions,
 * presence, typing, direct messages, history and resume; the JSON protocol
 * of docs/PROTOCOL.md.
 *
 * chat/ knows nothing of sockets or WebSocket framing. A transport (the
 * WebSocket session in transport/ws_transport.c; later HTTP polling)
 * attaches a client with a small vtable for sending and closing, hands it
 * every text message the peer sends, and detaches it when the connection is
 * gone. Every server message is encoded once into a sealed outbuf
 * (msg/outbuf.h) and the same buffer is queued to every recipient.
 *
 * Ownership: chat owns chat_client_t from attach until detach (detach frees
 * it; the transport must not use the pointer after). The transport owns its
 * connection and the `transport_ud` pointer. chat_server_t owns the rooms,
 * the name and session tables; the store and bus passed to chat_server_new
 * stay owned by the caller and must outlive the server.
 */
#ifndef WSC_CHAT_CHAT_H
#define WSC_CHAT_CHAT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/config.h"
#include "bus/bus.h"
#include "bus/dir.h"
#include "store/store.h"

typedef struct chat_server chat_server_t;
typedef struct chat_client chat_client_t;

typedef struct chat_transport_ops {
  /* Queues a sealed message (takes its own reference). Returns 0, or -1
   * when the client's send queue is over its limit: the transport then
   * closes the connection (1013) and will call chat_client_detach; chat
   * just stops sending to it. */
  int (*send)(void *transport_ud, wsc_buf_t *msg);
  /* Queues a reply to the client's own request (welcome, joined with its
   * replay, history, ack, pong, error). A reply is bounded by the request,
   * so it is accepted whole whenever the queue is not already over its
   * limit, however large (a 1,000-message replay must reach a client that
   * reads); past the limit it fails like send. */
  int (*reply)(void *transport_ud, wsc_buf_t *msg);
  /* Queues a room event that is not a message (presence, typing): like
   * send, but it may wait a few milliseconds to share a write with the
   * next ones (net_conn_send_lazy); order with everything else is kept. */
  int (*notify)(void *transport_ud, wsc_buf_t *msg);
  /* Optional: chat keeps the room's events for this client instead of
   * queuing them one by one (a room's presence is kept once, for all its
   * members, until the lazy round), and the transport calls
   * chat_client_fill when they are wanted — before it queues anything
   * else for the client and before it writes. 0 held; -1 not (then chat
   * uses notify). */
  int (*hold)(void *transport_ud);
  /* Closes the connection with a WebSocket close code and reason (4001
   * "replaced" when a session is taken over). chat_client_detach follows. */
  void (*close)(void *transport_ud, int code, const char *reason);
} chat_transport_ops_t;

/* What the client asked for in the URL (/ws?name=&room=&since=&epoch=&session=
 * or /ws/{room}). Strings are NUL-terminated, already percent-decoded, NULL
 * when absent; chat copies what it keeps. */
typedef struct chat_connect_params {
  const char *name;
  const char *room;
  const char *since;      /* raw text; validated by chat (bad_request) */
  const char *epoch;
  const char *session;
  int room_endpoint;      /* 1 for /ws/{room}: plain text frames are sent to room */
} chat_connect_params_t;

chat_server_t *chat_server_new(uv_loop_t *loop, const wsc_config_t *config, store_t *store);
/* The bus the server publishes on; created by the caller with
 * chat_server_deliver as its deliver callback and the server as ud. */
void chat_server_set_bus(chat_server_t *srv, bus_t *bus);
/* bus_deliver_cb: a room event from the bus, to every local member. */
void chat_server_deliver(void *srv, const char *room, wsc_buf_t *msg);
/* Fills h with this server's callbacks for a bus that spans nodes
 * (messages of other nodes, subscriptions (re)established, link regained). */
void chat_server_bus_handler(chat_server_t *srv, bus_handler_t *h);
/* The directory (names, sessions, members beyond this node; owned by the
 * caller, must outlive the server). Without one, chat uses an in-process
 * directory (dir_local_new). */
void chat_server_set_dir(chat_server_t *srv, dir_t *dir);
/* Fills h with this server's callbacks for the directory (kicks, DMs from
 * other nodes, this node taken for dead). */
void chat_server_dir_handler(chat_server_t *srv, dir_handler_t *h);
/* 1 unless the bus cannot reach the other nodes (then /healthz is 503). */
int chat_server_healthy(const chat_server_t *srv);
/* Frees rooms, names and sessions. Clients not yet detached become inert
 * (nothing more is sent to them; the transport still detaches them). Safe
 * before or after store_close: with store operations in flight the last
 * bit of the server is freed when their callbacks have run. */
void chat_server_free(chat_server_t *srv);

/* Attaches a new connection: sends `welcome` (after an error for a bad or
 * taken ?name=), then joins params->room if given. NULL on allocation
 * failure. */
chat_client_t *chat_client_attach(chat_server_t *srv, const chat_transport_ops_t *ops,
                                  void *transport_ud, const chat_connect_params_t *params);
/* One text message from the peer (valid UTF-8, any length the transport
 * allows). */
void chat_client_receive(chat_client_t *c, const char *text, size_t len);
/* The connection is gone (closed, timed out, cut off): leave every room
 * (presence leave to the others), free the name, free the client. May be
 * called from inside ops->send or ops->close: chat then stops using the
 * transport at once and finishes the detach when its current call returns.
 * Store callbacks still in flight for the client are safe (the client is
 * reference counted; they find it gone). After chat_server_free, detach
 * only releases the client. */
void chat_client_detach(chat_client_t *c);
/* The room events held for the client (ops->hold) are wanted: queues them
 * now with ops->notify. The transport calls it before it queues anything
 * else for the client and when it writes. */
void chat_client_fill(chat_client_t *c);

/* Room for a session token as text (32 hex digits and the NUL). */
#define CHAT_TOKEN_TEXT 33
/* The session token of an attached client (what its `welcome` carries),
 * written into buf as text; returns buf, or NULL once it was replaced or
 * detached. */
const char *chat_client_token(const chat_client_t *c, char buf[CHAT_TOKEN_TEXT]);

/* 1 while the client's name waits for the directory (many nodes on Redis):
 * its `welcome` comes later, through ops->reply. */
int chat_client_attaching(const chat_client_t *c);

/* Room name rule of PROTOCOL.md: 1–64 of [A-Za-z0-9._-]. 1 if valid. */
int chat_room_name_valid(const char *room, size_t len);

#endif
