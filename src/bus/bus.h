/* bus/bus — fan-out of room events between server nodes.
 *
 * chat/ publishes every room event that is not a stored message (presence,
 * typing; a sealed message buffer, see msg/outbuf.h) through the bus; the
 * bus hands it to the deliver callback of every node subscribed to the
 * room — this node at once, synchronously (so chat/ can skip the sender),
 * other nodes through the shared service. Stored messages do not go
 * through bus_publish: the store publishes them with their ids (see
 * store.h), and the bus hands other nodes' messages to deliver_msg.
 *
 * Two implementations behind one vtable: the in-process bus (bus/local.c:
 * one process is the whole cluster) and Redis pub/sub (bus/redis.c). chat/
 * never knows which one it has.
 *
 * Ownership: bus_publish takes its own reference to msg if it keeps it.
 * The deliver callback must take a reference to keep the buffer.
 */
#ifndef WSC_BUS_BUS_H
#define WSC_BUS_BUS_H

#include "base/buf.h"
#include "store/store.h"

typedef struct bus bus_t;
typedef void (*bus_deliver_cb)(void *ud, const char *room, wsc_buf_t *msg);

/* What a node needs to hear from a bus that spans nodes (bus/redis.c).
 * The local bus calls only deliver. */
typedef struct bus_handler {
  bus_deliver_cb deliver;
  /* A message another node stored, in the order its node's store accepted
   * it (ids may jump: chat/ refills gaps from the store). Fields are valid
   * during the call. */
  void (*deliver_msg)(void *ud, const store_msg_t *m);
  /* The room's subscription is active (again): anything published before
   * it may have been missed — read the store for it. */
  void (*subscribed)(void *ud, const char *room);
  /* The link was lost and is back: every subscription is gone; call
   * bus_subscribe again for every room. */
  void (*reconnected)(void *ud);
  void *ud;
} bus_handler_t;

typedef struct bus_ops {
  int (*publish)(bus_t *b, const char *room, wsc_buf_t *msg);
  int (*subscribe)(bus_t *b, const char *room);
  int (*unsubscribe)(bus_t *b, const char *room);
  /* 1 while the bus reaches every node (local: always). */
  int (*healthy)(const bus_t *b);
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
static inline int bus_healthy(const bus_t *b) { return b->ops->healthy ? b->ops->healthy(b) : 1; }
static inline void bus_free(bus_t *b) { if (b) b->ops->free(b); }

#endif
