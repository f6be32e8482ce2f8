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
 */
#ifndef WSC_TRANSPORT_ROUTES_H
#define WSC_TRANSPORT_ROUTES_H

#include "chat/chat.h"
#include "http/http.h"
#include "transport/ws_transport.h"
#include "transport/http_session.h"

typedef struct routes {
  http_app_t http;
  const wsc_config_t *config;
  chat_server_t *chat;
  ws_transport_t *ws;            /* WebSockets are handed to it; set by the owner */
  ws_hs_policy_t origin_policy;
  char etag[32];                 /* of the embedded assets, per build */
  hsess_server_t *sessions;      /* HTTP chat sessions (owned by main), or NULL */
} routes_t;

/* Fills r; its `http` member is what http_conn_attach wants. */
void routes_init(routes_t *r, const wsc_config_t *config, chat_server_t *chat);

#endif
