/* http_poll — wschat's chat over plain HTTP for wschat-cli (long polling).
 *
 * For networks where a WebSocket cannot pass: POST /http/session opens a
 * session (its welcome object is handed up), every client message is a
 * POST /http/send whose JSON reply is handed up, and GET /http/longpoll
 * (ack = the last seq seen) brings every event, each handed up in order.
 * Sends go one at a time, in order (the server answers in order anyway).
 * Each request is its own short TCP connection (Connection: close), so a
 * request never waits behind a held long poll. Any transport failure
 * (refused, reset, 404 for a session the server forgot) ends the session
 * through on_lost; the caller reconnects as it does for a WebSocket.
 *
 * Ownership: the caller owns the http_poll_t; http_poll_free closes every
 * request it has in flight (their callbacks do not run afterwards).
 */
#ifndef WSCLI_HTTP_POLL_H
#define WSCLI_HTTP_POLL_H

#include <stddef.h>
#include <uv.h>

#define HTTP_POLL_RESPONSE_MAX (16 << 20) /* largest response read */
#define HTTP_POLL_QUEUE_MAX 1024          /* client messages waiting to be posted */
#define HTTP_POLL_TIMEOUT_S 25            /* long poll hold, seconds */

typedef struct http_poll http_poll_t;

typedef struct http_poll_cb {
  /* One server object (the welcome, a reply, an event), as JSON text. */
  void (*on_object)(void *ud, const char *json, size_t len);
  /* The session is gone: reason for the user. */
  void (*on_lost)(void *ud, const char *reason);
} http_poll_cb;

/* Opens a session at host:port (name and session may be NULL). */
http_poll_t *http_poll_open(uv_loop_t *loop, const char *host, const char *port, const char *name,
                            const char *session, const http_poll_cb *cb, void *ud);
/* Queues one client message (a JSON object). Returns 0, or -1 if full. */
int http_poll_send(http_poll_t *p, const char *json, size_t len);
void http_poll_free(http_poll_t *p);

#endif
