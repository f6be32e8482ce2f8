/* transport/h3_routes — see h3_routes.h. */
#include "transport/h3_routes.h"

#include <stdio.h>
#include <string.h>

#include "http/metrics.h"
#include "http/static.h"
#include "transport/routes.h"

#define METRICS_BUF (16 * 1024)

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

void h3_routes_request(void *app, h3_stream_t *s, const h3_request_t *req) {
  routes_t *r = app;
  int ws_path = path_is(req, "/ws") || path_starts(req, "/ws/") || path_is(req, "/echo");
  if (strcmp(req->method, "CONNECT") == 0) {
    h3_error(s, 501, "WebSocket over HTTP/3 is not available yet");
    return;
  }
  if (ws_path) {
    h3_error(s, 405, "WebSocket endpoints take extended CONNECT (RFC 9220) over HTTP/3");
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
