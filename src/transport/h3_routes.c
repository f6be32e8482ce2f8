/* transport/h3_routes — see h3_routes.h. */
#include "transport/h3_routes.h"

#include <string.h>

#include "transport/routes.h"

/* HTTP/3 answers as an http_reply_t, so the shared routes answer it. */
static void h3_reply_respond(void *target, int status, const char *content_type, const char *extra_headers,
                             const void *body, size_t body_len, int keep_alive) {
  (void)keep_alive;
  h3_respond(target, status, content_type, extra_headers, body, body_len);
}

static const http_reply_ops_t h3_reply_ops = {.respond = h3_reply_respond};

/* No permessage-deflate over HTTP/3 (st.deflate = 0): extensions unused. */
static wsc_carrier_t h3_websocket(void *stream, const char *subprotocol, const char *extensions) {
  (void)extensions;
  return h3_stream_websocket(stream, subprotocol);
}

static int has_host(const h3_request_t *req) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (req->headers[i].name_len == 4 && memcmp(req->headers[i].name, "host", 4) == 0) return 1;
  return 0;
}

void h3_routes_request(void *app, h3_stream_t *s, const h3_request_t *h3req) {
  /* The request as the routes and ws/handshake want it: :authority as
   * the Host field (as HTTP/2 does), names already lower-case. */
  ws_hs_header_t headers[H3_MAX_HEADERS + 1];
  size_t n = 0;
  for (size_t i = 0; i < h3req->n_headers && n < H3_MAX_HEADERS; i++) headers[n++] = h3req->headers[i];
  if (h3req->authority && *h3req->authority && !has_host(h3req))
    headers[n++] = (ws_hs_header_t){"host", 4, h3req->authority, strlen(h3req->authority)};
  const http_request_t req = {
      .method = h3req->method,
      .http_major = 3,
      .path = h3req->path,
      .path_len = h3req->path_len,
      .query = h3req->query,
      .query_len = h3req->query_len,
      .headers = headers,
      .n_headers = n,
      .keep_alive = 1,
      .protocol = h3req->protocol,
  };
  const routes_stream_t st = {{&h3_reply_ops, s}, s, h3_websocket, 0,
                              "WebSocket endpoints over HTTP/3 take extended CONNECT (RFC 9220)", NULL};
  routes_stream_request(app, &st, &req);
}
