/* store/sqlite against real SQLite files in a fresh temporary directory and
 * a real libuv loop: batching, ordering, reads, persistence, failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/metrics.h"
#include "store/store.h"

#define MAX_RECORDS 8192
#define MAX_ROWS 64
#define TEXT_MAX 64
/* Iterations of the loop a test may wait before it counts as hung. */
#define MAX_LOOP_ITERATIONS 100000

/* ---- fixture -------------------------------------------------------------- */

typedef struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  wsc_config_t config;
  store_t *store;
} fixture_t;

static void open_store(fixture_t *f) {
  const char *err = NULL;
  f->store = store_open(&f->loop, &f->config, &err);
  if (!f->store) fail_msg("store_open: %s", err ? err : "?");
}

static void close_store(fixture_t *f) {
  store_close(f->store);
  f->store = NULL;
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/wsc-test-store-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/chat.db", f->dir);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  wsc_config_defaults(&f->config);
  f->config.db_path = f->path;
  open_store(f);
  *state = f;
  return 0;
}

static void remove_db_files(const char *path) {
  static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
  char name[256];
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
    unlink(name);
  }
}

static int teardown(void **state) {
  fixture_t *f = *state;
  if (f->store) close_store(f);
  /* Fails (UV_EBUSY) if the store left a handle open. */
  assert_int_equal(uv_loop_close(&f->loop), 0);
  remove_db_files(f->path);
  char other[160];
  snprintf(other, sizeof other, "%s/other.db", f->dir);
  remove_db_files(other);
  assert_int_equal(rmdir(f->dir), 0);
  free(f);
  return 0;
}

/* ---- recording callbacks ---------------------------------------------------- */

static int event_seq;  /* orders every callback of a test */

typedef struct record {
  int status;
  int64_t id;
  int seq;
  char room[32];
  char text[TEXT_MAX];
} record_t;

typedef struct recorder {
  record_t recs[MAX_RECORDS];
  size_t n;
} recorder_t;

static void on_append(void *ud, int status, const store_msg_t *m) {
  recorder_t *r = ud;
  assert_true(r->n < MAX_RECORDS);
  record_t *rec = &r->recs[r->n++];
  rec->status = status;
  rec->id = m->id;
  rec->seq = ++event_seq;
  snprintf(rec->room, sizeof rec->room, "%s", m->room);
  snprintf(rec->text, sizeof rec->text, "%.*s", (int)m->text_len, m->text);
}

typedef struct rows {
  int done;
  int status;
  int seq;
  size_t n;
  int more;
  int64_t ids[MAX_ROWS];
  char from[MAX_ROWS][TEXT_MAX];
  char text[MAX_ROWS][TEXT_MAX];
  size_t text_len[MAX_ROWS];
  int64_t ts[MAX_ROWS];
} rows_t;

static void on_rows(void *ud, int status, const store_msg_t *rows, size_t n, int more) {
  rows_t *r = ud;
  assert_false(r->done);
  r->done = 1;
  r->status = status;
  r->seq = ++event_seq;
  r->n = n;
  r->more = more;
  assert_true(n <= MAX_ROWS);
  for (size_t i = 0; i < n; i++) {
    r->ids[i] = rows[i].id;
    snprintf(r->from[i], TEXT_MAX, "%s", rows[i].from);
    assert_true(rows[i].text_len < TEXT_MAX);
    memcpy(r->text[i], rows[i].text, rows[i].text_len);
    r->text_len[i] = rows[i].text_len;
    r->ts[i] = rows[i].ts;
  }
}

static int64_t append(fixture_t *f, const char *room, const char *text, recorder_t *r) {
  store_msg_t m = { .room = room, .from = "alice", .text = text, .text_len = strlen(text),
                    .ts = 1700000000000 };
  return store_append(f->store, &m, on_append, r);
}

static void run_until(fixture_t *f, const size_t *count, size_t want) {
  for (int i = 0; *count < want; i++) {
    if (i == MAX_LOOP_ITERATIONS) fail_msg("loop hung waiting for %zu callbacks", want);
    uv_run(&f->loop, UV_RUN_ONCE);
  }
}

static void run_until_done(fixture_t *f, const rows_t *r) {
  for (int i = 0; !r->done; i++) {
    if (i == MAX_LOOP_ITERATIONS) fail_msg("loop hung waiting for a read");
    uv_run(&f->loop, UV_RUN_ONCE);
  }
}

/* Runs fn(f, arg) inside a callback of one loop iteration (a 0 ms timer),
 * the way chat/ calls the store from an I/O callback. */
typedef void (*iteration_fn)(fixture_t *f, void *arg);
typedef struct in_iteration {
  fixture_t *f;
  iteration_fn fn;
  void *arg;
  int ran;
} in_iteration_t;

static void on_iteration_timer(uv_timer_t *t) {
  in_iteration_t *it = t->data;
  it->fn(it->f, it->arg);
  it->ran = 1;
}

static void run_in_iteration(fixture_t *f, iteration_fn fn, void *arg) {
  uv_timer_t timer;
  in_iteration_t it = { f, fn, arg, 0 };
  uv_timer_init(&f->loop, &timer);
  timer.data = &it;
  uv_timer_start(&timer, on_iteration_timer, 0, 0);
  while (!it.ran) uv_run(&f->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void fetch_after(fixture_t *f, const char *room, int64_t after, int limit, rows_t *r) {
  memset(r, 0, sizeof *r);
  assert_int_equal(store_fetch_after(f->store, room, after, limit, on_rows, r), 0);
  run_until_done(f, r);
  assert_int_equal(r->status, 0);
}

static void fetch_before(fixture_t *f, const char *room, int64_t before, int limit, rows_t *r) {
  memset(r, 0, sizeof *r);
  assert_int_equal(store_fetch_before(f->store, room, before, limit, on_rows, r), 0);
  run_until_done(f, r);
  assert_int_equal(r->status, 0);
}

static void assert_ids(const rows_t *r, int64_t first, size_t n) {
  assert_int_equal(r->n, n);
  for (size_t i = 0; i < n; i++) assert_int_equal(r->ids[i], first + (int64_t)i);
}

/* Appends `n` messages "m1".."mN" to `room`. */
static void append_n(fixture_t *f, const char *room, int n, recorder_t *r) {
  char text[TEXT_MAX];
  for (int i = 1; i <= n; i++) {
    snprintf(text, sizeof text, "m%d", i);
    assert_true(append(f, room, text, r) > 0);
  }
}

/* ---- tests -------------------------------------------------------------------- */

typedef struct two_rooms_arg {
  recorder_t *rec;
  int64_t ids[7];
} two_rooms_arg_t;

static void append_two_rooms(fixture_t *f, void *argp) {
  two_rooms_arg_t *arg = argp;
  static const char *const rooms[7] = { "a", "a", "b", "a", "b", "a", "a" };
  for (int i = 0; i < 7; i++) {
    char text[16];
    snprintf(text, sizeof text, "t%d", i);
    arg->ids[i] = append(f, rooms[i], text, arg->rec);
  }
  /* Acknowledged only after the commit, never during the call. */
  assert_int_equal(arg->rec->n, 0);
}

static void test_one_iteration_is_one_transaction(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  two_rooms_arg_t arg = { .rec = &rec };
  uint64_t commits = wsc_metrics.store_commits;
  uint64_t errors = wsc_metrics.store_errors;

  run_in_iteration(f, append_two_rooms, &arg);
  run_until(f, &rec.n, 7);

  assert_int_equal(wsc_metrics.store_commits - commits, 1);
  assert_int_equal(wsc_metrics.store_errors, errors);
  assert_true(wsc_metrics.store_commit_ns_max > 0);
  assert_true(wsc_metrics.store_commit_ns_total >= wsc_metrics.store_commit_ns_max);
  /* Ids per room, independent of the other room. */
  static const int64_t want_ids[7] = { 1, 2, 1, 3, 2, 4, 5 };
  for (int i = 0; i < 7; i++) {
    assert_int_equal(arg.ids[i], want_ids[i]);
    /* Callbacks in append order, with the ids returned by append. */
    char text[16];
    snprintf(text, sizeof text, "t%d", i);
    assert_string_equal(rec.recs[i].text, text);
    assert_int_equal(rec.recs[i].status, 0);
    assert_int_equal(rec.recs[i].id, want_ids[i]);
  }
  assert_int_equal(store_last_id(f->store, "a"), 5);
  assert_int_equal(store_last_id(f->store, "b"), 2);
  assert_int_equal(store_last_id(f->store, "never-written"), 0);
}

static void test_callbacks_in_order_across_iterations(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  /* Appends spread over many iterations while commits are in flight. */
  for (int i = 1; i <= 200; i++) {
    char text[16];
    snprintf(text, sizeof text, "%d", i);
    assert_int_equal(append(f, "r", text, &rec), i);
    uv_run(&f->loop, UV_RUN_NOWAIT);
  }
  run_until(f, &rec.n, 200);
  for (int i = 0; i < 200; i++) {
    assert_int_equal(rec.recs[i].id, i + 1);
    assert_int_equal(rec.recs[i].status, 0);
    if (i) assert_true(rec.recs[i].seq > rec.recs[i - 1].seq);
  }
  rows_t rows;
  fetch_before(f, "r", 0, 3, &rows);
  assert_ids(&rows, 198, 3);
}

static void test_fetch_after_and_before(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  append_n(f, "room", 10, &rec);
  append_n(f, "other", 3, &rec);
  run_until(f, &rec.n, 13);
  rows_t r;

  fetch_after(f, "room", 0, 100, &r);
  assert_ids(&r, 1, 10);
  assert_int_equal(r.more, 0);
  assert_string_equal(r.from[0], "alice");
  assert_memory_equal(r.text[9], "m10", 3);
  assert_int_equal(r.text_len[9], 3);
  assert_int_equal(r.ts[0], 1700000000000);

  fetch_after(f, "room", 3, 4, &r);
  assert_ids(&r, 4, 4);
  assert_int_equal(r.more, 1);
  fetch_after(f, "room", 6, 4, &r);
  assert_ids(&r, 7, 4);
  assert_int_equal(r.more, 0);
  fetch_after(f, "room", 10, 5, &r);
  assert_ids(&r, 0, 0);

  fetch_before(f, "room", 0, 3, &r);   /* before <= 0: the newest */
  assert_ids(&r, 8, 3);
  assert_int_equal(r.more, 1);
  fetch_before(f, "room", -5, 3, &r);
  assert_ids(&r, 8, 3);
  fetch_before(f, "room", 5, 3, &r);   /* exclusive */
  assert_ids(&r, 2, 3);
  assert_int_equal(r.more, 1);
  fetch_before(f, "room", 4, 3, &r);
  assert_ids(&r, 1, 3);
  assert_int_equal(r.more, 0);
  fetch_before(f, "room", 4, 10, &r);
  assert_ids(&r, 1, 3);
  assert_int_equal(r.more, 0);
  fetch_before(f, "room", 1, 10, &r);
  assert_ids(&r, 0, 0);
  assert_int_equal(r.more, 0);

  fetch_before(f, "other", 0, 50, &r);  /* rooms do not mix */
  assert_ids(&r, 1, 3);
  fetch_after(f, "nobody-here", 0, 50, &r);
  assert_ids(&r, 0, 0);

  /* A bad limit is refused at once, without a callback. */
  memset(&r, 0, sizeof r);
  assert_true(store_fetch_after(f->store, "room", 0, 0, on_rows, &r) < 0);
  assert_true(store_fetch_before(f->store, "room", 0, -1, on_rows, &r) < 0);
  assert_false(r.done);
}

static void test_text_is_bytes(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  static const char text[] = "a\0b \xc3\xa9 \"quoted\"";
  store_msg_t m = { .room = "bytes", .from = NULL, .text = text, .text_len = sizeof text - 1,
                    .ts = 42 };
  assert_int_equal(store_append(f->store, &m, on_append, &rec), 1);
  run_until(f, &rec.n, 1);
  rows_t r;
  fetch_after(f, "bytes", 0, 10, &r);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.text_len[0], sizeof text - 1);
  assert_memory_equal(r.text[0], text, sizeof text - 1);
  assert_string_equal(r.from[0], "");
  assert_int_equal(r.ts[0], 42);
}

/* Jobs queued back to back run one after another, in issue order, without
 * anything else keeping the loop busy. */
static void test_queued_reads_run_in_order(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  static rows_t r[4];
  memset(&rec, 0, sizeof rec);
  memset(r, 0, sizeof r);
  append_n(f, "q", 2, &rec);
  run_until(f, &rec.n, 2);
  assert_int_equal(store_fetch_after(f->store, "q", 0, 10, on_rows, &r[0]), 0);
  assert_int_equal(store_fetch_before(f->store, "q", 0, 1, on_rows, &r[1]), 0);
  assert_int_equal(append(f, "q", "m3", &rec), 3);
  assert_int_equal(store_fetch_after(f->store, "q", 0, 10, on_rows, &r[2]), 0);
  assert_int_equal(store_fetch_after(f->store, "q", 2, 10, on_rows, &r[3]), 0);
  run_until_done(f, &r[3]);
  for (int i = 0; i < 4; i++) {
    assert_true(r[i].done);
    assert_int_equal(r[i].status, 0);
    if (i) assert_true(r[i].seq > r[i - 1].seq);
  }
  assert_ids(&r[0], 1, 2);
  assert_ids(&r[1], 2, 1);
  assert_int_equal(r[1].more, 1);
  assert_ids(&r[2], 1, 3);
  assert_ids(&r[3], 3, 1);
  assert_true(rec.recs[2].seq > r[1].seq && rec.recs[2].seq < r[2].seq);
}

/* While a commit waits for the disk (here: for a write lock another
 * connection holds), the batches of later iterations queue as one: group
 * commit. Their callbacks still come in append order. */
static void test_batches_waiting_for_disk_commit_together(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  uint64_t commits = wsc_metrics.store_commits;

  assert_int_equal(append(f, "g", "first", &rec), 1);
  uv_run(&f->loop, UV_RUN_NOWAIT);       /* sealed and started: now blocked */
  for (int i = 2; i <= 6; i++) {
    assert_int_equal(append(f, "g", "next", &rec), i);
    uv_run(&f->loop, UV_RUN_NOWAIT);     /* one iteration, one seal */
  }
  assert_int_equal(rec.n, 0);
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  run_until(f, &rec.n, 6);
  assert_int_equal(wsc_metrics.store_commits - commits, 2);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(rec.recs[i].status, 0);
    assert_int_equal(rec.recs[i].id, i + 1);
  }
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  rows_t r;
  fetch_after(f, "g", 0, 10, &r);
  assert_ids(&r, 1, 6);
}

typedef struct read_after_arg {
  recorder_t *rec;
  rows_t *rows;
} read_after_arg_t;

static void append_then_read(fixture_t *f, void *argp) {
  read_after_arg_t *arg = argp;
  append_n(f, "live", 3, arg->rec);
  assert_int_equal(store_fetch_after(f->store, "live", 0, 50, on_rows, arg->rows), 0);
  /* Issued after the read: the read must not see it. */
  assert_int_equal(append(f, "live", "late", arg->rec), 4);
}

static void test_read_sees_earlier_appends_of_same_iteration(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  static rows_t rows;
  memset(&rec, 0, sizeof rec);
  memset(&rows, 0, sizeof rows);
  read_after_arg_t arg = { &rec, &rows };
  run_in_iteration(f, append_then_read, &arg);
  run_until(f, &rec.n, 4);
  run_until_done(f, &rows);
  assert_int_equal(rows.status, 0);
  assert_ids(&rows, 1, 3);
  /* The read ran after the first three appends' commit, before the fourth's. */
  assert_true(rows.seq > rec.recs[2].seq);
  assert_true(rows.seq < rec.recs[3].seq);
  assert_int_equal(rec.recs[3].status, 0);
}

static void test_reopen_keeps_ids_and_epoch(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  char epoch[64];
  snprintf(epoch, sizeof epoch, "%s", store_epoch(f->store));
  assert_int_equal(strlen(epoch), 16);
  assert_int_equal(strspn(epoch, "0123456789abcdef"), 16);

  append_n(f, "keep", 3, &rec);
  append_n(f, "also", 1, &rec);
  close_store(f);           /* drains: every callback ran */
  assert_int_equal(rec.n, 4);
  for (size_t i = 0; i < rec.n; i++) assert_int_equal(rec.recs[i].status, 0);

  open_store(f);
  assert_string_equal(store_epoch(f->store), epoch);
  assert_int_equal(store_last_id(f->store, "keep"), 3);
  assert_int_equal(store_last_id(f->store, "also"), 1);
  assert_int_equal(append(f, "keep", "after restart", &rec), 4);
  run_until(f, &rec.n, 5);
  rows_t r;
  fetch_after(f, "keep", 0, 50, &r);
  assert_ids(&r, 1, 4);
  assert_memory_equal(r.text[3], "after restart", 13);
}

static void test_new_database_new_epoch(void **state) {
  fixture_t *f = *state;
  char other_path[160];
  snprintf(other_path, sizeof other_path, "%s/other.db", f->dir);
  wsc_config_t other_config = f->config;
  other_config.db_path = other_path;
  const char *err = NULL;
  store_t *other = store_open(&f->loop, &other_config, &err);
  assert_non_null(other);
  assert_int_equal(strlen(store_epoch(other)), 16);
  assert_string_not_equal(store_epoch(other), store_epoch(f->store));
  store_close(other);
}

static void test_open_failure_reports(void **state) {
  fixture_t *f = *state;
  wsc_config_t bad = f->config;
  bad.db_path = "/nonexistent-wschat-dir/x/chat.db";
  const char *err = NULL;
  assert_null(store_open(&f->loop, &bad, &err));
  assert_non_null(err);
  assert_true(strlen(err) > 0);
}

static void test_memory_database(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  wsc_config_t mem = f->config;
  mem.db_path = ":memory:";
  const char *err = NULL;
  store_t *saved = f->store;
  f->store = store_open(&f->loop, &mem, &err);
  assert_non_null(f->store);
  append_n(f, "m", 2, &rec);
  run_until(f, &rec.n, 2);
  rows_t r;
  fetch_before(f, "m", 0, 10, &r);
  assert_ids(&r, 1, 2);
  close_store(f);
  f->store = saved;
}

/* A second connection adds a trigger that rejects text "boom": the batch
 * holding it fails as a whole, its ids are skipped, later batches work. */
static void test_commit_failure(void **state) {
  fixture_t *f = *state;
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  assert_int_equal(append(f, "x", "first", &rec), 1);
  run_until(f, &rec.n, 1);
  assert_int_equal(rec.recs[0].status, 0);

  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_exec(db,
                                "CREATE TRIGGER reject_boom BEFORE INSERT ON messages "
                                "WHEN NEW.text = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END;",
                                NULL, NULL, NULL),
                   SQLITE_OK);

  uint64_t errors = wsc_metrics.store_errors;
  uint64_t commits = wsc_metrics.store_commits;
  assert_int_equal(append(f, "x", "fine", &rec), 2);
  assert_int_equal(append(f, "x", "boom", &rec), 3);
  run_until(f, &rec.n, 3);
  assert_int_equal(rec.recs[1].status, STORE_EUNAVAILABLE);   /* senders get `unavailable` */
  assert_int_equal(rec.recs[2].status, STORE_EUNAVAILABLE);
  assert_int_equal(rec.recs[1].id, 2);
  assert_int_equal(wsc_metrics.store_errors - errors, 1);
  assert_int_equal(wsc_metrics.store_commits, commits);

  assert_int_equal(append(f, "x", "later", &rec), 4);   /* 2 and 3 are never reused */
  run_until(f, &rec.n, 4);
  assert_int_equal(rec.recs[3].status, 0);
  rows_t r;
  fetch_after(f, "x", 0, 50, &r);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.ids[0], 1);
  assert_int_equal(r.ids[1], 4);

  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  close_store(f);
  open_store(f);
  assert_int_equal(store_last_id(f->store, "x"), 4);
}

/* A read fails too when its table is gone; the store reports it. */
static void test_read_failure(void **state) {
  fixture_t *f = *state;
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_exec(db, "DROP TABLE messages", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  uint64_t errors = wsc_metrics.store_errors;
  rows_t r;
  memset(&r, 0, sizeof r);
  assert_int_equal(store_fetch_after(f->store, "x", 0, 10, on_rows, &r), 0);
  run_until_done(f, &r);
  assert_true(r.status < 0);
  assert_int_equal(r.n, 0);
  assert_int_equal(wsc_metrics.store_errors - errors, 1);
}

typedef struct close_arg {
  fixture_t *f;
  recorder_t rec;
  int64_t refused;
} close_arg_t;

static void on_append_during_close(void *ud, int status, const store_msg_t *m) {
  close_arg_t *arg = ud;
  on_append(&arg->rec, status, m);
  /* The store is draining: new work is refused, not lost silently. */
  arg->refused = append(arg->f, "late", "too late", &arg->rec);
}

static void test_close_drains_queue(void **state) {
  fixture_t *f = *state;
  static close_arg_t arg;
  static rows_t r;
  memset(&arg, 0, sizeof arg);
  memset(&r, 0, sizeof r);
  arg.f = f;
  store_msg_t m = { .room = "d", .from = "bob", .text = "x", .text_len = 1, .ts = 1 };
  assert_int_equal(store_append(f->store, &m, on_append_during_close, &arg), 1);
  assert_int_equal(store_fetch_after(f->store, "d", 0, 10, on_rows, &r), 0);
  assert_int_equal(store_append(f->store, &m, on_append, &arg.rec), 2);
  close_store(f);
  assert_int_equal(arg.rec.n, 2);
  assert_int_equal(arg.rec.recs[0].status, 0);
  assert_int_equal(arg.rec.recs[1].status, 0);
  assert_int_equal(arg.refused, STORE_ERR);
  assert_true(r.done);
  assert_ids(&r, 1, 1);

  open_store(f);
  assert_int_equal(store_last_id(f->store, "d"), 2);
  assert_int_equal(store_last_id(f->store, "late"), 0);
}

/* Many rooms: the in-memory index grows and is rebuilt from disk. */
static void test_many_rooms(void **state) {
  fixture_t *f = *state;
  enum { ROOMS = 3000 };
  static recorder_t rec;
  memset(&rec, 0, sizeof rec);
  uint64_t commits = wsc_metrics.store_commits;
  char room[32];
  for (int i = 0; i < ROOMS; i++) {
    snprintf(room, sizeof room, "room-%d", i);
    for (int k = 0; k <= i % 3; k++) assert_int_equal(append(f, room, "hi", &rec), k + 1);
  }
  /* Read the size from the recorder only after the commit. */
  run_until(f, &rec.n, ROOMS * 2);
  assert_int_equal(wsc_metrics.store_commits - commits, 1);
  close_store(f);
  open_store(f);
  for (int i = 0; i < ROOMS; i++) {
    snprintf(room, sizeof room, "room-%d", i);
    assert_int_equal(store_last_id(f->store, room), i % 3 + 1);
  }
  assert_int_equal(store_last_id(f->store, "room-x"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_one_iteration_is_one_transaction, setup, teardown),
    cmocka_unit_test_setup_teardown(test_callbacks_in_order_across_iterations, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fetch_after_and_before, setup, teardown),
    cmocka_unit_test_setup_teardown(test_text_is_bytes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_sees_earlier_appends_of_same_iteration, setup, teardown),
    cmocka_unit_test_setup_teardown(test_queued_reads_run_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batches_waiting_for_disk_commit_together, setup, teardown),
    cmocka_unit_test_setup_teardown(test_reopen_keeps_ids_and_epoch, setup, teardown),
    cmocka_unit_test_setup_teardown(test_new_database_new_epoch, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_failure_reports, setup, teardown),
    cmocka_unit_test_setup_teardown(test_memory_database, setup, teardown),
    cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_failure, setup, teardown),
    cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_rooms, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
