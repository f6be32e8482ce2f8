/* transport/http_session — see http_session.h.
 *
 * Telling a reply from an event: chat hands every message for a client to
 * one of three ops. send/notify carry room events: always queued. reply
 * carries both the answers to the client's own requests and the messages
 * addressed to it alone (a DM from someone else, the errors of attaching).
 * A reply that arrives while chat_client_receive runs for a /http/send is
 * that request's answer. A request whose answer comes later (send: ack
 * after the commit; join: joined once the replay is read; history) waits
 * in the session's FIFO: the store finishes operations in the order they
 * were issued, so the first `ack` that arrives is the first waiting
 * send's, the first `joined` the first waiting join's. A waiting request
 * passed over by a later answer will never get its own (a join cancelled
 * by a leave): it is answered 204, as WebSocket would send nothing.
 */
#include "transport/http_session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "base/hmap.h"
#include "msg/outbuf.h"
#include "transport/http_session_req.h"
#include "transport/http_session_redis.h"
#include "ws/utf8.h"

#define LOG_COMP "hsess"
#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"
#define NO_STORE "Cache-Control: no-store\r\n"
#define QUEUE_MIN_CAP 8

enum { W_POLL, W_SEND, W_OPEN, W_CPOLL, W_RSEND };
enum { END_EXPIRED, END_REPLACED, END_SHUTDOWN };

typedef struct hsess hsess_t;

/* One queued event: the JSON at b->data[off..off+len), b referenced. */
typedef struct hs_event {
  wsc_buf_t *b;
  uint32_t off, len;
  uint8_t whole;                  /* part of a reply (the larger limit applies) */
} hs_event_t;

struct hsess_waiter {
  hsess_t *s;
  const hsess_carrier_ops_t *ops;
  void *conn;                     /* NULL once answered or gone: an orphan in the FIFO */
  hsess_waiter_t *wprev, *wnext;  /* timer wheel slot, while in_wheel */
  hsess_waiter_t *fnext;          /* the session's FIFO of sends awaiting a reply */
  int64_t deadline;               /* mono ms */
  uint64_t ack;                   /* poll: what the client acknowledged */
  void *cx;                       /* W_CPOLL: its cpoll_t; W_RSEND: its rsend_t */
  uint8_t kind;                   /* W_POLL, W_SEND, W_OPEN */
  uint8_t req;                    /* W_SEND: hsess_req_kind_t */
  uint8_t in_wheel;
};

/* The /http/send being handed to chat right now (on the stack). */
typedef struct hs_current {
  const hsess_carrier_ops_t *ops;
  void *conn;
  int answered;
} hs_current_t;

struct hsess {
  hsess_server_t *hs;
  chat_client_t *chat;
  hs_event_t *q;                  /* ring */
  uint32_t head, n, cap;
  uint64_t first_seq;             /* seq of q[head]; with n == 0, the next seq */
  hsess_waiter_t *poll;           /* the held poll, or NULL */
  hsess_waiter_t *sends, *sends_tail;
  uint32_t n_sends;
  hs_current_t *current;
  wsc_buf_t *welcome;             /* captured while attaching */
  hsess_waiter_t *opener;         /* POST /http/session held until the welcome (the
                                     directory of a --redis cluster answers later) */
  hsess_t *lprev, *lnext;         /* every session, least recently used first */
  hsess_t *onext;                 /* the list of sessions to reattach after an overflow */
  int64_t last_seen;
  uint64_t inst;                  /* cluster: which session of this token (see http_session_redis.h) */
  int64_t check_ms;               /* cluster: when the last use elsewhere was asked (0: not asking) */
  uint8_t attaching, overflowed;
  uint8_t published;              /* cluster: the record is in Redis, events go there; the
                                     local queue holds those Redis has not confirmed yet */
  uint8_t stalled;                /* cluster: an append got no answer: resend when the link is up */
  uint8_t reset_pending;          /* cluster: q[head] is the overflow error, a reset in Redis */
  uint8_t rehoming;               /* cluster: moving here from a dead home (not served until moved) */
  uint8_t rehome_wait;            /* ... its welcome comes later (the directory answers) */
  char token[HSESS_TOKEN_MAX + 1];
};

struct hsess_server {
  uv_loop_t *loop;
  const wsc_config_t *cfg;
  chat_server_t *chat;
  wsc_hmap_t by_token;
  hsess_t *lru_head, *lru_tail;
  hsess_t *overflowed;
  hsess_waiter_t *wheel[HSESS_WHEEL_SLOTS];
  int64_t wheel_tick;             /* the next tick index to process */
  uv_timer_t timer;
  size_t n_sessions, n_held;
  hsr_t *hsr;                     /* cluster (--redis): sessions in Redis; NULL on one node */
  wsc_hmap_t cpolls;              /* cluster: token -> cpoll_t, the polls this node serves */
  wsc_hmap_t rsends;              /* cluster: reqid -> rsend_t, sends forwarded to a home */
  uint64_t next_inst, next_serial, next_reqid;
  size_t inflight;                /* cluster: Redis callbacks still to come */
  size_t n_stalled;               /* cluster: sessions with stalled set */
  int dead;                       /* freed by the owner: the last callback frees the memory */
};

static wsc_pool_t g_session_pool = WSC_POOL_INIT(hsess_t);
static wsc_pool_t g_waiter_pool = WSC_POOL_INIT(hsess_waiter_t);

static const chat_transport_ops_t hsess_chat_ops;

/* --- answering ------------------------------------------------------------------ */

static void respond_text(const hsess_carrier_ops_t *ops, void *conn, int status, const char *msg) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s\n", msg);
  wsc_buf_t *b = wsc_buf_from(0, line, n < 0 ? 0 : (size_t)n);
  ops->respond(conn, status, TEXT_TYPE, NO_STORE, b);
  if (b) wsc_buf_unref(b);
}

static void respond_json(const hsess_carrier_ops_t *ops, void *conn, int status, const char *json,
                         size_t len) {
  wsc_buf_t *b = wsc_buf_from(0, json, len);
  if (!b) {
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  ops->respond(conn, status, JSON_TYPE, NO_STORE, b);
  wsc_buf_unref(b);
}

/* --- the timer wheel -------------------------------------------------------------- */

static void wheel_remove(hsess_server_t *hs, hsess_waiter_t *w) {
  if (!w->in_wheel) return;
  size_t slot = (size_t)(w->deadline / HSESS_TICK_MS) % HSESS_WHEEL_SLOTS;
  if (w->wprev) w->wprev->wnext = w->wnext;
  else hs->wheel[slot] = w->wnext;
  if (w->wnext) w->wnext->wprev = w->wprev;
  w->wprev = w->wnext = NULL;
  w->in_wheel = 0;
}

static void wheel_insert(hsess_server_t *hs, hsess_waiter_t *w, int64_t deadline) {
  /* A deadline already behind the wheel's hand goes into the next slot
   * processed (deadline rounded up: never early). */
  int64_t min = (hs->wheel_tick + 1) * HSESS_TICK_MS;
  w->deadline = deadline < min ? min : deadline;
  size_t slot = (size_t)(w->deadline / HSESS_TICK_MS) % HSESS_WHEEL_SLOTS;
  w->wprev = NULL;
  w->wnext = hs->wheel[slot];
  if (w->wnext) w->wnext->wprev = w;
  hs->wheel[slot] = w;
  w->in_wheel = 1;
}

/* --- the session list (least recently used first) ----------------------------- */

static void lru_remove(hsess_server_t *hs, hsess_t *s) {
  if (s->lprev) s->lprev->lnext = s->lnext;
  else if (hs->lru_head == s) hs->lru_head = s->lnext;
  else return;
  if (s->lnext) s->lnext->lprev = s->lprev;
  else hs->lru_tail = s->lprev;
  s->lprev = s->lnext = NULL;
}

static void lru_touch(hsess_server_t *hs, hsess_t *s) {
  lru_remove(hs, s);
  s->last_seen = wsc_mono_ms();
  s->lprev = hs->lru_tail;
  s->lnext = NULL;
  if (hs->lru_tail) hs->lru_tail->lnext = s;
  else hs->lru_head = s;
  hs->lru_tail = s;
}

/* --- the event queue ------------------------------------------------------------ */

static uint64_t last_seq(const hsess_t *s) { return s->first_seq + s->n - 1; }

static void drop_acked(hsess_t *s, uint64_t ack) {
  while (s->n && s->first_seq <= ack) {
    wsc_buf_unref(s->q[s->head].b);
    s->head = (s->head + 1) % s->cap;
    s->n--;
    s->first_seq++;
  }
}

static int queue_grow(hsess_t *s) {
  uint32_t ncap = s->cap ? s->cap * 2 : QUEUE_MIN_CAP;
  hs_event_t *q = malloc((size_t)ncap * sizeof *q);
  if (!q) return -1;
  for (uint32_t i = 0; i < s->n; i++) q[i] = s->q[(s->head + i) % s->cap];
  free(s->q);
  s->q = q;
  s->cap = ncap;
  s->head = 0;
  return 0;
}

static int queue_push(hsess_t *s, wsc_buf_t *b, uint32_t off, uint32_t len, int whole) {
  if (s->n == s->cap && queue_grow(s) < 0) return -1;
  s->q[(s->head + s->n) % s->cap] = (hs_event_t){wsc_buf_ref(b), off, len, (uint8_t)whole};
  s->n++;
  return 0;
}

static size_t dec_len(uint64_t v) {
  size_t n = 1;
  while (v >= 10) v /= 10, n++;
  return n;
}

/* [ {"seq":N, + each event's JSON after its '{' ... ]: the queued events,
 * as many as fit in max_bytes (at least one). NULL on allocation failure. */
static wsc_buf_t *build_events(const hsess_t *s, size_t max_bytes) {
  size_t total = 2, k = 0;
  for (; k < s->n; k++) {
    const hs_event_t *e = &s->q[(s->head + k) % s->cap];
    size_t add = 8 + dec_len(s->first_seq + k) + e->len - 1 + (k ? 1 : 0);
    if (k && total + add > max_bytes) break;
    total += add;
  }
  wsc_buf_t *b = wsc_buf_new(0, total);
  if (!b) return NULL;
  wsc_metrics.http_polls++;
  if (k == 0) wsc_metrics.http_polls_empty++;
  char *p = (char *)b->data;
  *p++ = '[';
  for (size_t i = 0; i < k; i++) {
    const hs_event_t *e = &s->q[(s->head + i) % s->cap];
    if (i) *p++ = ',';
    p += sprintf(p, "{\"seq\":%" PRIu64 ",", s->first_seq + i);
    memcpy(p, e->b->data + e->off + 1, e->len - 1);
    p += e->len - 1;
  }
  *p++ = ']';
  b->len = (uint32_t)(p - (char *)b->data);
  return b;
}

/* Answers a request with the queued events (or []). */
static void respond_events(const hsess_t *s, const hsess_carrier_ops_t *ops, void *conn) {
  wsc_buf_t *b = build_events(s, s->hs->cfg->send_queue_limit);
  if (!b) {
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  ops->respond(conn, 200, JSON_TYPE, NO_STORE, b);
  wsc_buf_unref(b);
}

/* --- waiters -------------------------------------------------------------------- */

static void waiter_unheld(hsess_server_t *hs, hsess_waiter_t *w) {
  if (w->conn) hs->n_held--;
  wsc_metrics.http_held = (int64_t)hs->n_held;
  w->conn = NULL;
  wheel_remove(hs, w);
}

/* Holds w's request, to be answered later through ops/conn (at `deadline`
 * at the latest; 0: not in the wheel yet). */
static void waiter_hold(hsess_server_t *hs, hsess_waiter_t *w, const hsess_carrier_ops_t *ops, void *conn,
                        int64_t deadline) {
  w->ops = ops;
  w->conn = conn;
  hs->n_held++;
  wsc_metrics.http_held = (int64_t)hs->n_held;
  if (deadline) wheel_insert(hs, w, deadline);
  ops->hold(conn, w);
}

/* POST /http/session held until its welcome (and on a cluster, its record). */
static void opener_hold(hsess_t *s, hsess_waiter_t *w, const hsess_carrier_ops_t *ops, void *conn) {
  w->s = s;
  w->kind = W_OPEN;
  s->opener = w;
  waiter_hold(s->hs, w, ops, conn, wsc_mono_ms() + HSESS_SEND_TIMEOUT_MS);
}

/* The held POST /http/session let go: its conn (NULL when gone) and ops. */
static void *opener_take(hsess_t *s, const hsess_carrier_ops_t **ops) {
  hsess_waiter_t *w = s->opener;
  void *conn = w->conn;
  *ops = w->ops;
  s->opener = NULL;
  waiter_unheld(s->hs, w);
  wsc_pool_free(&g_waiter_pool, w);
  return conn;
}

/* Answers the held poll with what is queued (or [] when empty). */
static void answer_poll(hsess_t *s) {
  hsess_waiter_t *w = s->poll;
  hsess_server_t *hs = s->hs;
  s->poll = NULL;
  const hsess_carrier_ops_t *ops = w->ops;
  void *conn = w->conn;
  waiter_unheld(hs, w);
  wsc_pool_free(&g_waiter_pool, w);
  lru_touch(hs, s);
  if (conn) respond_events(s, ops, conn);
}

static void answer_poll_empty(hsess_t *s) {
  uint32_t n = s->n;
  s->n = 0;   /* build_events then makes [] */
  answer_poll(s);
  s->n = n;
}

static hsess_waiter_t *fifo_pop(hsess_t *s) {
  hsess_waiter_t *w = s->sends;
  if (!w) return NULL;
  s->sends = w->fnext;
  if (!s->sends) s->sends_tail = NULL;
  s->n_sends--;
  w->fnext = NULL;
  return w;
}

/* --- pushing what chat sends ------------------------------------------------------ */

/* The JSON payloads of a message buffer: a sealed message (one), or a
 * join's reply (hdr 0: consecutive WebSocket frames, joined + replay).
 * Calls fn for each; stops at the first non-zero return. */
typedef int (*payload_fn)(void *ctx, wsc_buf_t *b, uint32_t off, uint32_t len, int index);

static int each_payload(void *ctx, wsc_buf_t *b, payload_fn fn) {
  if (b->hdr) return fn(ctx, b, b->off + b->hdr, b->len - b->hdr, 0);
  const uint8_t *p = b->data + b->off, *end = p + b->len;
  for (int i = 0; p + 2 <= end; i++) {
    uint64_t plen = p[1] & 0x7f;
    size_t hlen = 2;
    if (plen == 126) {
      hlen = 4;
      if (p + hlen > end) break;
      plen = ((uint64_t)p[2] << 8) | p[3];
    } else if (plen == 127) {
      hlen = 10;
      if (p + hlen > end) break;
      plen = 0;
      for (int j = 0; j < 8; j++) plen = (plen << 8) | p[2 + j];
    }
    if (plen > (uint64_t)(end - p - (ptrdiff_t)hlen)) break;
    int rc = fn(ctx, b, (uint32_t)(p + hlen - b->data), (uint32_t)plen, i);
    if (rc) return rc;
    p += hlen + plen;
  }
  return 0;
}

static const char OVERFLOW_JSON[] =
    "{\"type\":\"error\",\"code\":\"overflow\",\"message\":\"more events were owed than the session "
    "queue holds; they were dropped and the session left its rooms: join again with since\"}";

static void cluster_send_at(hsess_t *s, uint32_t i);
static void rehome_attached(hsess_t *s);

static void overflow(hsess_t *s) {
  hsess_server_t *hs = s->hs;
  drop_acked(s, UINT64_MAX);
  wsc_buf_t *e = outbuf_text(OVERFLOW_JSON, sizeof OVERFLOW_JSON - 1);
  if (e) {
    queue_push(s, e, e->off + e->hdr, e->len - e->hdr, 1);
    wsc_buf_unref(e);
    if (s->published) {   /* on a cluster, the queue in Redis becomes this event */
      s->reset_pending = 1;
      if (!s->stalled) cluster_send_at(s, 0);
    }
  }
  if (!s->overflowed) {
    s->overflowed = 1;
    s->onext = hs->overflowed;
    hs->overflowed = s;
  }
  wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_OVERFLOW]++;
  LOG_INFO(LOG_COMP, "event queue overflow, session reset queued_max=%d", hs->cfg->http_queue_max);
}

/* One event into the queue. `whole`: part of a reply, accepted past the
 * limit unless the queue was over it already (as WebSocket replies are). */
static int push_one(hsess_t *s, wsc_buf_t *b, uint32_t off, uint32_t len, int whole) {
  uint32_t max = (uint32_t)s->hs->cfg->http_queue_max;
  if (s->overflowed) return -1;
  if (len < 2 || s->n >= (whole ? max + (uint32_t)s->hs->cfg->replay_max + 1 : max) ||
      queue_push(s, b, off, len, whole) < 0) {
    overflow(s);
    return -1;
  }
  if (s->published && !s->stalled) cluster_send_at(s, s->n - 1);   /* to Redis; kept until confirmed */
  return 0;
}

static int push_event_cb(void *s, wsc_buf_t *b, uint32_t off, uint32_t len, int index) {
  (void)index;
  return push_one(s, b, off, len, 1);
}

static int push_rest_cb(void *s, wsc_buf_t *b, uint32_t off, uint32_t len, int index) {
  return index == 0 ? 0 : push_one(s, b, off, len, 1);
}

static void wake(hsess_t *s) {
  if (s->poll && s->n) answer_poll(s);
}

/* A room event (send/notify). */
static int push_msg(hsess_t *s, wsc_buf_t *msg, int whole) {
  int rc = whole ? each_payload(s, msg, push_event_cb)
                 : push_one(s, msg, msg->off + msg->hdr, msg->len - msg->hdr, 0);
  wake(s);
  return rc ? -1 : 0;
}

static int op_send(void *ud, wsc_buf_t *msg) { return push_msg(ud, msg, 0); }

/* First payload of msg (its type and slice). */
typedef struct first_payload {
  uint32_t off, len;
  int found;
} first_payload_t;

static int first_cb(void *ctx, wsc_buf_t *b, uint32_t off, uint32_t len, int index) {
  (void)b;
  (void)index;
  first_payload_t *fp = ctx;
  fp->off = off;
  fp->len = len;
  fp->found = 1;
  return 1;
}

/* The waiting send this reply answers, or NULL (then it is an event). */
static hsess_waiter_t *match_waiter(hsess_t *s, hsess_msg_type_t t) {
  int want = t == HSESS_MSG_ACK ? HSESS_REQ_SEND
           : t == HSESS_MSG_JOINED ? HSESS_REQ_JOIN
           : t == HSESS_MSG_HISTORY ? HSESS_REQ_HISTORY
           : t == HSESS_MSG_ERROR ? -1 : -2;
  if (want == -2 || !s->sends) return NULL;
  if (want != -1) {
    hsess_waiter_t *w = s->sends;
    while (w && w->req != want) w = w->fnext;
    if (!w) return NULL;
  }
  hsess_waiter_t *w;
  while ((w = fifo_pop(s))) {
    if (want == -1 || w->req == want) return w;
    /* passed over: its answer will not come (PROTOCOL.md: a leave cancels a joined) */
    if (w->conn) {
      const hsess_carrier_ops_t *ops = w->ops;
      void *conn = w->conn;
      waiter_unheld(s->hs, w);
      ops->respond(conn, 204, TEXT_TYPE, NO_STORE, NULL);
    }
    wsc_pool_free(&g_waiter_pool, w);
  }
  return NULL;
}

static void open_finish_held(hsess_t *s);

static int op_reply(void *ud, wsc_buf_t *msg) {
  hsess_t *s = ud;
  /* the first payload: its type decides */
  first_payload_t fp = {0, 0, 0};
  each_payload(&fp, msg, first_cb);
  if (!fp.found) return 0;
  const char *json = (const char *)msg->data + fp.off;
  hsess_msg_type_t t = hsess_msg_type(json, fp.len);
  if (s->attaching) {
    if (t == HSESS_MSG_WELCOME && !s->welcome) {
      s->welcome = wsc_buf_ref(msg);
      if (s->opener) open_finish_held(s);
      else if (s->rehome_wait) rehome_attached(s);
      return 0;
    }
    return push_msg(s, msg, 1);
  }
  const hsess_carrier_ops_t *ops = NULL;
  void *conn = NULL;
  int answering = 0;
  if (s->current && !s->current->answered && t != HSESS_MSG_OTHER) {
    ops = s->current->ops;
    conn = s->current->conn;
    s->current->answered = 1;
    answering = 1;
  } else {
    hsess_waiter_t *w = match_waiter(s, t);
    if (w) {
      ops = w->ops;
      conn = w->conn;
      answering = conn != NULL;
      waiter_unheld(s->hs, w);
      wsc_pool_free(&g_waiter_pool, w);
      if (!answering) return push_msg(s, msg, 1);   /* its request is gone: keep it for a poll */
    }
  }
  if (!answering) return push_msg(s, msg, 1);
  int status = t == HSESS_MSG_ERROR ? hsess_error_status(json, fp.len) : 200;
  respond_json(ops, conn, status, json, fp.len);
  lru_touch(s->hs, s);
  /* a join's replay follows its joined: events */
  int rc = msg->hdr ? 0 : each_payload(s, msg, push_rest_cb);
  wake(s);
  return rc ? -1 : 0;
}

static void session_end(hsess_t *s, int why);

static void op_close(void *ud, int code, const char *reason) {
  hsess_t *s = ud;
  LOG_INFO(LOG_COMP, "session ended code=%d reason=%s", code, reason);
  session_end(s, END_REPLACED);
}

static const chat_transport_ops_t hsess_chat_ops = {
    .send = op_send, .reply = op_reply, .notify = op_send, .close = op_close,
};

/* --- session lifetime ------------------------------------------------------------- */

static hsess_t *session_get(hsess_server_t *hs, const char *token) {
  return token[0] ? wsc_hmap_get(&hs->by_token, token, strlen(token)) : NULL;
}

static void overflow_unlink(hsess_server_t *hs, hsess_t *s) {
  if (!s->overflowed) return;
  for (hsess_t **pp = &hs->overflowed; *pp; pp = &(*pp)->onext)
    if (*pp == s) {
      *pp = s->onext;
      break;
    }
  s->overflowed = 0;
  s->onext = NULL;
}

/* Every waiting send is answered (if its request is still there) and freed. */
static void fail_sends(hsess_t *s, int status, const char *msg) {
  hsess_waiter_t *w;
  while ((w = fifo_pop(s))) {
    const hsess_carrier_ops_t *ops = w->ops;
    void *conn = w->conn;
    waiter_unheld(s->hs, w);
    if (conn) respond_text(ops, conn, status, msg);
    wsc_pool_free(&g_waiter_pool, w);
  }
}

static void inst_str(const hsess_t *s, char out[HSR_INST_MAX]) {
  snprintf(out, HSR_INST_MAX, "%s.%" PRIu64, hsr_node(s->hs->hsr), s->inst);
}

static void session_end(hsess_t *s, int why) {
  hsess_server_t *hs = s->hs;
  if (s->opener) {   /* ended before its welcome: the held POST gets 503 */
    const hsess_carrier_ops_t *ops;
    void *conn = opener_take(s, &ops);
    if (conn) respond_text(ops, conn, 503, "the session could not be opened; try again");
  }
  if (wsc_hmap_get(&hs->by_token, s->token, strlen(s->token)) == s)
    wsc_hmap_del(&hs->by_token, s->token, strlen(s->token));
  if (s->published) {   /* the record and queue go (unless a takeover made new ones) */
    char inst[HSR_INST_MAX];
    inst_str(s, inst);
    hsr_end(hs->hsr, s->token, inst);
  }
  lru_remove(hs, s);
  overflow_unlink(hs, s);
  if (s->stalled) hs->n_stalled--;
  s->stalled = 0;
  if (s->poll) answer_poll_empty(s);   /* replaced: the held poll gets [] at once */
  lru_remove(hs, s);
  fail_sends(s, 404, why == END_REPLACED ? "the session was taken over" : "the session ended");
  drop_acked(s, UINT64_MAX);
  free(s->q);
  if (s->welcome) wsc_buf_unref(s->welcome);
  chat_client_t *c = s->chat;
  s->chat = NULL;
  hs->n_sessions--;
  wsc_metrics.http_sessions = (int64_t)hs->n_sessions;
  LOG_DEBUG(LOG_COMP, "session end why=%d", why);
  wsc_pool_free(&g_session_pool, s);
  if (c) chat_client_detach(c);   /* leaves its rooms: presence leave */
}

/* Attaches s's chat client (a new session, or the same token again after an
 * overflow). Replies captured: welcome kept in s->welcome, errors queued. */
static int session_attach(hsess_t *s, const chat_connect_params_t *p) {
  s->attaching = 1;
  s->chat = chat_client_attach(s->hs->chat, &hsess_chat_ops, s, p);
  s->attaching = 0;
  return s->chat ? 0 : -1;
}

/* After an overflow: the old client leaves its rooms and a new one takes
 * the same session token (and name), in no room. */
static int reattach(hsess_t *s) {
  hsess_server_t *hs = s->hs;
  if (s->published && !hsr_up(hs->hsr)) return -1;   /* Redis away: stays in the list */
  overflow_unlink(hs, s);
  fail_sends(s, 503, "the session's event queue overflowed; see history for what was stored");
  chat_client_t *old = s->chat;
  s->chat = NULL;
  if (old) chat_client_detach(old);
  chat_connect_params_t p = {.session = s->token};
  if (session_attach(s, &p) < 0) {
    session_end(s, END_EXPIRED);
    return -1;
  }
  if (s->welcome) {
    wsc_buf_unref(s->welcome);
    s->welcome = NULL;
  }
  wake(s);
  return 0;
}

/* --- the tick -------------------------------------------------------------------- */

static void cluster_waiter_timeout(hsess_server_t *hs, hsess_waiter_t *w);

static void waiter_timeout(hsess_server_t *hs, hsess_waiter_t *w) {
  if (w->kind == W_CPOLL || w->kind == W_RSEND) {
    cluster_waiter_timeout(hs, w);
    return;
  }
  hsess_t *s = w->s;
  if (w->kind == W_OPEN) {
    session_end(s, END_EXPIRED);   /* answers the held POST 503 */
    return;
  }
  if (w->kind == W_POLL) {
    answer_poll(s);   /* nothing arrived: [] */
    return;
  }
  /* a send without its reply yet: the reply, when it comes, is an event */
  const hsess_carrier_ops_t *ops = w->ops;
  void *conn = w->conn;
  waiter_unheld(hs, w);
  if (conn) respond_text(ops, conn, 503, "no reply in time; it will come as an event");
}

static void cluster_check_use(hsess_t *s);
static void cluster_resume_all(hsess_server_t *hs);

static void on_tick(uv_timer_t *t) {
  hsess_server_t *hs = t->data;
  int64_t now = wsc_mono_ms();
  /* slots whose whole span has passed */
  while ((hs->wheel_tick + 1) * HSESS_TICK_MS <= now) {
    size_t slot = (size_t)(hs->wheel_tick % HSESS_WHEEL_SLOTS);
    hsess_waiter_t *w = hs->wheel[slot];
    while (w) {
      hsess_waiter_t *next = w->wnext;
      if (w->deadline <= now) waiter_timeout(hs, w);
      w = next;
    }
    hs->wheel_tick++;
  }
  if (hs->n_stalled && hsr_up(hs->hsr)) cluster_resume_all(hs);
  for (hsess_t *o; (o = hs->overflowed);)
    if (reattach(o) < 0 && hs->overflowed == o) break;
  int64_t ttl = hs->cfg->http_session_ttl_ms;
  while (hs->lru_head && now - hs->lru_head->last_seen >= ttl) {
    hsess_t *s = hs->lru_head;
    if (s->poll) {
      lru_touch(hs, s);   /* a held long poll counts as a request */
      continue;
    }
    if (s->published) {   /* used on another node meanwhile? Redis knows */
      cluster_check_use(s);
      continue;
    }
    wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_EXPIRED]++;
    LOG_INFO(LOG_COMP, "session expired idle_ms=%" PRId64, now - s->last_seen);
    session_end(s, END_EXPIRED);
  }
}

/* --- the endpoints --------------------------------------------------------------- */

static int method_is(const char *m, const char *want) { return strcmp(m, want) == 0; }

/* The new session could not be set up: undone, 503. */
static void open_fail(hsess_t *s, const hsess_carrier_ops_t *ops, void *conn) {
  hsess_server_t *hs = s->hs;
  hs->n_sessions--;
  wsc_metrics.http_sessions = (int64_t)hs->n_sessions;
  if (s->chat) chat_client_detach(s->chat);
  if (s->welcome) wsc_buf_unref(s->welcome);
  drop_acked(s, UINT64_MAX);
  free(s->q);
  wsc_pool_free(&g_session_pool, s);
  respond_text(ops, conn, 503, "out of memory");
}

static void cluster_publish(hsess_t *s, const hsess_carrier_ops_t *ops, void *conn);

/* The welcome is here: the session gets its token and the POST its answer. */
static void open_finish(hsess_t *s, const hsess_carrier_ops_t *ops, void *conn) {
  hsess_server_t *hs = s->hs;
  const char *token = NULL;
  char tbuf[CHAT_TOKEN_TEXT];
  s->attaching = 0;
  if (!s->welcome || !(token = chat_client_token(s->chat, tbuf)) || strlen(token) > HSESS_TOKEN_MAX) {
    open_fail(s, ops, conn);
    return;
  }
  snprintf(s->token, sizeof s->token, "%s", token);
  if (wsc_hmap_put(&hs->by_token, s->token, strlen(s->token), s) < 0) {
    session_end(s, END_EXPIRED);
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  lru_touch(hs, s);
  if (hs->hsr) {   /* the POST is answered once the record is in Redis */
    cluster_publish(s, ops, conn);
    return;
  }
  wsc_buf_t *w = s->welcome;
  s->welcome = NULL;
  respond_json(ops, conn, 200, outbuf_json(w), outbuf_json_len(w));
  wsc_buf_unref(w);
}

static void open_finish_held(hsess_t *s) {
  const hsess_carrier_ops_t *ops;
  void *conn = opener_take(s, &ops);
  open_finish(s, ops, conn);
}

static void open_session(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn,
                         const uint8_t *body, size_t body_len) {
  hsess_open_t o;
  const char *err = NULL;
  if (hsess_parse_open(body, body_len, &o, &err) < 0) {
    respond_text(ops, conn, 400, err);
    return;
  }
  if (hs->n_sessions >= (size_t)hs->cfg->max_connections) {
    respond_text(ops, conn, 503, "too many HTTP sessions");
    return;
  }
  hsess_t *s = wsc_pool_alloc(&g_session_pool);
  if (!s) {
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  s->hs = hs;
  s->first_seq = 1;
  hs->n_sessions++;
  wsc_metrics.http_sessions = (int64_t)hs->n_sessions;
  chat_connect_params_t p = {.name = o.has_name ? o.name : NULL, .session = o.has_session ? o.session : NULL};
  if (session_attach(s, &p) < 0) {
    open_fail(s, ops, conn);
    return;
  }
  if (!s->welcome && chat_client_attaching(s->chat)) {
    /* The directory (many nodes on Redis) confirms the name later: hold
     * the POST until the welcome comes (op_reply), or the send timeout. */
    hsess_waiter_t *w = hs->n_held < (size_t)hs->cfg->max_held ? wsc_pool_alloc(&g_waiter_pool) : NULL;
    if (!w) {
      open_fail(s, ops, conn);
      return;
    }
    s->attaching = 1;   /* op_reply keeps capturing until the welcome */
    opener_hold(s, w, ops, conn);
    return;
  }
  open_finish(s, ops, conn);
}

/* The session a request names (404 answered when there is none). */
static hsess_t *request_session(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn,
                                const char *query, size_t query_len, hsess_query_t *q) {
  const char *err = NULL;
  if (hsess_parse_query(query, query_len, q, &err) < 0) {
    respond_text(ops, conn, 400, err);
    return NULL;
  }
  if (!q->session[0]) {
    respond_text(ops, conn, 400, "session=TOKEN is required");
    return NULL;
  }
  hsess_t *s = session_get(hs, q->session);
  if (!s) {
    respond_text(ops, conn, 404, "unknown session (expired, taken over, or never made): POST /http/session");
    return NULL;
  }
  lru_touch(hs, s);
  if (s->overflowed && reattach(s) < 0) {
    respond_text(ops, conn, 503, s->published ? "the shared store is unreachable; try again" : "out of memory");
    return NULL;
  }
  return s;
}

/* Checks a /http/send's body: 0, or answered (-1). */
static int send_body_ok(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn, const uint8_t *body,
                        size_t body_len) {
  if (body_len > hs->cfg->max_chat_message) {
    respond_text(ops, conn, 413, "a chat message must fit in 64 KiB");
    return -1;
  }
  if (!ws_utf8_valid(body, body_len)) {
    respond_text(ops, conn, 400, "the body must be UTF-8 text");
    return -1;
  }
  return 0;
}

/* One client message of session s, for a request answered through ops/conn
 * (a local connection, or a node that forwarded it). */
static void session_send(hsess_server_t *hs, hsess_t *s, const hsess_carrier_ops_t *ops, void *conn,
                         const uint8_t *body, size_t body_len) {
  if (send_body_ok(hs, ops, conn, body, body_len) < 0) return;
  if (s->rehoming) {
    respond_text(ops, conn, 503, "the session is moving to this node (its node stopped); try again");
    return;
  }
  if (s->n_sends >= HSESS_SENDS_MAX) {
    respond_text(ops, conn, 429, "too many requests of this session waiting for their replies");
    return;
  }
  hsess_req_kind_t kind = hsess_req_kind(body, body_len);
  hs_current_t cur = {ops, conn, 0};
  s->current = &cur;
  chat_client_receive(s->chat, (const char *)body, body_len);
  s->current = NULL;
  if (cur.answered) return;
  if (kind != HSESS_REQ_SEND && kind != HSESS_REQ_JOIN && kind != HSESS_REQ_HISTORY) {
    ops->respond(conn, 204, TEXT_TYPE, NO_STORE, NULL);   /* typing: WebSocket has no reply */
    return;
  }
  /* The answer comes after the store: wait for it (in order, see above). */
  hsess_waiter_t *w = wsc_pool_alloc(&g_waiter_pool);
  if (!w) {
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  w->s = s;
  w->kind = W_SEND;
  w->req = (uint8_t)kind;
  if (s->sends_tail) s->sends_tail->fnext = w;
  else s->sends = w;
  s->sends_tail = w;
  s->n_sends++;
  if (hs->n_held >= (size_t)hs->cfg->max_held) {
    wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_HELD_LIMIT]++;
    respond_text(ops, conn, 503, "too many held requests; the reply will come as an event");
    return;   /* an orphan: its reply is queued as an event */
  }
  waiter_hold(hs, w, ops, conn, wsc_mono_ms() + HSESS_SEND_TIMEOUT_MS);
}

/* --- cluster (--redis): sessions in Redis --------------------------------------------
 *
 * See http_session_redis.h for the keys and messages. This node is the home
 * of the sessions in by_token (their chat clients live here) and serves
 * polls for ANY session from Redis (cpolls), forwarding sends for sessions
 * that live elsewhere (rsends). Every callback from Redis names what it is
 * for by token and a number (inst, serial, reqid) and finds it again: what
 * ended meanwhile is not found, and the answer is dropped. */

#define HSESS_FORWARD_SLACK_MS 2000   /* a forwarded send waits for its home this much past its timeout */
#define HSESS_NODE_MAX 32

/* A poll this node serves from Redis (one per token). */
typedef struct cpoll {
  hsess_server_t *hs;
  hsess_waiter_t *w;              /* held request (W_CPOLL) */
  uint64_t serial, gen, ack, superseded;
  int64_t timeout_ms;             /* 0: answer at once */
  uint8_t held;                   /* in Redis as the session's poller; waiting for a wake */
  uint8_t reading, again;         /* a read in flight; a wake came during it */
  char token[HSESS_TOKEN_MAX + 1];
} cpoll_t;

/* A send forwarded to the session's home. */
typedef struct rsend {
  hsess_server_t *hs;
  hsess_waiter_t *w;
  uint64_t reqid;
  char key[24];
  char token[HSESS_TOKEN_MAX + 1];
} rsend_t;

/* Where the maps' values keep their keys (base/hmap). */
static const char *hsess_key(const void *v, size_t *len) {
  *len = strlen(((const hsess_t *)v)->token);
  return ((const hsess_t *)v)->token;
}
static const char *cpoll_key(const void *v, size_t *len) {
  *len = strlen(((const cpoll_t *)v)->token);
  return ((const cpoll_t *)v)->token;
}
static const char *rsend_key(const void *v, size_t *len) {
  *len = strlen(((const rsend_t *)v)->key);
  return ((const rsend_t *)v)->key;
}

/* reqid 0 in a forward: not a client message but a reply whose request is
 * gone, for the home to queue as an event (as one node does). */
#define HSESS_REQID_EVENT 0

/* The reference an async call keeps: what to find again. */
typedef struct cref {
  hsess_server_t *hs;
  uint64_t id;                    /* inst, serial or reqid */
  int64_t local_last;             /* last-use check: local last_seen before asking */
  uint64_t seq;                   /* an append: the event's seq */
  char token[HSESS_TOKEN_MAX + 1];
} cref_t;

/* A forwarded request being answered here (the home): its carrier conn. */
typedef struct rconn {
  hsess_server_t *hs;
  uint64_t reqid;
  char node[HSESS_NODE_MAX + 1];
} rconn_t;

static cref_t *cref_new(hsess_server_t *hs, const char *token, uint64_t id) {
  cref_t *r = malloc(sizeof *r);
  if (!r) return NULL;
  r->hs = hs;
  r->id = id;
  r->local_last = 0;
  r->seq = 0;
  snprintf(r->token, sizeof r->token, "%s", token);
  return r;
}

/* A Redis callback ran: 1 to go on, 0 when the server is gone (freed here
 * with the last one). */
static int cref_enter(cref_t *r) {
  hsess_server_t *hs = r->hs;
  hs->inflight--;
  if (!hs->dead) return 1;
  if (hs->inflight == 0) free(hs);
  free(r);
  return 0;
}

static hsess_t *cref_session(const cref_t *r) {
  hsess_t *s = session_get(r->hs, r->token);
  return s && s->inst == r->id ? s : NULL;
}

/* A Redis callback about a session: the reference copied to *out and
 * freed; the session, or NULL when it ended (or the server is gone). */
static hsess_t *cref_take(void *ud, cref_t *out) {
  cref_t *r = ud;
  if (!cref_enter(r)) return NULL;
  *out = *r;
  hsess_t *s = cref_session(r);
  free(r);
  return s;
}

static void cluster_unreachable(const hsess_carrier_ops_t *ops, void *conn) {
  respond_text(ops, conn, 503, "the shared store is unreachable; try again");
}

/* -- the home: records, events ------------------------------------------------------ */

static void set_stalled(hsess_t *s) {
  if (s->stalled) return;
  s->stalled = 1;
  s->hs->n_stalled++;
}

static void on_synced(void *ud, int status, int64_t v) {
  cref_t r;
  hsess_t *s = cref_take(ud, &r);
  if (!s) return;
  uint64_t seq = r.seq;
  if (status < 0) {   /* no answer (it may or may not have run): resend all when the link is up */
    set_stalled(s);
  } else if (v == 0) {   /* in Redis: no longer kept here */
    if (s->reset_pending && s->n && s->first_seq == seq) s->reset_pending = 0;
    drop_acked(s, seq);
  } else if (v == 1 && s->n && seq >= s->first_seq && !s->reset_pending && !s->overflowed) {
    overflow(s);   /* the queue in Redis is full: as on one node */
  }
}

/* Sends the i-th event of the local queue to Redis (an append, or the
 * reset when it is the overflow error). No answer: stalled. */
static void cluster_send_at(hsess_t *s, uint32_t i) {
  hsess_server_t *hs = s->hs;
  const hs_event_t *e = &s->q[(s->head + i) % s->cap];
  uint64_t seq = s->first_seq + i;
  const char *json = (const char *)e->b->data + e->off;
  char head[40], inst[HSR_INST_MAX];
  int hl = snprintf(head, sizeof head, "{\"seq\":%" PRIu64 ",", seq);
  char *ev = e->len >= 2 && json[0] == '{' ? malloc((size_t)hl + e->len - 1) : NULL;
  cref_t *r = cref_new(hs, s->token, s->inst);
  if (!ev || !r) {
    free(ev);
    free(r);
    set_stalled(s);
    return;
  }
  r->seq = seq;
  memcpy(ev, head, (size_t)hl);
  memcpy(ev + hl, json + 1, e->len - 1);
  size_t len = (size_t)hl + e->len - 1;
  int limit = e->whole ? hs->cfg->http_queue_max + hs->cfg->replay_max + 1 : hs->cfg->http_queue_max;
  inst_str(s, inst);
  int rc = i == 0 && s->reset_pending ? hsr_reset(hs->hsr, s->token, inst, seq, ev, len, on_synced, r)
                                      : hsr_append(hs->hsr, s->token, inst, seq, ev, len, limit, on_synced, r);
  free(ev);
  if (rc < 0) {
    free(r);
    set_stalled(s);
    return;
  }
  hs->inflight++;
}

/* The link is up again: every stalled session sends what Redis has not
 * confirmed, in order (what did reach Redis is skipped there). */
static void cluster_resume_all(hsess_server_t *hs) {
  for (hsess_t *s = hs->lru_head; s && hs->n_stalled; s = s->lnext) {
    if (!s->stalled) continue;
    s->stalled = 0;
    hs->n_stalled--;
    for (uint32_t i = 0; i < s->n && !s->stalled; i++) cluster_send_at(s, i);
  }
}

static void on_created(void *ud, int status, int64_t v) {
  cref_t r;
  (void)v;
  hsess_t *s = cref_take(ud, &r);
  if (!s || !s->opener) return;
  if (status < 0) {
    session_end(s, END_EXPIRED);   /* the held POST gets 503 */
    return;
  }
  const hsess_carrier_ops_t *ops;
  void *conn = opener_take(s, &ops);
  wsc_buf_t *wb = s->welcome;
  s->welcome = NULL;
  if (conn && wb) respond_json(ops, conn, 200, outbuf_json(wb), outbuf_json_len(wb));
  if (wb) wsc_buf_unref(wb);
}

/* The session has its token: its record goes to Redis (with the events
 * queued while attaching), and the POST is answered once Redis has it. */
static void cluster_publish(hsess_t *s, const hsess_carrier_ops_t *ops, void *conn) {
  hsess_server_t *hs = s->hs;
  s->inst = ++hs->next_inst;
  char inst[HSR_INST_MAX];
  inst_str(s, inst);
  hsess_waiter_t *w = wsc_pool_alloc(&g_waiter_pool);
  cref_t *r = cref_new(hs, s->token, s->inst);
  if (!w || !r || !hsr_token_ok(s->token) || hsr_create(hs->hsr, s->token, inst, on_created, r) < 0) {
    if (w) wsc_pool_free(&g_waiter_pool, w);
    free(r);
    session_end(s, END_EXPIRED);
    cluster_unreachable(ops, conn);
    return;
  }
  hs->inflight++;
  s->published = 1;
  for (uint32_t i = 0; i < s->n && !s->stalled; i++) cluster_send_at(s, i);   /* queued while attaching */
  opener_hold(s, w, ops, conn);
}

/* -- the home: a session whose home died moves here ---------------------------------------- */

static const char MOVED_JSON[] =
    "{\"type\":\"error\",\"code\":\"moved\",\"message\":\"the node holding this session stopped; the "
    "session moved to another node and left its rooms: join again with since\"}";

static void on_rehomed(void *ud, int status, int64_t seq) {
  cref_t r;
  hsess_t *s = cref_take(ud, &r);
  if (!s) return;
  if (status < 0 || seq < 0) {   /* Redis away, or another node took it first */
    LOG_INFO(LOG_COMP, "session move refused status=%d answer=%" PRId64, status, seq);
    session_end(s, END_EXPIRED);
    return;
  }
  s->rehoming = 0;
  s->first_seq = (uint64_t)seq + 1;   /* the queue goes on after the moved error */
  s->published = 1;
  for (uint32_t i = 0; i < s->n && !s->stalled; i++) cluster_send_at(s, i);
  LOG_INFO(LOG_COMP, "session moved here from a dead node seq=%" PRId64, seq);
}

/* The chat client took the session (the token, and its name): the record
 * in Redis moves here. */
static void rehome_attached(hsess_t *s) {
  hsess_server_t *hs = s->hs;
  s->attaching = 0;
  s->rehome_wait = 0;
  if (s->welcome) {
    wsc_buf_unref(s->welcome);
    s->welcome = NULL;
  }
  char tbuf[CHAT_TOKEN_TEXT];
  const char *tok = chat_client_token(s->chat, tbuf);
  if (!tok || strcmp(tok, s->token) != 0) {   /* the directory no longer knew the token */
    session_end(s, END_EXPIRED);
    return;
  }
  s->inst = ++hs->next_inst;
  char inst[HSR_INST_MAX];
  inst_str(s, inst);
  cref_t *r = cref_new(hs, s->token, s->inst);
  if (!r || hsr_rehome(hs->hsr, s->token, inst, MOVED_JSON, sizeof MOVED_JSON - 1, on_rehomed, r) < 0) {
    free(r);
    session_end(s, END_EXPIRED);
    return;
  }
  hs->inflight++;
}

/* A request found the session's home dead (swept): this node becomes its
 * home. The chat client reclaims the session's token and name, in no room;
 * the client is told by a `moved` error event (appended by the move itself),
 * after what was queued. */
static void cluster_rehome(hsess_server_t *hs, const char *token) {
  if (session_get(hs, token) || hs->n_sessions >= (size_t)hs->cfg->max_connections || !hsr_up(hs->hsr)) return;
  hsess_t *s = wsc_pool_alloc(&g_session_pool);
  if (!s) return;
  s->hs = hs;
  s->first_seq = 1;
  s->rehoming = 1;
  snprintf(s->token, sizeof s->token, "%s", token);
  if (wsc_hmap_put(&hs->by_token, s->token, strlen(s->token), s) < 0) {
    wsc_pool_free(&g_session_pool, s);
    return;
  }
  hs->n_sessions++;
  wsc_metrics.http_sessions = (int64_t)hs->n_sessions;
  lru_touch(hs, s);
  chat_connect_params_t p = {.session = s->token};
  if (session_attach(s, &p) < 0) {
    session_end(s, END_EXPIRED);
    return;
  }
  if (s->welcome) {
    rehome_attached(s);
  } else if (chat_client_attaching(s->chat)) {
    s->attaching = 1;   /* op_reply captures until the welcome */
    s->rehome_wait = 1;
  } else {
    session_end(s, END_EXPIRED);
  }
}

/* After the session was last used for the TTL: where (on any node)? */
static void lru_insert_sorted(hsess_server_t *hs, hsess_t *s) {
  hsess_t *p = hs->lru_tail;
  while (p && p->last_seen > s->last_seen) p = p->lprev;
  s->lprev = p;
  s->lnext = p ? p->lnext : hs->lru_head;
  if (s->lnext) s->lnext->lprev = s;
  else hs->lru_tail = s;
  if (p) p->lnext = s;
  else hs->lru_head = s;
}

static void on_last_use(void *ud, int status, int64_t last) {
  cref_t r;
  hsess_t *s = cref_take(ud, &r);
  if (!s) return;
  int64_t local_last = r.local_last;
  hsess_server_t *hs = s->hs;
  int64_t asked = s->check_ms;
  s->check_ms = 0;
  if (status < 0 || s->last_seen > asked) return;   /* unknown, or used here since: as touched */
  int64_t now = wsc_mono_ms(), ttl = hs->cfg->http_session_ttl_ms;
  int64_t idle = now - local_last;
  if (last >= 0 && wsc_now_ms() - last < idle) idle = wsc_now_ms() - last;
  if (idle < 0) idle = 0;
  if (last >= 0 && idle < ttl) {
    lru_remove(hs, s);
    s->last_seen = now - idle;
    lru_insert_sorted(hs, s);
    return;
  }
  wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_EXPIRED]++;
  LOG_INFO(LOG_COMP, "session expired idle_ms=%" PRId64, idle);
  session_end(s, END_EXPIRED);
}

static void cluster_check_use(hsess_t *s) {
  hsess_server_t *hs = s->hs;
  cref_t *r = cref_new(hs, s->token, s->inst);
  int64_t local_last = s->last_seen;
  lru_touch(hs, s);   /* until the answer (or forever while Redis is away): alive */
  if (!r) return;
  r->local_last = local_last;
  if (hsr_last_use(hs->hsr, s->token, on_last_use, r) < 0) {
    free(r);
    return;
  }
  hs->inflight++;
  s->check_ms = s->last_seen;
}

/* -- the home: sends forwarded by other nodes -------------------------------------------- */

static void remote_hold(void *conn, hsess_waiter_t *w) {
  (void)conn;
  (void)w;   /* the node that asked holds the client's request */
}

static void remote_respond(void *conn, int status, const char *type, const char *extra, wsc_buf_t *body) {
  rconn_t *rc = conn;
  (void)extra;
  if (rc->hs->hsr)
    hsr_answer(rc->hs->hsr, rc->node, rc->reqid, status, strcmp(type, JSON_TYPE) == 0,
               body ? (const char *)wsc_buf_bytes(body) : NULL, body ? body->len : 0);
  free(rc);
}

static const hsess_carrier_ops_t remote_carrier = {.hold = remote_hold, .respond = remote_respond};

static void on_remote_send(void *ud, uint64_t reqid, const char *node, const char *token, const char *body,
                           size_t len) {
  hsess_server_t *hs = ud;
  if (reqid == HSESS_REQID_EVENT) {
    hsess_t *s = session_get(hs, token);
    wsc_buf_t *e = s && !s->rehoming && len >= 2 && body[0] == '{' ? outbuf_text(body, len) : NULL;
    if (e) {
      push_msg(s, e, 1);
      wsc_buf_unref(e);
    }
    return;
  }
  rconn_t *rc = strlen(node) <= HSESS_NODE_MAX ? malloc(sizeof *rc) : NULL;
  if (!rc) return;   /* the asking node answers 503 at its timeout */
  rc->hs = hs;
  rc->reqid = reqid;
  snprintf(rc->node, sizeof rc->node, "%s", node);
  hsess_t *s = session_get(hs, token);
  if (!s) {
    respond_text(&remote_carrier, rc, 404,
                 "unknown session (expired, taken over, or never made): POST /http/session");
    return;
  }
  lru_touch(hs, s);
  if (s->overflowed && reattach(s) < 0) {
    cluster_unreachable(&remote_carrier, rc);
    return;
  }
  session_send(hs, s, &remote_carrier, rc, (const uint8_t *)body, len);
}

/* -- any node: sends for a session whose home is elsewhere -------------------------------- */

static rsend_t *rsend_find(hsess_server_t *hs, uint64_t reqid) {
  char key[24];
  int n = snprintf(key, sizeof key, "%" PRIu64, reqid);
  return wsc_hmap_get(&hs->rsends, key, (size_t)n);
}

/* Answers a forwarded send's request and forgets it. */
static void rsend_finish(hsess_server_t *hs, rsend_t *rs, int status, const char *type, const char *body,
                         size_t len) {
  hsess_waiter_t *w = rs->w;
  const hsess_carrier_ops_t *ops = w->ops;
  void *conn = w->conn;
  wsc_hmap_del(&hs->rsends, rs->key, strlen(rs->key));
  waiter_unheld(hs, w);
  wsc_pool_free(&g_waiter_pool, w);
  free(rs);
  if (!conn) return;
  if (!type) {
    respond_text(ops, conn, status, body);
    return;
  }
  wsc_buf_t *b = len ? wsc_buf_from(0, body, len) : NULL;
  ops->respond(conn, status, type, NO_STORE, b);
  if (b) wsc_buf_unref(b);
}

static void cluster_rehome(hsess_server_t *hs, const char *token);

static void on_forwarded(void *ud, int status, int64_t v) {
  cref_t *r = ud;
  (void)v;
  if (!cref_enter(r)) return;
  hsess_server_t *hs = r->hs;
  rsend_t *rs = rsend_find(hs, r->id);
  char token[HSESS_TOKEN_MAX + 1];
  snprintf(token, sizeof token, "%s", r->token);
  free(r);
  if (!rs || status == 0) return;   /* answered already, or the home has it now */
  if (status == HSR_E_UNKNOWN) {
    rsend_finish(hs, rs, 404, NULL, "unknown session (expired, taken over, or never made): POST /http/session", 0);
  } else if (status == HSR_E_HOME_GONE) {   /* it moves here; the next request finds it */
    cluster_rehome(hs, token);
    rsend_finish(hs, rs, 503, NULL, "the session's node stopped: the session moves to this node; try again", 0);
  } else if (status == HSR_E_NO_ANSWER) {
    rsend_finish(hs, rs, 503, NULL, "the session's node is not answering (it may have stopped); try again", 0);
  } else {
    rsend_finish(hs, rs, 503, NULL, "the shared store became unreachable: the message may or may not have been run", 0);
  }
}

static void on_remote_reply(void *ud, uint64_t reqid, int status, int json, const char *body, size_t len) {
  hsess_server_t *hs = ud;
  rsend_t *rs = rsend_find(hs, reqid);
  if (!rs) return;   /* timed out: dropped (the home queued it as an event at its own timeout) */
  if (!rs->w->conn && json && hs->hsr)   /* its client went away: the home queues it as an event */
    hsr_forward(hs->hsr, rs->token, HSESS_REQID_EVENT, body, len, NULL, NULL);
  if (status < 100 || status > 599) status = 502;
  rsend_finish(hs, rs, status, json ? JSON_TYPE : TEXT_TYPE, body, len);
}

/* 1 when the send was taken care of here (forwarded, or refused), 0 when
 * the session lives on this node (or the query is bad: the local path says so). */
static int cluster_send_elsewhere(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn,
                                  const char *query, size_t query_len, const uint8_t *body, size_t body_len) {
  hsess_query_t q;
  const char *err = NULL;
  if (hsess_parse_query(query, query_len, &q, &err) < 0 || !q.session[0] || session_get(hs, q.session) ||
      !hsr_token_ok(q.session))
    return 0;
  if (send_body_ok(hs, ops, conn, body, body_len) < 0) return 1;
  if (!hsr_up(hs->hsr)) {
    cluster_unreachable(ops, conn);
    return 1;
  }
  if (hs->n_held >= (size_t)hs->cfg->max_held) {
    wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_HELD_LIMIT]++;
    respond_text(ops, conn, 503, "too many held requests; try again later");
    return 1;
  }
  rsend_t *rs = calloc(1, sizeof *rs);
  hsess_waiter_t *w = wsc_pool_alloc(&g_waiter_pool);
  uint64_t reqid = ++hs->next_reqid;
  cref_t *r = cref_new(hs, q.session, reqid);
  if (!rs || !w || !r) goto oom;
  rs->hs = hs;
  rs->reqid = reqid;
  rs->w = w;
  snprintf(rs->token, sizeof rs->token, "%s", q.session);
  snprintf(rs->key, sizeof rs->key, "%" PRIu64, reqid);
  if (wsc_hmap_put(&hs->rsends, rs->key, strlen(rs->key), rs) < 0) goto oom;
  if (hsr_forward(hs->hsr, q.session, reqid, (const char *)body, body_len, on_forwarded, r) < 0) {
    wsc_hmap_del(&hs->rsends, rs->key, strlen(rs->key));
    free(rs);
    wsc_pool_free(&g_waiter_pool, w);
    free(r);
    cluster_unreachable(ops, conn);
    return 1;
  }
  hs->inflight++;
  w->kind = W_RSEND;
  w->cx = rs;
  waiter_hold(hs, w, ops, conn, wsc_mono_ms() + HSESS_SEND_TIMEOUT_MS + HSESS_FORWARD_SLACK_MS);
  return 1;
oom:
  free(rs);
  if (w) wsc_pool_free(&g_waiter_pool, w);
  free(r);
  respond_text(ops, conn, 503, "out of memory");
  return 1;
}

/* -- any node: polls, from Redis ------------------------------------------------------------ */

static void cpoll_free(hsess_server_t *hs, cpoll_t *cp) {
  if (wsc_hmap_get(&hs->cpolls, cp->token, strlen(cp->token)) == cp)
    wsc_hmap_del(&hs->cpolls, cp->token, strlen(cp->token));
  if (cp->w) {
    waiter_unheld(hs, cp->w);
    wsc_pool_free(&g_waiter_pool, cp->w);
  }
  free(cp);
}

/* Answers the poll with these events (JSON texts with "seq") and ends it. */
static void cpoll_answer(hsess_server_t *hs, cpoll_t *cp, const char *const *ev, const size_t *lens, size_t n) {
  hsess_waiter_t *w = cp->w;
  const hsess_carrier_ops_t *ops = w->ops;
  void *conn = w->conn;
  cpoll_free(hs, cp);
  if (!conn) return;
  size_t total = 2;
  for (size_t i = 0; i < n; i++) total += lens[i] + 1;
  wsc_buf_t *b = wsc_buf_new(0, total);
  if (!b) {
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  wsc_metrics.http_polls++;
  if (n == 0) wsc_metrics.http_polls_empty++;
  char *p = (char *)b->data;
  *p++ = '[';
  for (size_t i = 0; i < n; i++) {
    if (i) *p++ = ',';
    memcpy(p, ev[i], lens[i]);
    p += lens[i];
  }
  *p++ = ']';
  b->len = (uint32_t)(p - (char *)b->data);
  ops->respond(conn, 200, JSON_TYPE, NO_STORE, b);
  wsc_buf_unref(b);
}

static void cpoll_answer_text(hsess_server_t *hs, cpoll_t *cp, int status, const char *msg) {
  hsess_waiter_t *w = cp->w;
  const hsess_carrier_ops_t *ops = w->ops;
  void *conn = w->conn;
  cpoll_free(hs, cp);
  if (conn) respond_text(ops, conn, status, msg);
}

static cpoll_t *cpoll_find(hsess_server_t *hs, const char *token, uint64_t serial) {
  cpoll_t *cp = wsc_hmap_get(&hs->cpolls, token, strlen(token));
  return cp && (serial == 0 || cp->serial == serial) ? cp : NULL;
}

static void cpoll_read(hsess_server_t *hs, cpoll_t *cp, int mode);

static void on_cpoll_read(void *ud, int status, uint64_t gen, uint64_t last, const char *const *ev,
                          const size_t *lens, size_t n) {
  cref_t *r = ud;
  if (!cref_enter(r)) return;
  hsess_server_t *hs = r->hs;
  cpoll_t *cp = cpoll_find(hs, r->token, r->id);
  free(r);
  if (!cp) return;
  cp->reading = 0;
  if (status == 0 && cp->held == 0) cp->gen = gen;
  if (status == HSR_E_DOWN) {
    if (!cp->held) cpoll_answer_text(hs, cp, 503, "the shared store is unreachable; poll again");
    return;   /* a held poll stays held: [] at its timeout */
  }
  if (status == HSR_E_UNKNOWN) {
    cpoll_answer_text(hs, cp, 404, "unknown session (expired, taken over, or never made): POST /http/session");
    return;
  }
  if (status == HSR_E_HOME_GONE) {   /* it moves here; the next poll finds it */
    cluster_rehome(hs, cp->token);
    cpoll_answer_text(hs, cp, 503, "the session's node stopped: the session moves to this node; poll again");
    return;
  }
  if (status == HSR_E_ACK) {
    char msg[96];
    snprintf(msg, sizeof msg, "ack is beyond the last event (seq %" PRIu64 ")", last);
    cpoll_answer_text(hs, cp, 400, msg);
    return;
  }
  if (status == HSR_E_SUPERSEDED || cp->superseded > cp->gen || n > 0 || cp->timeout_ms == 0) {
    cpoll_answer(hs, cp, ev, lens, status == 0 ? n : 0);
    return;
  }
  if (!cp->held) {   /* registered as the poller: wait for a wake, or the timeout */
    cp->held = 1;
    wheel_insert(hs, cp->w, wsc_mono_ms() + cp->timeout_ms);
  }
  if (cp->again) cpoll_read(hs, cp, HSR_POLL_REREAD);
}

static void cpoll_read(hsess_server_t *hs, cpoll_t *cp, int mode) {
  cref_t *r = cref_new(hs, cp->token, cp->serial);
  cp->again = 0;
  if (!r) return;
  int64_t hold_until = wsc_now_ms() + cp->timeout_ms;
  if (hsr_poll(hs->hsr, cp->token, cp->ack, mode, cp->gen, hold_until, hs->cfg->send_queue_limit, on_cpoll_read,
               r) < 0) {
    free(r);
    if (!cp->held) cpoll_answer_text(hs, cp, 503, "the shared store is unreachable; poll again");
    return;
  }
  hs->inflight++;
  cp->reading = 1;
}

static void on_wake(void *ud, const char *token) {
  hsess_server_t *hs = ud;
  cpoll_t *cp = cpoll_find(hs, token, 0);
  if (!cp) return;
  if (cp->reading) cp->again = 1;
  else if (cp->held) cpoll_read(hs, cp, HSR_POLL_REREAD);
}

static void on_supersede(void *ud, const char *token, uint64_t gen) {
  hsess_server_t *hs = ud;
  cpoll_t *cp = cpoll_find(hs, token, 0);
  if (!cp) return;
  if (cp->held && !cp->reading) {
    if (cp->gen < gen) cpoll_answer(hs, cp, NULL, NULL, 0);
  } else if (gen > cp->superseded) {
    cp->superseded = gen;   /* judged when the read in flight answers */
  }
}

/* A held poll's time is up, or its client went away: Redis forgets it. */
static void cpoll_end(hsess_server_t *hs, cpoll_t *cp, int answer) {
  if (cp->held) hsr_poll_done(hs->hsr, cp->token, cp->gen);
  if (answer) cpoll_answer(hs, cp, NULL, NULL, 0);
  else cpoll_free(hs, cp);
}

static void cluster_poll(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn, const char *query,
                         size_t query_len, int longpoll) {
  hsess_query_t q;
  const char *err = NULL;
  if (hsess_parse_query(query, query_len, &q, &err) < 0) {
    respond_text(ops, conn, 400, err);
    return;
  }
  if (!q.session[0]) {
    respond_text(ops, conn, 400, "session=TOKEN is required");
    return;
  }
  if (!hsr_token_ok(q.session)) {
    respond_text(ops, conn, 404, "unknown session (expired, taken over, or never made): POST /http/session");
    return;
  }
  if (!hsr_up(hs->hsr)) {
    respond_text(ops, conn, 503, "the shared store is unreachable; poll again");
    return;
  }
  cpoll_t *old = cpoll_find(hs, q.session, 0);
  if (old) cpoll_answer(hs, old, NULL, NULL, 0);   /* a newer poll takes over: the older gets [] */
  if (hs->n_held >= (size_t)hs->cfg->max_held) {
    wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_HELD_LIMIT]++;
    respond_text(ops, conn, 503, "too many held requests; poll again later");
    return;
  }
  hsess_t *s = session_get(hs, q.session);
  if (s) lru_touch(hs, s);
  cpoll_t *cp = calloc(1, sizeof *cp);
  hsess_waiter_t *w = wsc_pool_alloc(&g_waiter_pool);
  if (!cp || !w) {
    free(cp);
    if (w) wsc_pool_free(&g_waiter_pool, w);
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  cp->hs = hs;
  cp->w = w;
  cp->serial = ++hs->next_serial;
  cp->ack = q.ack;
  cp->timeout_ms = longpoll ? (int64_t)q.timeout_s * 1000 : 0;
  snprintf(cp->token, sizeof cp->token, "%s", q.session);
  w->kind = W_CPOLL;
  w->cx = cp;
  if (wsc_hmap_put(&hs->cpolls, cp->token, strlen(cp->token), cp) < 0) {
    wsc_pool_free(&g_waiter_pool, w);
    free(cp);
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  waiter_hold(hs, w, ops, conn, 0);   /* in the wheel once Redis says there is nothing yet */
  cpoll_read(hs, cp, cp->timeout_ms ? HSR_POLL_HOLD : HSR_POLL_NOW);
}

static void send_message(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn,
                         const char *query, size_t query_len, const uint8_t *body, size_t body_len) {
  hsess_query_t q;
  if (hs->hsr && cluster_send_elsewhere(hs, ops, conn, query, query_len, body, body_len)) return;
  hsess_t *s = request_session(hs, ops, conn, query, query_len, &q);
  if (!s) return;
  session_send(hs, s, ops, conn, body, body_len);
}

static void poll_events(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn,
                        const char *query, size_t query_len, int longpoll) {
  if (hs->hsr) {   /* any node serves any session's polls, from Redis */
    cluster_poll(hs, ops, conn, query, query_len, longpoll);
    return;
  }
  hsess_query_t q;
  hsess_t *s = request_session(hs, ops, conn, query, query_len, &q);
  if (!s) return;
  if (q.ack > last_seq(s)) {
    char msg[96];
    snprintf(msg, sizeof msg, "ack is beyond the last event (seq %" PRIu64 ")", last_seq(s));
    respond_text(ops, conn, 400, msg);
    return;
  }
  drop_acked(s, q.ack);
  if (s->poll) answer_poll_empty(s);   /* a newer poll takes over: the older gets [] */
  if (s->n || !longpoll || q.timeout_s == 0) {
    respond_events(s, ops, conn);
    return;
  }
  if (hs->n_held >= (size_t)hs->cfg->max_held) {
    wsc_metrics.cutoffs[WSC_CUTOFF_HTTP_HELD_LIMIT]++;
    respond_text(ops, conn, 503, "too many held requests; poll again later");
    return;
  }
  hsess_waiter_t *w = wsc_pool_alloc(&g_waiter_pool);
  if (!w) {
    respond_text(ops, conn, 503, "out of memory");
    return;
  }
  w->s = s;
  w->kind = W_POLL;
  w->ack = q.ack;
  s->poll = w;
  waiter_hold(hs, w, ops, conn, wsc_mono_ms() + (int64_t)q.timeout_s * 1000);
}

static void cluster_waiter_timeout(hsess_server_t *hs, hsess_waiter_t *w) {
  if (w->kind == W_CPOLL) {
    cpoll_end(hs, w->cx, 1);   /* nothing came: [] */
    return;
  }
  rsend_finish(hs, w->cx, 503, NULL, "no answer from the session's node in time", 0);
}

/* The client of a cluster request went away. */
static void cluster_waiter_gone(hsess_waiter_t *w) {
  if (w->kind == W_CPOLL) {
    cpoll_t *cp = w->cx;
    hsess_server_t *hs = cp->hs;
    waiter_unheld(hs, w);
    cpoll_end(hs, cp, 0);
    return;
  }
  /* a forwarded send: its answer, when it comes, goes back to the home to
   * be queued as an event (on_remote_reply), as one node does */
  rsend_t *rs = w->cx;
  if (w->conn) rs->hs->n_held--;
  wsc_metrics.http_held = (int64_t)rs->hs->n_held;
  w->conn = NULL;   /* stays in the wheel: forgotten at its timeout or answer */
}

void hsess_waiter_gone(void *ud) {
  hsess_waiter_t *w = ud;
  if (w->kind == W_CPOLL || w->kind == W_RSEND) {
    cluster_waiter_gone(w);
    return;
  }
  hsess_t *s = w->s;
  hsess_server_t *hs = s->hs;
  waiter_unheld(hs, w);
  if (w->kind == W_OPEN) {   /* nobody waits for the welcome any more */
    s->opener = NULL;
    wsc_pool_free(&g_waiter_pool, w);
    session_end(s, END_EXPIRED);
    return;
  }
  if (w->kind == W_POLL) {
    s->poll = NULL;
    wsc_pool_free(&g_waiter_pool, w);
    lru_touch(hs, s);   /* the TTL runs from the disconnect */
  }
  /* a send stays in the FIFO as an orphan: its reply becomes an event */
}

int hsess_path(const char *path, size_t len) { return len >= 6 && memcmp(path, "/http/", 6) == 0; }

static int path_eq(const char *path, size_t len, const char *want) {
  return len == strlen(want) && memcmp(path, want, len) == 0;
}

void hsess_handle(hsess_server_t *hs, const hsess_carrier_ops_t *ops, void *conn, const char *method,
                  const char *path, size_t path_len, const char *query, size_t query_len,
                  const uint8_t *body, size_t body_len) {
  int is_open = path_eq(path, path_len, "/http/session"), is_send = path_eq(path, path_len, "/http/send");
  int is_poll = path_eq(path, path_len, "/http/poll"), is_long = path_eq(path, path_len, "/http/longpoll");
  if (!is_open && !is_send && !is_poll && !is_long) {
    respond_text(ops, conn, 404, "not found: /http/session, /http/send, /http/poll, /http/longpoll");
    return;
  }
  if ((is_open || is_send) && !method_is(method, "POST")) {
    respond_text(ops, conn, 405, "this endpoint takes POST");
    return;
  }
  if ((is_poll || is_long) && !method_is(method, "GET")) {
    respond_text(ops, conn, 405, "this endpoint takes GET");
    return;
  }
  if (is_open) open_session(hs, ops, conn, body, body_len);
  else if (is_send) send_message(hs, ops, conn, query, query_len, body, body_len);
  else poll_events(hs, ops, conn, query, query_len, is_long);
}

/* --- the server ------------------------------------------------------------------- */

hsess_server_t *hsess_server_new(uv_loop_t *loop, const wsc_config_t *config, chat_server_t *chat,
                                 wsc_redis_t *redis) {
  hsess_server_t *hs = calloc(1, sizeof *hs);
  if (!hs) return NULL;
  hs->loop = loop;
  hs->cfg = config;
  hs->chat = chat;
  wsc_hmap_init(&hs->by_token, WSC_HMAP_EXACT, hsess_key);
  wsc_hmap_init(&hs->cpolls, WSC_HMAP_EXACT, cpoll_key);
  wsc_hmap_init(&hs->rsends, WSC_HMAP_EXACT, rsend_key);
  if (redis) {
    hsr_handler_t h = {.wake = on_wake, .supersede = on_supersede, .send = on_remote_send,
                       .reply = on_remote_reply, .ud = hs};
    hs->hsr = hsr_new(redis, config, &h);
    if (!hs->hsr) {
      free(hs);
      return NULL;
    }
  }
  hs->wheel_tick = wsc_mono_ms() / HSESS_TICK_MS;
  uv_timer_init(loop, &hs->timer);
  hs->timer.data = hs;
  uv_timer_start(&hs->timer, on_tick, HSESS_TICK_MS, HSESS_TICK_MS);
  return hs;
}

static void timer_closed(uv_handle_t *h) {
  hsess_server_t *hs = h->data;
  if (hs->inflight) hs->dead = 1;   /* the last Redis callback frees it */
  else free(hs);
}

void hsess_server_free(hsess_server_t *hs) {
  if (!hs) return;
  while (hs->lru_head) session_end(hs->lru_head, END_SHUTDOWN);
  for (uint32_t i = 0; i < hs->cpolls.cap; i++)
    if (hs->cpolls.vals[i]) {
      cpoll_answer_text(hs, hs->cpolls.vals[i], 503, "the server is shutting down");
      i = (uint32_t)-1;   /* the map changed: from the start */
    }
  for (uint32_t i = 0; i < hs->rsends.cap; i++)
    if (hs->rsends.vals[i]) {
      rsend_finish(hs, hs->rsends.vals[i], 503, NULL, "the server is shutting down", 0);
      i = (uint32_t)-1;
    }
  wsc_hmap_free(&hs->cpolls);
  wsc_hmap_free(&hs->rsends);
  hsr_free(hs->hsr);
  hs->hsr = NULL;
  wsc_hmap_free(&hs->by_token);
  uv_timer_stop(&hs->timer);
  uv_close((uv_handle_t *)&hs->timer, timer_closed);
}

size_t hsess_count(const hsess_server_t *hs) { return hs->n_sessions; }
size_t hsess_held(const hsess_server_t *hs) { return hs->n_held; }
