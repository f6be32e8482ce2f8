/* bus/redis — the bus on Redis pub/sub, for many nodes sharing one chat
 * (the contract is bus.h's).
 *
 * Each room this node has members in is SUBSCRIBEd as channel
 * "wschat:{ROOM}". Two kinds of payload travel on it:
 *   m<id> <ts> <from bytes> <text bytes> <from><text>, repeated:
 *                                          stored messages (one loop
 *                                          iteration's, of one room),
 *                                          published by the append script
 *   e<node id> <json>                      a room event (presence, typing)
 *                                          published by bus_publish; the
 *                                          publishing node skips its own
 * Events are delivered locally at once and published for the other nodes;
 * they are not stored (they matter only to who is connected now). When the
 * link comes back, the handler is told (reconnected) and subscribes every
 * room again; each subscription's confirmation (subscribed) makes chat/
 * refill the room from the store, so nothing published meanwhile is lost.
 */
#ifndef WSC_BUS_REDIS_H
#define WSC_BUS_REDIS_H

#include "bus/bus.h"
#include "redis/link.h"

/* A bus on the link (owned by the caller, must outlive the bus). The link
 * reports to this bus (wsc_redis_set_events). NULL on ENOMEM. */
bus_t *bus_redis_new(wsc_redis_t *link, const bus_handler_t *h);

#endif
