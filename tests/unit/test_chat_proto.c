/* chat/ pure parts: name and room rules, request parsing with its error
 * precedence, server message encoding, and the hash map. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/encode.h"
#include "chat/names.h"
#include "chat/proto.h"
#include "chat/rawjson.h"
#include "msg/outbuf.h"

/* ---- names ----------------------------------------------------------------- */

static int name_ok(const char *s) {
  size_t st, n;
  return chat_name_check(s, strlen(s), &st, &n) == 0;
}

static void test_name_valid(void **state) {
  (void)state;
  assert_true(name_ok("alice"));
  assert_true(name_ok("a"));
  assert_true(name_ok("Alice Smith"));
  assert_true(name_ok("Zoë"));
  assert_true(name_ok("日本語の名前"));
  assert_true(name_ok("guest"));          /* only the prefix "guest-" is reserved */
  assert_true(name_ok("guestbook"));
  assert_true(name_ok("my-guest-name"));
  /* 32 code points (multi-byte) pass; 33 fail. */
  assert_true(name_ok("ééééééééééééééééééééééééééééééé\xc3\xa9"));
  assert_false(name_ok("éééééééééééééééééééééééééééééééé\xc3\xa9"));
  assert_true(name_ok("abcdefghijklmnopqrstuvwxyz012345"));
  assert_false(name_ok("abcdefghijklmnopqrstuvwxyz0123456"));
  assert_true(name_ok("🙂🙂"));
}

static void test_name_trim(void **state) {
  (void)state;
  const char *s = "   bob  ";
  size_t st, n;
  assert_int_equal(chat_name_check(s, strlen(s), &st, &n), 0);
  assert_int_equal(st, 3);
  assert_int_equal(n, 3);
  /* 32 code points plus surrounding spaces is fine: trimmed first. */
  assert_true(name_ok("  abcdefghijklmnopqrstuvwxyz012345  "));
  assert_false(name_ok(""));
  assert_false(name_ok("    "));
}

static void test_name_invalid(void **state) {
  (void)state;
  assert_false(name_ok("a\tb"));           /* C0 */
  assert_false(name_ok("a\nb"));
  assert_false(name_ok("a\x7f" "b"));      /* DEL */
  assert_false(name_ok("a\xc2\x85" "b"));  /* C1 (NEL) */
  assert_false(name_ok("a\xc2\x9f" "b"));
  assert_true(name_ok("a\xc2\xa0" "b"));   /* U+00A0 is not a control */
  assert_false(name_ok("\xff\xfe"));       /* not UTF-8 */
  assert_false(name_ok("\xc3"));           /* truncated */
  assert_false(name_ok("\xc0\xaf"));       /* overlong */
  assert_false(name_ok("\xed\xa0\x80"));   /* surrogate */
  assert_false(name_ok("guest-1234"));
  assert_false(name_ok("Guest-me"));
  assert_false(name_ok("GUEST-"));
  assert_false(name_ok("  guest-x"));
  /* A NUL inside (from a percent-decoded URL) is a control character. */
  size_t st, n;
  assert_int_equal(chat_name_check("a\0b", 3, &st, &n), -1);
}

static void test_name_eq(void **state) {
  (void)state;
  assert_true(chat_name_eq("Alice", 5, "aLICE", 5));
  assert_false(chat_name_eq("alice", 5, "alicia", 6));
  /* Only ASCII folds: É and é are different names. */
  assert_false(chat_name_eq("\xc3\x89", 2, "\xc3\xa9", 2));
}

static void test_guest_and_token_text(void **state) {
  (void)state;
  char out[64];
  unsigned char rnd[8] = {0xab, 0x12, 0xff, 0x00, 0x9c, 0, 0, 0};
  assert_int_equal(chat_guest_name(out, rnd, 4), 10);
  assert_string_equal(out, "guest-ab12");
  assert_int_equal(chat_guest_name(out, rnd, 5), 11);
  assert_string_equal(out, "guest-ab12f");
  chat_hex(out, rnd, 3);
  assert_string_equal(out, "ab12ff");
}

static void test_room_names(void **state) {
  (void)state;
  assert_true(chat_room_name_valid("general", 7));
  assert_true(chat_room_name_valid("a.b_c-D9", 8));
  assert_false(chat_room_name_valid("", 0));
  assert_false(chat_room_name_valid("with space", 10));
  assert_false(chat_room_name_valid("é", 2));
  assert_false(chat_room_name_valid("a/b", 3));
  assert_false(chat_room_name_valid(NULL, 0));
  char r[70];
  memset(r, 'x', sizeof r);
  assert_true(chat_room_name_valid(r, 64));
  assert_false(chat_room_name_valid(r, 65));
}

/* ---- parsing ---------------------------------------------------------------- */

static const chat_limits_t LIM = {.max_text = 10, .history_max_limit = 200, .history_default = 50};

typedef struct parsed {
  chat_parse_result_t r;
  chat_err_t err;
} parsed_t;

static parsed_t parse(const char *json) {
  chat_req_t req;
  parsed_t p;
  p.r = chat_req_parse(json, strlen(json), &LIM, &req);
  p.err = req.err;
  chat_req_free(&req);
  return p;
}

#define ASSERT_PARSE(json, result, code)        \
  do {                                          \
    parsed_t p_ = parse(json);                  \
    if (p_.r != (result) || p_.err != (code))   \
      fail_msg("%s: got result %d err %s", json, p_.r, chat_err_code(p_.err)); \
  } while (0)

static void test_parse_not_protocol(void **state) {
  (void)state;
  ASSERT_PARSE("hello", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("[1,2]", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("\"x\"", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{}", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":5}", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":null}", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"ping\"", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
}

static void test_parse_precedence(void **state) {
  (void)state;
  /* unknown type beats every field problem */
  ASSERT_PARSE("{\"type\":\"shout\"}", CHAT_PARSE_ERROR, CHAT_ERR_UNKNOWN_TYPE);
  ASSERT_PARSE("{\"type\":\"shout\",\"room\":\"bad room\",\"ref\":{}}", CHAT_PARSE_ERROR, CHAT_ERR_UNKNOWN_TYPE);
  ASSERT_PARSE("{\"type\":\"PING\"}", CHAT_PARSE_ERROR, CHAT_ERR_UNKNOWN_TYPE);
  /* missing / wrong-typed required field beats field checks */
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"bad room\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"send\",\"text\":\"hi\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"send\",\"room\":5,\"text\":\"hi\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"join\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"hello\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"hello\",\"name\":7}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"dm\",\"text\":\"x\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"ping\",\"ref\":true}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"ping\",\"ref\":[1]}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  /* empty text is bad_request, even in a bad room */
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"bad room\",\"text\":\"\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  /* field checks */
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"bad room\",\"text\":\"hi\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"bad room\",\"text\":\"01234567890\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"ok\",\"text\":\"01234567890\"}", CHAT_PARSE_ERROR, CHAT_ERR_TOO_LARGE);
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"ok\",\"text\":\"0123456789\"}", CHAT_PARSE_OK, CHAT_OK);
  ASSERT_PARSE("{\"type\":\"dm\",\"to\":\"x\",\"text\":\"01234567890\"}", CHAT_PARSE_ERROR, CHAT_ERR_TOO_LARGE);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  ASSERT_PARSE("{\"type\":\"leave\",\"room\":\"a/b\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  ASSERT_PARSE("{\"type\":\"typing\",\"room\":\"a b\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  ASSERT_PARSE("{\"type\":\"history\",\"room\":\"a b\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  ASSERT_PARSE("{\"type\":\"hello\",\"name\":\"guest-1\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_NAME);
  ASSERT_PARSE("{\"type\":\"hello\",\"name\":\"  \"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_NAME);
  ASSERT_PARSE("{\"type\":\"hello\",\"name\":\"a\\u0001\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_NAME);
  ASSERT_PARSE("{\"type\":\"ping\"}", CHAT_PARSE_OK, CHAT_OK);
}

static void test_parse_numbers(void **state) {
  (void)state;
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"since\":0}", CHAT_PARSE_OK, CHAT_OK);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"since\":null}", CHAT_PARSE_OK, CHAT_OK);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"since\":-1}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"since\":1.5}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"since\":\"5\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"epoch\":5}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"bad room\",\"since\":-1}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"history\",\"room\":\"r\",\"limit\":0}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"history\",\"room\":\"r\",\"limit\":-3}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"history\",\"room\":\"r\",\"limit\":2.5}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"history\",\"room\":\"r\",\"before\":-1}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"type\":\"history\",\"room\":\"r\",\"before\":\"9\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);

  chat_req_t req;
  const char *j = "{\"type\":\"history\",\"room\":\"r\",\"limit\":5000,\"before\":77}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_int_equal(req.limit, 200);
  assert_int_equal(req.before, 77);
  assert_true(req.has_before);
  chat_req_free(&req);
  j = "{\"type\":\"history\",\"room\":\"r\"}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_int_equal(req.limit, 50);
  assert_false(req.has_before);
  chat_req_free(&req);
  j = "{\"type\":\"join\",\"room\":\"r\",\"since\":1234,\"epoch\":\"9f2c\"}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_true(req.has_since);
  assert_int_equal(req.since, 1234);
  assert_int_equal(req.epoch.len, 4);
  assert_memory_equal(req.epoch.p, "9f2c", 4);
  chat_req_free(&req);

  int64_t v;
  assert_int_equal(chat_parse_since("0", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(chat_parse_since("1300", &v), 0);
  assert_int_equal(v, 1300);
  assert_int_equal(chat_parse_since("-1", &v), -1);
  assert_int_equal(chat_parse_since("1.5", &v), -1);
  assert_int_equal(chat_parse_since("", &v), -1);
  assert_int_equal(chat_parse_since("99999999999999999999", &v), 0);   /* saturated */
  assert_true(v == INT64_MAX);
}

static void test_parse_fields(void **state) {
  (void)state;
  chat_req_t req;
  const char *j = "{\"type\":\"hello\",\"name\":\"  Bob  \",\"ref\":\"r1\"}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_int_equal(req.type, CHAT_REQ_HELLO);
  assert_int_equal(req.name.len, 3);
  assert_memory_equal(req.name.p, "Bob", 3);
  assert_string_equal(json_string_value(req.ref), "\"r1\"");   /* the ref's JSON text */
  chat_req_free(&req);
  /* the ref is kept for an unknown type, so its error can echo it */
  j = "{\"type\":\"nope\",\"ref\":42}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_ERROR);
  assert_int_equal(req.err, CHAT_ERR_UNKNOWN_TYPE);
  assert_string_equal(json_string_value(req.ref), "42");
  chat_req_free(&req);
  /* a bad_room error still carries the ref */
  j = "{\"type\":\"send\",\"room\":\"x y\",\"text\":\"t\",\"ref\":\"c9\"}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_ERROR);
  assert_string_equal(json_string_value(req.ref), "\"c9\"");
  chat_req_free(&req);
  /* a ref of the wrong type is not echoed */
  j = "{\"type\":\"ping\",\"ref\":{\"a\":1}}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_ERROR);
  assert_null(req.ref);
  chat_req_free(&req);
  /* text length is in bytes: 4 x 3-byte characters = 12 > 10 */
  j = "{\"type\":\"send\",\"room\":\"r\",\"text\":\"€€€€\"}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_ERROR);
  assert_int_equal(req.err, CHAT_ERR_TOO_LARGE);
  chat_req_free(&req);
}

static void test_text_check(void **state) {
  (void)state;
  assert_int_equal(chat_text_check(0, 10), CHAT_ERR_BAD_REQUEST);
  assert_int_equal(chat_text_check(1, 10), CHAT_OK);
  assert_int_equal(chat_text_check(10, 10), CHAT_OK);
  assert_int_equal(chat_text_check(11, 10), CHAT_ERR_TOO_LARGE);
}

/* ---- encoding --------------------------------------------------------------- */

/* The JSON of a sealed buffer as a C string (static), checking the frame
 * header: FIN + text opcode and the right length. */
static const char *json_of(wsc_buf_t *b) {
  static char out[8192];
  assert_non_null(b);
  const uint8_t *f = wsc_buf_bytes(b);
  assert_int_equal(f[0], 0x81);
  size_t n = outbuf_json_len(b);
  if (n < 126) assert_int_equal(f[1], n);
  else assert_int_equal(f[1], 126);
  assert_true(n < sizeof out);
  memcpy(out, outbuf_json(b), n);
  out[n] = '\0';
  wsc_buf_unref(b);
  return out;
}

static void test_encode_escaping(void **state) {
  (void)state;
  chat_jw_t w;
  chat_jw_init(&w);
  store_msg_t m = {.room = "general", .id = 7, .from = "al\"ice", .text = "a\\b\n\x01\"é", .text_len = 8, .ts = 1764000000123};
  assert_string_equal(json_of(chat_enc_message(&w, &m)),
                      "{\"type\":\"message\",\"room\":\"general\",\"id\":7,\"from\":\"al\\\"ice\","
                      "\"text\":\"a\\\\b\\n\\u0001\\\"é\",\"ts\":1764000000123}");
  /* every control character round-trips through jansson */
  char ctl[32];
  for (int i = 0; i < 32; i++) ctl[i] = (char)i;
  store_msg_t m2 = {.room = "r", .id = 1, .from = "x", .text = ctl, .text_len = 32, .ts = 0};
  wsc_buf_t *b = chat_enc_message(&w, &m2);
  json_error_t err;
  json_t *j = json_loadb(outbuf_json(b), outbuf_json_len(b), JSON_ALLOW_NUL, &err);
  assert_non_null(j);
  json_t *text = json_object_get(j, "text");
  assert_int_equal(json_string_length(text), 32);
  assert_memory_equal(json_string_value(text), ctl, 32);
  json_decref(j);
  wsc_buf_unref(b);
  chat_jw_free(&w);
}

static void test_encode_refs(void **state) {
  (void)state;
  chat_jw_t w;
  chat_jw_init(&w);
  /* refs are the JSON text the client wrote (chat/proto.h) */
  json_t *s = json_string("\"c1\""), *i = json_string("-12"), *r = json_string("0.10"), *r2 = json_string("1e300");
  assert_string_equal(json_of(chat_enc_ack(&w, s, "general", 1301)),
                      "{\"type\":\"ack\",\"ref\":\"c1\",\"room\":\"general\",\"id\":1301}");
  assert_string_equal(json_of(chat_enc_ack(&w, i, NULL, -1)), "{\"type\":\"ack\",\"ref\":-12}");
  assert_string_equal(json_of(chat_enc_pong(&w, r, 5)), "{\"type\":\"pong\",\"ref\":0.10,\"ts\":5}");
  assert_string_equal(json_of(chat_enc_pong(&w, r2, 5)), "{\"type\":\"pong\",\"ref\":1e300,\"ts\":5}");
  assert_string_equal(json_of(chat_enc_pong(&w, NULL, 5)), "{\"type\":\"pong\",\"ts\":5}");
  assert_string_equal(json_of(chat_enc_error(&w, "not_member", "no", s)),
                      "{\"type\":\"error\",\"code\":\"not_member\",\"message\":\"no\",\"ref\":\"c1\"}");
  assert_string_equal(json_of(chat_enc_error(&w, "bad_request", "x", NULL)),
                      "{\"type\":\"error\",\"code\":\"bad_request\",\"message\":\"x\"}");
  json_decref(s);
  json_decref(i);
  json_decref(r);
  json_decref(r2);
  chat_jw_free(&w);
}

static const char *names3[] = {"alice", "bob", "c\"d"};
static const char *name_at(void *ud, size_t i, size_t *len) {
  (void)ud;
  *len = strlen(names3[i]);
  return names3[i];
}

static void test_encode_messages(void **state) {
  (void)state;
  chat_jw_t w;
  chat_jw_init(&w);
  assert_string_equal(json_of(chat_enc_welcome(&w, "alice", "00ff")),
                      "{\"type\":\"welcome\",\"name\":\"alice\",\"session\":\"00ff\"}");
  assert_string_equal(json_of(chat_enc_joined(&w, "general", name_at, NULL, 3, 1300, "9f2c", 1)),
                      "{\"type\":\"joined\",\"room\":\"general\",\"members\":[\"alice\",\"bob\",\"c\\\"d\"],"
                      "\"last_id\":1300,\"epoch\":\"9f2c\",\"recovered\":true}");
  assert_string_equal(json_of(chat_enc_joined(&w, "g", name_at, NULL, 0, 0, "e", -1)),
                      "{\"type\":\"joined\",\"room\":\"g\",\"members\":[],\"last_id\":0,\"epoch\":\"e\"}");
  assert_string_equal(json_of(chat_enc_joined(&w, "g", name_at, NULL, 1, 0, "e", 0)),
                      "{\"type\":\"joined\",\"room\":\"g\",\"members\":[\"alice\"],\"last_id\":0,\"epoch\":\"e\",\"recovered\":false}");
  assert_string_equal(json_of(chat_enc_left(&w, "g")), "{\"type\":\"left\",\"room\":\"g\"}");
  assert_string_equal(json_of(chat_enc_presence(&w, "g", "join", "bob", NULL, 3)),
                      "{\"type\":\"presence\",\"room\":\"g\",\"event\":\"join\",\"name\":\"bob\",\"count\":3}");
  assert_string_equal(json_of(chat_enc_presence(&w, "g", "rename", "bo", "bob", 2)),
                      "{\"type\":\"presence\",\"room\":\"g\",\"event\":\"rename\",\"name\":\"bo\",\"old\":\"bob\",\"count\":2}");
  assert_string_equal(json_of(chat_enc_typing(&w, "g", "bob")), "{\"type\":\"typing\",\"room\":\"g\",\"name\":\"bob\"}");
  assert_string_equal(json_of(chat_enc_dm(&w, "bob", "alice", "psst", 4, 9)),
                      "{\"type\":\"dm\",\"from\":\"bob\",\"to\":\"alice\",\"text\":\"psst\",\"ts\":9}");
  store_msg_t rows[2] = {{.room = "g", .id = 1, .from = "a", .text = "x", .text_len = 1, .ts = 2},
                         {.room = "g", .id = 3, .from = "b", .text = "y", .text_len = 1, .ts = 4}};
  assert_string_equal(json_of(chat_enc_history(&w, "g", rows, 2, 1)),
                      "{\"type\":\"history\",\"room\":\"g\",\"messages\":["
                      "{\"type\":\"message\",\"room\":\"g\",\"id\":1,\"from\":\"a\",\"text\":\"x\",\"ts\":2},"
                      "{\"type\":\"message\",\"room\":\"g\",\"id\":3,\"from\":\"b\",\"text\":\"y\",\"ts\":4}],\"more\":true}");
  assert_string_equal(json_of(chat_enc_history(&w, "g", rows, 0, 0)),
                      "{\"type\":\"history\",\"room\":\"g\",\"messages\":[],\"more\":false}");
  chat_jw_free(&w);
}

static void test_encode_large(void **state) {
  (void)state;
  /* A message over 64 KiB gets the 8-byte length form; the writer gives
   * its big scratch space back afterwards. */
  chat_jw_t w;
  chat_jw_init(&w);
  size_t n = 70000;
  char *text = malloc(n);
  memset(text, '"', n);   /* every byte escapes to two */
  store_msg_t m = {.room = "g", .id = 1, .from = "a", .text = text, .text_len = n, .ts = 1};
  wsc_buf_t *b = chat_enc_message(&w, &m);
  assert_non_null(b);
  assert_int_equal(wsc_buf_bytes(b)[1], 127);
  assert_true(outbuf_json_len(b) > 2 * n);
  assert_int_equal(w.cap, 0);
  wsc_buf_unref(b);
  free(text);
  chat_jw_free(&w);
}

/* ---- raw JSON: refs as given, saturated numbers ------------------------------- */

static char *member(const char *j, const char *key) {
  static char out[256];
  size_t st, n;
  if (rawjson_member(j, strlen(j), key, &st, &n) < 0) return NULL;
  snprintf(out, sizeof out, "%.*s", (int)n, j + st);
  return out;
}

static void test_rawjson_member(void **state) {
  (void)state;
  assert_string_equal(member("{\"ref\":1.50}", "ref"), "1.50");
  assert_string_equal(member(" { \"a\" : [1,{\"ref\":2},\"]\"] , \"ref\" : -0 } ", "ref"), "-0");
  assert_string_equal(member("{\"x\":\"\\\"ref\\\"\",\"ref\":\"a\\\"b\"}", "ref"), "\"a\\\"b\"");
  assert_string_equal(member("{\"r\\u0065f\":18446744073709551616}", "ref"), "18446744073709551616");
  assert_string_equal(member("{\"ref\":{\"a\":[]}}", "ref"), "{\"a\":[]}");
  assert_null(member("{\"refs\":1}", "ref"));
  assert_null(member("{\"re\":1}", "ref"));
  assert_null(member("[\"ref\",1]", "ref"));
  assert_null(member("{\"a\":{\"ref\":1}}", "ref"));    /* top level only */
  assert_null(member("{\"ref\"", "ref"));              /* truncated: no overrun */
  assert_null(member("{\"ref\":", "ref"));
  assert_null(member("", "ref"));
}

static char *sat(const char *j) {
  static char out[256];
  size_t n;
  char *p = rawjson_saturate(j, strlen(j), &n);
  assert_non_null(p);
  assert_int_equal(strlen(p), n);
  snprintf(out, sizeof out, "%s", p);
  free(p);
  return out;
}

static void test_rawjson_saturate(void **state) {
  (void)state;
  assert_string_equal(sat("{\"a\":9223372036854775807,\"b\":-9223372036854775808}"),
                      "{\"a\":9223372036854775807,\"b\":-9223372036854775808}");
  assert_string_equal(sat("[18446744073709551616,-99999999999999999999,1e400,-1e999,1e-400,0.5]"),
                      "[9223372036854775807,-9223372036854775808,1e308,-1e308,1e-400,0.5]");
  assert_string_equal(sat("{\"s\":\"99999999999999999999\",\"n\":99999999999999999999}"),
                      "{\"s\":\"99999999999999999999\",\"n\":9223372036854775807}");
}

static void test_parse_json_details(void **state) {
  (void)state;
  chat_req_t req;
  /* a number ref is echoed as written, even out of range */
  const char *j = "{\"type\":\"ping\",\"ref\":18446744073709551616}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_string_equal(json_string_value(req.ref), "18446744073709551616");
  chat_req_free(&req);
  j = "{\"type\":\"ping\",\"ref\":1.0}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_string_equal(json_string_value(req.ref), "1.0");
  chat_req_free(&req);
  j = "{\"type\":\"ping\",\"ref\":\"\\u0041\"}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_string_equal(json_string_value(req.ref), "\"\\u0041\"");
  chat_req_free(&req);
  /* a since beyond int64 is a (huge) integer, a limit beyond it is clamped */
  j = "{\"type\":\"join\",\"room\":\"r\",\"since\":99999999999999999999}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_OK);
  assert_true(req.has_since && req.since == INT64_MAX);
  chat_req_free(&req);
  j = "{\"type\":\"history\",\"room\":\"r\",\"limit\":99999999999999999999,\"before\":1e999}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_ERROR);
  assert_int_equal(req.err, CHAT_ERR_BAD_REQUEST);   /* before is not an integer */
  chat_req_free(&req);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"r\",\"since\":-99999999999999999999}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  /* NUL is allowed in strings; a name or room with it is refused by its rule */
  ASSERT_PARSE("{\"type\":\"send\",\"room\":\"r\",\"text\":\"a\\u0000b\"}", CHAT_PARSE_OK, CHAT_OK);
  ASSERT_PARSE("{\"type\":\"hello\",\"name\":\"a\\u0000b\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_NAME);
  ASSERT_PARSE("{\"type\":\"join\",\"room\":\"a\\u0000b\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_ROOM);
  /* duplicate keys: bad_request, and no ref is trusted */
  j = "{\"type\":\"ping\",\"ref\":\"a\",\"x\":{\"k\":1,\"k\":2}}";
  assert_int_equal(chat_req_parse(j, strlen(j), &LIM, &req), CHAT_PARSE_ERROR);
  assert_int_equal(req.err, CHAT_ERR_BAD_REQUEST);
  assert_null(req.ref);
  chat_req_free(&req);
  ASSERT_PARSE("{\"type\":\"ping\",\"type\":\"ping\"}", CHAT_PARSE_ERROR, CHAT_ERR_BAD_REQUEST);
  ASSERT_PARSE("{\"a\":1,\"a\":2}", CHAT_PARSE_NOT_PROTOCOL, CHAT_ERR_BAD_REQUEST);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_name_valid),
      cmocka_unit_test(test_name_trim),
      cmocka_unit_test(test_name_invalid),
      cmocka_unit_test(test_name_eq),
      cmocka_unit_test(test_guest_and_token_text),
      cmocka_unit_test(test_room_names),
      cmocka_unit_test(test_parse_not_protocol),
      cmocka_unit_test(test_parse_precedence),
      cmocka_unit_test(test_parse_numbers),
      cmocka_unit_test(test_parse_fields),
      cmocka_unit_test(test_rawjson_member),
      cmocka_unit_test(test_rawjson_saturate),
      cmocka_unit_test(test_parse_json_details),
      cmocka_unit_test(test_text_check),
      cmocka_unit_test(test_encode_escaping),
      cmocka_unit_test(test_encode_refs),
      cmocka_unit_test(test_encode_messages),
      cmocka_unit_test(test_encode_large),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
