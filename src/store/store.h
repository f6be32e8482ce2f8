/* store/store — durable message history behind one interface.
 *
 * Two implementations behind one vtable (struct store_ops): SQLite in WAL
 * mode (store/sqlite.c, store_open) for one node, and Redis streams
 * (store/redis.c, store_redis_open) for many nodes sharing one chat. chat/
 * calls the functions below and never knows which one it has. The contract:
 *
 *   - Ids: each room has its own sequence, dense and strictly increasing,
 *     never reused (across restarts too). SQLite assigns the id at once (in
 *     memory; the per-room last id is persisted in the same transaction);
 *     Redis assigns it atomically with the append, the id comes with the
 *     callback.
 *   - Publishing: an append reaches every other node's bus with the same
 *     id (Redis: the append script publishes it); the appending node
 *     delivers its own messages locally from the append callback. With
 *     SQLite there are no other nodes.
 *   - Batching: every append made during one event-loop iteration goes into
 *     one transaction, committed on the libuv thread pool at the end of the
 *     iteration (uv_check), so the loop never waits for the disk. Only then
 *     is each append's callback called (on the loop thread, in append
 *     order): a message is acknowledged only after it is durable.
 *   - Ordering: all operations (append batches and reads) complete in the
 *     order they were issued; a read sees every append issued before it.
 *     (With Redis, appends of other nodes land at any time: chat/ keeps
 *     exact joins with the per-room last id every read reports.)
 *   - Callbacks run on the loop thread; the rows they receive are valid only
 *     during the call. A callback always runs once per accepted call, even
 *     if the store is closing (store_close finishes the work first).
 *   - epoch: a random hex string that changes only when history is lost
 *     (SQLite: one per database; Redis: one per room, kept in Redis and
 *     remade when Redis lost the room's data). store_join reports it.
 *   - Durability: synchronous=NORMAL in WAL (survives kill -9);
 *     config.fsync selects synchronous=FULL (survives power loss).
 */
#ifndef WSC_STORE_STORE_H
#define WSC_STORE_STORE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/config.h"
#include "base/metrics.h"

typedef struct store store_t;

/* Status codes of calls and callbacks besides 0 (negative errno values, the
 * project's convention). */
#define STORE_ERR (-EIO)              /* failed (closing, out of memory, bad call) */
#define STORE_EUNAVAILABLE (-EAGAIN)  /* cannot write or read right now (Redis
                                         unreachable; SQLite: disk full, I/O
                                         error, queue full): try again later */
#define STORE_EPOCH_MAX 32      /* longest epoch text */

typedef struct store_msg {
  const char *room;
  int64_t id;
  const char *from;
  const char *text;
  size_t text_len;
  int64_t ts;          /* ms since the Unix epoch */
} store_msg_t;

/* Append finished: status 0 and the stored message (with its id), or
 * status < 0 (the message is not stored; its id is never reused). */
typedef void (*store_append_cb)(void *ud, int status, const store_msg_t *msg);
/* Read finished: rows in ascending id order. `more` is 1 when rows beyond
 * the limit exist: older ones before the first row (store_fetch_before),
 * newer ones after the last row (store_fetch_after). On error rows is NULL
 * and n is 0. */
typedef void (*store_rows_cb)(void *ud, int status, const store_msg_t *rows, size_t n, int more);

/* What store_join read, with its rows. */
typedef struct store_join_info {
  int64_t last_id;      /* the room's last id when the rows were read */
  const char *epoch;    /* the room's epoch (valid during the callback) */
  int recovered;        /* -1: no since given; 1: rows are all after since;
                           0: since unusable (other epoch, too old, beyond
                           last_id): rows are the newest ones */
} store_join_info_t;
typedef void (*store_join_cb)(void *ud, int status, const store_msg_t *rows, size_t n,
                              const store_join_info_t *info);

typedef struct store_ops {
  const char *(*epoch)(const store_t *s);
  int64_t (*last_id)(const store_t *s, const char *room);
  int64_t (*append)(store_t *s, const store_msg_t *msg, store_append_cb cb, void *ud);
  int (*fetch_after)(store_t *s, const char *room, int64_t after_id, int limit,
                     store_rows_cb cb, void *ud);
  int (*fetch_before)(store_t *s, const char *room, int64_t before_id, int limit,
                      store_rows_cb cb, void *ud);
  int (*join)(store_t *s, const char *room, int64_t since, const char *epoch, size_t epoch_len,
              int max_after, int n_before, store_join_cb cb, void *ud);
  void (*close)(store_t *s);
} store_ops_t;

struct store {
  const store_ops_t *ops;
};

/* Opens (creating if needed) the SQLite store named by config->db_path. Runs on
 * the calling thread, at start-up. NULL on failure, with a message in
 * *err (static or owned by nobody; just print it). */
store_t *store_open(uv_loop_t *loop, const wsc_config_t *config, const char **err);

/* The database's epoch (owned by the store); "" for Redis (per room). */
static inline const char *store_epoch(const store_t *s) { return s->ops->epoch(s); }
/* The room's last assigned id (0 for a room never written; -1 when this
 * node cannot know without a read: Redis). Never blocks. */
static inline int64_t store_last_id(const store_t *s, const char *room) { return s->ops->last_id(s, room); }

/* Queues msg (room, from, text, ts are copied; id is ignored) into this
 * iteration's batch and assigns its id: returned (> 0) when known at once
 * (SQLite), 0 when it comes with the callback (Redis), or < 0 on error:
 * STORE_ERR (closing, or too much is already waiting: a bounded queue) or
 * STORE_EUNAVAILABLE (Redis unreachable) — no callback runs then. from
 * NULL is stored as "", text may hold any bytes (text_len counts them).
 * cb may be NULL; its status may be STORE_EUNAVAILABLE too (the link broke
 * before the answer: the message may or may not be stored). */
static inline int64_t store_append(store_t *s, const store_msg_t *msg, store_append_cb cb, void *ud) {
  return s->ops->append(s, msg, cb, ud);
}

/* Reads return 0, or < 0 without calling cb (limit < 1, closing, too many
 * reads waiting). A limit above 100000 is clamped (see `more`). */
/* Messages of `room` with id > after_id, ascending, at most `limit`. */
static inline int store_fetch_after(store_t *s, const char *room, int64_t after_id, int limit,
                                    store_rows_cb cb, void *ud) {
  wsc_metrics.store_reads++;
  return s->ops->fetch_after(s, room, after_id, limit, cb, ud);
}
/* The `limit` newest messages of `room` with id < before_id (before_id <= 0:
 * from the newest), returned in ascending order, and whether older exist. */
static inline int store_fetch_before(store_t *s, const char *room, int64_t before_id, int limit,
                                     store_rows_cb cb, void *ud) {
  wsc_metrics.store_reads++;
  return s->ops->fetch_before(s, room, before_id, limit, cb, ud);
}
/* One read for a join (or a node catching up on a room): the room's last
 * id and epoch, and the messages after `since` when since >= 0, the epoch
 * matches (epoch NULL: any), since <= last id and last id - since <=
 * max_after (info->recovered 1); otherwise the n_before newest messages
 * (recovered 0, or -1 when since < 0). */
static inline int store_join(store_t *s, const char *room, int64_t since, const char *epoch,
                             size_t epoch_len, int max_after, int n_before, store_join_cb cb,
                             void *ud) {
  wsc_metrics.store_reads++;
  return s->ops->join(s, room, since, epoch, epoch_len, max_after, n_before, cb, ud);
}

/* Finishes queued work (callbacks still run, with their real status),
 * then closes the database. Calls made while it drains are refused.
 * Call with the loop alive but not from inside one of the loop's callbacks
 * (it runs the loop itself, uv_run(UV_RUN_ONCE), until the work is done). */
static inline void store_close(store_t *s) { if (s) s->ops->close(s); }

#endif
