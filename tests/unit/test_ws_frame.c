/* ws/frame: the writer, unmasking, the RFC 6455 §5.7 sample frames, each
 * frame-level rule, and identical events however the input is split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ws/frame.h"
#include "test_ws_util.h"

/* --- an event recorder: every callback appends a line to a text log ------- */

typedef struct rec {
  char log[1 << 16];
  size_t len;
  int stop_at_header;       /* on_header returns non-zero when set */
  int payload_calls;
  int error_code;
  uint8_t payload[1 << 17]; /* concatenated payload, to compare content */
  size_t payload_len;
} rec_t;

static void logf_(rec_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
  va_end(ap);
  if (n > 0) r->len += (size_t)n;
}

static int on_header(void *ud, int fin, int opcode, uint64_t len) {
  rec_t *r = ud;
  logf_(r, "H fin=%d op=%d len=%llu\n", fin, opcode, (unsigned long long)len);
  return r->stop_at_header;
}
static int on_payload(void *ud, const uint8_t *p, size_t n) {
  rec_t *r = ud;
  r->payload_calls++;
  memcpy(r->payload + r->payload_len, p, n);
  r->payload_len += n;
  return 0;
}
static int on_frame_end(void *ud) {
  rec_t *r = ud;
  /* Payload is logged per frame, not per call, so the split cannot show. */
  logf_(r, "E %zu\n", r->payload_len);
  return 0;
}
static void on_error(void *ud, int code, const char *reason) {
  rec_t *r = ud;
  r->error_code = code;
  logf_(r, "X %d %s\n", code, reason);
}
static const ws_frame_cb_t cbs = {on_header, on_payload, on_frame_end, on_error};

static rec_t *rec_new(void) { return calloc(1, sizeof(rec_t)); }

/* Parses a whole buffer (copied: the parser unmasks in place). */
static size_t parse_all(rec_t *r, int require_mask, const uint8_t *data, size_t n) {
  ws_frame_parser_t p;
  ws_frame_parser_init(&p, require_mask);
  uint8_t *copy = malloc(n ? n : 1);
  memcpy(copy, data, n);
  size_t used = ws_frame_parse(&p, &cbs, r, copy, n);
  free(copy);
  return used;
}

/* Parses in chunks: size 0 means random sizes from seed. */
static void parse_chunked(rec_t *r, int require_mask, const uint8_t *data, size_t n,
                          size_t chunk, uint64_t seed) {
  ws_frame_parser_t p;
  ws_frame_parser_init(&p, require_mask);
  uint8_t *copy = malloc(n ? n : 1);
  memcpy(copy, data, n);
  size_t off = 0;
  while (off < n && !ws_frame_parser_failed(&p)) {
    size_t k = chunk ? chunk : 1 + tw_rand(&seed) % 300;
    if (k > n - off) k = n - off;
    ws_frame_parse(&p, &cbs, r, copy + off, k);
    off += k;
  }
  free(copy);
}

/* --- writer ------------------------------------------------------------------ */

static void test_header_sizes(void **st) {
  (void)st;
  assert_int_equal(ws_frame_header_size(0), 2);
  assert_int_equal(ws_frame_header_size(125), 2);
  assert_int_equal(ws_frame_header_size(126), 4);
  assert_int_equal(ws_frame_header_size(65535), 4);
  assert_int_equal(ws_frame_header_size(65536), 10);
  assert_int_equal(ws_frame_header_size(UINT64_C(1) << 40), 10);
}

static void test_write_header_rfc_samples(void **st) {
  (void)st;
  uint8_t h[WS_MAX_SERVER_HEADER];
  /* §5.7: unmasked "Hello", 256-byte and 64 KiB binary, fragments. */
  assert_int_equal(ws_frame_write_header(h, 1, WS_OP_TEXT, 5), 2);
  assert_memory_equal(h, "\x81\x05", 2);
  assert_int_equal(ws_frame_write_header(h, 1, WS_OP_BINARY, 256), 4);
  assert_memory_equal(h, "\x82\x7e\x01\x00", 4);
  assert_int_equal(ws_frame_write_header(h, 1, WS_OP_BINARY, 65536), 10);
  assert_memory_equal(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  assert_int_equal(ws_frame_write_header(h, 0, WS_OP_TEXT, 3), 2);
  assert_memory_equal(h, "\x01\x03", 2);
  assert_int_equal(ws_frame_write_header(h, 1, WS_OP_CONT, 2), 2);
  assert_memory_equal(h, "\x80\x02", 2);
  assert_int_equal(ws_frame_write_header(h, 1, WS_OP_PONG, 0), 2);
  assert_memory_equal(h, "\x8a\x00", 2);
}

/* What the writer writes, the parser reads back (require_mask = 0). */
static void test_writer_parser_roundtrip(void **st) {
  (void)st;
  static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
  static uint8_t buf[80000];
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    size_t h = ws_frame_write_header(buf, 1, WS_OP_BINARY, lens[i]);
    memset(buf + h, 0xAB, (size_t)lens[i]);
    rec_t *r = rec_new();
    assert_int_equal(parse_all(r, 0, buf, h + (size_t)lens[i]), h + (size_t)lens[i]);
    char want[128];
    snprintf(want, sizeof want, "H fin=1 op=2 len=%llu\nE %llu\n",
             (unsigned long long)lens[i], (unsigned long long)lens[i]);
    assert_string_equal(r->log, want);
    free(r);
  }
}

/* --- unmasking --------------------------------------------------------------- */

static void test_unmask_matches_bytewise(void **st) {
  (void)st;
  static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t orig[100], fast[104], slow[100];
  for (size_t i = 0; i < sizeof orig; i++) orig[i] = (uint8_t)(i * 7 + 3);
  for (unsigned pos0 = 0; pos0 < 4; pos0++) {
    for (size_t align = 0; align < 4; align++) {
      for (size_t n = 0; n <= 90; n++) {
        memcpy(fast + align, orig, n);
        memcpy(slow, orig, n);
        uint8_t pos = (uint8_t)pos0;
        ws_unmask(fast + align, n, mask, &pos);
        for (size_t i = 0; i < n; i++) slow[i] ^= mask[(pos0 + i) & 3];
        assert_memory_equal(fast + align, slow, n);
        assert_int_equal(pos, (pos0 + n) & 3);
      }
    }
  }
}

/* Unmasking in two pieces continues the rotation. */
static void test_unmask_split(void **st) {
  (void)st;
  uint8_t a[11], b[11];
  for (int i = 0; i < 11; i++) a[i] = b[i] = (uint8_t)i;
  uint8_t pos = 0;
  ws_unmask(a, 11, test_mask, &pos);
  pos = 0;
  ws_unmask(b, 3, test_mask, &pos);
  ws_unmask(b + 3, 8, test_mask, &pos);
  assert_memory_equal(a, b, 11);
}

/* --- RFC 6455 §5.7 samples ---------------------------------------------------- */

static void test_rfc_samples(void **st) {
  (void)st;
  static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t fragmented[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
  static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  static const uint8_t pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};

  rec_t *r = rec_new();
  parse_all(r, 0, hello_unmasked, sizeof hello_unmasked);
  assert_string_equal(r->log, "H fin=1 op=1 len=5\nE 5\n");
  assert_memory_equal(r->payload, "Hello", 5);
  free(r);

  r = rec_new();
  assert_int_equal(parse_all(r, 1, hello_masked, sizeof hello_masked), sizeof hello_masked);
  assert_string_equal(r->log, "H fin=1 op=1 len=5\nE 5\n");
  assert_memory_equal(r->payload, "Hello", 5);
  free(r);

  r = rec_new();
  parse_all(r, 0, fragmented, sizeof fragmented);
  assert_string_equal(r->log, "H fin=0 op=1 len=3\nE 3\nH fin=1 op=0 len=2\nE 5\n");
  assert_memory_equal(r->payload, "Hello", 5);
  free(r);

  r = rec_new();
  parse_all(r, 0, ping, sizeof ping);
  assert_string_equal(r->log, "H fin=1 op=9 len=5\nE 5\n");
  free(r);

  r = rec_new();
  parse_all(r, 1, pong_masked, sizeof pong_masked);
  assert_string_equal(r->log, "H fin=1 op=10 len=5\nE 5\n");
  assert_memory_equal(r->payload, "Hello", 5);
  free(r);
}

/* --- frame-level rules ---------------------------------------------------------- */

/* Parses one frame; returns the error code reported (0 if none). */
static int error_of(const uint8_t *frame, size_t n, int require_mask, rec_t **out) {
  rec_t *r = rec_new();
  parse_all(r, require_mask, frame, n);
  int code = r->error_code;
  if (out) *out = r; else free(r);
  return code;
}

static void test_rsv_bits_rejected(void **st) {
  (void)st;
  uint8_t f[32];
  for (uint8_t rsv = 1; rsv < 8; rsv++) {
    size_t n = tw_frame_raw(f, (uint8_t)(0x81 | rsv << 4), 1, "hi", 2, UINT64_MAX);
    rec_t *r;
    assert_int_equal(error_of(f, n, 1, &r), WS_CLOSE_PROTOCOL_ERROR);
    assert_int_equal(r->payload_calls, 0);
    free(r);
  }
  /* ... unless an extension owns RSV1 (data frames only). */
  ws_frame_parser_t p;
  ws_frame_parser_init(&p, 1);
  p.allow_rsv1 = 1;
  rec_t *r = rec_new();
  size_t n = tw_frame_raw(f, 0xC1, 1, "hi", 2, UINT64_MAX);
  assert_int_equal(ws_frame_parse(&p, &cbs, r, f, n), n);
  assert_int_equal(r->error_code, 0);
  n = tw_frame_raw(f, 0xC9, 1, "", 0, UINT64_MAX);   /* RSV1 on a ping */
  ws_frame_parse(&p, &cbs, r, f, n);
  assert_int_equal(r->error_code, WS_CLOSE_PROTOCOL_ERROR);
  free(r);
}

static void test_reserved_opcodes_rejected(void **st) {
  (void)st;
  static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
  uint8_t f[32];
  for (size_t i = 0; i < sizeof reserved; i++) {
    size_t n = tw_frame_raw(f, (uint8_t)(0x80 | reserved[i]), 1, "", 0, UINT64_MAX);
    assert_int_equal(error_of(f, n, 1, NULL), WS_CLOSE_PROTOCOL_ERROR);
  }
  static const uint8_t known[] = {0, 1, 2, 8, 9, 0xA};
  for (size_t i = 0; i < sizeof known; i++) {
    size_t n = tw_frame_raw(f, (uint8_t)(0x80 | known[i]), 1, "", 0, UINT64_MAX);
    assert_int_equal(error_of(f, n, 1, NULL), 0);
  }
}

static void test_control_frame_rules(void **st) {
  (void)st;
  uint8_t payload[126], f[200];
  memset(payload, 'p', sizeof payload);
  /* 125 bytes: fine; 126 (16-bit length form): refused at the header. */
  size_t n = tw_frame(f, 1, WS_OP_PING, payload, 125);
  assert_int_equal(error_of(f, n, 1, NULL), 0);
  n = tw_frame(f, 1, WS_OP_PING, payload, 126);
  rec_t *r;
  assert_int_equal(error_of(f, n, 1, &r), WS_CLOSE_PROTOCOL_ERROR);
  assert_int_equal(r->payload_calls, 0);
  free(r);
  n = tw_frame(f, 1, WS_OP_CLOSE, payload, 126);
  assert_int_equal(error_of(f, n, 1, NULL), WS_CLOSE_PROTOCOL_ERROR);
  /* Fragmented control frames. */
  static const int ops[] = {WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE};
  for (int i = 0; i < 3; i++) {
    n = tw_frame(f, 0, ops[i], "ab", 2);
    assert_int_equal(error_of(f, n, 1, NULL), WS_CLOSE_PROTOCOL_ERROR);
  }
}

/* An unmasked client frame is refused after its first two bytes: nothing of
 * it is delivered, not even its header. */
static void test_unmasked_rejected_at_header(void **st) {
  (void)st;
  uint8_t f[32];
  size_t n = tw_frame_raw(f, 0x81, 0, "Hello", 5, UINT64_MAX);
  rec_t *r;
  assert_int_equal(error_of(f, n, 1, &r), WS_CLOSE_PROTOCOL_ERROR);
  assert_int_equal(r->payload_calls, 0);
  assert_null(strstr(r->log, "H "));
  free(r);
  /* Two bytes are enough to decide. */
  ws_frame_parser_t p;
  ws_frame_parser_init(&p, 1);
  r = rec_new();
  assert_int_equal(ws_frame_parse(&p, &cbs, r, f, 2), 2);
  assert_true(ws_frame_parser_failed(&p));
  assert_int_equal(r->error_code, WS_CLOSE_PROTOCOL_ERROR);
  free(r);
}

static void test_64bit_length_top_bit(void **st) {
  (void)st;
  uint8_t f[32];
  size_t n = tw_frame_raw(f, 0x82, 1, "", 0, UINT64_C(0x8000000000000000));
  rec_t *r;
  assert_int_equal(error_of(f, n, 1, &r), WS_CLOSE_PROTOCOL_ERROR);
  assert_null(strstr(r->log, "H "));
  free(r);
  /* The largest legal length is announced (and nothing more is read). */
  n = tw_frame_raw(f, 0x82, 1, "", 0, UINT64_C(0x7FFFFFFFFFFFFFFF));
  r = rec_new();
  parse_all(r, 1, f, n);
  assert_string_equal(r->log, "H fin=1 op=2 len=9223372036854775807\n");
  free(r);
}

/* A stopped parser stays stopped. */
static void test_failed_is_sticky(void **st) {
  (void)st;
  uint8_t f[64];
  size_t n = tw_frame(f, 1, WS_OP_TEXT, "a", 1);
  n += tw_frame(f + n, 1, WS_OP_TEXT, "b", 1);
  ws_frame_parser_t p;
  ws_frame_parser_init(&p, 1);
  rec_t *r = rec_new();
  r->stop_at_header = 1;
  size_t used = ws_frame_parse(&p, &cbs, r, f, n);
  assert_true(used < n);
  assert_true(ws_frame_parser_failed(&p));
  assert_int_equal(ws_frame_parse(&p, &cbs, r, f + used, n - used), 0);
  assert_string_equal(r->log, "H fin=1 op=1 len=1\n");
  free(r);
}

/* --- split invariance ----------------------------------------------------------- */

static size_t build_stream(uint8_t *out) {
  static uint8_t big[70000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 31);
  size_t n = 0;
  n += tw_frame(out + n, 1, WS_OP_TEXT, "Hello", 5);
  n += tw_frame(out + n, 0, WS_OP_TEXT, "Hel", 3);
  n += tw_frame(out + n, 1, WS_OP_PING, "", 0);
  n += tw_frame(out + n, 1, WS_OP_CONT, "lo", 2);
  n += tw_frame(out + n, 1, WS_OP_BINARY, big, 200);
  n += tw_frame(out + n, 1, WS_OP_BINARY, big, sizeof big);
  n += tw_frame(out + n, 1, WS_OP_TEXT, "", 0);
  n += tw_frame(out + n, 1, WS_OP_PONG, big, 125);
  n += tw_frame(out + n, 1, WS_OP_CLOSE, "\x03\xe8", 2);
  n += tw_frame_raw(out + n, 0x81, 0, "x", 1, UINT64_MAX);   /* unmasked: error */
  return n;
}

static void test_same_events_however_split(void **st) {
  (void)st;
  static uint8_t stream[80000];
  size_t n = build_stream(stream);
  rec_t *whole = rec_new();
  parse_all(whole, 1, stream, n);
  assert_int_equal(whole->error_code, WS_CLOSE_PROTOCOL_ERROR);

  size_t sizes[] = {1, 2, 3, 7, 13, 64, 4096};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    rec_t *r = rec_new();
    parse_chunked(r, 1, stream, n, sizes[i], 0);
    assert_string_equal(r->log, whole->log);
    assert_int_equal(r->payload_len, whole->payload_len);
    assert_memory_equal(r->payload, whole->payload, whole->payload_len);
    free(r);
  }
  for (uint64_t seed = 1; seed <= 30; seed++) {
    rec_t *r = rec_new();
    parse_chunked(r, 1, stream, n, 0, seed);
    assert_string_equal(r->log, whole->log);
    assert_memory_equal(r->payload, whole->payload, whole->payload_len);
    free(r);
  }
  free(whole);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_header_sizes),
    cmocka_unit_test(test_write_header_rfc_samples),
    cmocka_unit_test(test_writer_parser_roundtrip),
    cmocka_unit_test(test_unmask_matches_bytewise),
    cmocka_unit_test(test_unmask_split),
    cmocka_unit_test(test_rfc_samples),
    cmocka_unit_test(test_rsv_bits_rejected),
    cmocka_unit_test(test_reserved_opcodes_rejected),
    cmocka_unit_test(test_control_frame_rules),
    cmocka_unit_test(test_unmasked_rejected_at_header),
    cmocka_unit_test(test_64bit_length_top_bit),
    cmocka_unit_test(test_failed_is_sticky),
    cmocka_unit_test(test_same_events_however_split),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
