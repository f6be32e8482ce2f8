/* Fuzz target: the HTTP request path — http-parser driven by http/http.c
 * (head accumulation, limits, pipelining, upgrade split), the query-string
 * decoder and the WebSocket handshake check — on a real net connection
 * object that is never connected (responses are queued, then dropped).
 * The input is cut into chunks at positions taken from its first byte, so
 * split headers are exercised too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/config.h"
#include "base/log.h"
#include "http/http.h"
#include "http/url.h"
#include "net/net.h"
#include "ws/handshake.h"

static void handler(void *app, net_conn_t *c, const http_request_t *req, uint8_t *rest,
                    size_t rest_len) {
  (void)app;
  (void)rest;
  (void)rest_len;
  char value[256];
  url_query_get(req->query, req->query_len, "name", value, sizeof value);
  ws_hs_request_t hs = {req->method, req->http_major, req->http_minor, req->headers, req->n_headers};
  static const char *const origins[] = {"https://example.com"};
  ws_hs_policy_t policy = {origins, 1, 1};
  ws_hs_result_t res;
  if (ws_handshake_check(&hs, &policy, &res) == 0) {
    char resp[512];
    size_t n = ws_handshake_response(&res, resp, sizeof resp);
    net_conn_send_copy(c, resp, n);
    net_conn_close(c);
    return;
  }
  http_respond(c, 200, "text/plain", NULL, req->body, req->body_len, req->keep_alive);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int quiet;
  if (!quiet) {
    wsc_log_set_level(WSC_LOG_ERROR);
    quiet = 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  wsc_config_t config;
  wsc_config_defaults(&config);
  config.max_body = 1024;
  net_server_t srv;
  memset(&srv, 0, sizeof srv);
  srv.loop = &loop;
  loop.data = &srv;
  srv.config = &config;
  net_conn_t *c = calloc(1, sizeof *c);
  uv_tcp_init(&loop, &c->tcp);
  c->tcp.data = c;
  srv.conns = c;
  srv.n_conns = 1;
  http_app_t app = {handler, NULL, &config};
  http_conn_attach(c, &app);

  uint8_t *copy = malloc(size ? size : 1);
  if (size) memcpy(copy, data, size);
  size_t step = size ? (size_t)(data[0] % 32) + 1 : 1;
  for (size_t off = 0; off < size && !net_conn_is_closing(c);) {
    size_t n = size - off < step ? size - off : step;
    c->handler->on_data(c, copy + off, n);
    off += n;
  }
  free(copy);
  net_conn_abort(c); /* closes the handle; freed by the loop below */
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}
