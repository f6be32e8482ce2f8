/* store/store — durable message history behind one interface.
 *
 * The default implementation is SQLite in WAL mode (store/sqlite.c); a Redis
 * one can be added behind the same functions' vtable later. The contract:
 *
 *   - Ids: each room has its own sequence. store_append assigns the next id
 *     of the room at once (in memory) and never reuses one, across restarts
 *     too (the per-room last id is persisted in the same transaction).
 *   - Batching: every append made during one event-loop iteration goes into
 *     one transaction, committed on the libuv thread pool at the end of the
 *     iteration (uv_check), so the loop never waits for the disk. Only then
 *     is each append's callback called (on the loop thread, in append
 *     order): a message is acknowledged only after it is durable.
 *   - Ordering: all operations (append batches and reads) run one at a time,
 *     in the order they were issued. A read therefore sees every append
 *     issued before it, and none issued after it — chat/ relies on this to
 *     join a client to a room without missing or duplicating a message.
 *   - Callbacks run on the loop thread; the rows they receive are valid only
 *     during the call. A callback always runs once per accepted call, even
 *     if the store is closing (store_close finishes the work first).
 *   - epoch: a random hex string made when the database is created; it
 *     changes only when history is lost (a new database).
 *   - Durability: synchronous=NORMAL in WAL (survives kill -9);
 *     config.fsync selects synchronous=FULL (survives power loss).
 */
#ifndef WSC_STORE_STORE_H
#define WSC_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/config.h"

typedef struct store store_t;

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

/* Opens (creating if needed) the store named by config->db_path. Runs on
 * the calling thread, at start-up. NULL on failure, with a message in
 * *err (static or owned by nobody; just print it). */
store_t *store_open(uv_loop_t *loop, const wsc_config_t *config, const char **err);

/* The database's epoch (owned by the store). */
const char *store_epoch(const store_t *s);
/* The room's last assigned id (0 for a room never written). Never blocks. */
int64_t store_last_id(const store_t *s, const char *room);

/* Queues msg (room, from, text, ts are copied; id is ignored) into this
 * iteration's batch and assigns its id, returned (> 0), or -1 on error:
 * the store is closing, or too much is already waiting for the disk (a
 * bounded queue; the caller reports the failure, no callback runs). from
 * NULL is stored as "", text may hold any bytes (text_len counts them).
 * cb may be NULL. */
int64_t store_append(store_t *s, const store_msg_t *msg, store_append_cb cb, void *ud);

/* Reads return 0, or < 0 without calling cb (limit < 1, closing, too many
 * reads waiting). A limit above 100000 is clamped (see `more`). */
/* Messages of `room` with id > after_id, ascending, at most `limit`. */
int store_fetch_after(store_t *s, const char *room, int64_t after_id, int limit,
                      store_rows_cb cb, void *ud);
/* The `limit` newest messages of `room` with id < before_id (before_id <= 0:
 * from the newest), returned in ascending order, and whether older exist. */
int store_fetch_before(store_t *s, const char *room, int64_t before_id, int limit,
                       store_rows_cb cb, void *ud);

/* Finishes queued work (callbacks still run, with their real status),
 * then closes the database. Calls made while it drains are refused.
 * Call with the loop alive but not from inside one of the loop's callbacks
 * (it runs the loop itself, uv_run(UV_RUN_ONCE), until the work is done). */
void store_close(store_t *s);

#endif
