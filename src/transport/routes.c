/* transport/routes — see routes.h. */
#include "transport/routes.h"

#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "http/metrics.h"
#include "http/static.h"
#include "http/url.h"
#include "h2/h2.h"
#include "transport/ws_transport.h"
#include "ws/handshake.h"

#define QUERY_VALUE_MAX 512   /* longest accepted ?name=, ?room=... value */
#define METRICS_BUF (16 * 1024)

static int path_is(const http_request_t *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static int path_starts(const http_request_t *req, const char *prefix) {
  size_t n = strlen(prefix);
  return req->path_len >= n && memcmp(req->path, prefix, n) == 0;
}

static int is_get_or_head(const http_request_t *req) {
  return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

/* A 2xx/3xx answer to GET or HEAD: HEAD gets the same headers, no body. */
static void reply(http_reply_t out, const http_request_t *req, int status, const char *type,
                  const char *headers, const void *body, size_t len) {
  int head_only = strcmp(req->method, "HEAD") == 0;
  out.ops->respond(out.target, status, type, headers, head_only ? NULL : body, len, req->keep_alive);
}

/* --- static files --------------------------------------------------------------- */

static void serve_asset(routes_t *r, http_reply_t out, const http_request_t *req, const char *name,
                        size_t name_len) {
  const wsc_web_asset_t *a = wsc_web_asset_find(name, name_len);
  if (!a) {
    http_reply_error(out, 404, "no such file", NULL);
    return;
  }
  char headers[256];
  /* index.html must be revalidated so a new build is picked up at once;
   * assets revalidate too but cheaply, by ETag. */
  snprintf(headers, sizeof headers, "Cache-Control: no-cache\r\nETag: \"%s\"\r\n", r->etag);
  size_t inm_len;
  const char *inm = http_header(req, "If-None-Match", &inm_len);
  if (inm && inm_len == strlen(r->etag) + 2 && memcmp(inm + 1, r->etag, strlen(r->etag)) == 0) {
    reply(out, req, 304, wsc_content_type(a->path), headers, NULL, 0);
    return;
  }
  reply(out, req, 200, wsc_content_type(a->path), headers, a->data, a->size);
}

/* --- WebSocket endpoints (HTTP/1.1 Upgrade, HTTP/2 extended CONNECT) ------------------ */

static int query_param(const http_request_t *req, const char *key, char *out, const char **val) {
  int n = url_query_get(req->query, req->query_len, key, out, QUERY_VALUE_MAX);
  if (n == -EINVAL) return -1;
  *val = n >= 0 ? out : NULL;
  return 0;
}

/* What a WebSocket request asks for: its kind, and for chat the URL's
 * parameters (their text lives in the buffers here). */
typedef struct ws_target {
  ws_kind_t kind;
  chat_connect_params_t params;
  char room[QUERY_VALUE_MAX], name[QUERY_VALUE_MAX], qroom[QUERY_VALUE_MAX],
      since[QUERY_VALUE_MAX], epoch[QUERY_VALUE_MAX], session[QUERY_VALUE_MAX];
} ws_target_t;

static int is_ws_path(const http_request_t *req) {
  return path_is(req, "/ws") || path_starts(req, "/ws/") || path_is(req, "/echo");
}

/* The checks every HTTP version shares: the endpoint is on, the method is
 * the version's (GET to upgrade, CONNECT on HTTP/2), the room name and the
 * query are valid. Returns 0, or -1 after answering with the error. */
static int ws_target(routes_t *r, http_reply_t out, const http_request_t *req, const char *method,
                     const char *wrong_method, ws_target_t *t) {
  memset(&t->params, 0, sizeof t->params);
  int echo = path_is(req, "/echo");
  if (echo && r->config->echo == 0) {
    http_reply_error(out, 404, "the echo endpoint is off (start with --echo)", NULL);
    return -1;
  }
  if (strcmp(req->method, method) != 0) {
    http_reply_error(out, 405, wrong_method, strcmp(method, "GET") == 0 ? "Allow: GET\r\n" : "Allow: CONNECT\r\n");
    return -1;
  }
  t->kind = echo ? WS_KIND_ECHO : WS_KIND_CHAT;
  if (echo) return 0;
  /* "/ws/" is /ws/{room} with an empty room: invalid like any other. */
  if (!path_is(req, "/ws")) {
    int n = url_decode(req->path + 4, req->path_len - 4, t->room, sizeof t->room, 0);
    if (n < 0 || !chat_room_name_valid(t->room, (size_t)n)) {
      http_reply_error(out, 400, "invalid room name: use 1-64 letters, digits, '-', '_' or '.'", NULL);
      return -1;
    }
  }
  chat_connect_params_t *p = &t->params;
  if (query_param(req, "name", t->name, &p->name) || query_param(req, "room", t->qroom, &p->room) ||
      query_param(req, "since", t->since, &p->since) || query_param(req, "epoch", t->epoch, &p->epoch) ||
      query_param(req, "session", t->session, &p->session)) {
    http_reply_error(out, 400, "malformed, too long or repeated query parameter", NULL);
    return -1;
  }
  if (!path_is(req, "/ws")) {
    p->room = t->room;
    p->room_endpoint = 1;
  }
  return 0;
}

static void hs_error(http_reply_t out, const ws_hs_result_t *res) {
  http_reply_error(out, res->status, res->reason, res->status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
}

static void upgrade(routes_t *r, net_conn_t *c, const http_request_t *req, uint8_t *rest, size_t rest_len) {
  http_reply_t out = http1_reply(c);
  ws_target_t t;
  if (ws_target(r, out, req, "GET", "WebSocket endpoints take GET only", &t) != 0) return;
  ws_hs_request_t hs = {req->method, req->http_major, req->http_minor, req->headers, req->n_headers};
  ws_hs_result_t res;
  if (ws_handshake_check(&hs, &r->origin_policy, &res) != 0) {
    hs_error(out, &res);
    return;
  }
  char resp[512];
  size_t n = ws_handshake_response(&res, resp, sizeof resp);
  if (n == 0) {
    http_error(c, 500, "handshake response too large", NULL);
    return;
  }
  net_conn_send_copy(c, resp, n);
  http_conn_take(c);
  ws_transport_start_tcp(r->ws, c, t.kind, &t.params, &res.pmd, rest, rest_len);
}

/* RFC 8441 / RFC 9220: the stream becomes the WebSocket's carrier;
 * :status 200, no Sec-WebSocket-Accept. The same checks and limits as the
 * Upgrade. */
static void connect_ws(routes_t *r, const routes_stream_t *st, const http_request_t *req) {
  ws_target_t t;
  if (ws_target(r, st->out, req, "CONNECT", st->connect_only, &t) != 0) return;
  ws_hs_request_t hs = {req->method, req->http_major, req->http_minor, req->headers, req->n_headers};
  ws_hs_policy_t policy = r->origin_policy;
  if (!st->deflate) policy.deflate = 0;
  ws_hs_result_t res;
  if (ws_handshake_check_connect(&hs, req->protocol, &policy, &res) != 0) {
    hs_error(st->out, &res);
    return;
  }
  char ext[128] = "";
  if (res.pmd.enabled && ws_pmd_response(&res.pmd, ext, sizeof ext) == 0) res.pmd.enabled = 0;
  ws_transport_start(r->ws, st->websocket(st->stream, res.subprotocol, ext), t.kind, &t.params, &res.pmd);
}

/* --- HTTP sessions: an HTTP/1.1 connection as their carrier --------------------- */

static void h1_hold(void *conn, hsess_waiter_t *w) { http_hold(conn, hsess_waiter_gone, w); }

static void h1_respond(void *conn, int status, const char *type, const char *extra, wsc_buf_t *body) {
  http_answer(conn, status, type, extra, body);
}

static const hsess_carrier_ops_t h1_carrier = {.hold = h1_hold, .respond = h1_respond};

/* ... and an HTTP/2 stream. */
static void h2s_hold(void *stream, hsess_waiter_t *w) { h2_stream_hold(stream, hsess_waiter_gone, w); }

static void h2s_respond(void *stream, int status, const char *type, const char *extra, wsc_buf_t *body) {
  h2_stream_answer(stream, status, type, extra, body);
}

static const hsess_carrier_ops_t h2_carrier = {.hold = h2s_hold, .respond = h2s_respond};

/* --- the dispatcher ------------------------------------------------------------------ */

/* Everything but the WebSocket endpoints, for any HTTP version. */
static void route_plain(routes_t *r, http_reply_t out, const http_request_t *req) {
  int known = path_is(req, "/") || path_starts(req, "/static/") || path_is(req, "/healthz") ||
              path_is(req, "/metrics") || path_is(req, "/index.html");
  if (!known) {
    http_reply_error(out, 404, "not found", NULL);
    return;
  }
  if (!is_get_or_head(req)) {
    http_reply_error(out, 405, "method not allowed", "Allow: GET, HEAD\r\n");
    return;
  }
  if (path_is(req, "/healthz")) {
    if (r->chat && !chat_server_healthy(r->chat))
      reply(out, req, 503, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n",
            "degraded: the shared store is unreachable\n", 42);
    else
      reply(out, req, 200, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n", "ok\n", 3);
  } else if (path_is(req, "/metrics")) {
    static char buf[METRICS_BUF];
    size_t n = metrics_render(buf, sizeof buf);
    reply(out, req, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n",
          buf, n);
  } else if (path_is(req, "/") || path_is(req, "/index.html")) {
    serve_asset(r, out, req, "/index.html", 11);
  } else {
    serve_asset(r, out, req, req->path + 7, req->path_len - 7); /* "/static/x" -> "/x" */
  }
}

static void on_request(void *app, net_conn_t *c, const http_request_t *req, uint8_t *rest,
                       size_t rest_len) {
  routes_t *r = app;
  if (is_ws_path(req)) upgrade(r, c, req, rest, rest_len);
  else if (r->sessions && hsess_path(req->path, req->path_len))
    hsess_handle(r->sessions, &h1_carrier, c, req->method, req->path, req->path_len, req->query,
                 req->query_len, req->body, req->body_len);
  else route_plain(r, http1_reply(c), req);
}

void routes_stream_request(routes_t *r, const routes_stream_t *st, const http_request_t *req) {
  if (is_ws_path(req)) {
    connect_ws(r, st, req);
    return;
  }
  if (req->protocol) {
    http_reply_error(st->out, 404, "no WebSocket endpoint at this path", NULL);
    return;
  }
  if (st->sessions && r->sessions && hsess_path(req->path, req->path_len)) {
    hsess_handle(r->sessions, st->sessions, st->stream, req->method, req->path, req->path_len, req->query,
                 req->query_len, req->body, req->body_len);
    return;
  }
  route_plain(r, st->out, req);
}

static wsc_carrier_t h2_websocket(void *stream, const char *subprotocol, const char *extensions) {
  return h2_stream_websocket(stream, subprotocol, extensions);
}

void routes_h2_request(void *app, h2_stream_t *s, const http_request_t *req) {
  const routes_stream_t st = {h2_stream_reply(s), s, h2_websocket, 1,
                              "WebSocket endpoints over HTTP/2 take extended CONNECT (RFC 8441)", &h2_carrier};
  routes_stream_request(app, &st, req);
}

static void on_h2_preface(void *app, net_conn_t *c, uint8_t *data, size_t len) {
  routes_t *r = app;
  h2_conn_attach(r->h2, c, data, len);
}

void routes_enable_h2(routes_t *r, h2_server_t *h2) {
  r->h2 = h2;
  r->http.on_h2_preface = on_h2_preface;
}

void routes_init(routes_t *r, const wsc_config_t *config, chat_server_t *chat) {
  memset(r, 0, sizeof *r);
  r->config = config;
  r->chat = chat;
  r->http.handler = on_request;
  r->http.app = r;
  r->http.config = config;
  r->origin_policy.allowed_origins = config->allowed_origins;
  r->origin_policy.n_allowed_origins = config->n_allowed_origins;
  r->origin_policy.deflate = config->deflate;
  /* ETag: a hash of the embedded bytes, so it changes with every new page. */
  uint64_t h = 1469598103934665603ull;
  for (const wsc_web_asset_t *a = wsc_web_assets; a->path; a++)
    for (size_t i = 0; i < a->size; i++) h = (h ^ a->data[i]) * 1099511628211ull;
  snprintf(r->etag, sizeof r->etag, "%016llx", (unsigned long long)h);
}
