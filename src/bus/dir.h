/* bus/dir — the directory: who is connected where, for the whole cluster —
 * display names, sessions, room members — beside the bus.
 *
 * chat/ keeps its own node's connections, names and rooms; the directory
 * answers for everything beyond this node. Two implementations behind one
 * vtable:
 *   dir_local.c  one process is the whole cluster: nothing beyond it.
 *                Every call answers at once (before it returns): names are
 *                never taken elsewhere, no session is known elsewhere, room
 *                counts are chat's own (count -1).
 *   dir_redis.c  Redis (see docs/SCALING.md): names and sessions are Redis
 *                keys, room members a hash per room, nodes heartbeat and a
 *                dead node's members are removed (one presence leave each)
 *                by whichever node notices first.
 * chat/ calls the same functions either way and never knows which.
 *
 * Connections are named by chat's connection id (cid, unique on the node);
 * the directory adds the node. Callbacks run on the loop thread; status is
 * 0 or < 0 (STORE_EUNAVAILABLE: Redis unreachable).
 */
#ifndef WSC_BUS_DIR_H
#define WSC_BUS_DIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct dir dir_t;

/* What other nodes ask of this one. */
typedef struct dir_handler {
  /* Another node took over the session of local connection cid: close it
   * (4001) without releasing the name (it moved with the session). */
  void (*kick)(void *ud, uint64_t cid);
  /* A direct message (its JSON) for local connection cid. */
  void (*dm)(void *ud, uint64_t cid, const char *json, size_t len);
  /* The connection-id mark: the highest cid attached so far (asked when a
   * heartbeat is sent). */
  uint64_t (*mark)(void *ud);
  /* This node was taken for dead (its heartbeats did not reach Redis for
   * the TTL): the others removed its members, so every local connection
   * up to `mark` (those older than the heartbeat that found out) must be
   * closed (1012) and come back. */
  void (*lost)(void *ud, uint64_t mark);
  void *ud;
} dir_handler_t;

/* claim: taken 1 when another session holds the name. */
typedef void (*dir_claim_cb)(void *ud, int status, int taken);
/* lookup: the session's current name, or NULL when the token is unknown. */
typedef void (*dir_lookup_cb)(void *ud, int status, const char *name);
/* join / leave / rename: the room's members in the cluster after it (-1:
 * only this node's, chat counts them), and on join the names of members on
 * other nodes (valid during the call). */
typedef void (*dir_room_cb)(void *ud, int status, int64_t count, const char *const *others, size_t n_others);
/* dm: delivered 1 when a connection of that name exists on another node. */
typedef void (*dir_dm_cb)(void *ud, int status, int delivered);

typedef struct dir_ops {
  int (*claim)(dir_t *d, const char *token, const char *name, uint64_t cid, dir_claim_cb cb, void *ud);
  void (*release)(dir_t *d, const char *token, const char *name, uint64_t cid);
  int (*lookup)(dir_t *d, const char *token, dir_lookup_cb cb, void *ud);
  int (*join)(dir_t *d, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud);
  int (*leave)(dir_t *d, const char *room, uint64_t cid, int last_here, dir_room_cb cb, void *ud);
  int (*rename)(dir_t *d, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud);
  int (*dm)(dir_t *d, const char *to, const char *from, const char *text, size_t len, int64_t ts,
            dir_dm_cb cb, void *ud);
  void (*free)(dir_t *d);
} dir_ops_t;

struct dir {
  const dir_ops_t *ops;
};

/* The in-process directory (no other nodes). */
dir_t *dir_local_new(void);
/* 1 for a directory other nodes share (they may ask this node about its
 * connections), 0 for an in-process one. */
int dir_is_shared(const dir_t *d);

/* Each call returns 0 (cb will run, maybe already has) or < 0 (cb will not
 * run). Strings are copied when kept. */
static inline int dir_claim(dir_t *d, const char *token, const char *name, uint64_t cid, dir_claim_cb cb, void *ud) {
  return d->ops->claim(d, token, name, cid, cb, ud);
}
/* The connection let go of the name (closed, renamed): free it if this
 * connection still holds it. */
static inline void dir_release(dir_t *d, const char *token, const char *name, uint64_t cid) {
  d->ops->release(d, token, name, cid);
}
static inline int dir_lookup(dir_t *d, const char *token, dir_lookup_cb cb, void *ud) {
  return d->ops->lookup(d, token, cb, ud);
}
static inline int dir_join(dir_t *d, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud) {
  return d->ops->join(d, room, cid, name, cb, ud);
}
static inline int dir_leave(dir_t *d, const char *room, uint64_t cid, int last_here, dir_room_cb cb, void *ud) {
  return d->ops->leave(d, room, cid, last_here, cb, ud);
}
static inline int dir_rename(dir_t *d, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud) {
  return d->ops->rename(d, room, cid, name, cb, ud);
}
static inline int dir_dm(dir_t *d, const char *to, const char *from, const char *text, size_t len, int64_t ts,
                         dir_dm_cb cb, void *ud) {
  return d->ops->dm(d, to, from, text, len, ts, cb, ud);
}
static inline void dir_free(dir_t *d) { if (d) d->ops->free(d); }

#endif
