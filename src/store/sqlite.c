/* store/sqlite — the SQLite store; see store.h for the contract.
 *
 * How the contract is kept:
 *
 *   - One sqlite3 connection, used only by whichever job runs on the libuv
 *     thread pool. Jobs (commit batches and reads) wait in one FIFO and run
 *     one at a time in issue order, so the connection never sees two
 *     threads at once (it is opened NOMUTEX) and a read sees every append
 *     issued before it.
 *   - Appends go into the "open" batch, outside the FIFO. A uv_check handle
 *     seals it at the end of the loop iteration (everything accepted during
 *     one iteration lands in one transaction); a read seals it early, so the
 *     read queues behind those appends. A uv_idle handle runs while the open
 *     batch is non-empty only so the loop does not block in poll with
 *     appends waiting for their check.
 *   - A sealed batch that finds another commit batch still waiting at the
 *     tail of the FIFO joins it (group commit): while the disk is busy,
 *     several iterations share one transaction instead of queueing one each.
 *   - Ids come from the in-memory room map at once; the rooms table is
 *     updated in the same transaction as the messages, so the persisted last
 *     id never falls behind a stored message.
 *   - The worker never touches wsc_metrics or the log: it records what
 *     happened in the job and the completion callback (loop thread) reports.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "store/room_map.h"

typedef struct sqlite_store sq_t;

#define STORE_SCHEMA_VERSION "1"
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_EPOCH_BYTES 8                     /* 64 random bits */
#define STORE_EPOCH_LEN (2 * STORE_EPOCH_BYTES) /* as hex */
/* Bounds on work waiting for the disk: past them the store refuses new
 * calls instead of growing the heap while the disk cannot keep up. */
#define STORE_MAX_PENDING_APPENDS 100000
#define STORE_MAX_PENDING_BYTES ((size_t)64 * 1024 * 1024)
#define STORE_MAX_PENDING_READS 100000  /* a join storm of max_connections fits */
/* Larger fetch limits are clamped to this (the caller sees `more`). */
#define STORE_FETCH_LIMIT_MAX 100000
#define STORE_ERRMSG_MAX 160

/* One accepted append, waiting for its commit. */
typedef struct pending_msg {
  store_append_cb cb;
  void *ud;
  int64_t id;
  int64_t ts;
  size_t text_len;
  const char *from;  /* into data */
  const char *text;  /* into data */
  char data[];       /* room \0 from \0 text \0 */
} pending_msg_t;

/* A room written by a batch and the highest id the batch gives it. */
typedef struct room_mark {
  const char *name;  /* into one of the batch's pending_msg */
  int64_t last_id;
} room_mark_t;

typedef enum { JOB_COMMIT, JOB_FETCH_AFTER, JOB_FETCH_BEFORE } job_kind_t;

typedef struct job {
  uv_work_t work;
  sq_t *store;
  struct job *next;        /* FIFO link */
  job_kind_t kind;
  int status;              /* set by the worker: 0 or < 0 */
  char errmsg[STORE_ERRMSG_MAX];

  /* JOB_COMMIT */
  pending_msg_t **msgs;
  size_t n_msgs, cap_msgs;
  room_mark_t *rooms;
  size_t n_rooms, cap_rooms;
  size_t bytes;            /* counted in store.pending_bytes */
  int64_t sealed_ns;
  int64_t commit_ns;       /* seal to commit done, measured by the worker */

  /* JOB_FETCH_* */
  char *room;
  int64_t bound;           /* after_id or before_id */
  int limit;
  store_rows_cb rows_cb;
  void *ud;
  store_msg_t *rows;       /* each row's from and text share one block */
  size_t n_rows, cap_rows;
  int more;
} job_t;

enum {
  STMT_BEGIN, STMT_COMMIT, STMT_ROLLBACK, STMT_INSERT, STMT_SET_LAST_ID,
  STMT_FETCH_AFTER, STMT_FETCH_BEFORE, STMT_COUNT
};

static const char *const stmt_sql[STMT_COUNT] = {
  [STMT_BEGIN] = "BEGIN IMMEDIATE",
  [STMT_COMMIT] = "COMMIT",
  [STMT_ROLLBACK] = "ROLLBACK",
  [STMT_INSERT] = "INSERT INTO messages(room, id, sender, text, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
  /* max(): batches merged by group commit may name a room twice. */
  [STMT_SET_LAST_ID] = "INSERT INTO rooms(name, last_id) VALUES (?1, ?2) "
                       "ON CONFLICT(name) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
  /* One row past the limit tells whether there are more. */
  [STMT_FETCH_AFTER] = "SELECT id, sender, text, ts FROM messages "
                       "WHERE room = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3",
  [STMT_FETCH_BEFORE] = "SELECT id, sender, text, ts FROM messages "
                        "WHERE room = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
};

static const char *const schema_sql =
  "CREATE TABLE IF NOT EXISTS messages ("
  "  room TEXT NOT NULL, id INTEGER NOT NULL, sender TEXT NOT NULL,"
  "  text TEXT NOT NULL, ts INTEGER NOT NULL,"
  "  PRIMARY KEY (room, id)) WITHOUT ROWID;"
  "CREATE TABLE IF NOT EXISTS rooms (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);"
  "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

struct sqlite_store {
  store_t base;            /* first: the vtable */
  uv_loop_t *loop;
  sqlite3 *db;
  sqlite3_stmt *stmt[STMT_COUNT];
  char epoch[STORE_EPOCH_LEN + 1];
  store_room_map_t rooms;

  uv_check_t seal_check;   /* seals the open batch at the end of an iteration */
  uv_idle_t wake_idle;     /* keeps poll from blocking while a batch is open */
  int handles_open;

  job_t *open;             /* this iteration's appends, not yet in the FIFO */
  uint64_t open_gen;       /* identifies the open batch in room marks */
  job_t *head, *tail;      /* FIFO of sealed batches and reads */
  job_t *running;          /* the job on the thread pool, or NULL */

  size_t pending_msgs, pending_bytes, pending_reads;
  int closing;
};

/* ---- jobs ------------------------------------------------------------- */

static void free_rows(job_t *j) {
  for (size_t i = 0; i < j->n_rows; i++) free((void *)j->rows[i].from);
  free(j->rows);
  j->rows = NULL;
  j->n_rows = j->cap_rows = 0;
}

static void job_free(job_t *j) {
  if (!j) return;
  for (size_t i = 0; i < j->n_msgs; i++) free(j->msgs[i]);
  free(j->msgs);
  free(j->rooms);
  free_rows(j);
  free(j->room);
  free(j);
}

/* Makes room for `need` more elements of size `elem` in *arr. */
static int reserve(void **arr, size_t *cap, size_t n, size_t need, size_t elem) {
  if (n + need <= *cap) return 0;
  size_t new_cap = *cap ? *cap : 16;
  while (new_cap < n + need) new_cap *= 2;
  void *p = realloc(*arr, new_cap * elem);
  if (!p) return -ENOMEM;
  *arr = p;
  *cap = new_cap;
  return 0;
}

static void fifo_push(sq_t *s, job_t *j) {
  j->next = NULL;
  if (s->tail) s->tail->next = j;
  else s->head = j;
  s->tail = j;
}

static job_t *fifo_pop(sq_t *s) {
  job_t *j = s->head;
  if (!j) return NULL;
  s->head = j->next;
  if (!s->head) s->tail = NULL;
  j->next = NULL;
  return j;
}

static void set_errmsg(job_t *j, sqlite3 *db) {
  snprintf(j->errmsg, sizeof j->errmsg, "%s (code %d)", sqlite3_errmsg(db), sqlite3_extended_errcode(db));
}

/* ---- worker side (thread pool; touches only the job and the db) -------- */

/* Runs a statement that returns no rows. */
static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

static int insert_messages(sq_t *s, job_t *j) {
  sqlite3_stmt *st = s->stmt[STMT_INSERT];
  for (size_t i = 0; i < j->n_msgs; i++) {
    const pending_msg_t *m = j->msgs[i];
    sqlite3_bind_text(st, 1, m->data, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->id);
    sqlite3_bind_text(st, 3, m->from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, m->text, (int)m->text_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, m->ts);
    if (step_done(st) < 0) return -EIO;
  }
  return 0;
}

static int save_last_ids(sq_t *s, job_t *j) {
  sqlite3_stmt *st = s->stmt[STMT_SET_LAST_ID];
  for (size_t i = 0; i < j->n_rooms; i++) {
    sqlite3_bind_text(st, 1, j->rooms[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->rooms[i].last_id);
    if (step_done(st) < 0) return -EIO;
  }
  return 0;
}

static void run_commit(sq_t *s, job_t *j) {
  int ok = step_done(s->stmt[STMT_BEGIN]) == 0 && insert_messages(s, j) == 0 &&
           save_last_ids(s, j) == 0 && step_done(s->stmt[STMT_COMMIT]) == 0;
  if (!ok) {
    set_errmsg(j, s->db);
    /* Disk full, an I/O error, a file size limit: nothing of this batch is
     * stored (the transaction rolls back) and its senders get `unavailable`;
     * the next batch tries again, so the store recovers by itself. */
    j->status = STORE_EUNAVAILABLE;
    /* A failed statement may or may not have ended the transaction. */
    if (!sqlite3_get_autocommit(s->db)) step_done(s->stmt[STMT_ROLLBACK]);
  }
  j->commit_ns = wsc_mono_ns() - j->sealed_ns;
}

/* Copies the current row into j->rows. */
static int add_row(job_t *j, sqlite3_stmt *st) {
  if (reserve((void **)&j->rows, &j->cap_rows, j->n_rows, 1, sizeof *j->rows) < 0) return -ENOMEM;
  const unsigned char *from = sqlite3_column_text(st, 1);
  size_t from_len = (size_t)sqlite3_column_bytes(st, 1);
  const unsigned char *text = sqlite3_column_text(st, 2);
  size_t text_len = (size_t)sqlite3_column_bytes(st, 2);
  char *block = malloc(from_len + 1 + text_len + 1);
  if (!block) return -ENOMEM;
  if (from_len) memcpy(block, from, from_len);
  block[from_len] = '\0';
  char *text_copy = block + from_len + 1;
  if (text_len) memcpy(text_copy, text, text_len);
  text_copy[text_len] = '\0';
  j->rows[j->n_rows++] = (store_msg_t){
    .room = j->room, .id = sqlite3_column_int64(st, 0), .from = block,
    .text = text_copy, .text_len = text_len, .ts = sqlite3_column_int64(st, 3),
  };
  return 0;
}

static void reverse_rows(job_t *j) {
  for (size_t a = 0, b = j->n_rows; a + 1 < b; a++, b--) {
    store_msg_t t = j->rows[a];
    j->rows[a] = j->rows[b - 1];
    j->rows[b - 1] = t;
  }
}

static void run_fetch(sq_t *s, job_t *j) {
  int before = j->kind == JOB_FETCH_BEFORE;
  sqlite3_stmt *st = s->stmt[before ? STMT_FETCH_BEFORE : STMT_FETCH_AFTER];
  sqlite3_bind_text(st, 1, j->room, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, j->bound);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)j->limit + 1);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (j->n_rows == (size_t)j->limit) {
      j->more = 1;
      rc = SQLITE_DONE;
      break;
    }
    if (add_row(j, st) < 0) {
      snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
      j->status = -ENOMEM;
      break;
    }
  }
  if (rc != SQLITE_DONE && j->status == 0) {
    set_errmsg(j, s->db);
    j->status = STORE_EUNAVAILABLE;
  }
  sqlite3_reset(st);
  if (j->status < 0) free_rows(j);
  else if (before) reverse_rows(j);
}

static void run_job(uv_work_t *w) {
  job_t *j = w->data;
  if (j->kind == JOB_COMMIT) run_commit(j->store, j);
  else run_fetch(j->store, j);
}

/* ---- loop side ---------------------------------------------------------- */

static void after_job(uv_work_t *w, int uv_status);

/* Starts the next job if none runs. */
static void pump(sq_t *s) {
  if (s->running || !s->head) return;
  job_t *j = fifo_pop(s);
  j->work.data = j;
  s->running = j;
  int rc = uv_queue_work(s->loop, &j->work, run_job, after_job);
  if (rc < 0) {
    /* Cannot happen with a valid loop and callback; fail the job loudly
     * rather than leave its callers waiting forever. */
    LOG_ERROR("store", "uv_queue_work failed err=%s", uv_strerror(rc));
    snprintf(j->errmsg, sizeof j->errmsg, "%s", uv_strerror(rc));
    after_job(&j->work, rc);
  }
}

static void finish_commit(sq_t *s, job_t *j) {
  if (j->status == 0) {
    uint64_t ns = j->commit_ns > 0 ? (uint64_t)j->commit_ns : 0;
    wsc_metrics.store_commits++;
    wsc_metrics.store_commit_ns_total += ns;
    if (ns > wsc_metrics.store_commit_ns_max) wsc_metrics.store_commit_ns_max = ns;
    wsc_hist_observe_ns(&wsc_metrics.store_commit_seconds, (int64_t)ns);
  } else {
    wsc_metrics.store_errors++;
    LOG_ERROR("store", "commit failed messages=%zu err=\"%s\"", j->n_msgs, j->errmsg);
  }
  s->pending_msgs -= j->n_msgs;
  wsc_metrics.store_queue_appends = (int64_t)s->pending_msgs;
  s->pending_bytes -= j->bytes;
  for (size_t i = 0; i < j->n_msgs; i++) {
    const pending_msg_t *m = j->msgs[i];
    if (!m->cb) continue;
    store_msg_t msg = { .room = m->data, .id = m->id, .from = m->from,
                        .text = m->text, .text_len = m->text_len, .ts = m->ts };
    m->cb(m->ud, j->status, &msg);
  }
}

static void finish_fetch(sq_t *s, job_t *j) {
  if (j->status < 0) {
    wsc_metrics.store_errors++;
    LOG_ERROR("store", "read failed room=%s err=\"%s\"", j->room, j->errmsg);
  }
  s->pending_reads--;
  wsc_metrics.store_queue_reads = (int64_t)s->pending_reads;
  j->rows_cb(j->ud, j->status, j->rows, j->n_rows, j->more);
}

static void after_job(uv_work_t *w, int uv_status) {
  job_t *j = w->data;
  sq_t *s = j->store;
  s->running = NULL;
  if (uv_status < 0 && j->status == 0) j->status = uv_status;
  /* The next job may run on the pool while this one's callbacks run here:
   * its work is done, so the order of effects is already fixed. */
  pump(s);
  if (j->kind == JOB_COMMIT) finish_commit(s, j);
  else finish_fetch(s, j);
  job_free(j);
}

/* Moves the appends of `from` to the end of `into` (both commit batches). */
static int merge_batch(job_t *into, job_t *from) {
  if (reserve((void **)&into->msgs, &into->cap_msgs, into->n_msgs, from->n_msgs,
              sizeof *into->msgs) < 0 ||
      reserve((void **)&into->rooms, &into->cap_rooms, into->n_rooms, from->n_rooms,
              sizeof *into->rooms) < 0)
    return -ENOMEM;
  memcpy(into->msgs + into->n_msgs, from->msgs, from->n_msgs * sizeof *from->msgs);
  into->n_msgs += from->n_msgs;
  memcpy(into->rooms + into->n_rooms, from->rooms, from->n_rooms * sizeof *from->rooms);
  into->n_rooms += from->n_rooms;
  into->bytes += from->bytes;
  from->n_msgs = from->n_rooms = 0;  /* the messages belong to `into` now */
  return 0;
}

/* Puts the open batch into the FIFO (or onto a commit batch still waiting
 * at its tail). */
static void seal_open_batch(sq_t *s) {
  job_t *b = s->open;
  if (!b) return;
  s->open = NULL;
  uv_idle_stop(&s->wake_idle);
  b->sealed_ns = wsc_mono_ns();
  if (s->tail && s->tail->kind == JOB_COMMIT && merge_batch(s->tail, b) == 0) {
    job_free(b);
    return;
  }
  fifo_push(s, b);
}

static void on_seal_check(uv_check_t *h) {
  sq_t *s = h->data;
  seal_open_batch(s);
  pump(s);
}

static void on_wake_idle(uv_idle_t *h) {
  /* Nothing to do: being active is enough to make poll return at once. */
}

static job_t *open_batch(sq_t *s) {
  if (s->open) return s->open;
  job_t *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->store = s;
  b->kind = JOB_COMMIT;
  s->open = b;
  s->open_gen++;
  uv_idle_start(&s->wake_idle, on_wake_idle);
  return b;
}

/* ---- public ------------------------------------------------------------- */

static const char *sq_epoch(const store_t *base) { return ((const sq_t *)base)->epoch; }

static int64_t sq_last_id(const store_t *base, const char *room) {
  const sq_t *s = (const sq_t *)base;
  if (!s || !room) return 0;
  const store_room_t *r = store_rooms_find(&s->rooms, room);
  return r ? r->last_id : 0;
}

static pending_msg_t *copy_msg(const store_msg_t *msg, size_t *bytes) {
  const char *from = msg->from ? msg->from : "";
  size_t text_len = msg->text ? msg->text_len : 0;
  size_t room_len = strlen(msg->room), from_len = strlen(from);
  *bytes = sizeof(pending_msg_t) + room_len + 1 + from_len + 1 + text_len + 1;
  pending_msg_t *p = malloc(*bytes);
  if (!p) return NULL;
  char *at = p->data;
  memcpy(at, msg->room, room_len + 1);
  at += room_len + 1;
  p->from = at;
  memcpy(at, from, from_len + 1);
  at += from_len + 1;
  p->text = at;
  if (text_len) memcpy(at, msg->text, text_len);
  at[text_len] = '\0';
  p->text_len = text_len;
  p->ts = msg->ts;
  return p;
}

static int64_t sq_append(store_t *base, const store_msg_t *msg, store_append_cb cb, void *ud) {
  sq_t *s = (sq_t *)base;
  if (!s || !msg || !msg->room || s->closing) return STORE_ERR;
  if (msg->text_len > INT_MAX) return STORE_ERR;
  /* The disk is not keeping up (or failing): refuse, the sender retries. */
  if (s->pending_msgs >= STORE_MAX_PENDING_APPENDS ||
      s->pending_bytes + msg->text_len > STORE_MAX_PENDING_BYTES)
    return STORE_EUNAVAILABLE;
  store_room_t *room = store_rooms_get(&s->rooms, msg->room);
  job_t *b = open_batch(s);
  if (!room || !b) return STORE_ERR;
  int new_room_in_batch = room->batch_gen != s->open_gen;
  if (reserve((void **)&b->msgs, &b->cap_msgs, b->n_msgs, 1, sizeof *b->msgs) < 0 ||
      reserve((void **)&b->rooms, &b->cap_rooms, b->n_rooms, 1, sizeof *b->rooms) < 0)
    return STORE_ERR;
  size_t bytes;
  pending_msg_t *p = copy_msg(msg, &bytes);
  if (!p) return STORE_ERR;
  p->cb = cb;
  p->ud = ud;
  p->id = ++room->last_id;
  b->msgs[b->n_msgs++] = p;
  if (new_room_in_batch) {
    room->batch_gen = s->open_gen;
    room->batch_slot = b->n_rooms++;
    b->rooms[room->batch_slot].name = p->data;
  }
  b->rooms[room->batch_slot].last_id = p->id;
  b->bytes += bytes;
  s->pending_msgs++;
  wsc_metrics.store_queue_appends = (int64_t)s->pending_msgs;
  s->pending_bytes += bytes;
  return p->id;
}

static int queue_fetch(sq_t *s, job_kind_t kind, const char *room, int64_t bound,
                       int limit, store_rows_cb cb, void *ud) {
  if (!s || !room || !cb || limit < 1) return -EINVAL;
  if (s->closing) return -ESHUTDOWN;
  if (s->pending_reads >= STORE_MAX_PENDING_READS) return STORE_EUNAVAILABLE;
  job_t *j = calloc(1, sizeof *j);
  if (!j || !(j->room = strdup(room))) {
    free(j);
    return -ENOMEM;
  }
  j->store = s;
  j->kind = kind;
  j->bound = bound;
  j->limit = limit < STORE_FETCH_LIMIT_MAX ? limit : STORE_FETCH_LIMIT_MAX;
  j->rows_cb = cb;
  j->ud = ud;
  /* The read must see every append issued before it: queue those first. */
  seal_open_batch(s);
  fifo_push(s, j);
  s->pending_reads++;
  wsc_metrics.store_queue_reads = (int64_t)s->pending_reads;
  pump(s);
  return 0;
}

static int sq_fetch_after(store_t *s, const char *room, int64_t after_id, int limit,
                          store_rows_cb cb, void *ud) {
  return queue_fetch((sq_t *)s, JOB_FETCH_AFTER, room, after_id, limit, cb, ud);
}

static int sq_fetch_before(store_t *s, const char *room, int64_t before_id, int limit,
                           store_rows_cb cb, void *ud) {
  return queue_fetch((sq_t *)s, JOB_FETCH_BEFORE, room, before_id > 0 ? before_id : INT64_MAX,
                     limit, cb, ud);
}

/* store_join on SQLite: the last id is known at once and the FIFO makes the
 * read see exactly the appends issued before it. */
typedef struct sq_join {
  store_join_cb cb;
  void *ud;
  sq_t *s;
  store_join_info_t info;
  int want_rows;
} sq_join_t;

static void on_sq_join_rows(void *ud, int status, const store_msg_t *rows, size_t n, int more) {
  (void)more;
  sq_join_t *j = ud;
  j->info.epoch = j->s->epoch;
  j->cb(j->ud, status, j->want_rows ? rows : NULL, j->want_rows ? n : 0, &j->info);
  free(j);
}

static int sq_join(store_t *base, const char *room, int64_t since, const char *epoch,
                   size_t epoch_len, int max_after, int n_before, store_join_cb cb, void *ud) {
  sq_t *s = (sq_t *)base;
  if (!room || !cb) return STORE_ERR;
  int64_t last = sq_last_id(base, room);
  store_join_info_t info = {.last_id = last, .epoch = s->epoch, .recovered = -1};
  if (since >= 0) {
    int epoch_ok = !epoch || (epoch_len == STORE_EPOCH_LEN && memcmp(s->epoch, epoch, epoch_len) == 0);
    info.recovered = epoch_ok && since <= last && last - since <= max_after;
  }
  /* Nothing to read (a room never written, or a reader already at the last
   * id): no trip through the FIFO. Ids are assigned at append, so nothing
   * below last_id is in flight that a read would have waited for. */
  if (last == 0 || (info.recovered == 1 && since == last) || (info.recovered != 1 && n_before < 1)) {
    cb(ud, s->closing ? STORE_ERR : 0, NULL, 0, &info);
    return 0;
  }
  sq_join_t *j = malloc(sizeof *j);
  if (!j) return STORE_ERR;
  *j = (sq_join_t){.cb = cb, .ud = ud, .s = s, .info = info, .want_rows = 1};
  int rc = info.recovered == 1 ? queue_fetch(s, JOB_FETCH_AFTER, room, since, max_after, on_sq_join_rows, j)
                               : queue_fetch(s, JOB_FETCH_BEFORE, room, INT64_MAX, n_before, on_sq_join_rows, j);
  if (rc < 0) {
    free(j);
    return STORE_ERR;
  }
  return 0;
}

static void sq_close(store_t *base);

static const store_ops_t sq_ops = {
  .epoch = sq_epoch,
  .last_id = sq_last_id,
  .append = sq_append,
  .fetch_after = sq_fetch_after,
  .fetch_before = sq_fetch_before,
  .join = sq_join,
  .close = sq_close,
};

/* ---- open / close --------------------------------------------------------- */

/* Where store_open's error messages live: "owned by nobody" (store.h). */
static char open_errbuf[256];

static const char *db_error(sqlite3 *db, const char *what) {
  snprintf(open_errbuf, sizeof open_errbuf, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
  return open_errbuf;
}

/* First column of the first row of `sql` (one text parameter, may be NULL)
 * into out; 1 if there was a row, 0 if none, -EIO on error. */
static int query_text(sqlite3 *db, const char *sql, const char *param, char *out, size_t outsz) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -EIO;
  if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st), found = 0;
  if (rc == SQLITE_ROW) {
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(out, outsz, "%s", v ? (const char *)v : "");
    found = 1;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -EIO;
}

static int set_meta(sqlite3 *db, const char *key, const char *value) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1, &st,
                         NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

static int make_epoch(char out[STORE_EPOCH_LEN + 1]) {
  unsigned char raw[STORE_EPOCH_BYTES];
  if (RAND_bytes(raw, sizeof raw) != 1) return -EIO;
  for (size_t i = 0; i < sizeof raw; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
  return 0;
}

static const char *configure_db(sq_t *s, const wsc_config_t *config) {
  char mode[32];
  sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
  if (query_text(s->db, "PRAGMA journal_mode=WAL", NULL, mode, sizeof mode) < 0)
    return db_error(s->db, "journal_mode");
  /* ":memory:" databases stay in "memory" mode; anything else is odd. */
  if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
    LOG_WARN("store", "WAL not available journal_mode=%s", mode);
  const char *sync = config->fsync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if (sqlite3_exec(s->db, sync, NULL, NULL, NULL) != SQLITE_OK)
    return db_error(s->db, "synchronous");
  return NULL;
}

/* A damaged file is refused at start, with SQLite's first complaint, rather
 * than found later by a read (or, worse, written over). quick_check reads
 * every page once (about a second per GB); it skips only the index/table
 * consistency checks of integrity_check. */
static const char *check_db(sq_t *s) {
  char result[STORE_ERRMSG_MAX];
  int64_t t0 = wsc_mono_ms();
  int rc = query_text(s->db, "PRAGMA quick_check(1)", NULL, result, sizeof result);
  if (rc < 0) return db_error(s->db, "quick_check");
  if (rc == 1 && strcmp(result, "ok") != 0) {
    snprintf(open_errbuf, sizeof open_errbuf, "database is corrupt: %s", result);
    return open_errbuf;
  }
  LOG_DEBUG("store", "quick_check ok ms=%" PRId64, wsc_mono_ms() - t0);
  return NULL;
}

/* Creates the tables and, for a new database, its epoch; reads the epoch. */
static const char *load_schema(sq_t *s) {
  char version[32];
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return db_error(s->db, "begin");
  const char *err = NULL;
  int has_version, has_epoch;
  if (sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
    err = db_error(s->db, "schema");
  } else if ((has_version = query_text(s->db, "SELECT value FROM meta WHERE key = ?1",
                                       "schema_version", version, sizeof version)) < 0 ||
             (has_epoch = query_text(s->db, "SELECT value FROM meta WHERE key = ?1", "epoch",
                                     s->epoch, sizeof s->epoch)) < 0) {
    err = db_error(s->db, "meta");
  } else if (has_version && strcmp(version, STORE_SCHEMA_VERSION) != 0) {
    snprintf(open_errbuf, sizeof open_errbuf, "unsupported schema version %s (want %s)",
             version, STORE_SCHEMA_VERSION);
    err = open_errbuf;
  } else if (!has_version && set_meta(s->db, "schema_version", STORE_SCHEMA_VERSION) < 0) {
    err = db_error(s->db, "meta");
  } else if (!has_epoch && (make_epoch(s->epoch) < 0 || set_meta(s->db, "epoch", s->epoch) < 0)) {
    err = "cannot make the database epoch";
  }
  if (sqlite3_exec(s->db, err ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !err)
    err = db_error(s->db, "commit");
  return err;
}

static const char *load_rooms(sq_t *s) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT name, last_id FROM rooms", -1, &st, NULL) != SQLITE_OK)
    return db_error(s->db, "rooms");
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    store_room_t *r = name ? store_rooms_get(&s->rooms, name) : NULL;
    if (!r) {
      sqlite3_finalize(st);
      return "out of memory loading rooms";
    }
    r->last_id = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? NULL : db_error(s->db, "rooms");
}

static const char *prepare_statements(sq_t *s) {
  for (int i = 0; i < STMT_COUNT; i++) {
    if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                           NULL) != SQLITE_OK)
      return db_error(s->db, "prepare");
  }
  return NULL;
}

static void close_db(sq_t *s) {
  for (int i = 0; i < STMT_COUNT; i++) sqlite3_finalize(s->stmt[i]);
  if (sqlite3_close(s->db) != SQLITE_OK)
    LOG_ERROR("store", "close failed err=\"%s\"", sqlite3_errmsg(s->db));
  s->db = NULL;
}

static void start_handles(sq_t *s) {
  uv_check_init(s->loop, &s->seal_check);
  uv_idle_init(s->loop, &s->wake_idle);
  s->seal_check.data = s;
  s->wake_idle.data = s;
  s->handles_open = 2;
  uv_check_start(&s->seal_check, on_seal_check);
  /* The check alone must not keep the loop alive; an open batch does (idle). */
  uv_unref((uv_handle_t *)&s->seal_check);
}

store_t *store_open(uv_loop_t *loop, const wsc_config_t *config, const char **err) {
  const char *why = NULL;
  if (!loop || !config || !config->db_path) {
    *err = "no database path";
    return NULL;
  }
  sq_t *s = calloc(1, sizeof *s);
  if (!s) {
    *err = "out of memory";
    return NULL;
  }
  s->base.ops = &sq_ops;
  s->loop = loop;
  store_rooms_init(&s->rooms);
  /* NOMUTEX: the FIFO guarantees one thread at a time on the connection. */
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(config->db_path, &s->db, flags, NULL) != SQLITE_OK)
    why = db_error(s->db, config->db_path);
  if (!why) why = configure_db(s, config);
  if (!why) why = check_db(s);
  if (!why) why = load_schema(s);
  if (!why) why = prepare_statements(s);
  if (!why) why = load_rooms(s);
  if (why) {
    close_db(s);
    store_rooms_free(&s->rooms);
    free(s);
    *err = why;
    return NULL;
  }
  start_handles(s);
  LOG_INFO("store", "opened path=%s epoch=%s rooms=%zu", config->db_path, s->epoch,
           s->rooms.count);
  return &s->base;
}

static void on_handle_closed(uv_handle_t *h) {
  sq_t *s = h->data;
  s->handles_open--;
}

static void sq_close(store_t *base) {
  sq_t *s = (sq_t *)base;
  s->closing = 1;
  seal_open_batch(s);
  pump(s);
  /* UV_RUN_ONCE, not DEFAULT: other handles may keep the loop alive. */
  while (s->running || s->head) uv_run(s->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&s->seal_check, on_handle_closed);
  uv_close((uv_handle_t *)&s->wake_idle, on_handle_closed);
  while (s->handles_open > 0) uv_run(s->loop, UV_RUN_NOWAIT);
  close_db(s);
  LOG_INFO("store", "closed rooms=%zu", s->rooms.count);
  store_rooms_free(&s->rooms);
  free(s);
}
