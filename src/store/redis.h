/* store/redis — the store on Redis streams, for many nodes sharing one chat
 * (the contract is store.h's).
 *
 * Keys, all hash-tagged by room so a room's keys share one Redis Cluster
 * slot (and one shard of a hand-sharded setup):
 *   wschat:{ROOM}:meta   hash: epoch (made on first use), seq (last id)
 *   wschat:{ROOM}:log    stream, entry id "<id>-0", fields f (from),
 *                        t (text), ts; trimmed to ~--redis-retention
 *   wschat:{ROOM}        the room's pub/sub channel (bus/redis.c)
 * The sends of one loop iteration go out at its end as one Lua script call
 * per room, which takes the next n ids (HINCRBY), XADDs the n messages and
 * PUBLISHes them in one payload of records
 * ("m<id> <ts> <from bytes> <text bytes> <from><text>"), atomically: ids
 * are dense, every node sees them, and an ack means Redis has the message
 * (with appendfsync always: on disk). Another script answers store_join (last
 * id, epoch, replay) in one consistent read.
 */
#ifndef WSC_STORE_REDIS_H
#define WSC_STORE_REDIS_H

#include "redis/link.h"
#include "store/store.h"

#define STORE_REDIS_KEY_PREFIX "wschat:{"

/* A store on the link (owned by the caller, must outlive the store). Call
 * before wsc_redis_start (it registers its scripts). */
store_t *store_redis_open(uv_loop_t *loop, wsc_redis_t *link, const wsc_config_t *config, const char **err);

#endif
