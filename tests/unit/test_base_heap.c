/* base/pool's release of idle pools and base/heap's tidy rule: when it
 * trims (the heap stopped growing and a burst freed enough; a churned heap
 * again after a while), when it does not (still growing, too little freed,
 * already tidied, idle), and that a pool
 * with no object in use gives its slabs back and still works after; the
 * size classes (blocks apart, zeroed, the right class on free); and that
 * the leak checker sees pointers kept only in a pool's (mapped) slabs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/heap.h"
#include "base/pool.h"

#define MIB (1024 * 1024)

static void test_rule_trims_once_after_a_burst(void **state) {
  (void)state;
  wsc_heap_watch_t w = {0};
  /* A storm: use grows, frees leave holes; no tidy while it grows. */
  assert_false(wsc_heap_should_tidy(&w, 0, 10 * MIB, 0));
  assert_false(wsc_heap_should_tidy(&w, 0, 20 * MIB, 1 * MIB));
  assert_false(wsc_heap_should_tidy(&w, 0, 30 * MIB, 4 * MIB));
  /* Calm: use stopped growing and 4 MiB are free: due. */
  assert_true(wsc_heap_should_tidy(&w, 0, 30 * MIB, 4 * MIB));
  wsc_heap_tidied(&w, 0, 30 * MIB, 4 * MIB);
  assert_int_equal(w.trims, 1);
  /* The same holes next time: nothing new to give back. */
  assert_false(wsc_heap_should_tidy(&w, 0, 30 * MIB, 4 * MIB));
  assert_false(wsc_heap_should_tidy(&w, 0, 29 * MIB, 4 * MIB + MIB / 2));
  /* A second burst frees 2 MiB more: due again once calm. */
  assert_false(wsc_heap_should_tidy(&w, 0, 40 * MIB, 5 * MIB));
  assert_true(wsc_heap_should_tidy(&w, 0, 38 * MIB, 6 * MIB));
}

static void test_rule_holes_reused_lower_the_base(void **state) {
  (void)state;
  wsc_heap_watch_t w = {0};
  wsc_heap_tidied(&w, 0, 10 * MIB, 3 * MIB);
  /* The holes are filled again (free drops to 0) and then freed: a new
   * MiB of free pages that the last tidy never saw. */
  assert_false(wsc_heap_should_tidy(&w, 0, 10 * MIB, 0));
  assert_true(wsc_heap_should_tidy(&w, 0, 9 * MIB, 1 * MIB));
  /* Small frees are not worth a trim. */
  wsc_heap_tidied(&w, 0, 9 * MIB, 1 * MIB);
  assert_false(wsc_heap_should_tidy(&w, 0, 9 * MIB, 1 * MIB + MIB / 2));
}

static void test_rule_again_after_churn(void **state) {
  (void)state;
  wsc_heap_watch_t w = {0};
  wsc_heap_tidied(&w, 1000, 10 * MIB, 2 * MIB);
  /* Trimmed holes used and freed again: the totals are back where they
   * were, but the use moved in between. Not before AGAIN_MS... */
  assert_false(wsc_heap_should_tidy(&w, 1500, 10 * MIB - 4096, 2 * MIB + 4096));
  assert_false(wsc_heap_should_tidy(&w, 1000 + WSC_HEAP_TIDY_AGAIN_MS - 1, 10 * MIB - 4096, 2 * MIB + 4096));
  /* ... then yes. */
  assert_true(wsc_heap_should_tidy(&w, 1000 + WSC_HEAP_TIDY_AGAIN_MS, 10 * MIB - 4096, 2 * MIB + 4096));
  wsc_heap_tidied(&w, 1000 + WSC_HEAP_TIDY_AGAIN_MS, 10 * MIB - 4096, 2 * MIB + 4096);
  /* An idle heap (the same counters) is left alone, however long. */
  assert_false(wsc_heap_should_tidy(&w, 1000000, 10 * MIB - 4096, 2 * MIB + 4096));
  /* Less than WSC_HEAP_TIDY_MIN free: never. */
  wsc_heap_tidied(&w, 0, 10 * MIB, MIB / 2);
  assert_false(wsc_heap_should_tidy(&w, 1000000, 10 * MIB - 8192, MIB / 2 + 8192));
}

typedef struct obj {
  uint64_t a, b, c;
} obj_t;

static wsc_pool_t g_pool = WSC_POOL_INIT(obj_t);

static void test_pool_release_idle(void **state) {
  (void)state;
  enum { N = 10000 };   /* several slabs */
  static obj_t *objs[N];
  for (int i = 0; i < N; i++) {
    objs[i] = wsc_pool_alloc(&g_pool);
    assert_non_null(objs[i]);
    objs[i]->a = (uint64_t)i;
  }
  /* In use: nothing is given back. */
  assert_int_equal(wsc_pool_release_idle(), 0);
  for (int i = 0; i < N - 1; i++) wsc_pool_free(&g_pool, objs[i]);
  assert_int_equal(wsc_pool_release_idle(), 0);
  assert_int_equal(objs[N - 1]->a, N - 1);
  wsc_pool_free(&g_pool, objs[N - 1]);
  /* None in use: every slab goes (at least the objects' bytes). */
  size_t freed = wsc_pool_release_idle();
  assert_true(freed >= (size_t)N * sizeof(obj_t));
  assert_int_equal(wsc_pool_release_idle(), 0);
  /* The pool works after (new slabs, zeroed objects; ASan checks that no
   * freed slab is touched). */
  for (int i = 0; i < N; i++) {
    objs[i] = wsc_pool_alloc(&g_pool);
    assert_non_null(objs[i]);
    assert_int_equal(objs[i]->a | objs[i]->b | objs[i]->c, 0);
    objs[i]->b = 7;
  }
  for (int i = 0; i < N; i++) wsc_pool_free(&g_pool, objs[i]);
  assert_true(wsc_pool_release_idle() >= (size_t)N * sizeof(obj_t));
}

static void test_size_classes(void **state) {
  (void)state;
  assert_int_equal(wsc_pool_fit(1), WSC_POOL_CLASS_MIN);
  assert_int_equal(wsc_pool_fit(16), 16);
  assert_int_equal(wsc_pool_fit(17), 32);
  assert_int_equal(wsc_pool_fit(1000), 1024);
  assert_int_equal(wsc_pool_fit(WSC_POOL_CLASS_MAX), WSC_POOL_CLASS_MAX);
  assert_int_equal(wsc_pool_fit(WSC_POOL_CLASS_MAX + 1), WSC_POOL_CLASS_MAX + 1);   /* malloc'd */
  /* Many blocks of every class and beyond: zeroed, filled to their
   * class's size without touching each other, freed with their size. */
  static const size_t sizes[] = {1, 16, 24, 33, 100, 200, 511, 1000, 2047, 4096, 5000, 20000};
  enum { PER = 40 };
  static unsigned char *b[sizeof sizes / sizeof sizes[0]][PER];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (int k = 0; k < PER; k++) {
      b[i][k] = wsc_pool_get(sizes[i]);
      assert_non_null(b[i][k]);
      for (size_t j = 0; j < wsc_pool_fit(sizes[i]); j++) assert_int_equal(b[i][k][j], 0);
      memset(b[i][k], (int)(i * PER + k) & 0xff, wsc_pool_fit(sizes[i]));
    }
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int k = 0; k < PER; k++) {
      size_t n = wsc_pool_fit(sizes[i]);
      assert_int_equal(b[i][k][0], (i * PER + k) & 0xff);
      assert_int_equal(b[i][k][n - 1], (i * PER + k) & 0xff);
      wsc_pool_put(b[i][k], sizes[i]);
    }
  /* A freed block is reused by its class (the same size back). */
  void *x = wsc_pool_get(300);
  wsc_pool_put(x, 300);
  void *y = wsc_pool_get(400);
  assert_ptr_equal(x, y);
  wsc_pool_put(y, 400);
  wsc_pool_put(NULL, 10);
  wsc_pool_put(NULL, 10000);
}

/* A malloc'd block whose only pointer is inside a pool object, still held
 * at exit: LeakSanitizer (this suite runs under ASan) must see it through
 * the slab, which is a mapping it does not scan unless told. Without the
 * slab's root region this test binary fails at exit with a leak. */
static wsc_pool_t g_holder_pool = WSC_POOL_INIT(obj_t);
static void test_slab_pointers_are_seen(void **state) {
  (void)state;
  obj_t *holder = wsc_pool_alloc(&g_holder_pool);
  assert_non_null(holder);
  char *kept = malloc(100);
  assert_non_null(kept);
  memcpy(&holder->a, &kept, sizeof kept);
  kept = NULL;
  holder = NULL;   /* only the slab knows both now */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule_trims_once_after_a_burst),
      cmocka_unit_test(test_rule_holes_reused_lower_the_base),
      cmocka_unit_test(test_rule_again_after_churn),
      cmocka_unit_test(test_pool_release_idle),
      cmocka_unit_test(test_size_classes),
      cmocka_unit_test(test_slab_pointers_are_seen),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
