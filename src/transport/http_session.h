/* transport/http_session — a chat client carried by HTTP requests instead
 * of a WebSocket: polling and long polling on the same rooms, with the same
 * JSON objects (docs/PROTOCOL.md, "HTTP sessions").
 *
 *   POST /http/session                    attach; answers the `welcome`, whose
 *                                         token names the session from then on
 *   POST /http/send?session=S             one client message; the answer is its
 *                                         direct reply (ack after the commit,
 *                                         joined, left, history, pong, error)
 *   GET  /http/poll?session=S&ack=N       the queued events after N, at once
 *   GET  /http/longpoll?session=S&ack=N&timeout=T   the same, held until there
 *                                         is one, or [] after T s
 *
 * Everything else the client is owed (room messages, a join's replay,
 * presence, typing, DMs) goes into the session's event queue (at most
 * config->http_queue_max), numbered by `seq` (dense, from 1) and kept until
 * a later request's `ack` covers it, so a lost response loses nothing. A
 * queued event is a reference to the message's shared buffer (msg/outbuf),
 * not a copy; a poll response splices the JSON texts into one array.
 *
 * Time costs no timer per session: one timer ticks every HSESS_TICK_MS; held
 * requests sit in a timer wheel (their deadlines), and sessions in a list
 * ordered by last use, so expiry (config->http_session_ttl_ms) pops from its
 * head. A long poll is woken by the push of an event into its queue (the
 * room's fan-out), never by scanning.
 *
 * Independence from the HTTP version: requests come in through
 * hsess_handle with a carrier (how to answer, how to hold), so an HTTP/2
 * stream can carry the same session endpoints as an HTTP/1.1 connection.
 *
 * Ownership: hsess_server_t owns its sessions (each owns its chat client
 * from attach until the session ends, its queued buffer references and its
 * waiters). A carrier owns its connection; it calls hsess_waiter_gone when a
 * held request's connection goes away, after which the session never uses
 * that connection again.
 */
#ifndef WSC_TRANSPORT_HTTP_SESSION_H
#define WSC_TRANSPORT_HTTP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/config.h"
#include "chat/chat.h"
#include "redis/link.h"

#define HSESS_TICK_MS 250
#define HSESS_WHEEL_SLOTS 512          /* x HSESS_TICK_MS = 128 s > any deadline */
#define HSESS_SEND_TIMEOUT_MS 10000    /* a /http/send without its reply by then: 503 */
#define HSESS_SENDS_MAX 32             /* /http/send requests in flight per session */

typedef struct hsess_server hsess_server_t;
typedef struct hsess_waiter hsess_waiter_t;

/* How a request is answered: by the HTTP version that carries it. */
typedef struct hsess_carrier_ops {
  /* The request will be answered later: keep it open, and call
   * hsess_waiter_gone(w) if its connection goes away first. */
  void (*hold)(void *conn, hsess_waiter_t *w);
  /* Answers the request (at once, or a held one): body queued by
   * reference (NULL: empty). Called once per request. */
  void (*respond)(void *conn, int status, const char *content_type, const char *extra_headers,
                  wsc_buf_t *body);
} hsess_carrier_ops_t;

/* redis: the cluster's link (--redis), or NULL on one node. With it, the
 * sessions live in Redis (transport/http_session_redis.h): any node serves
 * any session's requests. Call before wsc_redis_start (scripts). */
hsess_server_t *hsess_server_new(uv_loop_t *loop, const wsc_config_t *config, chat_server_t *chat,
                                 wsc_redis_t *redis);
/* Ends every session (their chat clients leave their rooms) and closes the
 * timer. Call after the connections are closed, before chat_server_free. */
void hsess_server_free(hsess_server_t *hs);

/* 1 if the path is one of ours (under /http/). */
int hsess_path(const char *path, size_t len);
/* Serves one request under /http/. */
void hsess_handle(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn, const char *method,
                  const char *path, size_t path_len, const char *query, size_t query_len,
                  const uint8_t *body, size_t body_len);
/* The connection of a held request is gone (w is hsess_waiter_t *). */
void hsess_waiter_gone(void *w);

/* Sessions open, requests held (for /metrics and tests). */
size_t hsess_count(const hsess_server_t *hs);
size_t hsess_held(const hsess_server_t *hs);

#endif
