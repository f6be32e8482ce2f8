/* store/redis — see redis.h. */
#include "store/redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"

#define RS_KEY_MAX (sizeof STORE_REDIS_KEY_PREFIX + 64 + 8)
#define RS_FETCH_LIMIT_MAX 100000
#define RS_NUM 24
/* One append script call carries at most this many messages of one room
 * (all of them accepted in one loop iteration), and about this many bytes. */
#define RS_BATCH_MAX 128
#define RS_BATCH_BYTES (256 * 1024)

/* KEYS: meta, log. ARGV: channel, epoch for a new room, retention, n, then
 * n times from, text, ts. Stores the n messages with the next n ids and
 * publishes them in one payload of records
 * "m<id> <ts> <from bytes> <text bytes> <from><text>". Returns the first id. */
static const char APPEND_LUA[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch then redis.call('HSET', KEYS[1], 'epoch', ARGV[2]) end\n"
    "local n = tonumber(ARGV[4])\n"
    "local first = redis.call('HINCRBY', KEYS[1], 'seq', n) - n + 1\n"
    "local out = {}\n"
    "for i = 0, n - 1 do\n"
    "  local from, text, ts = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]\n"
    "  local id = first + i\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id .. '-0', 'f', from, 't', text, 'ts', ts)\n"
    "  out[#out + 1] = 'm' .. id .. ' ' .. ts .. ' ' .. #from .. ' ' .. #text .. ' ' .. from .. text\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[1], table.concat(out))\n"
    "return first\n";

/* KEYS: meta, log. ARGV: epoch for a new room, since (-1: none), the
 * client's epoch ('*': any), max_after, n_before. Returns {epoch, last id,
 * recovered (-1, 0, 1), entries}. */
static const char JOIN_LUA[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch then epoch = ARGV[1]; redis.call('HSET', KEYS[1], 'epoch', epoch) end\n"
    "local last = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')\n"
    "local since = tonumber(ARGV[2])\n"
    "local rec = -1\n"
    "if since >= 0 then\n"
    "  rec = 0\n"
    "  if (ARGV[3] == '*' or ARGV[3] == epoch) and since <= last and last - since <= tonumber(ARGV[4]) then rec = 1 end\n"
    "end\n"
    "local rows = {}\n"
    "if rec == 1 then\n"
    "  if since < last then rows = redis.call('XRANGE', KEYS[2], '(' .. since .. '-0', '+', 'COUNT', ARGV[4]) end\n"
    "elseif tonumber(ARGV[5]) > 0 then\n"
    "  rows = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[5])\n"
    "end\n"
    "return {epoch, last, rec, rows}\n";

typedef struct append_op append_op_t;

typedef struct rstore {
  store_t base;
  wsc_redis_t *link;
  const wsc_config_t *cfg;
  uv_loop_t *loop;
  /* This iteration's appends, sent at its end (uv_check) as one script
   * call per room; the idle handle keeps poll from blocking meanwhile. */
  append_op_t **open;
  size_t n_open, cap_open;
  uv_check_t flush_check;
  uv_idle_t wake_idle;
  int handles_open;
  char append_sha[WSC_REDIS_SHA_LEN + 1];
  char join_sha[WSC_REDIS_SHA_LEN + 1];
  char retention[RS_NUM];
} rstore_t;

static void room_key(char *out, const char *room, const char *suffix) {
  snprintf(out, RS_KEY_MAX, STORE_REDIS_KEY_PREFIX "%s}%s", room, suffix);
}

/* An epoch for a room Redis has no data of: this node and the time. */
static void new_epoch(rstore_t *s, char out[STORE_EPOCH_MAX + 1]) {
  snprintf(out, STORE_EPOCH_MAX + 1, "%.8s%" PRIx64, wsc_redis_node_id(s->link), (uint64_t)wsc_now_ms());
}

static int status_of(const redisReply *reply) {
  if (!reply) return STORE_EUNAVAILABLE;
  return reply->type == REDIS_REPLY_ERROR ? STORE_ERR : 0;
}

/* ---- rows ---------------------------------------------------------------- */

/* Stream entries -> rows (pointing into the reply). n rows written; -1 on a
 * malformed reply or out of memory. reverse: entries are newest first. */
static int parse_rows(const redisReply *arr, const char *room, store_msg_t **out, size_t *n, int reverse) {
  *out = NULL;
  *n = 0;
  if (!arr || arr->type != REDIS_REPLY_ARRAY) return -1;
  if (arr->elements == 0) return 0;
  store_msg_t *rows = calloc(arr->elements, sizeof *rows);
  if (!rows) return -1;
  for (size_t i = 0; i < arr->elements; i++) {
    const redisReply *e = arr->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY) {
      free(rows);
      return -1;
    }
    store_msg_t *m = &rows[reverse ? arr->elements - 1 - i : i];
    m->room = room;
    m->id = strtoll(e->element[0]->str, NULL, 10);
    m->from = "";
    m->text = "";
    const redisReply *f = e->element[1];
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
      const redisReply *key = f->element[k], *val = f->element[k + 1];
      if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) continue;
      if (key->len == 1 && key->str[0] == 'f') m->from = val->str;
      else if (key->len == 1 && key->str[0] == 't') { m->text = val->str; m->text_len = val->len; }
      else if (key->len == 2 && memcmp(key->str, "ts", 2) == 0) m->ts = strtoll(val->str, NULL, 10);
    }
  }
  *out = rows;
  *n = arr->elements;
  return 0;
}

/* ---- append -------------------------------------------------------------- */

struct append_op {
  store_append_cb cb;
  void *ud;
  store_msg_t msg;
  size_t from_len;
  int64_t t0_ns;            /* appended at (the commit histogram: one batch = one commit) */
  struct append_op *next;   /* the rest of its batch */
  char data[];              /* room \0 from \0 text \0 */
};

/* The answer to one room's batch: the first id; the ops in order. */
static void on_appended(void *ud, redisReply *reply) {
  append_op_t *op = ud;
  int status = status_of(reply);
  if (status == 0 && reply->type != REDIS_REPLY_INTEGER) status = STORE_ERR;
  if (status == STORE_ERR) LOG_ERROR("store", "redis append failed err=\"%s\"", reply && reply->str ? reply->str : "?");
  int64_t id = status == 0 ? reply->integer : 0;
  if (status == 0) {
    int64_t ns = wsc_mono_ns() - op->t0_ns; /* the batch's oldest append */
    wsc_metrics.store_commits++;
    wsc_metrics.store_commit_ns_total += (uint64_t)ns;
    if ((uint64_t)ns > wsc_metrics.store_commit_ns_max) wsc_metrics.store_commit_ns_max = (uint64_t)ns;
    wsc_hist_observe_ns(&wsc_metrics.store_commit_seconds, ns);
  } else {
    wsc_metrics.store_errors++;
  }
  while (op) {
    append_op_t *next = op->next;
    wsc_metrics.store_queue_appends--;
    if (status == 0) op->msg.id = id++;
    if (op->cb) op->cb(op->ud, status, &op->msg);
    free(op);
    op = next;
  }
}

/* Fails a batch that could not be sent (callbacks, in order, with status). */
static void fail_batch(append_op_t *op, int status) {
  wsc_metrics.store_errors++;
  while (op) {
    append_op_t *next = op->next;
    wsc_metrics.store_queue_appends--;
    if (op->cb) op->cb(op->ud, status, &op->msg);
    free(op);
    op = next;
  }
}

/* Sends ops[0..n) (one room, in order) as one script call. */
static void send_batch(rstore_t *s, append_op_t **ops, size_t n) {
  const char *room = ops[0]->msg.room;
  char meta[RS_KEY_MAX], log[RS_KEY_MAX], channel[RS_KEY_MAX], epoch[STORE_EPOCH_MAX + 1], count[RS_NUM];
  char (*ts)[RS_NUM] = malloc(n * sizeof *ts);
  const char **argv = malloc((9 + 3 * n) * sizeof *argv);
  size_t *lens = malloc((9 + 3 * n) * sizeof *lens);
  for (size_t i = 0; i + 1 < n; i++) ops[i]->next = ops[i + 1];
  ops[n - 1]->next = NULL;
  if (!ts || !argv || !lens) {
    free(ts), free(argv), free(lens);
    fail_batch(ops[0], STORE_ERR);
    return;
  }
  room_key(meta, room, ":meta");
  room_key(log, room, ":log");
  room_key(channel, room, "");
  new_epoch(s, epoch);
  snprintf(count, sizeof count, "%zu", n);
  size_t k = 0;
  argv[k++] = "EVALSHA", argv[k++] = s->append_sha, argv[k++] = "2", argv[k++] = meta, argv[k++] = log;
  argv[k++] = channel, argv[k++] = epoch, argv[k++] = s->retention, argv[k++] = count;
  for (size_t i = 0; i < k; i++) lens[i] = strlen(argv[i]);
  for (size_t i = 0; i < n; i++) {
    snprintf(ts[i], RS_NUM, "%" PRId64, ops[i]->msg.ts);
    argv[k] = ops[i]->msg.from, lens[k++] = ops[i]->from_len;
    argv[k] = ops[i]->msg.text, lens[k++] = ops[i]->msg.text_len;
    argv[k] = ts[i], lens[k++] = strlen(ts[i]);
  }
  int rc = wsc_redis_command(s->link, on_appended, ops[0], (int)k, argv, lens);
  free(ts), free(argv), free(lens);
  if (rc < 0) fail_batch(ops[0], rc == WSC_REDIS_EDOWN ? STORE_EUNAVAILABLE : STORE_ERR);
}

static int by_room(const void *a, const void *b) {
  return strcmp((*(append_op_t *const *)a)->msg.room, (*(append_op_t *const *)b)->msg.room);
}

/* End of the loop iteration: one script call per room (stable order within
 * a room: a merge sort would do; the batch is tagged with its index). */
static void flush_open(rstore_t *s) {
  size_t n = s->n_open;
  append_op_t **ops = s->open;
  s->open = NULL;
  s->n_open = s->cap_open = 0;
  uv_idle_stop(&s->wake_idle);
  if (n == 0) {
    free(ops);
    return;
  }
  /* Group by room keeping each room's order: sort by (room, index). */
  for (size_t i = 0; i < n; i++) ops[i]->msg.id = (int64_t)i;
  qsort(ops, n, sizeof *ops, by_room);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && strcmp(ops[j]->msg.room, ops[i]->msg.room) == 0) j++;
    /* qsort is not stable: restore issue order inside the room. */
    for (size_t a = i + 1; a < j; a++)
      for (size_t b = a; b > i && ops[b - 1]->msg.id > ops[b]->msg.id; b--) {
        append_op_t *t = ops[b];
        ops[b] = ops[b - 1];
        ops[b - 1] = t;
      }
    while (i < j) {
      size_t m = 0, bytes = 0;
      while (i + m < j && m < RS_BATCH_MAX && (m == 0 || bytes + ops[i + m]->msg.text_len <= RS_BATCH_BYTES))
        bytes += ops[i + m++]->msg.text_len;
      for (size_t t = 0; t < m; t++) ops[i + t]->msg.id = 0;
      send_batch(s, ops + i, m);
      i += m;
    }
  }
  free(ops);
}

static void on_flush_check(uv_check_t *h) { flush_open(h->data); }
static void on_wake_idle(uv_idle_t *h) { (void)h; }

static int64_t rs_append(store_t *base, const store_msg_t *msg, store_append_cb cb, void *ud) {
  rstore_t *s = (rstore_t *)base;
  if (!msg || !msg->room) return STORE_ERR;
  if (!wsc_redis_is_up(s->link)) return STORE_EUNAVAILABLE;
  if (wsc_redis_pending(s->link) + s->n_open >= WSC_REDIS_MAX_PENDING) return STORE_ERR;
  if (s->n_open == s->cap_open) {
    size_t cap = s->cap_open ? 2 * s->cap_open : 64;
    append_op_t **p = realloc(s->open, cap * sizeof *p);
    if (!p) return STORE_ERR;
    s->open = p;
    s->cap_open = cap;
  }
  const char *from = msg->from ? msg->from : "";
  size_t room_len = strlen(msg->room), from_len = strlen(from), text_len = msg->text ? msg->text_len : 0;
  append_op_t *op = malloc(sizeof *op + room_len + from_len + text_len + 3);
  if (!op) return STORE_ERR;
  op->cb = cb;
  op->ud = ud;
  op->next = NULL;
  op->from_len = from_len;
  char *at = op->data;
  memcpy(at, msg->room, room_len + 1);
  op->msg.room = at;
  at += room_len + 1;
  memcpy(at, from, from_len + 1);
  op->msg.from = at;
  at += from_len + 1;
  if (text_len) memcpy(at, msg->text, text_len);
  at[text_len] = '\0';
  op->msg.text = at;
  op->msg.text_len = text_len;
  op->msg.ts = msg->ts;
  op->msg.id = 0;
  op->t0_ns = wsc_mono_ns();
  wsc_metrics.store_queue_appends++;
  if (s->n_open == 0) uv_idle_start(&s->wake_idle, on_wake_idle);
  s->open[s->n_open++] = op;
  return 0;
}

/* ---- reads --------------------------------------------------------------- */

typedef struct read_op {
  store_rows_cb rows_cb;
  store_join_cb join_cb;
  void *ud;
  int limit;
  int reverse;
  char room[];
} read_op_t;

static read_op_t *read_op_new(const char *room) {
  size_t len = strlen(room);
  read_op_t *op = calloc(1, sizeof *op + len + 1);
  if (op) memcpy(op->room, room, len + 1);
  return op;
}

static void on_rows(void *ud, redisReply *reply) {
  read_op_t *op = ud;
  int status = status_of(reply);
  store_msg_t *rows = NULL;
  size_t n = 0;
  if (status == 0 && parse_rows(reply, op->room, &rows, &n, op->reverse) < 0) status = STORE_ERR;
  int more = 0;
  if (n > (size_t)op->limit) {
    more = 1;
    /* The extra row is the newest for after, the oldest for before. */
    if (op->reverse) memmove(rows, rows + 1, (n - 1) * sizeof *rows);
    n = (size_t)op->limit;
  }
  op->rows_cb(op->ud, status, status == 0 ? rows : NULL, status == 0 ? n : 0, more);
  free(rows);
  free(op);
}

static int rs_fetch(rstore_t *s, const char *room, int64_t bound, int limit, int reverse,
                    store_rows_cb cb, void *ud) {
  if (!room || !cb || limit < 1) return STORE_ERR;
  if (!wsc_redis_is_up(s->link)) return STORE_EUNAVAILABLE;
  if (limit > RS_FETCH_LIMIT_MAX) limit = RS_FETCH_LIMIT_MAX;
  read_op_t *op = read_op_new(room);
  if (!op) return STORE_ERR;
  op->rows_cb = cb;
  op->ud = ud;
  op->limit = limit;
  op->reverse = reverse;
  char log[RS_KEY_MAX], lo[RS_NUM + 2], hi[RS_NUM + 2], count[RS_NUM];
  room_key(log, room, ":log");
  snprintf(count, sizeof count, "%d", limit + 1);
  const char *argv[6];
  if (!reverse) {
    snprintf(lo, sizeof lo, "(%" PRId64 "-0", bound < 0 ? 0 : bound);
    argv[0] = "XRANGE", argv[2] = lo, argv[3] = "+";
  } else {
    if (bound > 0) snprintf(hi, sizeof hi, "(%" PRId64 "-0", bound);
    else snprintf(hi, sizeof hi, "+");
    argv[0] = "XREVRANGE", argv[2] = hi, argv[3] = "-";
  }
  argv[1] = log, argv[4] = "COUNT", argv[5] = count;
  size_t lens[6];
  for (int i = 0; i < 6; i++) lens[i] = strlen(argv[i]);
  int rc = wsc_redis_command(s->link, on_rows, op, 6, argv, lens);
  if (rc < 0) {
    free(op);
    return rc == WSC_REDIS_EDOWN ? STORE_EUNAVAILABLE : STORE_ERR;
  }
  return 0;
}

static int rs_fetch_after(store_t *s, const char *room, int64_t after_id, int limit, store_rows_cb cb, void *ud) {
  return rs_fetch((rstore_t *)s, room, after_id, limit, 0, cb, ud);
}

static int rs_fetch_before(store_t *s, const char *room, int64_t before_id, int limit, store_rows_cb cb, void *ud) {
  return rs_fetch((rstore_t *)s, room, before_id, limit, 1, cb, ud);
}

static void on_join(void *ud, redisReply *reply) {
  read_op_t *op = ud;
  int status = status_of(reply);
  store_msg_t *rows = NULL;
  size_t n = 0;
  store_join_info_t info = {.last_id = 0, .epoch = "", .recovered = -1};
  if (status == 0) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[2]->type != REDIS_REPLY_INTEGER) {
      status = STORE_ERR;
    } else {
      info.epoch = reply->element[0]->str;
      info.last_id = reply->element[1]->integer;
      info.recovered = (int)reply->element[2]->integer;
      if (parse_rows(reply->element[3], op->room, &rows, &n, info.recovered != 1) < 0) status = STORE_ERR;
    }
  }
  if (status == STORE_ERR) LOG_ERROR("store", "redis join read failed room=%s err=\"%s\"", op->room,
                                     reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "malformed");
  op->join_cb(op->ud, status, status == 0 ? rows : NULL, status == 0 ? n : 0, &info);
  free(rows);
  free(op);
}

static int rs_join(store_t *base, const char *room, int64_t since, const char *epoch, size_t epoch_len,
                   int max_after, int n_before, store_join_cb cb, void *ud) {
  rstore_t *s = (rstore_t *)base;
  if (!room || !cb) return STORE_ERR;
  if (!wsc_redis_is_up(s->link)) return STORE_EUNAVAILABLE;
  read_op_t *op = read_op_new(room);
  if (!op) return STORE_ERR;
  op->join_cb = cb;
  op->ud = ud;
  char meta[RS_KEY_MAX], log[RS_KEY_MAX], fresh[STORE_EPOCH_MAX + 1], since_s[RS_NUM], max_s[RS_NUM], nb_s[RS_NUM];
  room_key(meta, room, ":meta");
  room_key(log, room, ":log");
  new_epoch(s, fresh);
  snprintf(since_s, sizeof since_s, "%" PRId64, since < 0 ? (int64_t)-1 : since);
  snprintf(max_s, sizeof max_s, "%d", max_after > 0 ? max_after : 1);
  snprintf(nb_s, sizeof nb_s, "%d", n_before > 0 ? n_before : 0);
  const char *argv[] = {"EVALSHA", s->join_sha, "2", meta, log, fresh, since_s, epoch ? epoch : "*", max_s, nb_s};
  size_t lens[10];
  for (int i = 0; i < 10; i++) lens[i] = strlen(argv[i]);
  if (epoch) lens[7] = epoch_len;
  int rc = wsc_redis_command(s->link, on_join, op, 10, argv, lens);
  if (rc < 0) {
    free(op);
    return rc == WSC_REDIS_EDOWN ? STORE_EUNAVAILABLE : STORE_ERR;
  }
  return 0;
}

/* ---- the rest -------------------------------------------------------------- */

static const char *rs_epoch(const store_t *s) { return ""; }
static int64_t rs_last_id(const store_t *s, const char *room) { return -1; }

static void on_handle_closed(uv_handle_t *h) {
  rstore_t *s = h->data;
  s->handles_open--;
}

static void rs_close(store_t *base) {
  rstore_t *s = (rstore_t *)base;
  /* Appends still open are sent, and those in flight get their answers
   * (their senders are gone; the messages are still stored and published). */
  flush_open(s);
  wsc_redis_drain(s->link, 2000);
  uv_close((uv_handle_t *)&s->flush_check, on_handle_closed);
  uv_close((uv_handle_t *)&s->wake_idle, on_handle_closed);
  while (s->handles_open > 0) uv_run(s->loop, UV_RUN_NOWAIT);
  free(s);
}

static const store_ops_t rs_ops = {
  .epoch = rs_epoch,
  .last_id = rs_last_id,
  .append = rs_append,
  .fetch_after = rs_fetch_after,
  .fetch_before = rs_fetch_before,
  .join = rs_join,
  .close = rs_close,
};

store_t *store_redis_open(uv_loop_t *loop, wsc_redis_t *link, const wsc_config_t *config, const char **err) {
  rstore_t *s = calloc(1, sizeof *s);
  if (!s) {
    *err = "out of memory";
    return NULL;
  }
  s->base.ops = &rs_ops;
  s->loop = loop;
  s->link = link;
  s->cfg = config;
  snprintf(s->retention, sizeof s->retention, "%d", config->redis_retention > 0 ? config->redis_retention : 10000);
  if (wsc_redis_script(link, APPEND_LUA, s->append_sha) < 0 || wsc_redis_script(link, JOIN_LUA, s->join_sha) < 0) {
    free(s);
    *err = "too many scripts";
    return NULL;
  }
  uv_check_init(loop, &s->flush_check);
  uv_idle_init(loop, &s->wake_idle);
  s->flush_check.data = s->wake_idle.data = s;
  s->handles_open = 2;
  uv_check_start(&s->flush_check, on_flush_check);
  uv_unref((uv_handle_t *)&s->flush_check);
  return &s->base;
}
