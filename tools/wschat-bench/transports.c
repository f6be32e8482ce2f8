/* transports — the `transports` scenario of wschat-bench: one chat workload
 * (N clients in one room, R messages/s in total, D seconds) over polling at
 * a given interval, long polling, and WebSocket, each measured the same way:
 * HTTP requests/s, empty responses, bytes on the wire per delivered message
 * (every byte read and written on the clients' sockets: headers included),
 * delivery latency p50/p99 (send time to the moment the receiver has it),
 * server CPU per delivered message (/proc of --pid), and every delivery
 * verified: each receiver must get each sender's messages exactly once and
 * in order (a loss, a duplicate or a reordering fails the run).
 *
 * And `--held N`: N HTTP sessions each holding a long poll, with the
 * server's RSS before and after (per held long poll).
 *
 *   wschat-bench transports --url http://127.0.0.1:8000 --pid PID
 *       [--clients 50] [--rate 10] [--duration 30]
 *       [--transport poll:1000,poll:250,longpoll,ws] [--json FILE]
 *   wschat-bench transports --url ... --pid PID --held 10000 [--json FILE]
 *
 * Each client has its own connections: one that polls (or the WebSocket)
 * and, for HTTP, one that sends. Messages carry "m:SENDER:SEQ:T_NS".
 */
#include "transports.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <uv.h>

#include "hist.h"
#include "wsc.h"

#define TB_BUF_MAX (4 << 20)   /* largest response kept */
#define TB_DRAIN_S 15          /* after sending: time for the last deliveries */
#define TB_SETTLE_MS 1000
#define TB_LONGPOLL_S 25

enum { K_POLL, K_LONGPOLL, K_WS };
enum { R_RECV, R_SEND };

typedef struct tclient tclient;

typedef struct tconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  tclient *cl;
  int role;
  bool open, busy, ws_open;
  bool dropped;          /* an idle send connection the server closed: reopened when needed */
  uint8_t *in;
  size_t in_len, in_cap;
  wsc_parser wp;
  char key[WSC_KEY_LEN + 1];
} tconn;

struct tclient {
  int idx;
  char token[80];
  uint64_t ack;
  tconn recv, send;
  uint32_t *last_from;   /* per sender: last seq received */
  uint64_t received;
  uint32_t sent_seq;
  int pending;           /* sends waiting for the send connection */
  int stage;             /* 0 session, 1 join, 2 ready */
  uv_timer_t poll_timer;
};

typedef struct run {
  int kind;
  int interval_ms;
  char name[32];
  char room[48];
  /* results */
  uint64_t sent, delivered, requests, empty, bytes, lost, dup, reorder, errors;
  double seconds, server_cpu;
  hist lat;
} run_t;

static struct {
  uv_loop_t *loop;
  char host[128];
  char hostport[160];
  struct sockaddr_in addr;
  int pid;
  int clients, rate, duration, held;
  const char *json;
  tclient *cl;
  run_t *r;
  int ready;
  bool measuring, stopping, failed;
  uint64_t t_start, t_end;
  int next_sender;
  uv_timer_t send_timer, phase_timer;
  int phase;
  double cpu0;
  int held_open, held_done;
  long rss0;
} G;

static uint64_t now_ns(void) { return uv_hrtime(); }

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "transports: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  G.failed = true;
  uv_stop(G.loop);
}

/* --- writing ------------------------------------------------------------------------ */

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void write_bytes(tconn *c, const void *data, size_t len) {
  if (G.measuring) G.r->bytes += len;
  uv_write_t *w = malloc(sizeof *w);
  char *copy = malloc(len);
  if (!w || !copy) { fail("out of memory"); return; }
  memcpy(copy, data, len);
  w->data = copy;
  uv_buf_t b = uv_buf_init(copy, (unsigned)len);
  if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(copy);
    free(w);
  }
}

static void http_request(tconn *c, const char *method, const char *path, const char *body) {
  char head[512];
  size_t blen = body ? strlen(body) : 0;
  int n = body ? snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n",
                          method, path, G.hostport, blen)
               : snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path, G.hostport);
  char *all = malloc((size_t)n + blen);
  if (!all) { fail("out of memory"); return; }
  memcpy(all, head, (size_t)n);
  if (blen) memcpy(all + n, body, blen);
  c->busy = true;
  if (G.measuring) G.r->requests++;
  write_bytes(c, all, (size_t)n + blen);
  free(all);
}

static void ws_send_text(tconn *c, const char *text) {
  size_t len = strlen(text);
  uint8_t frame[WSC_MAX_CLIENT_HEADER + 512];
  if (len > 512) return;
  uint32_t mask;
  if (getrandom(&mask, sizeof mask, 0) != sizeof mask) mask = 0x5a5a5a5a;
  size_t h = wsc_frame_header(frame, WSC_TEXT, len, mask);
  memcpy(frame + h, text, len);
  wsc_mask(frame + h, len, mask, 0);
  write_bytes(c, frame, h + len);
}

/* --- the workload ------------------------------------------------------------------ */

static void poll_now(tclient *cl);
static void send_next(tclient *cl);
static void on_poll_timer(uv_timer_t *t) { poll_now(t->data); }

/* One delivered message: "m:FROM:SEQ:T" in a text field. */
static void delivered(tclient *cl, const char *text) {
  unsigned from, seq;
  unsigned long long t;
  if (sscanf(text, "m:%u:%u:%llu", &from, &seq, &t) != 3 || from >= (unsigned)G.clients) return;
  uint64_t now = now_ns();
  run_t *r = G.r;
  uint32_t last = cl->last_from[from];
  if (seq == last + 1) {
    cl->last_from[from] = seq;
    cl->received++;
    r->delivered++;
    if (now > t) hist_record(&r->lat, now - t);
  } else if (seq <= last) {
    r->dup++;
  } else {
    r->reorder++;
    cl->last_from[from] = seq;
  }
}

/* Scans a JSON text for message texts ("text":"m:...") and, for HTTP, the
 * highest "seq". Our texts have no escapes. */
static void scan_events(tclient *cl, const char *p, size_t len, bool has_seq) {
  const char *end = p + len;
  static const char tk[] = "\"text\":\"", sk[] = "{\"seq\":";
  for (const char *q = p; q < end; q++) {
    if (has_seq && (size_t)(end - q) > sizeof sk && memcmp(q, sk, sizeof sk - 1) == 0) {
      uint64_t s = strtoull(q + sizeof sk - 1, NULL, 10);
      if (s > cl->ack) cl->ack = s;
    } else if ((size_t)(end - q) > sizeof tk && memcmp(q, tk, sizeof tk - 1) == 0) {
      char text[128];
      const char *t = q + sizeof tk - 1;
      size_t n = 0;
      while (t + n < end && t[n] != '"' && n < sizeof text - 1) n++;
      memcpy(text, t, n);
      text[n] = '\0';
      if (text[0] == 'm' && text[1] == ':') delivered(cl, text);
    }
  }
}

static void http_response(tconn *c, int status, const char *body, size_t blen) {
  tclient *cl = c->cl;
  c->busy = false;
  if (c->role == R_SEND) {
    if (cl->stage == 0) {
      const char *s = memmem(body, blen, "\"session\":\"", 11);
      if (status != 200 || !s) { fail("POST /http/session: %d", status); return; }
      s += 11;
      size_t n = 0;
      while (s + n < body + blen && s[n] != '"' && n < sizeof cl->token - 1) n++;
      memcpy(cl->token, s, n);
      cl->token[n] = '\0';
      cl->stage = 1;
      if (G.held) {   /* --held: the long poll goes out on this connection */
        char path[200];
        snprintf(path, sizeof path, "/http/longpoll?session=%s&ack=0&timeout=60", cl->token);
        http_request(c, "GET", path, NULL);
        c->role = R_RECV;
        if (++G.held_open == G.held) fprintf(stderr, "transports: %d long polls sent\n", G.held);
        return;
      }
      char path[200], body2[128];
      snprintf(path, sizeof path, "/http/send?session=%s", cl->token);
      snprintf(body2, sizeof body2, "{\"type\":\"join\",\"room\":\"%s\"}", G.r->room);
      http_request(c, "POST", path, body2);
      return;
    }
    if (cl->stage == 1) {
      if (status != 200) { fail("join: %d %.*s", status, (int)blen, body); return; }
      cl->stage = 2;
      G.ready++;
      if (G.r->kind == K_POLL) {   /* clients poll out of phase, as independent ones would */
        uint32_t rnd;
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = (uint32_t)cl->idx * 7919u;
        uv_timer_start(&cl->poll_timer, on_poll_timer, rnd % (uint32_t)G.r->interval_ms, 0);
      } else {
        poll_now(cl);
      }
      return;
    }
    if (status != 200) G.r->errors++;
    send_next(cl);
    return;
  }
  /* a poll answer */
  if (G.held) { G.held_done++; return; }
  if (status != 200) { G.r->errors++; fail("poll: %d %.*s", status, (int)blen, body); return; }
  if (G.measuring && blen == 2) G.r->empty++;
  scan_events(cl, body, blen, true);
  if (G.stopping) return;
  if (G.r->kind == K_POLL) uv_timer_start(&cl->poll_timer, on_poll_timer, (uint64_t)G.r->interval_ms, 0);
  if (G.r->kind == K_LONGPOLL) poll_now(cl);
}

static void poll_now(tclient *cl) {
  if (G.stopping || cl->recv.busy) return;
  if (G.r->kind == K_WS) return;
  char path[256];
  if (G.r->kind == K_LONGPOLL)
    snprintf(path, sizeof path, "/http/longpoll?session=%s&ack=%" PRIu64 "&timeout=%d", cl->token, cl->ack,
             TB_LONGPOLL_S);
  else
    snprintf(path, sizeof path, "/http/poll?session=%s&ack=%" PRIu64, cl->token, cl->ack);
  http_request(&cl->recv, "GET", path, NULL);
}

static void conn_reopen(tconn *c);

static void send_next(tclient *cl) {
  tconn *c = G.r->kind == K_WS ? &cl->recv : &cl->send;
  if (cl->pending == 0 || c->busy) return;
  if (c->dropped) {   /* the server closed it while idle (keep-alive timeout) */
    conn_reopen(c);
    return;
  }
  if (!c->open) return;
  cl->pending--;
  char text[96], body[256];
  snprintf(text, sizeof text, "m:%d:%u:%" PRIu64, cl->idx, ++cl->sent_seq, now_ns());
  snprintf(body, sizeof body, "{\"type\":\"send\",\"room\":\"%s\",\"text\":\"%s\"}", G.r->room, text);
  G.r->sent++;
  if (G.r->kind == K_WS) {
    ws_send_text(c, body);
    return;
  }
  char path[200];
  snprintf(path, sizeof path, "/http/send?session=%s", cl->token);
  http_request(c, "POST", path, body);
}

/* --- reading ------------------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  static char rbuf[65536];
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_ws_message(void *ud, int opcode, uint8_t *d, size_t len, uint64_t total) {
  (void)opcode;
  (void)total;
  tconn *c = ud;
  if (c->cl->stage < 2) {
    if (len > 15 && memcmp(d, "{\"type\":\"joined\"", 16) == 0) {
      c->cl->stage = 2;
      G.ready++;
    }
    return;
  }
  scan_events(c->cl, (const char *)d, len, false);
}

static void on_ws_control(void *ud, int opcode, uint8_t *d, size_t len) {
  tconn *c = ud;
  if (opcode != WSC_PING) return;
  uint8_t frame[WSC_MAX_CLIENT_HEADER + 125];
  size_t h = wsc_frame_header(frame, WSC_PONG, len, 0);
  memcpy(frame + h, d, len);
  write_bytes(c, frame, h + len);
}

static const wsc_cb ws_cb = {on_ws_message, on_ws_control};

static int in_append(tconn *c, const char *d, size_t n) {
  if (c->in_len + n > TB_BUF_MAX) return -1;
  if (c->in_len + n > c->in_cap) {
    size_t cap = c->in_cap ? c->in_cap : 4096;
    while (cap < c->in_len + n) cap *= 2;
    uint8_t *p = realloc(c->in, cap);
    if (!p) return -1;
    c->in = p;
    c->in_cap = cap;
  }
  memcpy(c->in + c->in_len, d, n);
  c->in_len += n;
  return 0;
}

/* Whole responses out of c->in (Content-Length framed, as wschat answers). */
static void parse_responses(tconn *c) {
  for (;;) {
    char *p = (char *)c->in;
    char *hend = c->in_len >= 4 ? memmem(p, c->in_len, "\r\n\r\n", 4) : NULL;
    if (!hend) return;
    int status = 0;
    sscanf(p, "HTTP/1.1 %d", &status);
    size_t clen = 0;
    for (char *q = p; q < hend; q++)
      if ((*q == 'C' || *q == 'c') && strncasecmp(q, "Content-Length:", 15) == 0) clen = strtoul(q + 15, NULL, 10);
    size_t hl = (size_t)(hend + 4 - p);
    if (c->in_len < hl + clen) return;
    http_response(c, status, p + hl, clen);
    memmove(c->in, c->in + hl + clen, c->in_len - hl - clen);
    c->in_len -= hl + clen;
    if (G.failed) return;
  }
}

static void on_dropped(uv_handle_t *h) {
  tconn *c = h->data;
  c->dropped = true;
  send_next(c->cl);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tconn *c = s->data;
  if (nread < 0 && c->role == R_SEND && c->cl->stage == 2 && !c->busy && !G.stopping) {
    /* an idle keep-alive connection ends after the server's request
     * timeout; a quiet sender opens a new one for its next message */
    c->open = false;
    uv_read_stop(s);
    uv_close((uv_handle_t *)s, on_dropped);
    return;
  }
  if (nread < 0) {
    if (!G.stopping && !G.held) fail("connection closed: %s", uv_strerror((int)nread));
    uv_read_stop(s);
    return;
  }
  if (G.measuring) G.r->bytes += (uint64_t)nread;
  if (c->ws_open) {
    if (wsc_feed(&c->wp, (uint8_t *)buf->base, (size_t)nread, &ws_cb, c) < 0) fail("websocket protocol error");
    return;
  }
  if (in_append(c, buf->base, (size_t)nread) < 0) { fail("response too large"); return; }
  if (G.r->kind == K_WS && c->role == R_RECV && !G.held) {
    long hl = wsc_handshake_response((const char *)c->in, c->in_len, c->key);
    if (hl == 0) return;
    if (hl < 0) { fail("websocket handshake refused"); return; }
    c->ws_open = true;
    size_t rest = c->in_len - (size_t)hl;
    if (rest && wsc_feed(&c->wp, c->in + hl, rest, &ws_cb, c) < 0) fail("websocket protocol error");
    c->in_len = 0;
    return;
  }
  parse_responses(c);
}

static void on_connect(uv_connect_t *req, int status) {
  tconn *c = req->data;
  if (status != 0) { fail("connect: %s", uv_strerror(status)); return; }
  c->open = true;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  tclient *cl = c->cl;
  if (c->role == R_SEND && cl->stage == 2) {   /* reopened: go on sending */
    send_next(cl);
    return;
  }
  if (c->role == R_SEND) {
    char body[64];
    snprintf(body, sizeof body, "{\"name\":\"b%d-%d\"}", cl->idx, (int)(now_ns() % 100000));
    http_request(c, "POST", "/http/session", body);
  } else if (G.r->kind == K_WS) {
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) memset(rnd, 7, sizeof rnd);
    wsc_make_key(rnd, c->key);
    char path[160], hs[512];
    snprintf(path, sizeof path, "/ws?name=b%d-%d&room=%s", cl->idx, (int)(now_ns() % 100000), G.r->room);
    size_t n = wsc_handshake_request(hs, sizeof hs, G.hostport, path, c->key);
    write_bytes(c, hs, n);
  }
}

static void conn_open(tconn *c, tclient *cl, int role) {
  memset(c, 0, sizeof *c);
  c->cl = cl;
  c->role = role;
  wsc_parser_init(&c->wp, 4096);
  uv_tcp_init(G.loop, &c->tcp);
  uv_tcp_nodelay(&c->tcp, 1);
  c->tcp.data = c;
  c->creq.data = c;
  uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&G.addr, on_connect);
}

static void conn_reopen(tconn *c) {
  c->dropped = false;
  c->busy = false;
  c->in_len = 0;
  uv_tcp_init(G.loop, &c->tcp);
  uv_tcp_nodelay(&c->tcp, 1);
  c->tcp.data = c;
  c->creq.data = c;
  uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&G.addr, on_connect);
}

/* --- phases --------------------------------------------------------------------------- */

static void on_send_tick(uv_timer_t *t) {
  (void)t;
  if (!G.measuring) return;
  tclient *cl = &G.cl[G.next_sender];
  G.next_sender = (G.next_sender + 1) % G.clients;
  cl->pending++;
  send_next(cl);
}

static double server_cpu(void) {
  double s = 0;
  if (G.pid > 0 && !bench_read_proc_cpu(G.pid, &s)) return 0;
  return s;
}

static bool all_delivered(void) {
  for (int i = 0; i < G.clients; i++)
    for (int j = 0; j < G.clients; j++)
      if (G.cl[i].last_from[j] != G.cl[j].sent_seq) return false;
  return true;
}

static void on_phase(uv_timer_t *t);

static void end_run(void) {
  G.measuring = false;
  G.stopping = true;
  run_t *r = G.r;
  r->seconds = (double)(G.t_end - G.t_start) / 1e9;
  r->server_cpu = server_cpu() - G.cpu0;
  for (int i = 0; i < G.clients; i++)
    for (int j = 0; j < G.clients; j++)
      if (G.cl[i].last_from[j] < G.cl[j].sent_seq) r->lost += G.cl[j].sent_seq - G.cl[i].last_from[j];
  uv_stop(G.loop);
}

static void on_phase(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ns();
  if (G.phase == 0) {   /* waiting for every client to be in the room */
    if (G.ready < G.clients) {
      if (now - G.t_start > 60ull * 1000000000ull) fail("clients not ready: %d of %d", G.ready, G.clients);
      return;
    }
    G.phase = 1;
    G.t_start = now;
    return;
  }
  if (G.phase == 1) {   /* settle, then measure */
    if (now - G.t_start < (uint64_t)TB_SETTLE_MS * 1000000ull) return;
    G.phase = 2;
    G.t_start = now;
    G.cpu0 = server_cpu();
    G.measuring = true;
    uv_timer_start(&G.send_timer, on_send_tick, 0, (uint64_t)(1000 / (G.rate > 0 ? G.rate : 1)));
    return;
  }
  if (G.phase == 2) {   /* sending */
    if (now - G.t_start < (uint64_t)G.duration * 1000000000ull) return;
    uv_timer_stop(&G.send_timer);
    G.phase = 3;
    G.t_end = now;
    return;
  }
  /* draining: every message to every receiver, or the deadline */
  bool pending = false;
  for (int i = 0; i < G.clients; i++) pending |= G.cl[i].pending > 0;
  if ((!pending && all_delivered()) || now - G.t_end > (uint64_t)TB_DRAIN_S * 1000000000ull) {
    G.t_end = now > G.t_end ? G.t_end : now;
    end_run();
  }
}

static void close_all(void);

static int run_one(run_t *r) {
  G.r = r;
  hist_init(&r->lat);
  snprintf(r->room, sizeof r->room, "bench-%s-%u", r->name, (unsigned)(now_ns() % 1000000));
  for (char *p = r->room; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) *p = '-';
  G.ready = 0;
  G.phase = 0;
  G.measuring = G.stopping = false;
  G.next_sender = 0;
  G.t_start = now_ns();
  G.cl = calloc((size_t)G.clients, sizeof *G.cl);
  for (int i = 0; i < G.clients; i++) {
    tclient *cl = &G.cl[i];
    cl->idx = i;
    cl->last_from = calloc((size_t)G.clients, sizeof *cl->last_from);
    uv_timer_init(G.loop, &cl->poll_timer);
    cl->poll_timer.data = cl;
    if (r->kind == K_WS) {
      conn_open(&cl->recv, cl, R_RECV);
    } else {
      conn_open(&cl->send, cl, R_SEND);
      conn_open(&cl->recv, cl, R_RECV);
    }
  }
  uv_timer_start(&G.phase_timer, on_phase, 50, 50);
  uv_run(G.loop, UV_RUN_DEFAULT);
  uv_timer_stop(&G.phase_timer);
  uv_timer_stop(&G.send_timer);
  close_all();
  return G.failed ? -1 : 0;
}

static void on_closed(uv_handle_t *h) { (void)h; }

static void close_all(void) {
  for (int i = 0; i < G.clients; i++) {
    tclient *cl = &G.cl[i];
    tconn *cs[2] = {&cl->recv, &cl->send};
    for (int k = 0; k < 2; k++) {
      if (cs[k]->cl && !uv_is_closing((uv_handle_t *)&cs[k]->tcp)) uv_close((uv_handle_t *)&cs[k]->tcp, on_closed);
      wsc_parser_free(&cs[k]->wp);
    }
    uv_close((uv_handle_t *)&cl->poll_timer, on_closed);
  }
  uv_run(G.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < G.clients; i++) {
    free(G.cl[i].last_from);
    free(G.cl[i].recv.in);
    free(G.cl[i].send.in);
  }
  free(G.cl);
  G.cl = NULL;
}

/* --- --held --------------------------------------------------------------------------- */

static void on_held_tick(uv_timer_t *t) {
  (void)t;
  if (G.held_open >= G.held) uv_stop(G.loop);
  if (now_ns() - G.t_start > 120ull * 1000000000ull) fail("only %d of %d long polls held", G.held_open, G.held);
}

static void on_settled(uv_timer_t *t) { uv_stop(t->loop); }

static int run_held(FILE *json) {
  static run_t r = {.kind = K_LONGPOLL, .name = "held"};
  G.r = &r;
  G.clients = G.held;
  G.rss0 = bench_read_rss_kb(G.pid);
  G.t_start = now_ns();
  G.cl = calloc((size_t)G.held, sizeof *G.cl);
  for (int i = 0; i < G.held; i++) {
    G.cl[i].idx = i;
    conn_open(&G.cl[i].send, &G.cl[i], R_SEND);
    G.cl[i].recv.cl = NULL;
    uv_timer_init(G.loop, &G.cl[i].poll_timer);
    if (i % 500 == 499) uv_run(G.loop, UV_RUN_NOWAIT);
  }
  uv_timer_start(&G.phase_timer, on_held_tick, 100, 100);
  uv_run(G.loop, UV_RUN_DEFAULT);
  uv_timer_stop(&G.phase_timer);
  if (G.failed) return -1;
  /* let the server take the last requests in */
  uv_timer_start(&G.phase_timer, on_settled, 2000, 0);
  uv_run(G.loop, UV_RUN_DEFAULT);
  long rss1 = bench_read_rss_kb(G.pid);
  double per = (double)(rss1 - G.rss0) * 1024.0 / G.held;
  printf("RESULT scenario=transports-held held=%d rss_before_kb=%ld rss_after_kb=%ld bytes_per_held=%.0f answered_early=%d\n",
         G.held, G.rss0, rss1, per, G.held_done);
  if (json)
    fprintf(json, "{\"scenario\":\"transports-held\",\"held\":%d,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
                  "\"bytes_per_held\":%.0f,\"answered_early\":%d}\n",
            G.held, G.rss0, rss1, per, G.held_done);
  G.stopping = true;
  for (int i = 0; i < G.held; i++) uv_close((uv_handle_t *)&G.cl[i].send.tcp, on_closed);
  for (int i = 0; i < G.held; i++) uv_close((uv_handle_t *)&G.cl[i].poll_timer, on_closed);
  uv_run(G.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < G.held; i++) {
    wsc_parser_free(&G.cl[i].send.wp);
    free(G.cl[i].send.in);
  }
  free(G.cl);
  return G.held_done ? -1 : 0;
}

/* --- main ------------------------------------------------------------------------------- */

static int parse_transports(const char *spec, run_t *runs, int max) {
  int n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
    run_t *r = &runs[n];
    memset(r, 0, sizeof *r);
    if (strncmp(t, "poll:", 5) == 0) {
      r->kind = K_POLL;
      r->interval_ms = atoi(t + 5);
      if (r->interval_ms <= 0) return -1;
      snprintf(r->name, sizeof r->name, "poll %d ms", r->interval_ms);
    } else if (strcmp(t, "longpoll") == 0) {
      r->kind = K_LONGPOLL;
      snprintf(r->name, sizeof r->name, "long polling");
    } else if (strcmp(t, "ws") == 0) {
      r->kind = K_WS;
      snprintf(r->name, sizeof r->name, "WebSocket");
    } else {
      return -1;
    }
    n++;
  }
  return n;
}

static void report(run_t *r, FILE *json) {
  double d = r->delivered ? (double)r->delivered : 1;
  double p50 = (double)hist_percentile(&r->lat, 50) / 1e6, p99 = (double)hist_percentile(&r->lat, 99) / 1e6;
  bool ok = !r->lost && !r->dup && !r->reorder && !r->errors && r->delivered == r->sent * (uint64_t)G.clients;
  printf("RESULT scenario=transports transport=\"%s\" clients=%d rate=%d duration_s=%.1f sent=%" PRIu64
         " delivered=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64 " reorder=%" PRIu64 " http_errors=%" PRIu64
         " requests=%" PRIu64 " req_per_s=%.1f empty=%" PRIu64 " bytes=%" PRIu64 " bytes_per_msg=%.0f"
         " p50_ms=%.2f p99_ms=%.2f server_cpu_us_per_msg=%.1f verified=%s\n",
         r->name, G.clients, G.rate, r->seconds, r->sent, r->delivered, r->lost, r->dup, r->reorder, r->errors,
         r->requests, (double)r->requests / r->seconds, r->empty, r->bytes, (double)r->bytes / d, p50, p99,
         r->server_cpu * 1e6 / d, ok ? "yes" : "NO");
  if (json)
    fprintf(json,
            "{\"scenario\":\"transports\",\"transport\":\"%s\",\"clients\":%d,\"rate\":%d,\"duration_s\":%.2f,"
            "\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64
            ",\"reorder\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"req_per_s\":%.2f,\"empty\":%" PRIu64
            ",\"bytes\":%" PRIu64 ",\"bytes_per_msg\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
            "\"server_cpu_us_per_msg\":%.2f,\"verified\":%s}\n",
            r->name, G.clients, G.rate, r->seconds, r->sent, r->delivered, r->lost, r->dup, r->reorder,
            r->requests, (double)r->requests / r->seconds, r->empty, r->bytes, (double)r->bytes / d, p50, p99,
            r->server_cpu * 1e6 / d, ok ? "true" : "false");
}

int transports_main(int argc, char **argv) {
  const char *url = "http://127.0.0.1:8000", *spec = "poll:1000,poll:250,longpoll,ws";
  G.clients = 50;
  G.rate = 10;
  G.duration = 30;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && ++i)
    if (OPT("--url")) url = v;
    else if (OPT("--pid")) G.pid = atoi(v);
    else if (OPT("--clients")) G.clients = atoi(v);
    else if (OPT("--rate")) G.rate = atoi(v);
    else if (OPT("--duration")) G.duration = atoi(v);
    else if (OPT("--transport")) spec = v;
    else if (OPT("--held")) G.held = atoi(v);
    else if (OPT("--json")) G.json = v;
    else {
      fprintf(stderr, "transports: unknown option %s\n", a);
      return 2;
    }
#undef OPT
  }
  int port = 80;
  if (sscanf(url, "http://%127[^:/]:%d", G.host, &port) < 1) {
    fprintf(stderr, "transports: --url http://HOST:PORT\n");
    return 2;
  }
  snprintf(G.hostport, sizeof G.hostport, "%s:%d", G.host, port);
  if (uv_ip4_addr(strcmp(G.host, "localhost") ? G.host : "127.0.0.1", port, &G.addr) != 0) {
    fprintf(stderr, "transports: bad host %s\n", G.host);
    return 2;
  }
  if (G.clients < 1 || G.rate < 1 || G.duration < 1) return 2;
  bench_raise_fd_limit(G.held ? G.held + 64 : G.clients * 2 + 64);
  G.loop = uv_default_loop();
  uv_timer_init(G.loop, &G.send_timer);
  uv_timer_init(G.loop, &G.phase_timer);
  FILE *json = G.json ? fopen(G.json, "a") : NULL;
  int rc = 0;
  if (G.held) {
    rc = run_held(json);
  } else {
    run_t runs[8];
    int n = parse_transports(spec, runs, 8);
    if (n <= 0) {
      fprintf(stderr, "transports: --transport poll:MS,longpoll,ws\n");
      return 2;
    }
    for (int i = 0; i < n && rc == 0; i++) {
      fprintf(stderr, "transports: %s, %d clients, %d msg/s, %d s\n", runs[i].name, G.clients, G.rate, G.duration);
      rc = run_one(&runs[i]);
      if (rc == 0) {
        report(&runs[i], json);
        run_t *r = &runs[i];
        if (r->lost || r->dup || r->reorder || r->delivered != r->sent * (uint64_t)G.clients) rc = 1;
      }
    }
  }
  if (json) fclose(json);
  uv_close((uv_handle_t *)&G.send_timer, NULL);
  uv_close((uv_handle_t *)&G.phase_timer, NULL);
  uv_run(G.loop, UV_RUN_DEFAULT);
  return rc;
}
