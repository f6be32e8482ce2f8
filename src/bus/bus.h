/* bus/bus — fan-out of room events between server nodes.
 *
 * chat/ publishes every room event (a sealed message buffer, see
 * msg/outbuf.h) through the bus; the bus hands it to the deliver
 * callback of every node subscribed to the room — with the in-process bus
 * (bus/local.c) that is this process, at once. A Redis pub/sub
 * implementation slots in behind the same vtable without changes to chat/.
 *
 * Ownership: bus_publish takes its own reference to msg if it keeps it.
 * The deliver callback must take a reference to keep the buffer.
 */
#ifndef WSC_BUS_BUS_H
#define WSC_BUS_BUS_H

#include "base/buf.h"

typedef struct bus bus_t;
typedef void (*bus_deliver_cb)(void *ud, const char *room, wsc_buf_t *msg);

typedef struct bus_ops {
  int (*publish)(bus_t *b, const char *room, wsc_buf_t *msg);
  int (*subscribe)(bus_t *b, const char *room);
  int (*unsubscribe)(bus_t *b, const char *room);
  void (*free)(bus_t *b);
} bus_ops_t;

struct bus {
  const bus_ops_t *ops;
  bus_deliver_cb deliver;
  void *ud;
};

/* The in-process bus: publish calls deliver synchronously. */
bus_t *bus_local_new(bus_deliver_cb deliver, void *ud);

static inline int bus_publish(bus_t *b, const char *room, wsc_buf_t *msg) { return b->ops->publish(b, room, msg); }
static inline int bus_subscribe(bus_t *b, const char *room) { return b->ops->subscribe(b, room); }
static inline int bus_unsubscribe(bus_t *b, const char *room) { return b->ops->unsubscribe(b, room); }
static inline void bus_free(bus_t *b) { if (b) b->ops->free(b); }

#endif
