/* ws/handshake: the RFC 6455 §4.2 opening handshake, every reason to refuse
 * it with the status expected, the Origin policy and subprotocol choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ws/handshake.h"

#define MAX_HEADERS 16

/* A request under construction: starts valid, tests then spoil one part. */
typedef struct req {
  ws_hs_request_t r;
  ws_hs_header_t h[MAX_HEADERS];
} req_t;

static void set_header(req_t *q, const char *name, const char *value) {
  for (size_t i = 0; i < q->r.n_headers; i++) {
    if (strcmp(q->h[i].name, name) == 0) {
      if (!value) {   /* remove */
        memmove(&q->h[i], &q->h[i + 1], (q->r.n_headers - i - 1) * sizeof q->h[0]);
        q->r.n_headers--;
      } else {
        q->h[i].value = value;
        q->h[i].value_len = strlen(value);
      }
      return;
    }
  }
  if (!value) return;
  q->h[q->r.n_headers++] = (ws_hs_header_t){name, strlen(name), value, strlen(value)};
}
static void add_header(req_t *q, const char *name, const char *value) {
  q->h[q->r.n_headers++] = (ws_hs_header_t){name, strlen(name), value, strlen(value)};
}

static void valid_request(req_t *q) {
  memset(q, 0, sizeof *q);
  q->r.method = "GET";
  q->r.http_major = 1;
  q->r.http_minor = 1;
  q->r.headers = q->h;
  set_header(q, "Host", "server.example.com");
  set_header(q, "Upgrade", "websocket");
  set_header(q, "Connection", "Upgrade");
  set_header(q, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  set_header(q, "Sec-WebSocket-Version", "13");
}

static int check(req_t *q, const ws_hs_policy_t *policy, ws_hs_result_t *res) {
  return ws_handshake_check(&q->r, policy, res);
}
static int status_of(req_t *q, const ws_hs_policy_t *policy) {
  ws_hs_result_t res;
  int rc = check(q, policy, &res);
  assert_int_equal(rc, res.status == 101 ? 0 : -1);
  if (res.status != 101) {
    assert_non_null(res.reason);
    assert_null(strchr(res.reason, '\n'));
  }
  return res.status;
}

static void test_rfc_accept_key(void **st) {
  (void)st;
  char out[29];
  assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_valid_request_and_response(void **st) {
  (void)st;
  req_t q;
  valid_request(&q);
  ws_hs_result_t res;
  assert_int_equal(check(&q, NULL, &res), 0);
  assert_int_equal(res.status, 101);
  assert_string_equal(res.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_null(res.subprotocol);
  char out[256];
  size_t n = ws_handshake_response(&res, out, sizeof out);
  const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "\r\n";
  assert_int_equal(n, strlen(want));
  assert_string_equal(out, want);
  assert_int_equal(ws_handshake_response(&res, out, 20), 0);   /* too small */
  /* Never an extension, even when offered. */
  add_header(&q, "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
  assert_int_equal(check(&q, NULL, &res), 0);
  n = ws_handshake_response(&res, out, sizeof out);
  assert_null(strstr(out, "Extensions"));
}

static void test_subprotocol(void **st) {
  (void)st;
  req_t q;
  valid_request(&q);
  set_header(&q, "Sec-WebSocket-Protocol", "chat, wschat.v1 , superchat");
  ws_hs_result_t res;
  assert_int_equal(check(&q, NULL, &res), 0);
  assert_string_equal(res.subprotocol, WS_SUBPROTOCOL);
  char out[256];
  assert_true(ws_handshake_response(&res, out, sizeof out) > 0);
  assert_non_null(strstr(out, "\r\nSec-WebSocket-Protocol: wschat.v1\r\n\r\n"));
  set_header(&q, "Sec-WebSocket-Protocol", "chat, wschat.v2");
  assert_int_equal(check(&q, NULL, &res), 0);
  assert_null(res.subprotocol);
  assert_true(ws_handshake_response(&res, out, sizeof out) > 0);
  assert_null(strstr(out, "Sec-WebSocket-Protocol"));
  /* Offered in a second header line. */
  set_header(&q, "Sec-WebSocket-Protocol", "chat");
  add_header(&q, "sec-websocket-protocol", "wschat.v1");
  assert_int_equal(check(&q, NULL, &res), 0);
  assert_string_equal(res.subprotocol, WS_SUBPROTOCOL);
}

static void test_token_lists_case_insensitive(void **st) {
  (void)st;
  req_t q;
  valid_request(&q);
  set_header(&q, "Upgrade", "WebSocket");
  set_header(&q, "Connection", "keep-alive, UPGRADE");
  assert_int_equal(status_of(&q, NULL), 101);
  set_header(&q, "Connection", "keep-alive,upgrade");
  assert_int_equal(status_of(&q, NULL), 101);
  /* Header names are case-insensitive too. */
  valid_request(&q);
  q.h[1].name = "UPGRADE"; q.h[1].name_len = 7;
  q.h[2].name = "connection"; q.h[2].name_len = 10;
  assert_int_equal(status_of(&q, NULL), 101);
  /* A token is whole: "upgraded" is not "upgrade". */
  valid_request(&q);
  set_header(&q, "Connection", "upgraded, keep-alive");
  assert_int_equal(status_of(&q, NULL), 400);
  set_header(&q, "Connection", "keep-alive");
  add_header(&q, "Connection", "Upgrade");   /* list spread over two lines */
  assert_int_equal(status_of(&q, NULL), 101);
}

static void test_bad_requests_400(void **st) {
  (void)st;
  req_t q;
  valid_request(&q); q.r.method = "POST";
  assert_int_equal(status_of(&q, NULL), 400);
  valid_request(&q); q.r.http_minor = 0;
  assert_int_equal(status_of(&q, NULL), 400);
  valid_request(&q); q.r.http_major = 2; q.r.http_minor = 0;
  assert_int_equal(status_of(&q, NULL), 101);
  valid_request(&q); set_header(&q, "Host", NULL);
  assert_int_equal(status_of(&q, NULL), 400);
  valid_request(&q); set_header(&q, "Upgrade", NULL);
  assert_int_equal(status_of(&q, NULL), 400);
  valid_request(&q); set_header(&q, "Upgrade", "h2c");
  assert_int_equal(status_of(&q, NULL), 400);
  valid_request(&q); set_header(&q, "Connection", NULL);
  assert_int_equal(status_of(&q, NULL), 400);
  valid_request(&q); set_header(&q, "Connection", "keep-alive");
  assert_int_equal(status_of(&q, NULL), 400);
}

static void test_bad_keys_400(void **st) {
  (void)st;
  static const char *bad[] = {
    "",                                /* empty */
    "dGhlIHNhbXBsZSBub25jZQ",          /* no padding */
    "dGhlIHNhbXBsZSBub25jZQ=",         /* short padding */
    "dGhlIHNhbXBsZSBub25j",            /* 15 bytes */
    "dGhlIHNhbXBsZSBub25jZQ==AAAA",    /* 19 bytes */
    "dGhlIHNhbXBsZSBub25jZXg=",        /* 17 bytes */
    "dGhlIHNhbXBsZSBub25jZ!==",        /* not base64 */
    "dGhlIHNhbXBsZSBub2 jZQ==",        /* space inside */
    "not a key at all",
  };
  req_t q;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    valid_request(&q);
    set_header(&q, "Sec-WebSocket-Key", bad[i]);
    assert_int_equal(status_of(&q, NULL), 400);
  }
  valid_request(&q);
  set_header(&q, "Sec-WebSocket-Key", NULL);
  assert_int_equal(status_of(&q, NULL), 400);
  /* Two keys: ambiguous. */
  valid_request(&q);
  add_header(&q, "Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==");
  assert_int_equal(status_of(&q, NULL), 400);
  /* Surrounding whitespace is not part of the key. */
  valid_request(&q);
  set_header(&q, "Sec-WebSocket-Key", "  dGhlIHNhbXBsZSBub25jZQ== ");
  ws_hs_result_t res;
  assert_int_equal(check(&q, NULL, &res), 0);
  assert_string_equal(res.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_version_426(void **st) {
  (void)st;
  req_t q;
  valid_request(&q); set_header(&q, "Sec-WebSocket-Version", "8");
  assert_int_equal(status_of(&q, NULL), 426);
  valid_request(&q); set_header(&q, "Sec-WebSocket-Version", "14");
  assert_int_equal(status_of(&q, NULL), 426);
  valid_request(&q); set_header(&q, "Sec-WebSocket-Version", NULL);
  assert_int_equal(status_of(&q, NULL), 426);
  valid_request(&q); set_header(&q, "Sec-WebSocket-Version", " 13 ");
  assert_int_equal(status_of(&q, NULL), 101);
}

static void test_origin_policy(void **st) {
  (void)st;
  req_t q;
  /* No Origin: not a browser, not checked. */
  valid_request(&q);
  assert_int_equal(status_of(&q, NULL), 101);
  /* Same host. */
  set_header(&q, "Host", "chat.example:8000");
  set_header(&q, "Origin", "http://chat.example:8000");
  assert_int_equal(status_of(&q, NULL), 101);
  set_header(&q, "Origin", "https://CHAT.Example:8000");
  assert_int_equal(status_of(&q, NULL), 101);
  /* Other host, other port, opaque origin: 403. */
  set_header(&q, "Origin", "http://evil.example:8000");
  assert_int_equal(status_of(&q, NULL), 403);
  set_header(&q, "Origin", "http://chat.example:8001");
  assert_int_equal(status_of(&q, NULL), 403);
  set_header(&q, "Origin", "http://chat.example");
  assert_int_equal(status_of(&q, NULL), 403);
  set_header(&q, "Origin", "null");
  assert_int_equal(status_of(&q, NULL), 403);
  set_header(&q, "Origin", "http://chat.example:8000.evil.example");
  assert_int_equal(status_of(&q, NULL), 403);
  /* Default ports. */
  set_header(&q, "Host", "chat.example:443");
  set_header(&q, "Origin", "https://chat.example");
  assert_int_equal(status_of(&q, NULL), 101);
  set_header(&q, "Origin", "http://chat.example");
  assert_int_equal(status_of(&q, NULL), 403);
  set_header(&q, "Host", "chat.example");
  assert_int_equal(status_of(&q, NULL), 101);

  /* Allowed list: exact origins (case-insensitive), or "*". */
  static const char *const allowed[] = {"https://app.example", "http://localhost:3000"};
  ws_hs_policy_t policy = {allowed, 2, 0};
  set_header(&q, "Origin", "https://app.example");
  assert_int_equal(status_of(&q, &policy), 101);
  set_header(&q, "Origin", "http://localhost:3000");
  assert_int_equal(status_of(&q, &policy), 101);
  set_header(&q, "Origin", "http://app.example");
  assert_int_equal(status_of(&q, &policy), 403);
  set_header(&q, "Origin", "https://app.example.evil");
  assert_int_equal(status_of(&q, &policy), 403);
  static const char *const any[] = {"*"};
  ws_hs_policy_t open = {any, 1, 0};
  set_header(&q, "Origin", "https://anything.example");
  assert_int_equal(status_of(&q, &open), 101);
  set_header(&q, "Origin", "null");
  assert_int_equal(status_of(&q, &open), 101);
}

/* A request with several faults gets the first status in the documented order. */
static void test_check_order(void **st) {
  (void)st;
  req_t q;
  valid_request(&q);
  set_header(&q, "Sec-WebSocket-Version", "8");
  set_header(&q, "Origin", "http://evil.example");
  assert_int_equal(status_of(&q, NULL), 426);
  set_header(&q, "Sec-WebSocket-Key", "short");
  assert_int_equal(status_of(&q, NULL), 400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rfc_accept_key),
    cmocka_unit_test(test_valid_request_and_response),
    cmocka_unit_test(test_subprotocol),
    cmocka_unit_test(test_token_lists_case_insensitive),
    cmocka_unit_test(test_bad_requests_400),
    cmocka_unit_test(test_bad_keys_400),
    cmocka_unit_test(test_version_426),
    cmocka_unit_test(test_origin_policy),
    cmocka_unit_test(test_check_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
