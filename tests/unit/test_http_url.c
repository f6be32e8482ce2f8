/* Unit tests for http/url: percent-decoding and query lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "http/url.h"

static void test_decode_plain_and_escapes(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(url_decode("a%20b%2Fc", 9, out, sizeof out, 0), 5);
  assert_string_equal(out, "a b/c");
  assert_int_equal(url_decode("a+b", 3, out, sizeof out, 1), 3);
  assert_string_equal(out, "a b");
  assert_int_equal(url_decode("a+b", 3, out, sizeof out, 0), 3);
  assert_string_equal(out, "a+b");
  assert_int_equal(url_decode("%C3%A9", 6, out, sizeof out, 0), 2);
  assert_string_equal(out, "\xc3\xa9");
}

static void test_decode_rejects_bad_input(void **state) {
  (void)state;
  char out[4];
  assert_int_equal(url_decode("%zz", 3, out, sizeof out, 0), -EINVAL);
  assert_int_equal(url_decode("%4", 2, out, sizeof out, 0), -EINVAL);
  assert_int_equal(url_decode("%", 1, out, sizeof out, 0), -EINVAL);
  assert_int_equal(url_decode("%00", 3, out, sizeof out, 0), -EINVAL);
  assert_int_equal(url_decode("abcd", 4, out, sizeof out, 0), -EINVAL); /* no room for NUL */
  assert_int_equal(url_decode("abc", 3, out, sizeof out, 0), 3);
}

static void test_query_lookup(void **state) {
  (void)state;
  const char *q = "name=al%20ice&room=general&since=12&flag&name2=x";
  char out[64];
  assert_int_equal(url_query_get(q, strlen(q), "name", out, sizeof out), 6);
  assert_string_equal(out, "al ice");
  assert_int_equal(url_query_get(q, strlen(q), "room", out, sizeof out), 7);
  assert_string_equal(out, "general");
  assert_int_equal(url_query_get(q, strlen(q), "flag", out, sizeof out), 0);
  assert_string_equal(out, "");
  assert_int_equal(url_query_get(q, strlen(q), "nam", out, sizeof out), -ENOENT);
  assert_int_equal(url_query_get(q, strlen(q), "missing", out, sizeof out), -ENOENT);
  assert_int_equal(url_query_get("", 0, "name", out, sizeof out), -ENOENT);
  assert_int_equal(url_query_get("name=%zz", 8, "name", out, sizeof out), -EINVAL);
  char tiny[3];
  assert_int_equal(url_query_get("name=abcdef", 11, "name", tiny, sizeof tiny), -EINVAL);
  assert_int_equal(url_query_get("since=1&since=2", 15, "since", out, sizeof out), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_plain_and_escapes),
      cmocka_unit_test(test_decode_rejects_bad_input),
      cmocka_unit_test(test_query_lookup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
