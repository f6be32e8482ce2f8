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

/* A request on a stream of a multiplexed HTTP version (HTTP/2, HTTP/3):
 * how to answer it and how the stream becomes a WebSocket's carrier. One
 * set of routes and checks serves them all (routes_stream_request). */
typedef struct routes_stream {
  http_reply_t out;
  void *stream;
  /* After the checks pass: the stream as the WebSocket's carrier, its
   * :status 200 carrying the subprotocol and extensions (may be ""). */
  wsc_carrier_t (*websocket)(void *stream, const char *subprotocol, const char *extensions);
  int deflate;                          /* permessage-deflate may be negotiated */
  const char *connect_only;             /* the 405 text for a WebSocket path without CONNECT */
  const hsess_carrier_ops_t *sessions;  /* HTTP sessions over it, or NULL (then 404) */
} routes_stream_t;

void routes_stream_request(routes_t *r, const routes_stream_t *s, const http_request_t *req);

#endif
