/* transport/http_session_redis — see http_session_redis.h. */
#include "transport/http_session_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

#define LOG_COMP "hsess"
#define HSR_KEY_MAX 128
#define HSR_NUM 24
#define HSR_ARGS_MAX 16
#define HSR_TOKEN_MAX 64

/* KEYS: record, queue. ARGV: node, inst, now, expire, token. */
static const char CREATE_LUA[] =
    "local old = redis.call('HMGET', KEYS[1], 'poller', 'pgen')\n"
    "local gen = tonumber(old[2] or '0') + 1\n"
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "redis.call('HSET', KEYS[1], 'home', ARGV[1], 'inst', ARGV[2], 'seq', 0, 'seen', ARGV[3], 'pgen', gen)\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "if old[1] then redis.call('PUBLISH', 'wschat:node:' .. old[1], 'x' .. gen .. ' ' .. ARGV[5]) end\n"
    "return 0\n";

/* KEYS: record, queue. ARGV: inst, seq, json, limit, expire, token. */
static const char APPEND_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'inst', 'ovf', 'poller', 'seq')\n"
    "if h[1] ~= ARGV[1] then return -1 end\n"
    "if tonumber(ARGV[2]) <= tonumber(h[4] or '0') then return 0 end\n"
    "if h[2] then return 1 end\n"
    "if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[4]) then\n"
    "  redis.call('HSET', KEYS[1], 'ovf', '1')\n"
    "  return 1\n"
    "end\n"
    "redis.call('XADD', KEYS[2], ARGV[2] .. '-0', 'j', ARGV[3])\n"
    "redis.call('HSET', KEYS[1], 'seq', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[5])\n"
    "if h[3] then redis.call('PUBLISH', 'wschat:node:' .. h[3], 'h' .. ARGV[6]) end\n"
    "return 0\n";

/* KEYS: record, queue. ARGV: inst, seq, json, expire, token. */
static const char RESET_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'inst', 'poller', 'seq')\n"
    "if h[1] ~= ARGV[1] then return -1 end\n"
    "if tonumber(ARGV[2]) <= tonumber(h[3] or '0') then return 0 end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('XADD', KEYS[2], ARGV[2] .. '-0', 'j', ARGV[3])\n"
    "redis.call('HSET', KEYS[1], 'seq', ARGV[2])\n"
    "redis.call('HDEL', KEYS[1], 'ovf')\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "if h[2] then redis.call('PUBLISH', 'wschat:node:' .. h[2], 'h' .. ARGV[5]) end\n"
    "return 0\n";

/* KEYS: record, queue. ARGV: inst, token. */
static const char END_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'inst', 'poller', 'pgen')\n"
    "if h[1] ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "if h[2] then\n"
    "  redis.call('PUBLISH', 'wschat:node:' .. h[2], 'x' .. (tonumber(h[3] or '0') + 1) .. ' ' .. ARGV[2])\n"
    "end\n"
    "return 1\n";

/* KEYS: record. ARGV: now. The last use (now while a poll is held), -1. */
static const char LAST_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'seen', 'held')\n"
    "if not h[1] then return -1 end\n"
    "local t = tonumber(h[1])\n"
    "if h[2] then\n"
    "  local d = tonumber(h[2])\n"
    "  if d > tonumber(ARGV[1]) then return tonumber(ARGV[1]) end\n"
    "  if d > t then t = d end\n"
    "end\n"
    "return t\n";

/* KEYS: record, queue. ARGV: ack, mode, node, now, gen, hold_until,
 * expire, max_bytes, token, count. {gen, seq, {events}} or {error}. */
static const char POLL_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'home', 'seq', 'pgen', 'poller')\n"
    "if not h[1] then return {-1} end\n"
    "if redis.call('HEXISTS', 'wschat:nodes', h[1]) == 0 then return {-3} end\n"
    "local seq = tonumber(h[2])\n"
    "local ack = tonumber(ARGV[1])\n"
    "if ack > seq then return {-2, seq} end\n"
    "local gen = tonumber(h[3] or '0')\n"
    "if ARGV[2] == '2' then\n"
    "  if tonumber(ARGV[5]) ~= gen then return {-4} end\n"
    "else\n"
    "  gen = gen + 1\n"
    "  redis.call('HSET', KEYS[1], 'pgen', gen)\n"
    "  if h[4] and h[4] ~= ARGV[3] then\n"
    "    redis.call('PUBLISH', 'wschat:node:' .. h[4], 'x' .. gen .. ' ' .. ARGV[9])\n"
    "  end\n"
    "end\n"
    "if ack > 0 then redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', ack + 1)) end\n"
    "local r = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[10])\n"
    "local out, bytes, max = {}, 2, tonumber(ARGV[8])\n"
    "for i = 1, #r do\n"
    "  local j = r[i][2][2]\n"
    "  if i > 1 and bytes + #j + 1 > max then break end\n"
    "  bytes = bytes + #j + 1\n"
    "  out[#out + 1] = j\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[7])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[7])\n"
    "if #out == 0 and ARGV[2] ~= '0' then\n"
    "  redis.call('HSET', KEYS[1], 'poller', ARGV[3], 'held', ARGV[6], 'seen', ARGV[4])\n"
    "else\n"
    "  redis.call('HSET', KEYS[1], 'seen', ARGV[4])\n"
    "  redis.call('HDEL', KEYS[1], 'poller', 'held')\n"
    "end\n"
    "return {gen, seq, out}\n";

/* KEYS: record, queue. ARGV: gen, now, expire. */
static const char DONE_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'pgen', 'home')\n"
    "if not h[2] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'seen', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
    "if tonumber(h[1] or '0') == tonumber(ARGV[1]) then redis.call('HDEL', KEYS[1], 'poller', 'held') end\n"
    "return 1\n";

/* KEYS: record, queue. ARGV: payload, now, expire. 1, or -1 unknown, -3
 * home gone (swept), -4 the home's channel has no listener. */
static const char FORWARD_LUA[] =
    "local home = redis.call('HGET', KEYS[1], 'home')\n"
    "if not home then return -1 end\n"
    "if redis.call('HEXISTS', 'wschat:nodes', home) == 0 then return -3 end\n"
    "redis.call('HSET', KEYS[1], 'seen', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
    "if redis.call('PUBLISH', 'wschat:node:' .. home, ARGV[1]) == 0 then return -4 end\n"
    "return 1\n";

/* KEYS: record, queue. ARGV: node, inst, now, expire, event (JSON after
 * its '{'), token. The session moves to this node if its home is gone
 * (swept), with the event appended as the next seq: that seq, or -1
 * unknown, -2 its home is alive (another node took it first). */
static const char REHOME_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'home', 'seq', 'poller')\n"
    "if not h[1] then return -1 end\n"
    "if h[1] ~= ARGV[1] and redis.call('HEXISTS', 'wschat:nodes', h[1]) == 1 then return -2 end\n"
    "local seq = tonumber(h[2]) + 1\n"
    "redis.call('XADD', KEYS[2], seq .. '-0', 'j', '{\"seq\":' .. seq .. ',' .. ARGV[5])\n"
    "redis.call('HSET', KEYS[1], 'home', ARGV[1], 'inst', ARGV[2], 'seen', ARGV[3], 'seq', seq)\n"
    "redis.call('HDEL', KEYS[1], 'ovf')\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "if h[3] then redis.call('PUBLISH', 'wschat:node:' .. h[3], 'h' .. ARGV[6]) end\n"
    "return seq\n";

enum { S_CREATE, S_APPEND, S_RESET, S_END, S_LAST, S_POLL, S_DONE, S_FORWARD, S_REHOME, S_COUNT };

struct hsr {
  wsc_redis_t *link;
  hsr_handler_t h;
  int64_t expire_ms;
  char sha[S_COUNT][WSC_REDIS_SHA_LEN + 1];
  char channel[HSR_KEY_MAX];
};

typedef struct hsr_op {
  hsr_status_cb cb;
  hsr_poll_cb poll_cb;
  void *ud;
} hsr_op_t;

int hsr_up(const hsr_t *r) { return wsc_redis_is_up(r->link); }
const char *hsr_node(const hsr_t *r) { return wsc_redis_node_id(r->link); }

int hsr_token_ok(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > HSR_TOKEN_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static void keys_of(const char *token, char rec[HSR_KEY_MAX], char q[HSR_KEY_MAX]) {
  snprintf(rec, HSR_KEY_MAX, "wschat:hs:{%s}", token);
  if (q) snprintf(q, HSR_KEY_MAX, "wschat:hs:{%s}:q", token);
}

/* EVALSHA; args NUL-terminated unless lens[i] != (size_t)-1. */
static int eval(hsr_t *r, int script, int nkeys, int nargs, const char **args, const size_t *lens,
                wsc_redis_reply_cb cb, void *ud) {
  const char *argv[HSR_ARGS_MAX];
  size_t len[HSR_ARGS_MAX];
  char nk[4];
  snprintf(nk, sizeof nk, "%d", nkeys);
  argv[0] = "EVALSHA", len[0] = 7;
  argv[1] = r->sha[script], len[1] = WSC_REDIS_SHA_LEN;
  argv[2] = nk, len[2] = strlen(nk);
  for (int i = 0; i < nargs && i < HSR_ARGS_MAX - 3; i++) {
    argv[3 + i] = args[i];
    len[3 + i] = lens && lens[i] != (size_t)-1 ? lens[i] : strlen(args[i]);
  }
  int rc = wsc_redis_command(r->link, cb, ud, 3 + nargs, argv, len);
  return rc < 0 ? HSR_E_DOWN : 0;
}

static hsr_op_t *op_new(hsr_status_cb cb, hsr_poll_cb pcb, void *ud) {
  hsr_op_t *op = malloc(sizeof *op);
  if (op) *op = (hsr_op_t){cb, pcb, ud};
  return op;
}

static int eval_op(hsr_t *r, int script, int nkeys, int nargs, const char **args, const size_t *lens,
                   wsc_redis_reply_cb reply, hsr_status_cb cb, void *ud) {
  hsr_op_t *op = NULL;
  if (cb && !(op = op_new(cb, NULL, ud))) return HSR_E_DOWN;
  int rc = eval(r, script, nkeys, nargs, args, lens, op ? reply : NULL, op);
  if (rc < 0) free(op);
  return rc;
}

/* An integer answer: status 0 and the value; HSR_E_DOWN without one. */
static void on_int(void *ud, redisReply *rep) {
  hsr_op_t *op = ud;
  if (!rep || rep->type != REDIS_REPLY_INTEGER) {
    if (rep && rep->type == REDIS_REPLY_ERROR) LOG_ERROR(LOG_COMP, "redis script failed err=\"%s\"", rep->str);
    op->cb(op->ud, HSR_E_DOWN, 0);
  } else {
    op->cb(op->ud, 0, rep->integer);
  }
  free(op);
}

static void fmt_u64(char out[HSR_NUM], uint64_t v) { snprintf(out, HSR_NUM, "%" PRIu64, v); }
static void fmt_i64(char out[HSR_NUM], int64_t v) { snprintf(out, HSR_NUM, "%" PRId64, v); }

int hsr_create(hsr_t *r, const char *token, const char *inst, hsr_status_cb cb, void *ud) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], now[HSR_NUM], exp[HSR_NUM];
  keys_of(token, rec, q);
  fmt_i64(now, wsc_now_ms());
  fmt_i64(exp, r->expire_ms);
  const char *args[] = {rec, q, hsr_node(r), inst, now, exp, token};
  return eval_op(r, S_CREATE, 2, 7, args, NULL, on_int, cb, ud);
}

int hsr_append(hsr_t *r, const char *token, const char *inst, uint64_t seq, const char *json, size_t len,
               int limit, hsr_status_cb cb, void *ud) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], seqs[HSR_NUM], lim[HSR_NUM], exp[HSR_NUM];
  keys_of(token, rec, q);
  fmt_u64(seqs, seq);
  fmt_i64(lim, limit);
  fmt_i64(exp, r->expire_ms);
  const char *args[] = {rec, q, inst, seqs, json, lim, exp, token};
  size_t lens[] = {(size_t)-1, (size_t)-1, (size_t)-1, (size_t)-1, len, (size_t)-1, (size_t)-1, (size_t)-1};
  return eval_op(r, S_APPEND, 2, 8, args, lens, on_int, cb, ud);
}

int hsr_reset(hsr_t *r, const char *token, const char *inst, uint64_t seq, const char *json, size_t len,
              hsr_status_cb cb, void *ud) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], seqs[HSR_NUM], exp[HSR_NUM];
  keys_of(token, rec, q);
  fmt_u64(seqs, seq);
  fmt_i64(exp, r->expire_ms);
  const char *args[] = {rec, q, inst, seqs, json, exp, token};
  size_t lens[] = {(size_t)-1, (size_t)-1, (size_t)-1, (size_t)-1, len, (size_t)-1, (size_t)-1};
  return eval_op(r, S_RESET, 2, 7, args, lens, on_int, cb, ud);
}

void hsr_end(hsr_t *r, const char *token, const char *inst) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX];
  keys_of(token, rec, q);
  const char *args[] = {rec, q, inst, token};
  eval(r, S_END, 2, 4, args, NULL, NULL, NULL);
}

int hsr_last_use(hsr_t *r, const char *token, hsr_status_cb cb, void *ud) {
  char rec[HSR_KEY_MAX], now[HSR_NUM];
  keys_of(token, rec, NULL);
  fmt_i64(now, wsc_now_ms());
  const char *args[] = {rec, now};
  return eval_op(r, S_LAST, 1, 2, args, NULL, on_int, cb, ud);
}

static void on_poll(void *ud, redisReply *rep) {
  hsr_op_t *op = ud;
  const char *ev[HSR_POLL_COUNT_MAX];
  size_t lens[HSR_POLL_COUNT_MAX], n = 0;
  int status = HSR_E_DOWN;
  uint64_t gen = 0, last = 0;
  if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_INTEGER) {
    long long code = rep->element[0]->integer;
    if (code == -1) status = HSR_E_UNKNOWN;
    else if (code == -3) status = HSR_E_HOME_GONE;
    else if (code == -4) status = HSR_E_SUPERSEDED;
    else if (code == -2) {
      status = HSR_E_ACK;
      if (rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_INTEGER) last = (uint64_t)rep->element[1]->integer;
    } else if (code >= 0 && rep->elements == 3 && rep->element[1]->type == REDIS_REPLY_INTEGER &&
               rep->element[2]->type == REDIS_REPLY_ARRAY) {
      status = 0;
      gen = (uint64_t)code;
      last = (uint64_t)rep->element[1]->integer;
      const redisReply *a = rep->element[2];
      for (size_t i = 0; i < a->elements && n < HSR_POLL_COUNT_MAX; i++)
        if (a->element[i]->type == REDIS_REPLY_STRING) {
          ev[n] = a->element[i]->str;
          lens[n++] = a->element[i]->len;
        }
    }
  } else if (rep && rep->type == REDIS_REPLY_ERROR) {
    LOG_ERROR(LOG_COMP, "redis poll script failed err=\"%s\"", rep->str);
  }
  op->poll_cb(op->ud, status, gen, last, ev, lens, n);
  free(op);
}

int hsr_poll(hsr_t *r, const char *token, uint64_t ack, int mode, uint64_t gen, int64_t hold_until_ms,
             size_t max_bytes, hsr_poll_cb cb, void *ud) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], acks[HSR_NUM], modes[4], now[HSR_NUM], gens[HSR_NUM], hold[HSR_NUM],
      exp[HSR_NUM], maxb[HSR_NUM], count[HSR_NUM];
  keys_of(token, rec, q);
  fmt_u64(acks, ack);
  snprintf(modes, sizeof modes, "%d", mode);
  fmt_i64(now, wsc_now_ms());
  fmt_u64(gens, gen);
  fmt_i64(hold, hold_until_ms);
  fmt_i64(exp, r->expire_ms);
  fmt_u64(maxb, max_bytes);
  fmt_i64(count, HSR_POLL_COUNT_MAX);
  const char *args[] = {rec, q, acks, modes, hsr_node(r), now, gens, hold, exp, maxb, token, count};
  hsr_op_t *op = op_new(NULL, cb, ud);
  if (!op) return HSR_E_DOWN;
  int rc = eval(r, S_POLL, 2, 12, args, NULL, on_poll, op);
  if (rc < 0) free(op);
  return rc;
}

void hsr_poll_done(hsr_t *r, const char *token, uint64_t gen) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], gens[HSR_NUM], now[HSR_NUM], exp[HSR_NUM];
  keys_of(token, rec, q);
  fmt_u64(gens, gen);
  fmt_i64(now, wsc_now_ms());
  fmt_i64(exp, r->expire_ms);
  const char *args[] = {rec, q, gens, now, exp};
  eval(r, S_DONE, 2, 5, args, NULL, NULL, NULL);
}

static void on_forward(void *ud, redisReply *rep) {
  hsr_op_t *op = ud;
  int status = HSR_E_DOWN;
  int64_t v = 0;
  if (rep && rep->type == REDIS_REPLY_INTEGER) {
    v = rep->integer;
    status = v == -1 ? HSR_E_UNKNOWN : v == -3 ? HSR_E_HOME_GONE : v < 0 ? HSR_E_NO_ANSWER : 0;
  } else if (rep && rep->type == REDIS_REPLY_ERROR) {
    LOG_ERROR(LOG_COMP, "redis forward script failed err=\"%s\"", rep->str);
  }
  op->cb(op->ud, status, v);
  free(op);
}

int hsr_forward(hsr_t *r, const char *token, uint64_t reqid, const char *body, size_t len, hsr_status_cb cb,
                void *ud) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], now[HSR_NUM], exp[HSR_NUM], head[HSR_KEY_MAX];
  keys_of(token, rec, q);
  fmt_i64(now, wsc_now_ms());
  fmt_i64(exp, r->expire_ms);
  int hl = snprintf(head, sizeof head, "s%" PRIu64 " %s %s ", reqid, hsr_node(r), token);
  if (hl < 0 || (size_t)hl >= sizeof head) return HSR_E_DOWN;
  char *payload = malloc((size_t)hl + len);
  if (!payload) return HSR_E_DOWN;
  memcpy(payload, head, (size_t)hl);
  if (len) memcpy(payload + hl, body, len);
  const char *args[] = {rec, q, payload, now, exp};
  size_t lens[] = {(size_t)-1, (size_t)-1, (size_t)hl + len, (size_t)-1, (size_t)-1};
  int rc = eval_op(r, S_FORWARD, 2, 5, args, lens, on_forward, cb, ud);
  free(payload);   /* hiredis copied the command */
  return rc;
}

int hsr_rehome(hsr_t *r, const char *token, const char *inst, const char *event, size_t len, hsr_status_cb cb,
               void *ud) {
  char rec[HSR_KEY_MAX], q[HSR_KEY_MAX], now[HSR_NUM], exp[HSR_NUM];
  if (len < 2 || event[0] != '{') return HSR_E_DOWN;
  keys_of(token, rec, q);
  fmt_i64(now, wsc_now_ms());
  fmt_i64(exp, r->expire_ms);
  const char *args[] = {rec, q, hsr_node(r), inst, now, exp, event + 1, token};
  size_t lens[] = {(size_t)-1, (size_t)-1, (size_t)-1, (size_t)-1, (size_t)-1, (size_t)-1, len - 1, (size_t)-1};
  return eval_op(r, S_REHOME, 2, 8, args, lens, on_int, cb, ud);
}

void hsr_answer(hsr_t *r, const char *node, uint64_t reqid, int status, int json, const char *body, size_t len) {
  char ch[HSR_KEY_MAX], head[HSR_KEY_MAX];
  snprintf(ch, sizeof ch, "wschat:node:%s", node);
  int hl = snprintf(head, sizeof head, "r%" PRIu64 " %d %c", reqid, status, json ? 'j' : 't');
  if (hl < 0 || (size_t)hl >= sizeof head) return;
  char *payload = malloc((size_t)hl + len);
  if (!payload) return;
  memcpy(payload, head, (size_t)hl);
  if (len) memcpy(payload + hl, body, len);
  const char *argv[] = {"PUBLISH", ch, payload};
  size_t lens[] = {7, strlen(ch), (size_t)hl + len};
  wsc_redis_command(r->link, NULL, NULL, 3, argv, lens);
  free(payload);
}

/* ---- the node channel -------------------------------------------------- */

/* A decimal number at p[0..len) up to a space: its value, *used the digits. */
static int parse_num(const char *p, size_t len, uint64_t *v, size_t *used) {
  size_t i = 0;
  uint64_t x = 0;
  while (i < len && i < 20 && p[i] >= '0' && p[i] <= '9') x = x * 10 + (uint64_t)(p[i++] - '0');
  if (i == 0) return -1;
  *v = x;
  *used = i;
  return 0;
}

/* A word (up to a space or the end) into out[cap]; its length, or -1. */
static int parse_word(const char *p, size_t len, char *out, size_t cap) {
  size_t i = 0;
  while (i < len && p[i] != ' ') i++;
  if (i == 0 || i >= cap) return -1;
  memcpy(out, p, i);
  out[i] = '\0';
  return (int)i;
}

static void on_message(void *ud, const char *ch, size_t chlen, const char *p, size_t len) {
  hsr_t *r = ud;
  if (chlen != strlen(r->channel) || memcmp(ch, r->channel, chlen) != 0 || len < 2) return;
  char token[HSR_TOKEN_MAX + 1], node[HSR_KEY_MAX];
  uint64_t num;
  size_t used;
  const char *q = p + 1, *end = p + len;
  switch (p[0]) {
  case 'h':
    if (parse_word(q, (size_t)(end - q), token, sizeof token) > 0 && r->h.wake) r->h.wake(r->h.ud, token);
    return;
  case 'x':
    if (parse_num(q, (size_t)(end - q), &num, &used) < 0 || q + used >= end || q[used] != ' ') return;
    q += used + 1;
    if (parse_word(q, (size_t)(end - q), token, sizeof token) > 0 && r->h.supersede)
      r->h.supersede(r->h.ud, token, num);
    return;
  case 's': {
    if (parse_num(q, (size_t)(end - q), &num, &used) < 0 || q + used >= end || q[used] != ' ') return;
    q += used + 1;
    int n = parse_word(q, (size_t)(end - q), node, sizeof node);
    if (n < 0 || q + n >= end) return;
    q += n + 1;
    int t = parse_word(q, (size_t)(end - q), token, sizeof token);
    if (t < 0 || q + t >= end) return;
    q += t + 1;
    if (r->h.send) r->h.send(r->h.ud, num, node, token, q, (size_t)(end - q));
    return;
  }
  case 'r': {
    uint64_t status;
    if (parse_num(q, (size_t)(end - q), &num, &used) < 0 || q + used >= end || q[used] != ' ') return;
    q += used + 1;
    if (parse_num(q, (size_t)(end - q), &status, &used) < 0 || q + used + 1 >= end || q[used] != ' ') return;
    q += used + 1;
    int json = *q == 'j';
    q++;
    if (r->h.reply) r->h.reply(r->h.ud, num, (int)status, json, q, (size_t)(end - q));
    return;
  }
  default:
    return;
  }
}

hsr_t *hsr_new(wsc_redis_t *link, const wsc_config_t *config, const hsr_handler_t *h) {
  hsr_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->link = link;
  r->h = *h;
  r->expire_ms = (int64_t)config->http_session_ttl_ms + HSR_EXPIRE_SLACK_MS;
  snprintf(r->channel, sizeof r->channel, "wschat:node:%s", wsc_redis_node_id(link));
  static const char *const scripts[S_COUNT] = {CREATE_LUA, APPEND_LUA, RESET_LUA, END_LUA,
                                               LAST_LUA,   POLL_LUA,   DONE_LUA,  FORWARD_LUA, REHOME_LUA};
  for (int i = 0; i < S_COUNT; i++)
    if (wsc_redis_script(link, scripts[i], r->sha[i]) < 0) {
      free(r);
      return NULL;
    }
  wsc_redis_events_t ev = {.message = on_message, .ud = r};
  wsc_redis_set_events(link, 2, &ev);
  return r;
}

void hsr_free(hsr_t *r) {
  if (!r) return;
  wsc_redis_set_events(r->link, 2, NULL);
  free(r);
}
