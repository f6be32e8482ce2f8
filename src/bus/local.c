/* bus/local — the in-process bus; see bus.h.
 *
 * One process is the whole cluster: every room is "subscribed", so publish
 * hands the buffer straight to the deliver callback. The buffer is not kept,
 * so no reference is taken (the deliver callback takes its own).
 */
#include "bus/bus.h"

#include <stdlib.h>

static int local_publish(bus_t *b, const char *room, wsc_buf_t *msg) {
  if (!room || !msg) return -1;
  b->deliver(b->ud, room, msg);
  return 0;
}

/* Every room of this process is already delivered locally. */
static int local_subscribe(bus_t *b, const char *room) { return 0; }
static int local_unsubscribe(bus_t *b, const char *room) { return 0; }
static int local_healthy(const bus_t *b) { return 1; }

static void local_free(bus_t *b) { free(b); }

static const bus_ops_t local_ops = {
  .publish = local_publish,
  .subscribe = local_subscribe,
  .unsubscribe = local_unsubscribe,
  .healthy = local_healthy,
  .free = local_free,
};

bus_t *bus_local_new(bus_deliver_cb deliver, void *ud) {
  if (!deliver) return NULL;
  bus_t *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->ops = &local_ops;
  b->deliver = deliver;
  b->ud = ud;
  return b;
}
