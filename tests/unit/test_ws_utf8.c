/* ws/utf8: valid and invalid sequences, the exact byte at which a bad
 * sequence is refused, and incremental == whole-buffer however it is split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ws/utf8.h"
#include "test_ws_util.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* Index of the byte at which feeding one byte at a time first fails, or -1. */
static long fail_index(const uint8_t *p, size_t n) {
  ws_utf8_t u;
  ws_utf8_init(&u);
  for (size_t i = 0; i < n; i++)
    if (ws_utf8_feed(&u, p + i, 1) != 0) return (long)i;
  return -1;
}

static void test_valid_sequences(void **st) {
  (void)st;
  assert_true(ws_utf8_valid(S("")));
  assert_true(ws_utf8_valid(S("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!")));
  assert_true(ws_utf8_valid(S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")));   /* Autobahn 6.2 */
  assert_true(ws_utf8_valid(S("\x7f")));
  assert_true(ws_utf8_valid(S("\xc2\x80")));              /* U+0080 */
  assert_true(ws_utf8_valid(S("\xdf\xbf")));              /* U+07FF */
  assert_true(ws_utf8_valid(S("\xe0\xa0\x80")));          /* U+0800 */
  assert_true(ws_utf8_valid(S("\xed\x9f\xbf")));          /* U+D7FF */
  assert_true(ws_utf8_valid(S("\xee\x80\x80")));          /* U+E000 */
  assert_true(ws_utf8_valid(S("\xef\xbf\xbf")));          /* U+FFFF */
  assert_true(ws_utf8_valid(S("\xef\xbf\xbe")));          /* U+FFFE: a noncharacter, still valid */
  assert_true(ws_utf8_valid(S("\xf0\x90\x80\x80")));      /* U+10000 */
  assert_true(ws_utf8_valid(S("\xf4\x8f\xbf\xbf")));      /* U+10FFFF */
  assert_true(ws_utf8_valid(S("\xf3\xbf\xbf\xbf")));
}

static void test_invalid_sequences(void **st) {
  (void)st;
  assert_false(ws_utf8_valid(S("\x80")));                 /* lone continuation */
  assert_false(ws_utf8_valid(S("\xbf")));
  assert_false(ws_utf8_valid(S("\xc0\xaf")));             /* overlong '/' */
  assert_false(ws_utf8_valid(S("\xc1\xbf")));
  assert_false(ws_utf8_valid(S("\xe0\x80\xaf")));         /* overlong 3-byte */
  assert_false(ws_utf8_valid(S("\xe0\x9f\xbf")));
  assert_false(ws_utf8_valid(S("\xf0\x80\x80\xaf")));     /* overlong 4-byte */
  assert_false(ws_utf8_valid(S("\xf0\x8f\xbf\xbf")));
  assert_false(ws_utf8_valid(S("\xed\xa0\x80")));         /* U+D800 */
  assert_false(ws_utf8_valid(S("\xed\xbf\xbf")));         /* U+DFFF */
  assert_false(ws_utf8_valid(S("\xed\xa0\x80\xed\xb0\x80")));  /* surrogate pair */
  assert_false(ws_utf8_valid(S("\xf4\x90\x80\x80")));     /* U+110000 */
  assert_false(ws_utf8_valid(S("\xf5\x80\x80\x80")));
  assert_false(ws_utf8_valid(S("\xf8\x88\x80\x80\x80")));  /* 5-byte form */
  assert_false(ws_utf8_valid(S("\xfc\x84\x80\x80\x80\x80")));
  assert_false(ws_utf8_valid(S("\xfe")));
  assert_false(ws_utf8_valid(S("\xff")));
  assert_false(ws_utf8_valid(S("\xc2")));                 /* truncated */
  assert_false(ws_utf8_valid(S("\xe1\x80")));
  assert_false(ws_utf8_valid(S("\xf1\x80\x80")));
  assert_false(ws_utf8_valid(S("\xc2\x41")));             /* ASCII where a continuation belongs */
  assert_false(ws_utf8_valid(S("abcdefghijklmnop\xff" "qrstuvwx")));   /* after a word of ASCII */
}

/* The validator must refuse at the first byte that makes the input
 * impossible, as Autobahn section 6's "fail fast" cases require. */
static void test_fails_at_first_bad_byte(void **st) {
  (void)st;
  assert_int_equal(fail_index(S("\xf4\x90\x80\x80")), 1);
  assert_int_equal(fail_index(S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64")), 12);
  assert_int_equal(fail_index(S("\xe0\x80")), 1);
  assert_int_equal(fail_index(S("\xf0\x8f")), 1);
  assert_int_equal(fail_index(S("\xed\xa0")), 1);
  assert_int_equal(fail_index(S("\xc0")), 0);
  assert_int_equal(fail_index(S("\xf5")), 0);
  assert_int_equal(fail_index(S("\xc2\xc2")), 1);
  assert_int_equal(fail_index(S("abcdefghij\x80")), 10);
  assert_int_equal(fail_index(S("\xe1\x80\x41")), 2);
  assert_int_equal(fail_index(S("\xf4\x8f\xbf\xbf")), -1);
}

static void test_rejection_is_sticky(void **st) {
  (void)st;
  ws_utf8_t u;
  ws_utf8_init(&u);
  assert_int_equal(ws_utf8_feed(&u, S("\xff")), -1);
  assert_int_equal(ws_utf8_feed(&u, S("abc")), -1);
  assert_false(ws_utf8_complete(&u));
}

static void test_incomplete_then_complete(void **st) {
  (void)st;
  ws_utf8_t u;
  ws_utf8_init(&u);
  assert_int_equal(ws_utf8_feed(&u, S("ab\xf0\x9f")), 0);
  assert_false(ws_utf8_complete(&u));
  assert_int_equal(ws_utf8_feed(&u, S("\x98")), 0);
  assert_false(ws_utf8_complete(&u));
  assert_int_equal(ws_utf8_feed(&u, S("\x80z")), 0);
  assert_true(ws_utf8_complete(&u));
  assert_int_equal(ws_utf8_feed(&u, NULL, 0), 0);
}

/* Random byte strings (biased towards UTF-8 lead and continuation bytes),
 * validated whole and in random pieces: the verdicts must agree, and the
 * piecewise feed must fail exactly where the one-byte-at-a-time one does. */
static void test_split_invariance(void **st) {
  (void)st;
  static const uint8_t alphabet[] = {'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2,
                                     0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xf0, 0xf1, 0xf4, 0xf5, 0xff};
  uint64_t rng = 42;
  uint8_t buf[64];
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = tw_rand(&rng) % sizeof buf;
    for (size_t i = 0; i < n; i++) {
      uint64_t r = tw_rand(&rng);
      buf[i] = (r & 1) ? (uint8_t)('a' + r % 26) : alphabet[(r >> 8) % sizeof alphabet];
    }
    long first_bad = fail_index(buf, n);
    ws_utf8_t u;
    ws_utf8_init(&u);
    int ok = 0;
    size_t off = 0;
    while (off < n && ok == 0) {
      size_t piece = 1 + tw_rand(&rng) % (n - off);
      ok = ws_utf8_feed(&u, buf + off, piece);
      off += piece;
    }
    int whole = ws_utf8_valid(buf, n);
    assert_int_equal(whole, ok == 0 && ws_utf8_complete(&u));
    assert_int_equal(ok == 0, first_bad < 0);
  }
}

/* The word-at-a-time path must work at any alignment and length. */
static void test_ascii_fast_path_alignment(void **st) {
  (void)st;
  uint8_t buf[80];
  for (size_t start = 0; start < 8; start++) {
    for (size_t len = 0; len + start <= 64; len++) {
      memset(buf, 'x', sizeof buf);
      assert_true(ws_utf8_valid(buf + start, len));
      if (len == 0) continue;
      buf[start + len - 1] = 0x80;
      assert_false(ws_utf8_valid(buf + start, len));
      assert_int_equal(fail_index(buf + start, len), (long)len - 1);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid_sequences),
    cmocka_unit_test(test_invalid_sequences),
    cmocka_unit_test(test_fails_at_first_bad_byte),
    cmocka_unit_test(test_rejection_is_sticky),
    cmocka_unit_test(test_incomplete_then_complete),
    cmocka_unit_test(test_split_invariance),
    cmocka_unit_test(test_ascii_fast_path_alignment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
