/* redis/link — see link.h. */
#include "redis/link.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "base/clock.h"
#include "base/log.h"

#define LOG_COMP "redis"
#define LINK_TICK_MS 100             /* watchdog and reconnect timer */
#define LINK_BACKOFF_MIN_MS 100
#define LINK_BACKOFF_MAX_MS 1000
#define LINK_PING_IDLE_MS 1000       /* PING when nothing was answered for this long */
#define LINK_HOST_MAX 256

struct wsc_redis {
  uv_loop_t *loop;
  char host[LINK_HOST_MAX];
  int port, db;
  int timeout_ms;
  redisAsyncContext *cmd, *sub;
  int cmd_open, sub_open;          /* connect callback said OK */
  int up, starting;                /* starting: init commands sent, PING awaited */
  uv_timer_t timer;
  int timer_open;
  int64_t next_connect_ms;
  int64_t connect_ms;              /* when connect_now ran */
  int backoff_ms;
  size_t pending;
  int64_t last_answer_ms;
  unsigned gen;                    /* connection generation */
  const char *scripts[WSC_REDIS_MAX_SCRIPTS];
  int n_scripts;
  wsc_redis_events_t ev[WSC_REDIS_LISTENERS];
  char node[17];
};

typedef struct cmd_req {
  wsc_redis_t *r;
  wsc_redis_reply_cb cb;
  void *ud;
} cmd_req_t;

static void link_down(wsc_redis_t *r, const char *why);

const char *wsc_redis_node_id(const wsc_redis_t *r) { return r->node; }
int wsc_redis_is_up(const wsc_redis_t *r) { return r && r->up; }
size_t wsc_redis_pending(const wsc_redis_t *r) { return r->pending; }

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  cmd_req_t *q = privdata;
  wsc_redis_t *r = q->r;
  r->pending--;
  if (reply) r->last_answer_ms = wsc_mono_ms();
  if (q->cb) q->cb(q->ud, reply);
  free(q);
}

static int send_cmd(wsc_redis_t *r, wsc_redis_reply_cb cb, void *ud, int argc, const char **argv,
                    const size_t *argvlen) {
  if (!r->cmd || !r->cmd_open) return WSC_REDIS_EDOWN;
  if (r->pending >= WSC_REDIS_MAX_PENDING) return WSC_REDIS_EFULL;
  cmd_req_t *q = malloc(sizeof *q);
  if (!q) return WSC_REDIS_EFULL;
  *q = (cmd_req_t){r, cb, ud};
  if (redisAsyncCommandArgv(r->cmd, on_cmd_reply, q, argc, argv, argvlen) != REDIS_OK) {
    free(q);
    return WSC_REDIS_EDOWN;
  }
  if (r->pending++ == 0) r->last_answer_ms = wsc_mono_ms();   /* the wait starts now */
  return 0;
}

int wsc_redis_command(wsc_redis_t *r, wsc_redis_reply_cb cb, void *ud, int argc, const char **argv,
                      const size_t *argvlen) {
  if (!r->up) return WSC_REDIS_EDOWN;
  return send_cmd(r, cb, ud, argc, argv, argvlen);
}

/* ---- subscribe connection ---------------------------------------------- */

static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
  wsc_redis_t *r = ac->data;
  redisReply *reply = reply_;
  if (!r || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
  redisReply *kind = reply->element[0], *ch = reply->element[1], *p = reply->element[2];
  if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING) return;
  for (int i = 0; i < WSC_REDIS_LISTENERS; i++) {
    const wsc_redis_events_t *ev = &r->ev[i];
    if (strcmp(kind->str, "message") == 0 && p->type == REDIS_REPLY_STRING) {
      if (ev->message) ev->message(ev->ud, ch->str, ch->len, p->str, p->len);
    } else if (strcmp(kind->str, "subscribe") == 0) {
      if (ev->subscribed) ev->subscribed(ev->ud, ch->str, ch->len);
    }
  }
}

static int sub_cmd(wsc_redis_t *r, const char *verb, const char *channel) {
  if (!r->up || !r->sub) return WSC_REDIS_EDOWN;
  const char *argv[2] = {verb, channel};
  size_t lens[2] = {strlen(verb), strlen(channel)};
  return redisAsyncCommandArgv(r->sub, on_sub_reply, NULL, 2, argv, lens) == REDIS_OK ? 0 : WSC_REDIS_EDOWN;
}

int wsc_redis_subscribe(wsc_redis_t *r, const char *channel) { return sub_cmd(r, "SUBSCRIBE", channel); }
int wsc_redis_unsubscribe(wsc_redis_t *r, const char *channel) { return sub_cmd(r, "UNSUBSCRIBE", channel); }

/* ---- connecting --------------------------------------------------------- */

static void on_ready(void *ud, redisReply *reply) {
  wsc_redis_t *r = ud;
  if (!reply || reply->type == REDIS_REPLY_ERROR || !r->starting) return;   /* link_down follows */
  r->starting = 0;
  r->up = 1;
  r->backoff_ms = LINK_BACKOFF_MIN_MS;
  LOG_INFO(LOG_COMP, "link up host=%s port=%d db=%d", r->host, r->port, r->db);
  for (int i = 0; i < WSC_REDIS_LISTENERS; i++)
    if (r->ev[i].up) r->ev[i].up(r->ev[i].ud);
}

static void on_init_reply(void *ud, redisReply *reply) {
  wsc_redis_t *r = ud;
  if (reply && reply->type == REDIS_REPLY_ERROR && r->starting) {
    LOG_ERROR(LOG_COMP, "setup command failed err=\"%s\"", reply->str);
    r->starting = 0;   /* stays down; the watchdog does not retry a refusal quickly */
  }
}

/* Both connections are open: select the db, load the scripts, PING. */
static void start_session(wsc_redis_t *r) {
  r->starting = 1;
  char db[16];
  snprintf(db, sizeof db, "%d", r->db);
  const char *sel[2] = {"SELECT", db};
  size_t sel_len[2] = {6, strlen(db)};
  send_cmd(r, on_init_reply, r, 2, sel, sel_len);
  for (int i = 0; i < r->n_scripts; i++) {
    const char *argv[3] = {"SCRIPT", "LOAD", r->scripts[i]};
    size_t lens[3] = {6, 4, strlen(r->scripts[i])};
    send_cmd(r, on_init_reply, r, 3, argv, lens);
  }
  const char *ping[1] = {"PING"};
  size_t ping_len[1] = {4};
  send_cmd(r, on_ready, r, 1, ping, ping_len);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  wsc_redis_t *r = ac->data;
  if (!r) return;
  if (status != REDIS_OK) {
    /* hiredis frees the context after this callback. */
    if (ac == r->cmd) r->cmd = NULL;
    if (ac == r->sub) r->sub = NULL;
    link_down(r, ac->errstr);
    return;
  }
  if (ac == r->cmd) r->cmd_open = 1;
  if (ac == r->sub) r->sub_open = 1;
  if (r->cmd_open && r->sub_open) start_session(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  wsc_redis_t *r = ac->data;
  if (!r) return;   /* we freed it ourselves */
  /* hiredis frees the context after this callback. */
  if (ac == r->cmd) r->cmd = NULL;
  if (ac == r->sub) r->sub = NULL;
  link_down(r, ac->errstr[0] ? ac->errstr : "connection closed");
}

static redisAsyncContext *open_conn(wsc_redis_t *r) {
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac) return NULL;
  if (ac->err) {
    LOG_WARN(LOG_COMP, "connect failed err=\"%s\"", ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = r;
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
    ac->data = NULL;
    redisAsyncFree(ac);
    return NULL;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  return ac;
}

static void connect_now(wsc_redis_t *r) {
  r->gen++;
  r->connect_ms = wsc_mono_ms();
  r->cmd_open = r->sub_open = 0;
  r->cmd = open_conn(r);
  r->sub = r->cmd ? open_conn(r) : NULL;
  if (!r->cmd || !r->sub) link_down(r, "cannot create a connection");
}

/* Closes what is open (callbacks of waiting commands get NULL). */
static void close_conns(wsc_redis_t *r) {
  redisAsyncContext *cmd = r->cmd, *sub = r->sub;
  r->cmd = r->sub = NULL;
  r->cmd_open = r->sub_open = 0;
  if (cmd) {
    cmd->data = NULL;
    redisAsyncFree(cmd);
  }
  if (sub) {
    sub->data = NULL;
    redisAsyncFree(sub);
  }
}

static void link_down(wsc_redis_t *r, const char *why) {
  int was_up = r->up;
  r->up = r->starting = 0;
  close_conns(r);
  r->next_connect_ms = wsc_mono_ms() + r->backoff_ms;
  r->backoff_ms = r->backoff_ms * 2 > LINK_BACKOFF_MAX_MS ? LINK_BACKOFF_MAX_MS : r->backoff_ms * 2;
  if (was_up) {
    LOG_WARN(LOG_COMP, "link down err=\"%s\"", why ? why : "?");
    for (int i = 0; i < WSC_REDIS_LISTENERS; i++)
      if (r->ev[i].down) r->ev[i].down(r->ev[i].ud);
  } else {
    LOG_DEBUG(LOG_COMP, "connect failed err=\"%s\"", why ? why : "?");
  }
}

static void on_tick(uv_timer_t *t) {
  wsc_redis_t *r = t->data;
  int64_t now = wsc_mono_ms();
  if (!r->cmd && !r->sub) {
    if (now >= r->next_connect_ms) connect_now(r);
    return;
  }
  if ((!r->cmd_open || !r->sub_open) && now - r->connect_ms > r->timeout_ms) {
    link_down(r, "connect timed out");
    return;
  }
  if (r->pending > 0 && now - r->last_answer_ms > r->timeout_ms) {
    link_down(r, "no answer within the timeout");
    return;
  }
  if (!r->up && !r->starting && r->cmd_open && r->sub_open) {
    link_down(r, "setup refused");
    return;
  }
  if (r->up && r->pending == 0 && now - r->last_answer_ms >= LINK_PING_IDLE_MS) {
    const char *ping[1] = {"PING"};
    size_t ping_len[1] = {4};
    send_cmd(r, NULL, NULL, 1, ping, ping_len);
  }
}

/* ---- lifetime -------------------------------------------------------------- */

static int parse_url(wsc_redis_t *r, const char *url) {
  if (strncmp(url, "redis://", 8) == 0) url += 8;
  const char *colon = strrchr(url, ':');
  const char *slash = strchr(url, '/');
  size_t host_len = colon ? (size_t)(colon - url) : slash ? (size_t)(slash - url) : strlen(url);
  if (host_len == 0 || host_len >= sizeof r->host) return -1;
  memcpy(r->host, url, host_len);
  r->host[host_len] = '\0';
  r->port = 6379;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || p < 1 || p > 65535 || (*end && *end != '/')) return -1;
    r->port = (int)p;
    slash = *end == '/' ? end : NULL;
  }
  r->db = 0;
  if (slash && slash[1]) {
    char *end;
    long d = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || *end || d < 0 || d > 1000) return -1;
    r->db = (int)d;
  }
  return 0;
}

wsc_redis_t *wsc_redis_new(uv_loop_t *loop, const wsc_config_t *config, const char **err) {
  wsc_redis_t *r = calloc(1, sizeof *r);
  if (!r) {
    *err = "out of memory";
    return NULL;
  }
  if (!config->redis_url || parse_url(r, config->redis_url) < 0) {
    free(r);
    *err = "bad Redis URL: use redis://host:port[/db]";
    return NULL;
  }
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    free(r);
    *err = "no randomness";
    return NULL;
  }
  for (int i = 0; i < 8; i++) snprintf(r->node + 2 * i, 3, "%02x", raw[i]);
  r->loop = loop;
  r->timeout_ms = config->redis_timeout_ms > 0 ? config->redis_timeout_ms : 2000;
  r->backoff_ms = LINK_BACKOFF_MIN_MS;
  return r;
}

int wsc_redis_script(wsc_redis_t *r, const char *lua, char sha[WSC_REDIS_SHA_LEN + 1]) {
  if (r->n_scripts == WSC_REDIS_MAX_SCRIPTS) return -1;
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)lua, strlen(lua), md);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(sha + 2 * i, 3, "%02x", md[i]);
  r->scripts[r->n_scripts++] = lua;
  return 0;
}

void wsc_redis_set_events(wsc_redis_t *r, int slot, const wsc_redis_events_t *ev) {
  if (slot < 0 || slot >= WSC_REDIS_LISTENERS) return;
  if (ev) r->ev[slot] = *ev;
  else memset(&r->ev[slot], 0, sizeof r->ev[slot]);
}

void wsc_redis_start(wsc_redis_t *r) {
  uv_timer_init(r->loop, &r->timer);
  r->timer.data = r;
  r->timer_open = 1;
  uv_timer_start(&r->timer, on_tick, LINK_TICK_MS, LINK_TICK_MS);
  connect_now(r);
}

void wsc_redis_drain(wsc_redis_t *r, int timeout_ms) {
  int64_t end = wsc_mono_ms() + timeout_ms;
  while (r->pending > 0 && r->up && wsc_mono_ms() < end) uv_run(r->loop, UV_RUN_ONCE);
}

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

void wsc_redis_free(wsc_redis_t *r) {
  if (!r) return;
  memset(r->ev, 0, sizeof r->ev);
  r->up = 0;
  close_conns(r);
  if (r->timer_open) uv_close((uv_handle_t *)&r->timer, on_timer_closed);
  else free(r);
}
