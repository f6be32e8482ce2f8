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

/* One loop for the whole run: a loop per input cost ~2 ms of epoll and
 * eventfd set-up and tear-down, most of each execution. */
static uv_loop_t g_loop;
static wsc_config_t g_config;
static net_server_t g_srv;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    wsc_log_set_level(WSC_LOG_ERROR);
    uv_loop_init(&g_loop);
    wsc_config_defaults(&g_config);
    g_config.max_body = 1024;
    g_srv.loop = &g_loop;
    g_loop.data = &g_srv;
    g_srv.config = &g_config;
    ready = 1;
  }
  /* From net's pool, so that closing returns it there: a calloc'd object
   * handed to the pool was kept in its free list for good (~0.5 KB per
   * input, invisible to the leak checker since the pool still holds it). */
  net_conn_t *c = net_conn_detached(&g_srv);
  if (!c) return 0;
  http_app_t app = {.handler = handler, .app = NULL, .config = &g_config};
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
  net_conn_abort(c); /* closes the handle; returned to the pool by the loop below */
  uv_run(&g_loop, UV_RUN_DEFAULT);
  return 0;
}
