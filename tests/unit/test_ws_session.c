/* ws/session: message assembly, the rules above single frames, the closing
 * handshake, size limits, memory use, and identical events however the
 * input is split (whole, one byte at a time, random chunks). The cases
 * follow Autobahn|Testsuite sections 1-7 and 9 where they apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ws/session.h"
#include "test_ws_util.h"

#define MAX_MSG (64 * 1024)

/* --- recorder ---------------------------------------------------------------- */

typedef struct rec {
  char log[1 << 16];           /* one line per event */
  size_t log_len;
  int closed, close_code, messages, pongs;
  uint8_t last[1 << 18];       /* last message delivered */
  size_t last_len;
  const uint8_t *last_ptr;     /* where it was delivered from */
  uint8_t out[4096];           /* everything written */
  size_t out_len;
  int close_on_message;        /* call ws_session_close from on_message */
  ws_session_t *s;
} rec_t;

static void logf_(rec_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->log + r->log_len, sizeof r->log - r->log_len, fmt, ap);
  va_end(ap);
  if (n > 0) r->log_len += (size_t)n;
}

static uint32_t fnv(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len) {
  rec_t *r = ud;
  assert_non_null(data);
  r->messages++;
  memcpy(r->last, data, len);
  r->last_len = len;
  r->last_ptr = data;
  logf_(r, "M op=%d len=%zu h=%08x\n", opcode, len, fnv(data, len));
  if (r->close_on_message) ws_session_close(r->s, WS_CLOSE_POLICY, "bye");
}
static void on_write(void *ud, const uint8_t *data, size_t len) {
  rec_t *r = ud;
  assert_false(r->closed);
  assert_true(r->out_len + len <= sizeof r->out);
  memcpy(r->out + r->out_len, data, len);
  r->out_len += len;
  logf_(r, "W");
  for (size_t i = 0; i < len; i++) logf_(r, " %02x", data[i]);
  logf_(r, "\n");
}
static void on_pong(void *ud) {
  rec_t *r = ud;
  r->pongs++;
  logf_(r, "P\n");
}
static void on_closed(void *ud, int code) {
  rec_t *r = ud;
  assert_false(r->closed);   /* once */
  r->closed = 1;
  r->close_code = code;
  logf_(r, "C %d\n", code);
}
static const ws_session_cb_t cbs = {on_message, on_write, on_pong, on_closed, 0};

typedef struct fixture {
  ws_session_t s;
  rec_t r;
  ws_session_cb_t cb;         /* cbs with this fixture's max_message */
} fixture_t;

static fixture_t *fx_new(size_t max_message) {
  fixture_t *f = calloc(1, sizeof *f);
  f->cb = cbs;
  f->cb.max_message = max_message;
  ws_session_init(&f->s, &f->cb, &f->r);
  f->r.s = &f->s;
  return f;
}
static void fx_free(fixture_t *f) {
  ws_session_free(&f->s);
  free(f);
}

/* Feeds a copy of data in pieces: chunk 0 = random sizes from seed. */
static void feed(fixture_t *f, const uint8_t *data, size_t n, size_t chunk, uint64_t seed) {
  uint8_t *copy = malloc(n ? n : 1);
  memcpy(copy, data, n);
  size_t off = 0;
  while (off < n) {
    size_t k = chunk ? chunk : 1 + tw_rand(&seed) % 97;
    if (k > n - off) k = n - off;
    ws_session_feed(&f->s, copy + off, k);
    off += k;
  }
  free(copy);
}
static void feed_all(fixture_t *f, const uint8_t *data, size_t n) { feed(f, data, n, n ? n : 1, 0); }

/* Close frame as the server writes it: code and optional reason. */
static size_t server_close(uint8_t *out, unsigned code) {
  out[0] = 0x88;
  if (code == 0) { out[1] = 0; return 2; }
  out[1] = 2;
  out[2] = (uint8_t)(code >> 8);
  out[3] = (uint8_t)code;
  return 4;
}

/* Asserts the session failed with `code`: a close frame with that code (and
 * some reason) was the last thing written, and on_closed reported it. */
static void assert_failed_with(fixture_t *f, int code) {
  assert_true(f->r.closed);
  assert_int_equal(f->r.close_code, code);
  assert_int_equal(f->s.state, WS_SESSION_CLOSED);
  /* Find the last frame written: our close, with payload code + reason. */
  assert_true(f->r.out_len >= 4);
  size_t at = 0, last = 0;
  while (at < f->r.out_len) { last = at; at += 2 + (f->r.out[at + 1] & 0x7f); }
  assert_int_equal(at, f->r.out_len);
  assert_int_equal(f->r.out[last], 0x88);
  assert_true((f->r.out[last + 1] & 0x7f) >= 2);
  assert_int_equal(f->r.out[last + 2] << 8 | f->r.out[last + 3], code);
}

/* --- basic messages --------------------------------------------------------------- */

static void test_rfc_masked_hello(void **st) {
  (void)st;
  static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  fixture_t *f = fx_new(MAX_MSG);
  feed_all(f, hello, sizeof hello);
  assert_int_equal(f->r.messages, 1);
  assert_int_equal(f->r.last_len, 5);
  assert_memory_equal(f->r.last, "Hello", 5);
  assert_int_equal(f->r.out_len, 0);
  assert_false(f->r.closed);
  fx_free(f);
}

static void test_fragmented_text(void **st) {
  (void)st;
  uint8_t buf[64];
  size_t n = tw_frame(buf, 0, WS_OP_TEXT, "Hel", 3);
  n += tw_frame(buf + n, 0, WS_OP_CONT, "", 0);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "lo", 2);
  fixture_t *f = fx_new(MAX_MSG);
  feed_all(f, buf, n);
  assert_int_equal(f->r.messages, 1);
  assert_memory_equal(f->r.last, "Hello", 5);
  assert_string_equal(f->r.log, "M op=1 len=5 h=f55c314b\n");
  assert_null(f->s.msg);   /* assembly buffer gone once delivered */
  fx_free(f);
}

static void test_empty_and_binary_messages(void **st) {
  (void)st;
  static uint8_t payload[70000], buf[70100];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(i ^ (i >> 8));
  static const size_t lens[] = {0, 125, 126, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (int op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
      if (op == WS_OP_TEXT) memset(payload, 'x', lens[i]);
      size_t n = tw_frame(buf, 1, op, payload, lens[i]);
      fixture_t *f = fx_new(128 * 1024);
      feed_all(f, buf, n);
      assert_int_equal(f->r.messages, 1);
      assert_int_equal(f->r.last_len, lens[i]);
      assert_memory_equal(f->r.last, payload, lens[i]);
      fx_free(f);
    }
  }
}

/* A frame wholly inside one input chunk is delivered from that chunk. */
static void test_single_frame_delivered_without_copy(void **st) {
  (void)st;
  uint8_t buf[300];
  size_t n = tw_frame(buf, 1, WS_OP_BINARY, "0123456789", 10);
  fixture_t *f = fx_new(MAX_MSG);
  ws_session_feed(&f->s, buf, n);
  assert_int_equal(f->r.messages, 1);
  assert_ptr_equal(f->r.last_ptr, buf + n - 10);
  assert_null(f->s.msg);
  /* Split across chunks: assembled, then freed. */
  n = tw_frame(buf, 1, WS_OP_BINARY, "0123456789", 10);
  ws_session_feed(&f->s, buf, n - 3);
  assert_non_null(f->s.msg);
  assert_true(f->s.msg->cap <= 10);   /* capped at the final size */
  ws_session_feed(&f->s, buf + n - 3, 3);
  assert_int_equal(f->r.messages, 2);
  assert_memory_equal(f->r.last, "0123456789", 10);
  assert_null(f->s.msg);
  fx_free(f);
}

/* --- control frames ------------------------------------------------------------------ */

static void test_ping_answered_with_same_payload(void **st) {
  (void)st;
  uint8_t payload[125], buf[200];
  for (int i = 0; i < 125; i++) payload[i] = (uint8_t)(0xFF - i);
  static const size_t lens[] = {0, 5, 125};
  for (size_t i = 0; i < 3; i++) {
    for (size_t chunk = 1; chunk <= 200; chunk += 199) {
      fixture_t *f = fx_new(MAX_MSG);
      size_t n = tw_frame(buf, 1, WS_OP_PING, payload, lens[i]);
      feed(f, buf, n, chunk, 0);
      assert_int_equal(f->r.out_len, 2 + lens[i]);
      assert_int_equal(f->r.out[0], 0x8a);
      assert_int_equal(f->r.out[1], lens[i]);
      assert_memory_equal(f->r.out + 2, payload, lens[i]);
      assert_null(f->s.ctl);
      fx_free(f);
    }
  }
}

static void test_pong_reported_and_ignored(void **st) {
  (void)st;
  uint8_t buf[64];
  size_t n = tw_frame(buf, 1, WS_OP_PONG, "unsolicited", 11);
  fixture_t *f = fx_new(MAX_MSG);
  feed_all(f, buf, n);
  assert_int_equal(f->r.pongs, 1);
  assert_int_equal(f->r.out_len, 0);
  assert_int_equal(f->r.messages, 0);
  assert_false(f->r.closed);
  fx_free(f);
}

/* Autobahn 5.6-5.9: control frames between the fragments of a message. */
static void test_control_frames_inside_fragmented_message(void **st) {
  (void)st;
  uint8_t buf[128];
  size_t n = tw_frame(buf, 0, WS_OP_TEXT, "frag", 4);
  n += tw_frame(buf + n, 1, WS_OP_PING, "ping", 4);
  n += tw_frame(buf + n, 0, WS_OP_CONT, "ment", 4);
  n += tw_frame(buf + n, 1, WS_OP_PONG, "pong", 4);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "ed", 2);
  for (size_t chunk = 1; chunk <= n; chunk++) {
    fixture_t *f = fx_new(MAX_MSG);
    feed(f, buf, n, chunk, 0);
    assert_int_equal(f->r.messages, 1);
    assert_int_equal(f->r.last_len, 10);
    assert_memory_equal(f->r.last, "fragmented", 10);
    assert_int_equal(f->r.pongs, 1);
    assert_int_equal(f->r.out_len, 6);
    assert_memory_equal(f->r.out, "\x8a\x04ping", 6);
    fx_free(f);
  }
}

/* Autobahn 7.1.5: close between fragments ends the session; no message. */
static void test_close_inside_fragmented_message(void **st) {
  (void)st;
  uint8_t buf[64];
  size_t n = tw_frame(buf, 0, WS_OP_TEXT, "fragment1", 9);
  n += tw_frame(buf + n, 1, WS_OP_CLOSE, "\x03\xe8", 2);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "fragment2", 9);
  fixture_t *f = fx_new(MAX_MSG);
  feed_all(f, buf, n);
  assert_int_equal(f->r.messages, 0);
  assert_true(f->r.closed);
  assert_int_equal(f->r.close_code, 1000);
  assert_int_equal(f->r.out_len, 4);
  assert_memory_equal(f->r.out, "\x88\x02\x03\xe8", 4);
  assert_null(f->s.msg);
  fx_free(f);
}

/* --- protocol errors (1002) ---------------------------------------------------------- */

static void expect_failure(const uint8_t *buf, size_t n, int code, int messages_before) {
  for (int mode = 0; mode < 3; mode++) {
    fixture_t *f = fx_new(MAX_MSG);
    feed(f, buf, n, mode == 0 ? n : mode == 1 ? 1 : 0, 7);
    assert_failed_with(f, code);
    assert_int_equal(f->r.messages, messages_before);
    assert_int_equal(ws_session_feed(&f->s, (uint8_t *)"\x81\x80xxxx", 6), -1);
    fx_free(f);
  }
}

static void test_frame_rules_close_1002(void **st) {
  (void)st;
  uint8_t buf[512], big[126];
  memset(big, 'b', sizeof big);
  size_t n;
  /* Autobahn 3.x: RSV bits, after a good message. */
  for (int rsv = 1; rsv < 8; rsv++) {
    n = tw_frame(buf, 1, WS_OP_TEXT, "ok", 2);
    n += tw_frame_raw(buf + n, (uint8_t)(0x81 | rsv << 4), 1, "bad", 3, UINT64_MAX);
    n += tw_frame(buf + n, 1, WS_OP_PING, "", 0);
    expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 1);
  }
  /* Autobahn 4.x: reserved opcodes. */
  static const int reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
  for (int i = 0; i < 10; i++) {
    n = tw_frame_raw(buf, (uint8_t)(0x80 | reserved[i]), 1, "x", 1, UINT64_MAX);
    expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  }
  /* Autobahn 2.5: ping of 126 bytes; 5.1/5.2: fragmented ping/pong. */
  n = tw_frame(buf, 1, WS_OP_PING, big, 126);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  n = tw_frame(buf, 0, WS_OP_PING, "frag", 4);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "ment", 4);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  n = tw_frame(buf, 0, WS_OP_PONG, "frag", 4);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  /* Unmasked client frame: refused, its payload never delivered. */
  n = tw_frame_raw(buf, 0x81, 0, "Hello", 5, UINT64_MAX);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  /* 64-bit length with the top bit set. */
  n = tw_frame_raw(buf, 0x82, 1, "", 0, UINT64_C(0x8000000000000001));
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
}

static void test_fragmentation_rules_close_1002(void **st) {
  (void)st;
  uint8_t buf[256];
  size_t n;
  /* Autobahn 5.3-5.5 fine, 5.9-5.20: continuation without a start. */
  n = tw_frame(buf, 1, WS_OP_CONT, "cont", 4);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  n = tw_frame(buf, 0, WS_OP_CONT, "cont", 4);
  n += tw_frame(buf + n, 1, WS_OP_TEXT, "text", 4);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  /* After a complete message, a continuation is again without a start. */
  n = tw_frame(buf, 1, WS_OP_TEXT, "done", 4);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "more", 4);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 1);
  /* A new data frame inside a fragmented message. */
  n = tw_frame(buf, 0, WS_OP_TEXT, "one", 3);
  n += tw_frame(buf + n, 1, WS_OP_TEXT, "two", 3);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
  n = tw_frame(buf, 0, WS_OP_BINARY, "one", 3);
  n += tw_frame(buf + n, 0, WS_OP_BINARY, "two", 3);
  expect_failure(buf, n, WS_CLOSE_PROTOCOL_ERROR, 0);
}

/* --- UTF-8 (1007), fail fast ------------------------------------------------------------ */

/* Feeds one byte at a time; returns the index of the byte after which the
 * session reported on_closed (or -1). */
static long closed_at_byte(fixture_t *f, const uint8_t *buf, size_t n) {
  uint8_t *copy = malloc(n);
  memcpy(copy, buf, n);
  long at = -1;
  for (size_t i = 0; i < n && at < 0; i++) {
    ws_session_feed(&f->s, copy + i, 1);
    if (f->r.closed) at = (long)i;
  }
  free(copy);
  return at;
}

static void test_invalid_utf8_fails_at_the_bad_byte(void **st) {
  (void)st;
  /* Autobahn 6.3.1-like: κόσμε + ED A0 80 (a surrogate) + "edited". */
  static const uint8_t text[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
  uint8_t buf[64];
  size_t n = tw_frame(buf, 1, WS_OP_TEXT, text, sizeof text - 1);
  fixture_t *f = fx_new(MAX_MSG);
  long at = closed_at_byte(f, buf, n);
  assert_int_equal(at, 6 + 12);   /* header 6 bytes, bad byte at 12 */
  assert_failed_with(f, WS_CLOSE_INVALID_DATA);
  fx_free(f);

  /* Autobahn 6.4.x: F4 90 (above U+10FFFF) fails at the 0x90, whatever
   * follows, even with the frame's length still far from reached. */
  static const uint8_t high[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64";
  n = tw_frame(buf, 1, WS_OP_TEXT, high, sizeof high - 1);
  f = fx_new(MAX_MSG);
  assert_int_equal(closed_at_byte(f, buf, n), 6 + 12);
  assert_failed_with(f, WS_CLOSE_INVALID_DATA);
  fx_free(f);

  /* Across fragments: the first fragment is valid, the bad byte opens the
   * second; failure comes with that byte, before the message ends. */
  n = tw_frame(buf, 0, WS_OP_TEXT, "\xce\xba\xe1\xbd", 4);
  size_t second = n;
  n += tw_frame(buf + n, 0, WS_OP_CONT, "\xff" "abc", 4);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "def", 3);
  f = fx_new(MAX_MSG);
  assert_int_equal(closed_at_byte(f, buf, n), (long)second + 6);
  assert_failed_with(f, WS_CLOSE_INVALID_DATA);
  fx_free(f);
}

static void test_utf8_sequence_split_across_fragments(void **st) {
  (void)st;
  /* Each byte of a 4-byte sequence in its own fragment: valid. */
  uint8_t buf[64];
  size_t n = tw_frame(buf, 0, WS_OP_TEXT, "\xf0", 1);
  n += tw_frame(buf + n, 0, WS_OP_CONT, "\x9f", 1);
  n += tw_frame(buf + n, 0, WS_OP_CONT, "\x98", 1);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "\x80", 1);
  for (int mode = 0; mode < 2; mode++) {
    fixture_t *f = fx_new(MAX_MSG);
    feed(f, buf, n, mode ? 1 : n, 0);
    assert_int_equal(f->r.messages, 1);
    assert_memory_equal(f->r.last, "\xf0\x9f\x98\x80", 4);
    assert_false(f->r.closed);
    fx_free(f);
  }
}

static void test_text_ending_inside_a_sequence(void **st) {
  (void)st;
  uint8_t buf[64];
  size_t n = tw_frame(buf, 1, WS_OP_TEXT, "abc\xe2\x82", 5);
  expect_failure(buf, n, WS_CLOSE_INVALID_DATA, 0);
  n = tw_frame(buf, 0, WS_OP_TEXT, "abc\xe2", 4);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "\x82", 1);
  expect_failure(buf, n, WS_CLOSE_INVALID_DATA, 0);
  /* Binary messages are never checked. */
  n = tw_frame(buf, 1, WS_OP_BINARY, "\xff\xfe", 2);
  fixture_t *f = fx_new(MAX_MSG);
  feed_all(f, buf, n);
  assert_int_equal(f->r.messages, 1);
  assert_false(f->r.closed);
  fx_free(f);
}

/* --- closing handshake (Autobahn 7.x) ---------------------------------------------------- */

static void close_with_payload(fixture_t *f, const void *payload, size_t len) {
  uint8_t buf[200];
  size_t n = tw_frame(buf, 1, WS_OP_CLOSE, payload, len);
  feed_all(f, buf, n);
}

static void test_close_codes(void **st) {
  (void)st;
  static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999};
  static const unsigned invalid[] = {0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    uint8_t p[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
    fixture_t *f = fx_new(MAX_MSG);
    close_with_payload(f, p, 2);
    uint8_t want[4];
    server_close(want, valid[i]);
    assert_int_equal(f->r.out_len, 4);   /* echoes the code */
    assert_memory_equal(f->r.out, want, 4);
    assert_true(f->r.closed);
    assert_int_equal(f->r.close_code, (int)valid[i]);
    assert_true(ws_close_code_valid(valid[i]));
    fx_free(f);
  }
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    uint8_t p[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
    fixture_t *f = fx_new(MAX_MSG);
    close_with_payload(f, p, 2);
    assert_failed_with(f, WS_CLOSE_PROTOCOL_ERROR);
    assert_false(ws_close_code_valid(invalid[i]));
    fx_free(f);
  }
}

static void test_close_payload_shapes(void **st) {
  (void)st;
  /* 7.3.1: empty close, answered with 1000. */
  fixture_t *f = fx_new(MAX_MSG);
  close_with_payload(f, "", 0);
  assert_int_equal(f->r.out_len, 4);
  assert_memory_equal(f->r.out, "\x88\x02\x03\xe8", 4);
  assert_int_equal(f->r.close_code, WS_CLOSE_NO_STATUS);
  fx_free(f);
  /* 7.3.2: one byte. */
  f = fx_new(MAX_MSG);
  close_with_payload(f, "\x03", 1);
  assert_failed_with(f, WS_CLOSE_PROTOCOL_ERROR);
  fx_free(f);
  /* 7.3.4/7.3.5: code + reason, reason up to 123 bytes. */
  uint8_t p[126];
  p[0] = 0x03; p[1] = 0xe8;
  memset(p + 2, '*', 123);
  f = fx_new(MAX_MSG);
  close_with_payload(f, p, 125);
  assert_true(f->r.closed);
  assert_int_equal(f->r.close_code, 1000);
  assert_memory_equal(f->r.out, "\x88\x02\x03\xe8", 4);
  fx_free(f);
  /* 7.3.6: 124-byte reason makes a 126-byte control frame. */
  f = fx_new(MAX_MSG);
  close_with_payload(f, p, 126);
  assert_failed_with(f, WS_CLOSE_PROTOCOL_ERROR);
  fx_free(f);
  /* 7.5.1: reason with invalid UTF-8. */
  f = fx_new(MAX_MSG);
  close_with_payload(f, "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 22);
  assert_failed_with(f, WS_CLOSE_INVALID_DATA);
  fx_free(f);
  /* Valid UTF-8 reason. */
  f = fx_new(MAX_MSG);
  close_with_payload(f, "\x0b\xb8\xce\xba\xe1\xbd\xb9", 7);
  assert_int_equal(f->r.close_code, 3000);
  assert_memory_equal(f->r.out, "\x88\x02\x0b\xb8", 4);
  fx_free(f);
}

/* 7.1.2-7.1.4: after the close, nothing more is read or written. */
static void test_nothing_after_close(void **st) {
  (void)st;
  uint8_t buf[128];
  size_t n = tw_frame(buf, 1, WS_OP_TEXT, "before", 6);
  n += tw_frame(buf + n, 1, WS_OP_CLOSE, "\x03\xe8", 2);
  n += tw_frame(buf + n, 1, WS_OP_CLOSE, "\x03\xe8", 2);
  n += tw_frame(buf + n, 1, WS_OP_PING, "p", 1);
  n += tw_frame(buf + n, 1, WS_OP_TEXT, "after", 5);
  for (int mode = 0; mode < 3; mode++) {
    fixture_t *f = fx_new(MAX_MSG);
    feed(f, buf, n, mode == 0 ? n : mode == 1 ? 1 : 0, 3);
    assert_int_equal(f->r.messages, 1);
    assert_int_equal(f->r.out_len, 4);
    assert_string_equal(f->r.log, "M op=1 len=6 h=3845ff3e\nW 88 02 03 e8\nC 1000\n");
    fx_free(f);
  }
}

/* Our close first: we keep parsing, discard data, answer no ping, and end
 * when the peer's close comes. */
static void test_server_initiated_close(void **st) {
  (void)st;
  fixture_t *f = fx_new(MAX_MSG);
  uint8_t buf[256];
  size_t n = tw_frame(buf, 0, WS_OP_TEXT, "part", 4);
  feed_all(f, buf, n);
  assert_non_null(f->s.msg);
  ws_session_close(&f->s, WS_CLOSE_GOING_AWAY, "server shutting down");
  assert_null(f->s.msg);
  assert_false(ws_session_can_send(&f->s));
  ws_session_close(&f->s, WS_CLOSE_NORMAL, "again");   /* no-op */
  size_t written = f->r.out_len;
  assert_int_equal(f->r.out[0], 0x88);
  assert_int_equal(f->r.out[1], 2 + 20);
  assert_memory_equal(f->r.out + 4, "server shutting down", 20);

  n = tw_frame(buf, 1, WS_OP_CONT, "rest", 4);
  n += tw_frame(buf + n, 1, WS_OP_PING, "p", 1);
  n += tw_frame(buf + n, 1, WS_OP_TEXT, "\xff\xff", 2);   /* discarded, unchecked */
  n += tw_frame(buf + n, 1, WS_OP_BINARY, "data", 4);
  assert_int_equal(ws_session_feed(&f->s, buf, n), -1);
  assert_false(f->r.closed);
  assert_int_equal(f->r.messages, 0);
  assert_int_equal(f->r.out_len, written);
  n = tw_frame(buf, 1, WS_OP_CLOSE, "\x03\xe9", 2);
  assert_int_equal(ws_session_feed(&f->s, buf, n), -1);
  assert_true(f->r.closed);
  assert_int_equal(f->r.close_code, 1001);
  assert_int_equal(f->r.out_len, written);
  fx_free(f);
}

/* A frame-level error while closing ends the session without a second close. */
static void test_error_while_closing(void **st) {
  (void)st;
  fixture_t *f = fx_new(MAX_MSG);
  ws_session_close(&f->s, WS_CLOSE_NORMAL, NULL);
  assert_int_equal(f->r.out_len, 4);
  uint8_t buf[16];
  size_t n = tw_frame_raw(buf, 0x81, 0, "x", 1, UINT64_MAX);
  ws_session_feed(&f->s, buf, n);
  assert_true(f->r.closed);
  assert_int_equal(f->r.close_code, WS_CLOSE_PROTOCOL_ERROR);
  assert_int_equal(f->r.out_len, 4);
  fx_free(f);
}

/* Closing from inside on_message: the rest of the chunk is not delivered. */
static void test_close_from_on_message(void **st) {
  (void)st;
  uint8_t buf[64];
  size_t n = tw_frame(buf, 1, WS_OP_TEXT, "first", 5);
  n += tw_frame(buf + n, 1, WS_OP_TEXT, "second", 6);
  n += tw_frame(buf + n, 1, WS_OP_PING, "", 0);
  for (int mode = 0; mode < 2; mode++) {
    fixture_t *f = fx_new(MAX_MSG);
    f->r.close_on_message = 1;
    feed(f, buf, n, mode ? 1 : n, 0);
    assert_int_equal(f->r.messages, 1);
    assert_int_equal(f->r.out_len, 2 + 2 + 3);
    assert_memory_equal(f->r.out, "\x88\x05\x03\xf0" "bye", 7);
    assert_int_equal(f->s.state, WS_SESSION_CLOSE_SENT);
    fx_free(f);
  }
}

/* A long reason is cut to 123 bytes, never inside a UTF-8 sequence. */
static void test_close_reason_truncated_on_boundary(void **st) {
  (void)st;
  char reason[300];
  memset(reason, 'a', 122);
  for (int i = 0; i < 50; i++) memcpy(reason + 122 + 2 * i, "\xc3\xa9", 2);  /* é */
  reason[222] = '\0';
  fixture_t *f = fx_new(MAX_MSG);
  ws_session_close(&f->s, 4000, reason);
  assert_int_equal(f->r.out[0], 0x88);
  size_t len = f->r.out[1];
  assert_int_equal(len, 2 + 122);   /* the é at 122..123 did not fit whole */
  assert_true(ws_utf8_valid(f->r.out + 4, len - 2));
  fx_free(f);
}

/* --- size limit (1009) ---------------------------------------------------------------------- */

static void test_message_too_big(void **st) {
  (void)st;
  enum { LIMIT = 1000 };
  static uint8_t payload[LIMIT + 1], buf[LIMIT + 200];
  memset(payload, 'z', sizeof payload);
  /* Exactly the limit: fine, single frame or fragmented. */
  size_t n = tw_frame(buf, 1, WS_OP_BINARY, payload, LIMIT);
  fixture_t *f = fx_new(LIMIT);
  feed(f, buf, n, 1, 0);
  assert_int_equal(f->r.messages, 1);
  assert_true(f->s.msg == NULL);
  fx_free(f);
  n = tw_frame(buf, 0, WS_OP_TEXT, payload, 600);
  n += tw_frame(buf + n, 1, WS_OP_CONT, payload, 400);
  f = fx_new(LIMIT);
  feed(f, buf, n, 0, 5);
  assert_int_equal(f->r.messages, 1);
  assert_int_equal(f->r.last_len, LIMIT);
  fx_free(f);

  /* One over, refused at the header: no payload needed to decide. */
  n = tw_frame(buf, 1, WS_OP_BINARY, payload, LIMIT + 1);
  f = fx_new(LIMIT);
  uint8_t hdr[8];
  memcpy(hdr, buf, 8);
  ws_session_feed(&f->s, hdr, 8);   /* 2 + 2 + 4 header bytes */
  assert_failed_with(f, WS_CLOSE_TOO_BIG);
  assert_null(f->s.msg);
  fx_free(f);
  /* Fragments summing past the limit: refused at the header of the one
   * that would cross it, counting what is held. */
  n = tw_frame(buf, 0, WS_OP_BINARY, payload, 600);
  size_t first = n;
  n += tw_frame(buf + n, 1, WS_OP_CONT, payload, 401);
  f = fx_new(LIMIT);
  feed_all(f, buf, first + 8);
  assert_failed_with(f, WS_CLOSE_TOO_BIG);
  fx_free(f);
  /* A 64-bit length is checked before anything is allocated. */
  n = tw_frame_raw(buf, 0x82, 1, "", 0, UINT64_C(0x7FFFFFFFFFFFFFFF));
  f = fx_new(LIMIT);
  feed_all(f, buf, n);
  assert_failed_with(f, WS_CLOSE_TOO_BIG);
  fx_free(f);
}

/* A flood of tiny fragments counts toward the limit: memory held stays
 * within max_message however many fragments come. */
static void test_tiny_fragment_flood(void **st) {
  (void)st;
  enum { LIMIT = 4096 };
  fixture_t *f = fx_new(LIMIT);
  uint8_t buf[16];
  size_t n = tw_frame(buf, 0, WS_OP_BINARY, "x", 1);
  ws_session_feed(&f->s, buf, n);
  int frames = 1;
  while (!f->r.closed && frames < 100000) {
    n = tw_frame(buf, 0, WS_OP_CONT, "y", 1);
    ws_session_feed(&f->s, buf, n);
    frames++;
    assert_true(!f->s.msg || f->s.msg->cap <= LIMIT);
  }
  assert_int_equal(frames, LIMIT + 1);
  assert_failed_with(f, WS_CLOSE_TOO_BIG);
  fx_free(f);
}

/* --- split invariance and memory ---------------------------------------------------------- */

static size_t build_conversation(uint8_t *out, const uint8_t *big, size_t big_len) {
  size_t n = 0;
  n += tw_frame(out + n, 1, WS_OP_TEXT, "Hello", 5);
  n += tw_frame(out + n, 1, WS_OP_TEXT, "", 0);
  n += tw_frame(out + n, 0, WS_OP_TEXT, "\xce\xba\xe1", 3);
  n += tw_frame(out + n, 1, WS_OP_PING, "are you there", 13);
  n += tw_frame(out + n, 0, WS_OP_CONT, "\xbd\xb9\xcf", 3);
  n += tw_frame(out + n, 1, WS_OP_PONG, "", 0);
  n += tw_frame(out + n, 1, WS_OP_CONT, "\x83\xce\xbc\xce\xb5", 5);
  n += tw_frame(out + n, 1, WS_OP_BINARY, big, big_len);
  n += tw_frame(out + n, 0, WS_OP_BINARY, big, 1000);
  n += tw_frame(out + n, 1, WS_OP_CONT, big + 1000, 3000);
  n += tw_frame(out + n, 1, WS_OP_PING, big, 125);
  n += tw_frame(out + n, 1, WS_OP_TEXT, "bye", 3);
  n += tw_frame(out + n, 1, WS_OP_CLOSE, "\x0f\xa0" "done", 6);
  n += tw_frame(out + n, 1, WS_OP_TEXT, "ignored", 7);
  return n;
}

static void test_same_events_however_split(void **st) {
  (void)st;
  static uint8_t big[40000], stream[50000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 13 + 1);
  size_t n = build_conversation(stream, big, sizeof big);

  fixture_t *whole = fx_new(MAX_MSG);
  feed_all(whole, stream, n);
  assert_int_equal(whole->r.messages, 6);
  assert_int_equal(whole->r.close_code, 4000);
  assert_int_equal(whole->r.pongs, 1);

  static const size_t sizes[] = {1, 2, 3, 5, 8, 100, 1000, 65536};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    fixture_t *f = fx_new(MAX_MSG);
    feed(f, stream, n, sizes[i], 0);
    assert_string_equal(f->r.log, whole->r.log);
    fx_free(f);
  }
  for (uint64_t seed = 1; seed <= 50; seed++) {
    fixture_t *f = fx_new(MAX_MSG);
    feed(f, stream, n, 0, seed);
    assert_string_equal(f->r.log, whole->r.log);
    fx_free(f);
  }
  fx_free(whole);
}

/* An idle session holds no buffer, and its struct is small. */
static void test_idle_session_is_small(void **st) {
  (void)st;
  assert_true(sizeof(ws_session_t) <= 160);
  fixture_t *f = fx_new(MAX_MSG);
  uint8_t buf[256];
  size_t n = tw_frame(buf, 0, WS_OP_TEXT, "a", 1);
  n += tw_frame(buf + n, 1, WS_OP_PING, "p", 1);
  n += tw_frame(buf + n, 1, WS_OP_CONT, "b", 1);
  feed(f, buf, n, 1, 0);
  assert_int_equal(f->r.messages, 1);
  assert_null(f->s.msg);
  assert_null(f->s.ctl);
  fx_free(f);
}

static void test_build_frame(void **st) {
  (void)st;
  uint8_t out[WS_MAX_SERVER_HEADER + 300];
  assert_int_equal(ws_build_frame(out, WS_OP_TEXT, (const uint8_t *)"Hello", 5), 7);
  assert_memory_equal(out, "\x81\x05Hello", 7);
  assert_int_equal(ws_build_frame(out, WS_OP_CLOSE, NULL, 0), 2);
  assert_memory_equal(out, "\x88\x00", 2);
  uint8_t p[300] = {0};
  assert_int_equal(ws_build_frame(out, WS_OP_BINARY, p, 300), 304);
  assert_memory_equal(out, "\x82\x7e\x01\x2c", 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rfc_masked_hello),
    cmocka_unit_test(test_fragmented_text),
    cmocka_unit_test(test_empty_and_binary_messages),
    cmocka_unit_test(test_single_frame_delivered_without_copy),
    cmocka_unit_test(test_ping_answered_with_same_payload),
    cmocka_unit_test(test_pong_reported_and_ignored),
    cmocka_unit_test(test_control_frames_inside_fragmented_message),
    cmocka_unit_test(test_close_inside_fragmented_message),
    cmocka_unit_test(test_frame_rules_close_1002),
    cmocka_unit_test(test_fragmentation_rules_close_1002),
    cmocka_unit_test(test_invalid_utf8_fails_at_the_bad_byte),
    cmocka_unit_test(test_utf8_sequence_split_across_fragments),
    cmocka_unit_test(test_text_ending_inside_a_sequence),
    cmocka_unit_test(test_close_codes),
    cmocka_unit_test(test_close_payload_shapes),
    cmocka_unit_test(test_nothing_after_close),
    cmocka_unit_test(test_server_initiated_close),
    cmocka_unit_test(test_error_while_closing),
    cmocka_unit_test(test_close_from_on_message),
    cmocka_unit_test(test_close_reason_truncated_on_boundary),
    cmocka_unit_test(test_message_too_big),
    cmocka_unit_test(test_tiny_fragment_flood),
    cmocka_unit_test(test_same_events_however_split),
    cmocka_unit_test(test_idle_session_is_small),
    cmocka_unit_test(test_build_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
