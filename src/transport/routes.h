/* transport/routes — the server's HTTP routes: what each path serves and
 * which transport a WebSocket upgrade attaches.
 *
 *   GET/HEAD /, /static/NAME     embedded web page (http/static)
 *   GET /healthz, /metrics       liveness, Prometheus text
 *   GET /ws, /ws/{room}          WebSocket chat (transport/ws_transport)
 *   GET /echo                    WebSocket echo, with --echo
 *   /http/session, /http/send,   chat over HTTP polling and long polling
 *   /http/poll, /http/longpoll   (transport/http_session), once main has
 *                                set `sessions`
 * Anything else is 404; a known path with the wrong method is 405.
 *
 * The same routes over HTTP/2 (routes_h2_request): the plain ones answer
 * through the stream; the WebSocket endpoints take extended CONNECT with
 * :protocol websocket (RFC 8441) instead of GET + Upgrade, with the same
 * checks and limits, and the stream becomes the WebSocket's carrier. An
 * extended CONNECT to any other path is 404.
 */
#ifndef WSC_TRANSPORT_ROUTES_H
#define WSC_TRANSPORT_ROUTES_H

#include "chat/chat.h"
#include "h2/h2.h"
#include "http/http.h"
#include "transport/ws_transport.h"
#include "transport/http_session.h"

typedef struct routes {
  http_app_t http;
  const wsc_config_t *config;
  chat_server_t *chat;
  ws_transport_t *ws;            /* WebSockets are handed to it; set by the owner */
  h2_server_t *h2;               /* HTTP/2 connections go to it (routes_enable_h2) */
  ws_hs_policy_t origin_policy;
  char etag[32];                 /* of the embedded assets, per build */
  hsess_server_t *sessions;      /* HTTP chat sessions (owned by main), or NULL */
} routes_t;

/* Fills r; its `http` member is what http_conn_attach wants. */
void routes_init(routes_t *r, const wsc_config_t *config, chat_server_t *chat);
/* Serves h2c with prior knowledge on the HTTP/1.1 port (the preface is
 * detected by http/) through h2. */
void routes_enable_h2(routes_t *r, h2_server_t *h2);
/* h2_request_fn: a request on an HTTP/2 stream (app is the routes_t). */
void routes_h2_request(void *app, h2_stream_t *s, const http_request_t *req);

#endif
