/* bus/dir_redis — see dir_redis.h. */
#include "bus/dir_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "store/store.h"

#define LOG_COMP "dir"
#define DIR_SESSION_TTL_S "86400"     /* a session nobody uses expires after a day */
#define DIR_SWEEP_MS 1000             /* every node looks for dead nodes this often */
#define DIR_NAME_MAX 256
#define DIR_KEY_MAX 320
#define DIR_NUM 24
#define DIR_SENTINEL "0000000000000000" /* node id of sweeper events: every node delivers them */

/* ARGV: token, lname, name, node, cid, ttl. {1}: taken; {0}: held now (an
 * earlier connection of the session elsewhere is kicked). */
static const char CLAIM_LUA[] =
    "local nk = 'wschat:name:' .. ARGV[2]\n"
    "local cur = redis.call('GET', nk)\n"
    "if cur and cur ~= ARGV[1] then return 1 end\n"
    "local sk = 'wschat:sess:' .. ARGV[1]\n"
    "local old = redis.call('HMGET', sk, 'name', 'node', 'cid')\n"
    "if old[1] and string.lower(old[1]) ~= ARGV[2] then\n"
    "  local ok = 'wschat:name:' .. string.lower(old[1])\n"
    "  if redis.call('GET', ok) == ARGV[1] then redis.call('DEL', ok) end\n"
    "  if old[2] then redis.call('SREM', 'wschat:node:' .. old[2] .. ':names', string.lower(old[1])) end\n"
    "end\n"
    "redis.call('SET', nk, ARGV[1])\n"
    "redis.call('HSET', sk, 'name', ARGV[3], 'node', ARGV[4], 'cid', ARGV[5])\n"
    "redis.call('EXPIRE', sk, ARGV[6])\n"
    "redis.call('SADD', 'wschat:node:' .. ARGV[4] .. ':names', ARGV[2])\n"
    "if old[2] and old[3] and (old[2] ~= ARGV[4] or old[3] ~= ARGV[5]) then\n"
    "  if old[2] ~= ARGV[4] then redis.call('SREM', 'wschat:node:' .. old[2] .. ':names', ARGV[2]) end\n"
    "  redis.call('PUBLISH', 'wschat:node:' .. old[2], 'k' .. old[3])\n"
    "end\n"
    "return 0\n";

/* ARGV: token, lname, node, cid. */
static const char RELEASE_LUA[] =
    "local sk = 'wschat:sess:' .. ARGV[1]\n"
    "local cur = redis.call('HMGET', sk, 'node', 'cid')\n"
    "if cur[1] == ARGV[3] and cur[2] == ARGV[4] then\n"
    "  redis.call('HDEL', sk, 'node', 'cid')\n"
    "  local nk = 'wschat:name:' .. ARGV[2]\n"
    "  if redis.call('GET', nk) == ARGV[1] then redis.call('DEL', nk) end\n"
    "  redis.call('SREM', 'wschat:node:' .. ARGV[3] .. ':names', ARGV[2])\n"
    "end\n"
    "return 0\n";

/* KEYS: members. ARGV: node, cid, name, room. {count, {names elsewhere}}. */
static const char JOIN_LUA[] =
    "redis.call('HSET', KEYS[1], ARGV[1] .. '/' .. ARGV[2], ARGV[3])\n"
    "redis.call('SADD', 'wschat:node:' .. ARGV[1] .. ':rooms', ARGV[4])\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local others = {}\n"
    "local prefix = ARGV[1] .. '/'\n"
    "for i = 1, #all, 2 do\n"
    "  if string.sub(all[i], 1, #prefix) ~= prefix then others[#others + 1] = all[i + 1] end\n"
    "end\n"
    "return {#all / 2, others}\n";

/* KEYS: members. ARGV: node, cid, last_here (1/0), room. The count. */
static const char LEAVE_LUA[] =
    "redis.call('HDEL', KEYS[1], ARGV[1] .. '/' .. ARGV[2])\n"
    "if ARGV[3] == '1' then redis.call('SREM', 'wschat:node:' .. ARGV[1] .. ':rooms', ARGV[4]) end\n"
    "return redis.call('HLEN', KEYS[1])\n";

/* ARGV: lname, from, text, ts. Receivers of the dm (0: nobody of that name). */
static const char DM_LUA[] =
    "local tok = redis.call('GET', 'wschat:name:' .. ARGV[1])\n"
    "if not tok then return 0 end\n"
    "local s = redis.call('HMGET', 'wschat:sess:' .. tok, 'name', 'node', 'cid')\n"
    "if not s[1] or not s[2] or not s[3] then return 0 end\n"
    "local json = '{\"type\":\"dm\",\"from\":' .. cjson.encode(ARGV[2]) .. ',\"to\":' .. cjson.encode(s[1]) ..\n"
    "  ',\"text\":' .. cjson.encode(ARGV[3]) .. ',\"ts\":' .. ARGV[4] .. '}'\n"
    "return redis.call('PUBLISH', 'wschat:node:' .. s[2], 'd' .. s[3] .. ' ' .. json)\n";

/* ARGV: node, deadline. 1 if the node was registered before. */
static const char BEAT_LUA[] =
    "local had = redis.call('HEXISTS', 'wschat:nodes', ARGV[1])\n"
    "redis.call('HSET', 'wschat:nodes', ARGV[1], ARGV[2])\n"
    "return had\n";

/* ARGV: now, sentinel node id. Removes every node past its deadline: its
 * members (one presence leave each), names and sessions. Returns how many
 * members left. */
static const char SWEEP_LUA[] =
    "local nodes = redis.call('HGETALL', 'wschat:nodes')\n"
    "local gone = 0\n"
    "for i = 1, #nodes, 2 do\n"
    "  local node = nodes[i]\n"
    "  if tonumber(nodes[i + 1]) < tonumber(ARGV[1]) then\n"
    "    local prefix = node .. '/'\n"
    "    for _, room in ipairs(redis.call('SMEMBERS', 'wschat:node:' .. node .. ':rooms')) do\n"
    "      local mk = 'wschat:{' .. room .. '}:members'\n"
    "      local all = redis.call('HGETALL', mk)\n"
    "      for j = 1, #all, 2 do\n"
    "        if string.sub(all[j], 1, #prefix) == prefix then\n"
    "          redis.call('HDEL', mk, all[j])\n"
    "          gone = gone + 1\n"
    "          redis.call('PUBLISH', 'wschat:{' .. room .. '}', 'e' .. ARGV[2] ..\n"
    "            ' {\"type\":\"presence\",\"room\":\"' .. room .. '\",\"event\":\"leave\",\"name\":' ..\n"
    "            cjson.encode(all[j + 1]) .. ',\"count\":' .. redis.call('HLEN', mk) .. '}')\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    for _, lname in ipairs(redis.call('SMEMBERS', 'wschat:node:' .. node .. ':names')) do\n"
    "      local nk = 'wschat:name:' .. lname\n"
    "      local tok = redis.call('GET', nk)\n"
    "      if tok and redis.call('HGET', 'wschat:sess:' .. tok, 'node') == node then\n"
    "        redis.call('DEL', nk)\n"
    "        redis.call('HDEL', 'wschat:sess:' .. tok, 'node', 'cid')\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', 'wschat:node:' .. node .. ':rooms', 'wschat:node:' .. node .. ':names')\n"
    "    redis.call('HDEL', 'wschat:nodes', node)\n"
    "  end\n"
    "end\n"
    "return gone\n";

enum { S_CLAIM, S_RELEASE, S_JOIN, S_LEAVE, S_DM, S_BEAT, S_SWEEP, S_COUNT };

typedef struct rdir {
  dir_t base;
  uv_loop_t *loop;
  wsc_redis_t *link;
  dir_handler_t h;
  int ttl_ms;
  char sha[S_COUNT][WSC_REDIS_SHA_LEN + 1];
  char channel[DIR_KEY_MAX];
  uv_timer_t timer;
  int64_t next_beat_ms, next_sweep_ms;
  int registered;                  /* a heartbeat reached Redis since start */
  int beat_inflight;
  uint64_t beat_mark;              /* the handler's mark when the beat was sent */
} rdir_t;

typedef struct dir_op {
  rdir_t *d;
  dir_claim_cb claim_cb;
  dir_lookup_cb lookup_cb;
  dir_room_cb room_cb;
  dir_dm_cb dm_cb;
  void *ud;
} dir_op_t;

static const char *node_of(const rdir_t *d) { return wsc_redis_node_id(d->link); }

static void lower(char *out, const char *name) {
  size_t i = 0;
  for (; name[i] && i < DIR_NAME_MAX - 1; i++)
    out[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
  out[i] = '\0';
}

static int status_of(const redisReply *r) {
  if (!r) return STORE_EUNAVAILABLE;
  if (r->type == REDIS_REPLY_ERROR) {
    LOG_ERROR(LOG_COMP, "redis script failed err=\"%s\"", r->str);
    return STORE_ERR;
  }
  return 0;
}

/* EVALSHA sha nkeys args...; all args NUL-terminated except those with lens. */
static int eval(rdir_t *d, int script, int nkeys, int nargs, const char **args, const size_t *lens,
                wsc_redis_reply_cb cb, void *ud) {
  const char *argv[16];
  size_t len[16];
  char nk[4];
  snprintf(nk, sizeof nk, "%d", nkeys);
  argv[0] = "EVALSHA", len[0] = 7;
  argv[1] = d->sha[script], len[1] = WSC_REDIS_SHA_LEN;
  argv[2] = nk, len[2] = strlen(nk);
  for (int i = 0; i < nargs && i < 13; i++) {
    argv[3 + i] = args[i];
    len[3 + i] = lens && lens[i] != (size_t)-1 ? lens[i] : strlen(args[i]);
  }
  int rc = wsc_redis_command(d->link, cb, ud, 3 + nargs, argv, len);
  return rc == WSC_REDIS_EDOWN ? STORE_EUNAVAILABLE : rc < 0 ? STORE_ERR : 0;
}

static dir_op_t *op_new(rdir_t *d, void *ud) {
  dir_op_t *op = calloc(1, sizeof *op);
  if (op) {
    op->d = d;
    op->ud = ud;
  }
  return op;
}

/* ---- names and sessions --------------------------------------------------- */

static void on_claim(void *ud, redisReply *r) {
  dir_op_t *op = ud;
  int st = status_of(r);
  int taken = st == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  if (op->claim_cb) op->claim_cb(op->ud, st, taken);
  free(op);
}

static int rd_claim(dir_t *base, const char *token, const char *name, uint64_t cid, dir_claim_cb cb, void *ud) {
  rdir_t *d = (rdir_t *)base;
  char lname[DIR_NAME_MAX], cids[DIR_NUM];
  lower(lname, name);
  snprintf(cids, sizeof cids, "%" PRIu64, cid);
  dir_op_t *op = op_new(d, ud);
  if (!op) return STORE_ERR;
  op->claim_cb = cb;
  const char *args[] = {token, lname, name, node_of(d), cids, DIR_SESSION_TTL_S};
  int rc = eval(d, S_CLAIM, 0, 6, args, NULL, on_claim, op);
  if (rc < 0) free(op);
  return rc;
}

static void rd_release(dir_t *base, const char *token, const char *name, uint64_t cid) {
  rdir_t *d = (rdir_t *)base;
  char lname[DIR_NAME_MAX], cids[DIR_NUM];
  lower(lname, name);
  snprintf(cids, sizeof cids, "%" PRIu64, cid);
  const char *args[] = {token, lname, node_of(d), cids};
  eval(d, S_RELEASE, 0, 4, args, NULL, NULL, NULL);
}

static void on_lookup(void *ud, redisReply *r) {
  dir_op_t *op = ud;
  int st = status_of(r);
  const char *name = st == 0 && r->type == REDIS_REPLY_STRING ? r->str : NULL;
  op->lookup_cb(op->ud, st, name);
  free(op);
}

static int rd_lookup(dir_t *base, const char *token, dir_lookup_cb cb, void *ud) {
  rdir_t *d = (rdir_t *)base;
  char key[DIR_KEY_MAX];
  snprintf(key, sizeof key, "wschat:sess:%s", token);
  dir_op_t *op = op_new(d, ud);
  if (!op) return STORE_ERR;
  op->lookup_cb = cb;
  const char *argv[] = {"HGET", key, "name"};
  size_t lens[] = {4, strlen(key), 4};
  int rc = wsc_redis_command(d->link, on_lookup, op, 3, argv, lens);
  if (rc < 0) {
    free(op);
    return rc == WSC_REDIS_EDOWN ? STORE_EUNAVAILABLE : STORE_ERR;
  }
  return 0;
}

/* ---- rooms --------------------------------------------------------------- */

static void on_room(void *ud, redisReply *r) {
  dir_op_t *op = ud;
  int st = status_of(r);
  int64_t count = -1;
  const char *names[256];
  size_t n = 0;
  if (st == 0 && r->type == REDIS_REPLY_INTEGER) {
    count = r->integer;
  } else if (st == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_ARRAY) {
    count = r->element[0]->integer;
    const redisReply *o = r->element[1];
    /* joined.members lists at most this many names from other nodes (the
     * count is exact). */
    for (size_t i = 0; i < o->elements && n < sizeof names / sizeof *names; i++)
      if (o->element[i]->type == REDIS_REPLY_STRING) names[n++] = o->element[i]->str;
  } else if (st == 0) {
    st = STORE_ERR;
  }
  if (op->room_cb) op->room_cb(op->ud, st, count, names, n);
  free(op);
}

static int room_op(rdir_t *d, int script, const char *room, const char *a3, const char *a4, dir_room_cb cb, void *ud) {
  char key[DIR_KEY_MAX];
  snprintf(key, sizeof key, "wschat:{%s}:members", room);
  dir_op_t *op = op_new(d, ud);
  if (!op) return STORE_ERR;
  op->room_cb = cb;
  const char *args[] = {key, node_of(d), a3, a4, room};
  int rc = eval(d, script, 1, 5, args, NULL, on_room, op);
  if (rc < 0) free(op);
  return rc;
}

static int rd_join(dir_t *base, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud) {
  char cids[DIR_NUM];
  snprintf(cids, sizeof cids, "%" PRIu64, cid);
  return room_op((rdir_t *)base, S_JOIN, room, cids, name, cb, ud);
}

static int rd_rename(dir_t *base, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud) {
  /* The same script: HSET of the new name; the count is what matters. */
  char cids[DIR_NUM];
  snprintf(cids, sizeof cids, "%" PRIu64, cid);
  return room_op((rdir_t *)base, S_JOIN, room, cids, name, cb, ud);
}

static int rd_leave(dir_t *base, const char *room, uint64_t cid, int last_here, dir_room_cb cb, void *ud) {
  char cids[DIR_NUM];
  snprintf(cids, sizeof cids, "%" PRIu64, cid);
  return room_op((rdir_t *)base, S_LEAVE, room, cids, last_here ? "1" : "0", cb, ud);
}

/* ---- direct messages --------------------------------------------------------- */

static void on_dm(void *ud, redisReply *r) {
  dir_op_t *op = ud;
  int st = status_of(r);
  int delivered = st == 0 && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  if (op->dm_cb) op->dm_cb(op->ud, st, delivered);
  free(op);
}

static int rd_dm(dir_t *base, const char *to, const char *from, const char *text, size_t len, int64_t ts,
                 dir_dm_cb cb, void *ud) {
  rdir_t *d = (rdir_t *)base;
  char lname[DIR_NAME_MAX], tss[DIR_NUM];
  lower(lname, to);
  snprintf(tss, sizeof tss, "%" PRId64, ts);
  dir_op_t *op = op_new(d, ud);
  if (!op) return STORE_ERR;
  op->dm_cb = cb;
  const char *args[] = {lname, from, text, tss};
  size_t lens[] = {(size_t)-1, (size_t)-1, len, (size_t)-1};
  int rc = eval(d, S_DM, 0, 4, args, lens, on_dm, op);
  if (rc < 0) free(op);
  return rc;
}

/* ---- heartbeat, sweep, node channel ------------------------------------------ */

static void on_beat(void *ud, redisReply *r) {
  rdir_t *d = ud;
  d->beat_inflight = 0;
  if (status_of(r) < 0 || r->type != REDIS_REPLY_INTEGER) return;
  if (r->integer == 0 && d->registered) {
    LOG_WARN(LOG_COMP, "this node was taken for dead (no heartbeat for the TTL): its connections are closed");
    if (d->h.lost) d->h.lost(d->h.ud, d->beat_mark);
  }
  d->registered = 1;
}

static void on_sweep(void *ud, redisReply *r) {
  if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
    LOG_INFO(LOG_COMP, "dead node swept members=%lld", (long long)r->integer);
}

static void send_beat(rdir_t *d) {
  char deadline[DIR_NUM];
  /* The deadline leaves room for one sweep period: a dead node's members
   * are gone within the TTL of its last heartbeat. */
  snprintf(deadline, sizeof deadline, "%" PRId64, wsc_now_ms() + d->ttl_ms - DIR_SWEEP_MS);
  const char *args[] = {node_of(d), deadline};
  d->beat_mark = d->h.mark ? d->h.mark(d->h.ud) : UINT64_MAX;
  if (eval(d, S_BEAT, 0, 2, args, NULL, on_beat, d) == 0) d->beat_inflight = 1;
  d->next_beat_ms = wsc_mono_ms() + d->ttl_ms / 3;
}

static void on_tick(uv_timer_t *t) {
  rdir_t *d = t->data;
  if (!wsc_redis_is_up(d->link)) return;
  int64_t now = wsc_now_ms(), mono = wsc_mono_ms();
  if (mono >= d->next_beat_ms && !d->beat_inflight) send_beat(d);
  if (mono >= d->next_sweep_ms) {
    char nows[DIR_NUM];
    snprintf(nows, sizeof nows, "%" PRId64, now);
    const char *args[] = {nows, DIR_SENTINEL};
    eval(d, S_SWEEP, 0, 2, args, NULL, on_sweep, NULL);
    d->next_sweep_ms = mono + DIR_SWEEP_MS;
  }
}

static void on_up(void *ud) {
  rdir_t *d = ud;
  wsc_redis_subscribe(d->link, d->channel);
  /* At once, before any connection can attach over the new link: if this
   * node was swept meanwhile, only connections older than this beat are. */
  d->beat_inflight = 0;
  send_beat(d);
}

static void on_message(void *ud, const char *ch, size_t chlen, const char *p, size_t len) {
  rdir_t *d = ud;
  if (chlen != strlen(d->channel) || memcmp(ch, d->channel, chlen) != 0 || len < 2) return;
  char *end;
  char num[DIR_NUM];
  size_t k = 1;
  while (k < len && k - 1 < sizeof num - 1 && p[k] >= '0' && p[k] <= '9') k++;
  memcpy(num, p + 1, k - 1);
  num[k - 1] = '\0';
  uint64_t cid = strtoull(num, &end, 10);
  if (k == 1) return;
  if (p[0] == 'k' && d->h.kick) d->h.kick(d->h.ud, cid);
  else if (p[0] == 'd' && k < len && p[k] == ' ' && d->h.dm) d->h.dm(d->h.ud, cid, p + k + 1, len - k - 1);
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

static void rd_free(dir_t *base) {
  rdir_t *d = (rdir_t *)base;
  wsc_redis_set_events(d->link, 1, NULL);
  uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static const dir_ops_t rd_ops = {
  .claim = rd_claim,
  .release = rd_release,
  .lookup = rd_lookup,
  .join = rd_join,
  .leave = rd_leave,
  .rename = rd_rename,
  .dm = rd_dm,
  .free = rd_free,
};

dir_t *dir_redis_new(uv_loop_t *loop, wsc_redis_t *link, const wsc_config_t *config, const dir_handler_t *h) {
  rdir_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->base.ops = &rd_ops;
  d->loop = loop;
  d->link = link;
  d->h = *h;
  d->ttl_ms = config->presence_ttl_ms >= 2000 ? config->presence_ttl_ms : 2000;
  snprintf(d->channel, sizeof d->channel, "wschat:node:%s", wsc_redis_node_id(link));
  static const char *const scripts[S_COUNT] = {CLAIM_LUA, RELEASE_LUA, JOIN_LUA, LEAVE_LUA, DM_LUA, BEAT_LUA, SWEEP_LUA};
  for (int i = 0; i < S_COUNT; i++)
    if (wsc_redis_script(link, scripts[i], d->sha[i]) < 0) {
      free(d);
      return NULL;
    }
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
  uv_timer_start(&d->timer, on_tick, 100, 100);
  uv_unref((uv_handle_t *)&d->timer);
  wsc_redis_events_t ev = {.up = on_up, .message = on_message, .ud = d};
  wsc_redis_set_events(link, 1, &ev);
  return &d->base;
}
