/* bus/dir_local: one process is the whole cluster — every answer comes at
 * once (before the call returns) and says "nothing beyond this node". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bus/dir.h"

typedef struct seen {
  int calls, status, taken, delivered;
  int64_t count;
  size_t n_others;
  const char *name;
} seen_t;

static void on_claim(void *ud, int status, int taken) {
  seen_t *s = ud;
  s->calls++, s->status = status, s->taken = taken;
}
static void on_lookup(void *ud, int status, const char *name) {
  seen_t *s = ud;
  s->calls++, s->status = status, s->name = name;
}
static void on_room(void *ud, int status, int64_t count, const char *const *others, size_t n) {
  seen_t *s = ud;
  s->calls++, s->status = status, s->count = count, s->n_others = n;
}
static void on_dm(void *ud, int status, int delivered) {
  seen_t *s = ud;
  s->calls++, s->status = status, s->delivered = delivered;
}

static void test_answers_at_once_nothing_elsewhere(void **state) {
  dir_t *d = dir_local_new();
  assert_non_null(d);
  seen_t s = {0};
  assert_int_equal(dir_claim(d, "tok", "alice", 1, on_claim, &s), 0);
  assert_int_equal(s.calls, 1);            /* before the call returned */
  assert_int_equal(s.taken, 0);            /* never taken elsewhere */
  s = (seen_t){.name = "x"};
  assert_int_equal(dir_lookup(d, "tok", on_lookup, &s), 0);
  assert_int_equal(s.calls, 1);
  assert_null(s.name);                     /* no session known elsewhere */
  s = (seen_t){0};
  assert_int_equal(dir_join(d, "r", 1, "alice", on_room, &s), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.count, -1);           /* chat counts its own members */
  assert_int_equal(s.n_others, 0);
  assert_int_equal(dir_rename(d, "r", 1, "al", on_room, &s), 0);
  assert_int_equal(dir_leave(d, "r", 1, 1, on_room, &s), 0);
  assert_int_equal(s.calls, 3);
  s = (seen_t){0};
  assert_int_equal(dir_dm(d, "bob", "alice", "hi", 2, 1, on_dm, &s), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.delivered, 0);        /* nobody elsewhere to deliver to */
  dir_release(d, "tok", "alice", 1);
  dir_free(d);
  dir_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_answers_at_once_nothing_elsewhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
