/* store/redis — see redis.h. */
#include "store/redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

#define RS_KEY_MAX (sizeof STORE_REDIS_KEY_PREFIX + 64 + 8)
#define RS_FETCH_LIMIT_MAX 100000
#define RS_NUM 24

/* KEYS: meta, log. ARGV: channel, epoch for a new room, retention, from,
 * text, ts. Returns the id. */
static const char APPEND_LUA[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch then redis.call('HSET', KEYS[1], 'epoch', ARGV[2]) end\n"
    "local id = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id .. '-0', 'f', ARGV[4], 't', ARGV[5], 'ts', ARGV[6])\n"
    "redis.call('PUBLISH', ARGV[1], 'm' .. id .. ' ' .. ARGV[6] .. ' ' .. #ARGV[4] .. ' ' .. ARGV[4] .. ARGV[5])\n"
    "return id\n";

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

typedef struct rstore {
  store_t base;
  wsc_redis_t *link;
  const wsc_config_t *cfg;
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

typedef struct append_op {
  store_append_cb cb;
  void *ud;
  store_msg_t msg;
  char data[];   /* room \0 from \0 text \0 */
} append_op_t;

static void on_appended(void *ud, redisReply *reply) {
  append_op_t *op = ud;
  int status = status_of(reply);
  if (status == 0 && reply->type != REDIS_REPLY_INTEGER) status = STORE_ERR;
  if (status == STORE_ERR) LOG_ERROR("store", "redis append failed err=\"%s\"", reply && reply->str ? reply->str : "?");
  if (status == 0) op->msg.id = reply->integer;
  if (op->cb) op->cb(op->ud, status, &op->msg);
  free(op);
}

static int64_t rs_append(store_t *base, const store_msg_t *msg, store_append_cb cb, void *ud) {
  rstore_t *s = (rstore_t *)base;
  if (!msg || !msg->room) return STORE_ERR;
  if (!wsc_redis_is_up(s->link)) return STORE_EUNAVAILABLE;
  const char *from = msg->from ? msg->from : "";
  size_t room_len = strlen(msg->room), from_len = strlen(from), text_len = msg->text ? msg->text_len : 0;
  append_op_t *op = malloc(sizeof *op + room_len + from_len + text_len + 3);
  if (!op) return STORE_ERR;
  op->cb = cb;
  op->ud = ud;
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

  char meta[RS_KEY_MAX], log[RS_KEY_MAX], channel[RS_KEY_MAX], epoch[STORE_EPOCH_MAX + 1], ts[RS_NUM];
  room_key(meta, msg->room, ":meta");
  room_key(log, msg->room, ":log");
  room_key(channel, msg->room, "");
  new_epoch(s, epoch);
  snprintf(ts, sizeof ts, "%" PRId64, msg->ts);
  const char *argv[] = {"EVALSHA", s->append_sha, "2", meta, log, channel, epoch, s->retention,
                        from, op->msg.text, ts};
  size_t lens[] = {7, WSC_REDIS_SHA_LEN, 1, strlen(meta), strlen(log), strlen(channel), strlen(epoch),
                   strlen(s->retention), from_len, text_len, strlen(ts)};
  int rc = wsc_redis_command(s->link, on_appended, op, 11, argv, lens);
  if (rc < 0) {
    free(op);
    return rc == WSC_REDIS_EDOWN ? STORE_EUNAVAILABLE : STORE_ERR;
  }
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

static void rs_close(store_t *base) {
  rstore_t *s = (rstore_t *)base;
  /* Appends in flight get their answers (their senders are gone; the
   * messages are still stored and published). */
  wsc_redis_drain(s->link, 2000);
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

store_t *store_redis_open(wsc_redis_t *link, const wsc_config_t *config, const char **err) {
  rstore_t *s = calloc(1, sizeof *s);
  if (!s) {
    *err = "out of memory";
    return NULL;
  }
  s->base.ops = &rs_ops;
  s->link = link;
  s->cfg = config;
  snprintf(s->retention, sizeof s->retention, "%d", config->redis_retention > 0 ? config->redis_retention : 10000);
  if (wsc_redis_script(link, APPEND_LUA, s->append_sha) < 0 || wsc_redis_script(link, JOIN_LUA, s->join_sha) < 0) {
    free(s);
    *err = "too many scripts";
    return NULL;
  }
  return &s->base;
}
