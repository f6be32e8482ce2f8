/* transport/h3_routes — see h3_routes.h. */
#include "transport/h3_routes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/metrics.h"
#include "http/static.h"
#include "http/url.h"
#include "transport/routes.h"
#include "transport/ws_transport.h"

#define METRICS_BUF (16 * 1024)
#define QUERY_VALUE_MAX 512

static int path_is(const h3_request_t *req, const char *path) {
  size_t n = strlen(path);
  return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static int path_starts(const h3_request_t *req, const char *prefix) {
  size_t n = strlen(prefix);
  return req->path_len >= n && memcmp(req->path, prefix, n) == 0;
}

static const char *header(const h3_request_t *req, const char *name, size_t *len) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (req->headers[i].name_len == strlen(name) && memcmp(req->headers[i].name, name, strlen(name)) == 0) {
      *len = req->headers[i].value_len;
      return req->headers[i].value;
    }
  return NULL;
}

static void reply(h3_stream_t *s, const h3_request_t *req, int status, const char *type,
                  const char *headers, const void *body, size_t len) {
  int head_only = strcmp(req->method, "HEAD") == 0;
  h3_respond(s, status, type, headers, head_only ? NULL : body, head_only ? 0 : len);
}

static void serve_asset(routes_t *r, h3_stream_t *s, const h3_request_t *req, const char *name,
                        size_t name_len) {
  const wsc_web_asset_t *a = wsc_web_asset_find(name, name_len);
  if (!a) {
    h3_error(s, 404, "no such file");
    return;
  }
  char headers[256];
  snprintf(headers, sizeof headers, "Cache-Control: no-cache\r\nETag: \"%s\"\r\n", r->etag);
  size_t inm_len, el = strlen(r->etag);
  const char *inm = header(req, "if-none-match", &inm_len);
  if (inm && inm_len == el + 2 && memcmp(inm + 1, r->etag, el) == 0) {
    h3_respond(s, 304, wsc_content_type(a->path), headers, NULL, 0);
    return;
  }
  reply(s, req, 200, wsc_content_type(a->path), headers, a->data, a->size);
}

/* --- WebSockets: extended CONNECT (RFC 9220) ---------------------------------------- */

static int query_param(const h3_request_t *req, const char *key, char *out, const char **val) {
  int n = url_query_get(req->query, req->query_len, key, out, QUERY_VALUE_MAX);
  if (n == -EINVAL) return -1;   /* malformed, too long or repeated */
  *val = n >= 0 ? out : NULL;
  return 0;
}

/* An Origin must name the authority the request went to (scheme-less
 * host[:port], case-insensitive) or an allowed origin, as on HTTP/1.1. */
static int origin_ok(routes_t *r, const char *origin, size_t len, const char *authority) {
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < len; i++)
    if (origin[i] == ':' && origin[i + 1] == '/' && origin[i + 2] == '/') { sep = origin + i + 3; break; }
  size_t al = authority ? strlen(authority) : 0;
  if (sep && al && (size_t)(origin + len - sep) == al && strncasecmp(sep, authority, al) == 0) return 1;
  for (int i = 0; i < r->origin_policy.n_allowed_origins; i++) {
    const char *a = r->origin_policy.allowed_origins[i];
    if (strcmp(a, "*") == 0 || (strlen(a) == len && strncasecmp(a, origin, len) == 0)) return 1;
  }
  return 0;
}

static void connect_ws(routes_t *r, h3_stream_t *s, const h3_request_t *req) {
  int echo = path_is(req, "/echo");
  if (echo && r->config->echo == 0) {
    h3_error(s, 404, "the echo endpoint is off (start with --echo)");
    return;
  }
  if (strcmp(req->method, "CONNECT") != 0) {
    h3_error(s, 405, "WebSocket endpoints over HTTP/3 take extended CONNECT (RFC 9220)");
    return;
  }
  if (!req->protocol || strcasecmp(req->protocol, "websocket") != 0) {
    h3_error(s, 400, ":protocol must be websocket");
    return;
  }
  chat_connect_params_t params = {0};
  char room[QUERY_VALUE_MAX], name[QUERY_VALUE_MAX], qroom[QUERY_VALUE_MAX], since[QUERY_VALUE_MAX],
      epoch[QUERY_VALUE_MAX], session[QUERY_VALUE_MAX];
  if (!echo) {
    if (!path_is(req, "/ws")) {
      int n = url_decode(req->path + 4, req->path_len - 4, room, sizeof room, 0);
      if (n < 0 || !chat_room_name_valid(room, (size_t)n)) {
        h3_error(s, 400, "invalid room name: use 1-64 letters, digits, '-', '_' or '.'");
        return;
      }
      params.room = room;
      params.room_endpoint = 1;
    }
    const char *qr = NULL;
    if (query_param(req, "name", name, &params.name) || query_param(req, "room", qroom, &qr) ||
        query_param(req, "since", since, &params.since) || query_param(req, "epoch", epoch, &params.epoch) ||
        query_param(req, "session", session, &params.session)) {
      h3_error(s, 400, "malformed or too long query parameter");
      return;
    }
    if (!params.room) params.room = qr;
  }
  size_t vl, ol;
  const char *ver = header(req, "sec-websocket-version", &vl);
  if (!ver || vl != 2 || memcmp(ver, "13", 2) != 0) {
    h3_error(s, 426, "unsupported Sec-WebSocket-Version (need 13)");
    return;
  }
  const char *origin = header(req, "origin", &ol);
  if (origin && !origin_ok(r, origin, ol, req->authority)) {
    h3_error(s, 403, "origin not allowed");
    return;
  }
  size_t pl;
  const char *offered = header(req, "sec-websocket-protocol", &pl);
  const char *sub = offered && memmem(offered, pl, WS_SUBPROTOCOL, strlen(WS_SUBPROTOCOL)) ? WS_SUBPROTOCOL : NULL;
  ws_transport_start(r->ws, h3_stream_websocket(s, sub), echo ? WS_KIND_ECHO : WS_KIND_CHAT, &params, NULL);
}

void h3_routes_request(void *app, h3_stream_t *s, const h3_request_t *req) {
  routes_t *r = app;
  int ws_path = path_is(req, "/ws") || path_starts(req, "/ws/") || path_is(req, "/echo");
  if (ws_path) {
    connect_ws(r, s, req);
    return;
  }
  if (req->protocol) {
    h3_error(s, 404, "no WebSocket endpoint at this path");
    return;
  }
  int known = path_is(req, "/") || path_starts(req, "/static/") || path_is(req, "/healthz") ||
              path_is(req, "/metrics") || path_is(req, "/index.html");
  if (!known) {
    h3_error(s, 404, "not found");
    return;
  }
  if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
    h3_error(s, 405, "method not allowed");
    return;
  }
  if (path_is(req, "/healthz")) {
    reply(s, req, 200, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n", "ok\n", 3);
  } else if (path_is(req, "/metrics")) {
    static char buf[METRICS_BUF];
    size_t n = metrics_render(buf, sizeof buf);
    reply(s, req, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n", buf, n);
  } else if (path_is(req, "/") || path_is(req, "/index.html")) {
    serve_asset(r, s, req, "/index.html", 11);
  } else {
    serve_asset(r, s, req, req->path + 7, req->path_len - 7);
  }
}
