/* transport/routes — see routes.h. */
#include "transport/routes.h"

#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "http/metrics.h"
#include "http/static.h"
#include "http/url.h"
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
static void reply(net_conn_t *c, const http_request_t *req, int status, const char *type,
                  const char *headers, const void *body, size_t len) {
  int head_only = strcmp(req->method, "HEAD") == 0;
  http_respond(c, status, type, headers, head_only ? NULL : body, len, req->keep_alive);
}

/* --- static files --------------------------------------------------------------- */

static void serve_asset(routes_t *r, net_conn_t *c, const http_request_t *req, const char *name,
                        size_t name_len) {
  const wsc_web_asset_t *a = wsc_web_asset_find(name, name_len);
  if (!a) {
    http_error(c, 404, "no such file", NULL);
    return;
  }
  char headers[256];
  /* index.html must be revalidated so a new build is picked up at once;
   * assets revalidate too but cheaply, by ETag. */
  snprintf(headers, sizeof headers, "Cache-Control: no-cache\r\nETag: \"%s\"\r\n", r->etag);
  size_t inm_len;
  const char *inm = http_header(req, "If-None-Match", &inm_len);
  if (inm && inm_len == strlen(r->etag) + 2 && memcmp(inm + 1, r->etag, strlen(r->etag)) == 0) {
    reply(c, req, 304, wsc_content_type(a->path), headers, NULL, 0);
    return;
  }
  reply(c, req, 200, wsc_content_type(a->path), headers, a->data, a->size);
}

/* --- WebSocket upgrades ------------------------------------------------------------ */

static int query_param(const http_request_t *req, const char *key, char *out, const char **val) {
  int n = url_query_get(req->query, req->query_len, key, out, QUERY_VALUE_MAX);
  if (n == -EINVAL) return -1;
  *val = n >= 0 ? out : NULL;
  return 0;
}

static void upgrade(routes_t *r, net_conn_t *c, const http_request_t *req, ws_kind_t kind,
                    const char *room, uint8_t *rest, size_t rest_len) {
  ws_hs_request_t hs = {req->method, req->http_major, req->http_minor, req->headers, req->n_headers};
  ws_hs_result_t res;
  if (ws_handshake_check(&hs, &r->origin_policy, &res) != 0) {
    http_error(c, res.status, res.reason,
               res.status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
    return;
  }
  chat_connect_params_t params = {0};
  char name[QUERY_VALUE_MAX], qroom[QUERY_VALUE_MAX], since[QUERY_VALUE_MAX],
      epoch[QUERY_VALUE_MAX], session[QUERY_VALUE_MAX];
  if (kind == WS_KIND_CHAT) {
    if (query_param(req, "name", name, &params.name) || query_param(req, "room", qroom, &params.room) ||
        query_param(req, "since", since, &params.since) ||
        query_param(req, "epoch", epoch, &params.epoch) ||
        query_param(req, "session", session, &params.session)) {
      http_error(c, 400, "malformed, too long or repeated query parameter", NULL);
      return;
    }
    if (room) {
      params.room = room;
      params.room_endpoint = 1;
    }
  }
  char resp[512];
  size_t n = ws_handshake_response(&res, resp, sizeof resp);
  if (n == 0) {
    http_error(c, 500, "handshake response too large", NULL);
    return;
  }
  net_conn_send_copy(c, resp, n);
  http_conn_take(c);
  ws_transport_start_tcp(r->ws, c, kind, &params, &res.pmd, rest, rest_len);
}

static void route_ws(routes_t *r, net_conn_t *c, const http_request_t *req, uint8_t *rest,
                     size_t rest_len) {
  /* "/ws/" is /ws/{room} with an empty room: invalid like any other. */
  if (path_is(req, "/ws")) {
    upgrade(r, c, req, WS_KIND_CHAT, NULL, rest, rest_len);
    return;
  }
  char room[QUERY_VALUE_MAX];
  int n = url_decode(req->path + 4, req->path_len - 4, room, sizeof room, 0);
  if (n < 0 || !chat_room_name_valid(room, (size_t)n)) {
    http_error(c, 400, "invalid room name: use 1-64 letters, digits, '-', '_' or '.'", NULL);
    return;
  }
  upgrade(r, c, req, WS_KIND_CHAT, room, rest, rest_len);
}

/* --- HTTP sessions: an HTTP/1.1 connection as their carrier --------------------- */

static void h1_hold(void *conn, hsess_waiter_t *w) { http_hold(conn, hsess_waiter_gone, w); }

static void h1_respond(void *conn, int status, const char *type, const char *extra, wsc_buf_t *body) {
  http_answer(conn, status, type, extra, body);
}

static const hsess_carrier_ops_t h1_carrier = {.hold = h1_hold, .respond = h1_respond};

/* --- the dispatcher ------------------------------------------------------------------ */

static void on_request(void *app, net_conn_t *c, const http_request_t *req, uint8_t *rest,
                       size_t rest_len) {
  routes_t *r = app;
  int ws_path = path_is(req, "/ws") || path_starts(req, "/ws/") || path_is(req, "/echo");
  if (ws_path && r->config->echo == 0 && path_is(req, "/echo")) {
    http_error(c, 404, "the echo endpoint is off (start with --echo)", NULL);
    return;
  }
  if (ws_path) {
    if (strcmp(req->method, "GET") != 0) {
      http_error(c, 405, "WebSocket endpoints take GET only", "Allow: GET\r\n");
      return;
    }
    if (path_is(req, "/echo")) upgrade(r, c, req, WS_KIND_ECHO, NULL, rest, rest_len);
    else route_ws(r, c, req, rest, rest_len);
    return;
  }
  if (r->sessions && hsess_path(req->path, req->path_len)) {
    hsess_handle(r->sessions, &h1_carrier, c, req->method, req->path, req->path_len, req->query,
                 req->query_len, req->body, req->body_len);
    return;
  }
  int known = path_is(req, "/") || path_starts(req, "/static/") || path_is(req, "/healthz") ||
              path_is(req, "/metrics") || path_is(req, "/index.html");
  if (!known) {
    http_error(c, 404, "not found", NULL);
    return;
  }
  if (!is_get_or_head(req)) {
    http_error(c, 405, "method not allowed", "Allow: GET, HEAD\r\n");
    return;
  }
  if (path_is(req, "/healthz")) {
    if (r->chat && !chat_server_healthy(r->chat))
      reply(c, req, 503, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n",
            "degraded: the shared store is unreachable\n", 42);
    else
      reply(c, req, 200, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n", "ok\n", 3);
  } else if (path_is(req, "/metrics")) {
    static char buf[METRICS_BUF];
    size_t n = metrics_render(buf, sizeof buf);
    reply(c, req, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n",
          buf, n);
  } else if (path_is(req, "/") || path_is(req, "/index.html")) {
    serve_asset(r, c, req, "/index.html", 11);
  } else {
    serve_asset(r, c, req, req->path + 7, req->path_len - 7); /* "/static/x" -> "/x" */
  }
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
