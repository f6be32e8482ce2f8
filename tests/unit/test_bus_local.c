/* bus/local: publish delivers at once, to this process, the same buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "bus/bus.h"

typedef struct delivered {
  int calls;
  char room[32];
  wsc_buf_t *msg;
  uint32_t refs_seen;
} delivered_t;

static void on_deliver(void *ud, const char *room, wsc_buf_t *msg) {
  delivered_t *d = ud;
  d->calls++;
  strncpy(d->room, room, sizeof d->room - 1);
  d->msg = msg;
  d->refs_seen = msg->refs;
}

static void test_publish_delivers_synchronously(void **state) {
  delivered_t d = { 0 };
  bus_t *bus = bus_local_new(on_deliver, &d);
  assert_non_null(bus);
  wsc_buf_t *msg = wsc_buf_from(0, "hello", 5);
  assert_non_null(msg);

  assert_int_equal(bus_publish(bus, "general", msg), 0);
  assert_int_equal(d.calls, 1);              /* before publish returned */
  assert_string_equal(d.room, "general");
  assert_ptr_equal(d.msg, msg);              /* the same buffer, not a copy */
  assert_int_equal(d.refs_seen, 1);
  assert_int_equal(msg->refs, 1);            /* the bus kept no reference */

  assert_int_equal(bus_publish(bus, "other", msg), 0);
  assert_int_equal(d.calls, 2);
  assert_string_equal(d.room, "other");

  wsc_buf_unref(msg);
  bus_free(bus);
}

static void test_subscriptions_are_noops(void **state) {
  delivered_t d = { 0 };
  bus_t *bus = bus_local_new(on_deliver, &d);
  assert_non_null(bus);
  assert_int_equal(bus_subscribe(bus, "general"), 0);
  assert_int_equal(bus_unsubscribe(bus, "general"), 0);
  assert_int_equal(bus_unsubscribe(bus, "never-subscribed"), 0);
  /* Delivery does not depend on subscriptions in one process. */
  wsc_buf_t *msg = wsc_buf_from(0, "x", 1);
  assert_int_equal(bus_publish(bus, "general", msg), 0);
  assert_int_equal(d.calls, 1);
  wsc_buf_unref(msg);
  bus_free(bus);
  bus_free(NULL);
}

static void test_rejects_missing_callback(void **state) {
  assert_null(bus_local_new(NULL, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_publish_delivers_synchronously),
    cmocka_unit_test(test_subscriptions_are_noops),
    cmocka_unit_test(test_rejects_missing_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
