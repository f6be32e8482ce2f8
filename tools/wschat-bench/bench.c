/* wschat-bench — load generator for wschat and the servers it is compared
 * with (docs/BENCHMARKS.md, docs/PROTOCOL.md "Benchmark contract").
 *
 *   wschat-bench fanout  --url ws://127.0.0.1:8000 --rooms R --conns C [--pubs P]
 *                        [--size S] [--window W | --rate N] [--duration s] [--warmup s]
 *   wschat-bench echo    --url ... --conns C --inflight D [--size S]
 *   wschat-bench connect --url ... --conns C [--rooms R] [--concurrency K]
 *   wschat-bench storm   --url ... --conns C --rooms R [--rate N]   (storm.c)
 *   common: --server-pid PID --json FILE --quiet
 *   wss://HOST:PORT URLs speak TLS; --deflate offers permessage-deflate
 *   (secure.c; a WIRE line reports bytes read per delivery)
 *
 * One process, one libuv loop, its own WebSocket client (wsc.c). Every
 * message a publisher sends carries "b:<run>:<sender>:<seq>:<t_ns>:" padded
 * to S printable bytes; every delivery is checked against per
 * (recipient, sender) state, so losses, duplicates and reorderings are
 * found, not just counted. wschat wraps deliveries in its JSON `message`
 * object (payload in "text") and sends chatter (welcome, joined, presence,
 * ack) that is ignored; other servers echo the payload verbatim.
 *
 * Phases: connect -> sync (a probe message per room, repeated until every
 * member has seen one round, so every member is known to be subscribed)
 * -> warmup -> measure -> drain -> report. Echo is the same machine with
 * one-member "rooms" on /echo.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "h2b.h"
#include "h3b.h"
#include "h1mux.h"
#include "hist.h"
#include "multi.h"
#include "secure.h"
#include "transports.h"
#include "storm.h"
#include "wsc.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define READ_BUF_SIZE (256 * 1024)
#define KEEP_MAX (256 * 1024)          /* largest message kept whole */
#define OUT_MIN_CAP 512
#define OUT_BACKLOG_MAX (64u << 20)     /* per connection: beyond this the generator gives up */
#define SYNC_RETRY_NS (500 * 1000000ull)
#define SYNC_START_DELAY_NS (100 * 1000000ull)
#define TICK_MS 1
#define MAX_PREFIX 64
#define MIN_SIZE 48
#define FD_RESERVE 64
#define MAX_LOGGED 5

enum scenario { SC_FANOUT, SC_ECHO, SC_CONNECT };
enum phase { PH_CONNECT, PH_SYNC, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_HOLD, PH_DONE };
static const char *phase_name[] = {"connect", "sync", "warmup", "measure", "drain", "hold", "done"};
enum cstate { CS_NEW, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSED, CS_FAILED };

typedef struct opts {
  enum scenario sc;
  const char *url;
  char host[256];     /* Host header */
  char addr[64];      /* numeric destination */
  int port;
  int rooms, conns, pubs, size, window, concurrency, per_addr;
  double rate, duration, warmup, drain_timeout, join_timeout, settle, hold;
  int server_pid;
  const char *json, *src_base, *room_prefix;
  bool no_spread, quiet;
  int h3;             /* WebSockets per HTTP/3 (QUIC) connection (h3b.c); 0: TCP */
  int h2;             /* WebSockets per HTTP/2 connection (h2b.c); 0: one TCP each */
  int mux;            /* rooms per HTTP/1.1 WebSocket (h1mux.c, chat `join`); 0: one each */
  bool mix_rooms;     /* member m of room r is conn m*R + r: consecutive conns, different rooms */
} opts;

typedef struct pair { /* one recipient x one publisher of its room */
  uint32_t next;      /* one past the highest sequence number seen */
  uint32_t got;       /* distinct messages received */
  uint64_t win;       /* bit i: sequence next-1-i was seen */
} pair;

typedef struct room {
  char name[80];
  int first, n, npubs;  /* members are conns [first, first+n); publishers the first npubs */
  pair *pairs;          /* n * npubs */
  uint32_t *sent;       /* per publisher: messages sent == next sequence number */
  uint32_t sync_round, sync_seen;
  uint64_t sync_at;
  bool ready;
} room;

/* Conn index of member m of room r. */
static int member(int r, int m);

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  int id, room, local, pub;     /* pub: index among the room's publishers, -1 if none */
  uint8_t state;
  bool writing, dirty, json, joined;
  uint32_t inflight;
  uint32_t sync_seen;
  uint8_t *out;                 /* being filled */
  uint32_t out_len, out_cap;
  uint8_t *wout;                /* being written by uv_write */
  uint32_t wout_len, wout_cap, wout_off;
  struct conn *next_dirty;
  wsc_parser p;
  char key[WSC_KEY_LEN + 1];
  secure_tls *tls;              /* wss:// (secure.c), NULL on ws:// */
} conn;

typedef struct cpu_snap {
  double client_s, server_s;
  bool server_ok;
} cpu_snap;

static struct {
  opts o;
  uv_loop_t *loop;
  uv_timer_t tick, progress, sync_timer, settle_timer;
  uv_check_t flush_check;
  conn *conns;
  int nconns;
  room *rooms;
  int nrooms;
  int *pubs;
  int npubs;
  conn *dirty;
  uint32_t run_id;
  uint64_t t0, rng;
  enum phase phase;
  int next_open, handshaking, opened, failed, closed_unexpected;
  uint64_t t_first_connect, t_all_open;
  uint64_t t_meas_start, t_meas_end, t_drain_start, t_sched0;
  /* counters */
  uint64_t sent, sent_measured, expected, unique, delivered_measured, last_unique;
  uint64_t dups, reorders, corrupt, misrouted, foreign, chatter, server_errors, conn_errors;
  uint64_t lost, backlog_errors, late_after_drain;
  uint64_t open_sent; /* open loop: messages scheduled so far */
  hist lat;
  cpu_snap cpu_start, cpu_end;
  long rss_before_kb, rss_after_kb;
  int logged;
  uint8_t pad[65536 + MAX_PREFIX];
  int exit_code;
  bool finishing;
} B;

static uint8_t read_buf[READ_BUF_SIZE];

/* --- small helpers ------------------------------------------------------------ */

static uint64_t now_ns(void) { return uv_hrtime() - B.t0; }

static uint64_t rng64(void) { /* xorshift64*, seeded from getrandom() */
  uint64_t x = B.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  B.rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static void logf_(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wschat-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int member(int r, int m) {
  return B.o.mix_rooms ? m * B.nrooms + r : B.rooms[r].first + m;
}

/* Logs the first few of a kind of failure, then stays quiet. */
static void fault(const char *fmt, ...) {
  if (B.logged++ >= MAX_LOGGED * 4) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("wschat-bench: FAULT ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static char *put_u64(char *p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

/* Parses digits up to a ':' and steps past it. */
static bool get_u64(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
  const uint8_t *p = *pp;
  uint64_t v = 0;
  const uint8_t *start = p;
  while (p < end && *p >= '0' && *p <= '9') {
    v = v * 10 + (uint64_t)(*p - '0');
    p++;
  }
  if (p == start || p >= end || *p != ':' || p - start > 19) return false;
  *pp = p + 1;
  *out = v;
  return true;
}

static long read_rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

static bool read_proc_cpu(int pid, double *secs) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return false;
  p++;
  unsigned long long ut = 0, st = 0;
  /* fields after ')': state(3) ... utime(14) stime(15) */
  char *tok = strtok(p, " ");
  for (int field = 3; tok && field <= 15; field++, tok = strtok(NULL, " ")) {
    if (field == 14) ut = strtoull(tok, NULL, 10);
    if (field == 15) st = strtoull(tok, NULL, 10);
  }
  long hz = sysconf(_SC_CLK_TCK);
  *secs = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
  return true;
}

static cpu_snap take_cpu(void) {
  cpu_snap s = {0};
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  s.client_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6;
  if (B.o.server_pid > 0) s.server_ok = read_proc_cpu(B.o.server_pid, &s.server_s);
  s.server_s += multi_cpu();
  return s;
}

/* Lent to the transports scenario (transports.h). */
bool bench_read_proc_cpu(int pid, double *secs) { return read_proc_cpu(pid, secs); }
long bench_read_rss_kb(int pid) { return read_rss_kb(pid); }

/* --- output --------------------------------------------------------------------- */

static void conn_fail(conn *c, const char *why, int err);
static void flush_conn(conn *c);

static bool out_reserve(conn *c, size_t extra) {
  size_t need = (size_t)c->out_len + extra;
  if (need <= c->out_cap) return true;
  if (need > OUT_BACKLOG_MAX) {
    B.backlog_errors++;
    conn_fail(c, "send backlog over limit (server not reading?)", 0);
    return false;
  }
  size_t cap = c->out_cap ? c->out_cap : OUT_MIN_CAP;
  while (cap < need) cap *= 2;
  uint8_t *nb = realloc(c->out, cap);
  if (!nb) {
    conn_fail(c, "out of memory", 0);
    return false;
  }
  c->out = nb;
  c->out_cap = (uint32_t)cap;
  return true;
}

static void mark_dirty(conn *c) {
  if (c->dirty) return;
  c->dirty = true;
  c->next_dirty = B.dirty;
  B.dirty = c;
}

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  c->writing = false;
  c->wout_len = c->wout_off = 0;
  if (status < 0) {
    conn_fail(c, "write", status);
    return;
  }
  if (c->out_len || (c->tls && secure_tls_pending(c->tls))) flush_conn(c);
}

/* wss: the queued plaintext becomes records, and out holds ciphertext. */
static bool seal_tls(conn *c) {
  if (secure_tls_established(c->tls) && c->out_len) {
    if (secure_tls_write(c->tls, c->out, c->out_len) != 0) {
      conn_fail(c, "TLS write", 0);
      return false;
    }
    c->out_len = 0;
  }
  size_t pend = secure_tls_pending(c->tls);
  if (pend && !out_reserve(c, pend)) return false;
  c->out_len += (uint32_t)secure_tls_drain(c->tls, c->out + c->out_len, pend);
  return true;
}

static void flush_conn(conn *c) {
  if (c->writing || c->state == CS_CLOSED || c->state == CS_FAILED) return;
  if (c->tls && !seal_tls(c)) return;
  if (c->out_len == 0) return;
  if (B.o.h3) { /* the bytes go to its HTTP/3 stream */
    if (h3b_send(c->id, c->out, c->out_len) != 0) {
      conn_fail(c, "h3 stream backlog over limit", 0);
      return;
    }
    c->out_len = 0;
    return;
  }
  if (B.o.h2 || B.o.mux) { /* its HTTP/2 stream, or `send`s on the shared WebSocket (h1mux) */
    int r = B.o.h2 ? h2b_send(c->id, c->out, c->out_len) : h1mux_send(c->id, c->out, c->out_len);
    if (r != 0) {
      B.backlog_errors++;
      conn_fail(c, B.o.h2 ? "h2 stream backlog over limit" : "shared WebSocket backlog over limit", 0);
      return;
    }
    c->out_len = 0;
    return;
  }
  uv_buf_t b = uv_buf_init((char *)c->out, c->out_len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    conn_fail(c, "write", n);
    return;
  }
  if ((uint32_t)n == c->out_len) {
    c->out_len = 0;
    return;
  }
  /* swap: the rest goes out with uv_write from wout, out is free to refill */
  uint8_t *tb = c->wout;
  uint32_t tcap = c->wout_cap;
  c->wout = c->out;
  c->wout_cap = c->out_cap;
  c->wout_len = c->out_len;
  c->wout_off = (uint32_t)n;
  c->out = tb;
  c->out_cap = tcap;
  c->out_len = 0;
  b = uv_buf_init((char *)c->wout + c->wout_off, c->wout_len - c->wout_off);
  c->wreq.data = c;
  int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r < 0) {
    conn_fail(c, "write", r);
    return;
  }
  c->writing = true;
}

static void on_flush_check(uv_check_t *h) {
  (void)h;
  while (B.dirty) {
    conn *c = B.dirty;
    B.dirty = c->next_dirty;
    c->dirty = false;
    flush_conn(c);
  }
}

/* Appends one masked frame carrying len bytes built by fill(). */
static uint8_t *frame_begin(conn *c, int opcode, size_t len, uint32_t *mask_out) {
  if (!out_reserve(c, WSC_MAX_CLIENT_HEADER + len)) return NULL;
  uint32_t mask = (uint32_t)rng64();
  uint8_t *h = c->out + c->out_len;
  size_t hl = wsc_frame_header(h, opcode, len, mask);
  c->out_len += (uint32_t)(hl + len);
  *mask_out = mask;
  mark_dirty(c);
  return h + hl;
}

static void send_frame(conn *c, int opcode, const void *data, size_t len) {
  uint32_t mask;
  uint8_t *d = frame_begin(c, opcode, len, &mask);
  if (!d) return;
  memcpy(d, data, len);
  wsc_mask(d, len, mask, 0);
}

static bool sending_phase(void) { return B.phase == PH_WARMUP || B.phase == PH_MEASURE; }

/* One benchmark message from publisher c, stamped with time t (ns since t0). */
static void send_msg(conn *c, uint64_t t) {
  room *r = &B.rooms[c->room];
  size_t S = (size_t)B.o.size;
  uint32_t mask;
  uint8_t *d = frame_begin(c, WSC_TEXT, S, &mask);
  if (!d) return;
  uint32_t seq = r->sent[c->pub]++;
  char *p = (char *)d;
  *p++ = 'b';
  *p++ = ':';
  p = put_u64(p, B.run_id);
  *p++ = ':';
  p = put_u64(p, (uint64_t)c->id);
  *p++ = ':';
  p = put_u64(p, seq);
  *p++ = ':';
  p = put_u64(p, t);
  *p++ = ':';
  size_t pl = (size_t)(p - (char *)d);
  memcpy(p, B.pad + pl, S - pl);
  wsc_mask(d, S, mask, 0);
  c->inflight++;
  B.sent++;
  B.expected += (uint64_t)r->n;
  if (t >= B.t_meas_start && t < B.t_meas_end) B.sent_measured++;
}

static void top_up(conn *c) {
  uint64_t t = now_ns();
  while (c->inflight < (uint32_t)B.o.window && sending_phase() && c->state == CS_OPEN) send_msg(c, t);
}

/* --- verification ------------------------------------------------------------ */

enum { PR_INORDER, PR_AHEAD, PR_LATE, PR_DUP };

static int pair_update(pair *pp, uint32_t seq) {
  if (seq == pp->next) {
    pp->next++;
    pp->win = (pp->win << 1) | 1;
    pp->got++;
    return PR_INORDER;
  }
  if (seq > pp->next) {
    uint64_t shift = (uint64_t)seq + 1 - pp->next;
    pp->win = shift >= 64 ? 1 : ((pp->win << shift) | 1);
    pp->next = seq + 1;
    pp->got++;
    return PR_AHEAD;
  }
  uint32_t d = pp->next - 1 - seq;
  if (d < 64) {
    if (pp->win & (1ull << d)) return PR_DUP;
    pp->win |= 1ull << d;
  }
  pp->got++;
  return PR_LATE;
}

static void finish(void);

static void on_bench_payload(conn *c, const uint8_t *d, size_t n) {
  const uint8_t *p = d + 2, *end = d + n;
  uint64_t run, sender, seq, t;
  if (!get_u64(&p, end, &run)) goto corrupt;
  if (run != B.run_id) {
    B.foreign++;
    return;
  }
  if (!get_u64(&p, end, &sender) || !get_u64(&p, end, &seq) || !get_u64(&p, end, &t)) goto corrupt;
  if (sender >= (uint64_t)B.nconns) goto corrupt;
  if (n != (size_t)B.o.size) {
    B.corrupt++;
    fault("conn %d: message of %zu bytes, sent %d", c->id, n, B.o.size);
    return;
  }
  size_t pl = (size_t)(p - d);
  if (memcmp(p, B.pad + pl, n - pl) != 0) goto corrupt;
  conn *s = &B.conns[sender];
  if (s->room != c->room || s->pub < 0) {
    B.misrouted++;
    fault("conn %d (room %d) got a message from conn %d (room %d)", c->id, c->room, s->id, s->room);
    return;
  }
  room *r = &B.rooms[c->room];
  if (seq >= r->sent[s->pub]) goto corrupt;
  pair *pp = &r->pairs[(size_t)c->local * (size_t)r->npubs + (size_t)s->pub];
  switch (pair_update(pp, (uint32_t)seq)) {
  case PR_DUP:
    B.dups++;
    fault("duplicate: conn %d got message %" PRIu64 " of conn %d twice", c->id, seq, s->id);
    return;
  case PR_LATE:
    B.reorders++;
    fault("reordered: conn %d got message %" PRIu64 " of conn %d after %u", c->id, seq, s->id,
          pp->next - 1);
    break;
  default:
    break;
  }
  B.unique++;
  uint64_t now = now_ns();
  if (now >= B.t_meas_start && now < B.t_meas_end) B.delivered_measured++;
  if (t >= B.t_meas_start && t < B.t_meas_end) hist_record(&B.lat, now > t ? now - t : 0);
  if (B.phase == PH_DONE) B.late_after_drain++;
  if (s == c) {
    if (c->inflight) c->inflight--;
    if (B.o.rate <= 0) top_up(c);
  }
  return;
corrupt:
  B.corrupt++;
  fault("conn %d: corrupt payload '%.*s'", c->id, (int)(n > 80 ? 80 : n), (const char *)d);
}

static void on_sync_payload(conn *c, const uint8_t *d, size_t n) {
  const uint8_t *p = d + 2, *end = d + n;
  uint64_t run, rm, round;
  if (!get_u64(&p, end, &run) || !get_u64(&p, end, &rm) || !get_u64(&p, end, &round)) {
    B.corrupt++;
    return;
  }
  if (run != B.run_id) {
    B.foreign++;
    return;
  }
  if (rm != (uint64_t)c->room) {
    B.misrouted++;
    fault("conn %d (room %d) got room %" PRIu64 "'s sync message", c->id, c->room, rm);
    return;
  }
  room *r = &B.rooms[c->room];
  if (round == r->sync_round && c->sync_seen < round) {
    c->sync_seen = (uint32_t)round;
    if (++r->sync_seen == (uint32_t)r->n) r->ready = true;
  }
}

static void on_payload(conn *c, const uint8_t *d, size_t n) {
  if (n >= 2 && d[1] == ':' && d[0] == 'b')
    on_bench_payload(c, d, n);
  else if (n >= 2 && d[1] == ':' && d[0] == 's')
    on_sync_payload(c, d, n);
  else
    B.foreign++;
}

/* Finds "key" : "value" in a flat JSON object; the value must not contain
 * escapes (bench payloads never do). */
static bool json_str(const uint8_t *d, size_t n, const char *key, size_t klen, const uint8_t **v,
                     size_t *vlen) {
  const uint8_t *end = d + n, *p = d;
  while (p < end) {
    const uint8_t *k = memmem(p, (size_t)(end - p), key, klen);
    if (!k) return false;
    p = k + klen;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p >= end || *p != ':') continue;
    p++;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p >= end || *p != '"') continue;
    p++;
    const uint8_t *q = memchr(p, '"', (size_t)(end - p));
    if (!q) return false;
    *v = p;
    *vlen = (size_t)(q - p);
    return true;
  }
  return false;
}

#define LIT(s) s, sizeof(s) - 1

static void on_json(conn *c, const uint8_t *d, size_t n) {
  const uint8_t *t;
  size_t tl;
  if (!json_str(d, n, LIT("\"type\""), &t, &tl)) {
    B.corrupt++;
    fault("conn %d: JSON without type: %.*s", c->id, (int)(n > 120 ? 120 : n), (const char *)d);
    return;
  }
  c->json = true;
  if (tl == 7 && memcmp(t, "message", 7) == 0) {
    const uint8_t *v;
    size_t vl;
    if (!json_str(d, n, LIT("\"text\""), &v, &vl)) {
      B.corrupt++;
      fault("conn %d: message without text: %.*s", c->id, (int)(n > 120 ? 120 : n), (const char *)d);
      return;
    }
    on_payload(c, v, vl);
  } else if (tl == 6 && memcmp(t, "joined", 6) == 0) {
    c->joined = true;
    B.chatter++;
  } else if (tl == 5 && memcmp(t, "error", 5) == 0) {
    B.server_errors++;
    fault("conn %d: server error: %.*s", c->id, (int)(n > 200 ? 200 : n), (const char *)d);
  } else {
    B.chatter++; /* welcome, presence, ack, typing, ... */
  }
}

static void on_message(void *ud, int opcode, uint8_t *d, size_t len, uint64_t total) {
  conn *c = ud;
  if (c->p.msg_rsv1 && total == len && secure_inflate(d, len, &d, &len) != 0) {
    B.corrupt++;
    return;
  }
  if (c->p.msg_rsv1) total = len;
  if (total > len) { /* oversized: only chatter is that big */
    if (len && d[0] == '{')
      B.chatter++;
    else
      B.corrupt++;
    return;
  }
  if (len && d[0] == '{')
    on_json(c, d, len);
  else if (opcode == WSC_TEXT || opcode == WSC_BINARY)
    on_payload(c, d, len);
}

static void on_control(void *ud, int opcode, uint8_t *d, size_t len) {
  conn *c = ud;
  if (opcode == WSC_PING) {
    send_frame(c, WSC_PONG, d, len);
  } else if (opcode == WSC_CLOSE) {
    int code = len >= 2 ? (d[0] << 8) | d[1] : 1005;
    if (!B.finishing) {
      char why[160];
      snprintf(why, sizeof why, "server closed the connection: %d %.*s", code,
               (int)(len > 2 ? (len - 2 > 100 ? 100 : len - 2) : 0), (const char *)d + 2);
      conn_fail(c, why, 0);
    }
  }
}

static const wsc_cb parser_cb = {on_message, on_control};

/* --- connections ------------------------------------------------------------------ */

static void open_more(void);
static void all_open(void);

static void on_closed(uv_handle_t *h) { (void)h; }

static void conn_fail(conn *c, const char *why, int err) {
  if (c->state == CS_CLOSED || c->state == CS_FAILED) return;
  bool was_handshaking = c->state == CS_CONNECTING || c->state == CS_HANDSHAKE;
  bool was_open = c->state == CS_OPEN;
  c->state = CS_FAILED;
  if (!B.finishing) {
    B.conn_errors++;
    if (err)
      fault("conn %d: %s: %s", c->id, why, uv_strerror(err));
    else
      fault("conn %d: %s", c->id, why);
  }
  if (B.o.h3) h3b_close(c->id, 1);
  else if (B.o.h2) h2b_close(c->id);
  else if (B.o.mux) h1mux_close(c->id);
  else if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
  secure_tls_free(c->tls);
  c->tls = NULL;
  if (was_handshaking) {
    B.handshaking--;
    B.failed++;
    open_more();
  } else if (was_open) {
    B.closed_unexpected++;
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init((char *)read_buf, sizeof read_buf);
}

static void handshake_done(conn *c) {
  c->state = CS_OPEN;
  B.handshaking--;
  B.opened++;
  if (B.opened + B.failed == B.nconns) all_open();
  else open_more();
}

static void conn_data(conn *c, uint8_t *d, size_t n);
static void send_upgrade(conn *c);

/* wss: ciphertext in; the TLS handshake, then the upgrade, then plaintext. */
static void tls_read(conn *c, const uint8_t *d, size_t n) {
  static uint8_t plain[16384];
  if (secure_tls_feed(c->tls, d, n) != 0) {
    conn_fail(c, "out of memory", 0);
    return;
  }
  if (!secure_tls_established(c->tls)) {
    int r = secure_tls_handshake(c->tls);
    flush_conn(c);
    if (r < 0) conn_fail(c, "TLS handshake failed", 0);
    if (r <= 0) return;
    send_upgrade(c);
  }
  long got;
  while (c->tls && (got = secure_tls_read(c->tls, plain, sizeof plain)) > 0) conn_data(c, plain, (size_t)got);
  if (c->tls && got < 0 && !B.finishing) conn_fail(c, "TLS read", 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (!B.finishing) conn_fail(c, nread == UV_EOF ? "server closed the TCP connection" : "read", nread == UV_EOF ? 0 : (int)nread);
    return;
  }
  secure_count_in((size_t)nread, B.phase == PH_MEASURE);
  if (c->tls) tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
  else conn_data(c, (uint8_t *)buf->base, (size_t)nread);
}

static void conn_data(conn *c, uint8_t *d, size_t n) {
  if (c->state == CS_HANDSHAKE) {
    const char *resp;
    size_t rlen;
    if (c->p.buf_len == 0) {
      resp = (const char *)d;
      rlen = n;
    } else {
      if (c->p.buf_len + n > KEEP_MAX) {
        conn_fail(c, "handshake response too long", 0);
        return;
      }
      size_t old = c->p.buf_len;
      c->p.buf_len = 0;
      /* re-append the old bytes then the new ones */
      memmove(read_buf + old, d, n);
      memcpy(read_buf, c->p.buf, old);
      d = read_buf;
      n += old;
      resp = (const char *)d;
      rlen = n;
    }
    long hl = wsc_handshake_response(resp, rlen, c->key);
    if (hl == 0) { /* keep the partial response */
      if (!c->p.buf || c->p.buf_cap < rlen) {
        uint8_t *nb = realloc(c->p.buf, rlen < 512 ? 512 : rlen);
        if (!nb) {
          conn_fail(c, "out of memory", 0);
          return;
        }
        c->p.buf = nb;
        c->p.buf_cap = rlen < 512 ? 512 : rlen;
      }
      memcpy(c->p.buf, resp, rlen);
      c->p.buf_len = rlen;
      return;
    }
    if (hl < 0) {
      const char *nl = memchr(resp, '\r', rlen);
      char why[200];
      snprintf(why, sizeof why, "handshake refused: %.*s", (int)(nl ? nl - resp : (long)(rlen > 100 ? 100 : rlen)), resp);
      conn_fail(c, why, 0);
      return;
    }
    if (secure_opt_deflate && secure_response_accepts_deflate(resp, (size_t)hl)) c->p.allow_rsv1 = 1;
    handshake_done(c);
    d += hl;
    n -= (size_t)hl;
    if (n == 0) return;
  }
  if (c->state != CS_OPEN) return;
  int r = wsc_feed(&c->p, d, n, &parser_cb, c);
  if (r < 0) conn_fail(c, r == -1 ? "WebSocket protocol error from server" : "out of memory", 0);
}

/* --- HTTP/3 (h3b.c): its events for our WebSockets ---------------------------------- */

static void h3_on_open(int ws) {
  conn *c = &B.conns[ws];
  if (c->state == CS_HANDSHAKE) handshake_done(c);
}

static void h3_on_data(int ws, uint8_t *d, size_t n) {
  conn *c = &B.conns[ws];
  if (c->state != CS_OPEN) return;
  int r = wsc_feed(&c->p, d, n, &parser_cb, c);
  if (r < 0) conn_fail(c, r == -1 ? "WebSocket protocol error from server" : "out of memory", 0);
}

static void h3_on_fail(int ws, const char *why, int status) {
  if (!B.finishing) conn_fail(&B.conns[ws], why, 0);
}

static const h3b_cb h3_cb = {h3_on_open, h3_on_data, h3_on_fail};

/* HTTP/2 (h2b.c): the same events (open and data as for HTTP/3). */
static void h2_on_fail(int ws, const char *why, int err) {
  if (!B.finishing) conn_fail(&B.conns[ws], why, err);
}

static const h2b_cb h2_cb = {h3_on_open, h3_on_data, h2_on_fail};
/* HTTP/1.1, several rooms per WebSocket (h1mux.c): the same events. */
static const h1mux_cb mux_cb = {h3_on_open, h3_on_data, h2_on_fail};

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (c->state != CS_CONNECTING) return;
  if (status < 0) {
    conn_fail(c, "connect", status);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = CS_HANDSHAKE;
  c->tcp.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  if (secure_opt_tls) {
    /* The upgrade goes out once the TLS handshake is done (tls_read). */
    if (!(c->tls = secure_tls_new())) {
      conn_fail(c, "TLS setup", 0);
      return;
    }
    secure_tls_handshake(c->tls);
    flush_conn(c);
    return;
  }
  send_upgrade(c);
}

static void send_upgrade(conn *c) {
  char path[128];
  if (B.o.sc == SC_ECHO || B.nrooms == 0)
    snprintf(path, sizeof path, "/echo");
  else
    snprintf(path, sizeof path, "/ws/%s", B.rooms[c->room].name);
  uint8_t rnd[16];
  uint64_t a = rng64(), b = rng64();
  memcpy(rnd, &a, 8);
  memcpy(rnd + 8, &b, 8);
  wsc_make_key(rnd, c->key);
  char req_text[512];
  size_t n = wsc_handshake_request(req_text, sizeof req_text, B.o.host, path, c->key);
  const char *ext = secure_request_header();
  size_t el = strlen(ext);
  if (el && n >= 2 && n + el < sizeof req_text) {   /* before the blank line */
    memcpy(req_text + n - 2, ext, el);
    memcpy(req_text + n - 2 + el, "\r\n", 2);
    n += el;
  }
  if (!out_reserve(c, n)) return;
  memcpy(c->out + c->out_len, req_text, n);
  c->out_len += (uint32_t)n;
  flush_conn(c);
}

static void start_connect(conn *c) {
  if (B.o.h3 || B.o.h2 || B.o.mux) {
    c->state = CS_HANDSHAKE;
    B.handshaking++;
    if (!B.t_first_connect) B.t_first_connect = now_ns() | 1;
    char path[128];
    if (B.o.sc == SC_ECHO || B.nrooms == 0) snprintf(path, sizeof path, "/echo");
    else snprintf(path, sizeof path, "/ws/%s", B.rooms[c->room].name);
    if (B.o.mux) h1mux_open(c->id, B.rooms[c->room].name);
    else if (B.o.h3) h3b_open(c->id, path);
    else h2b_open(c->id, path);
    return;
  }
  int r = uv_tcp_init_ex(B.loop, &c->tcp, AF_INET);
  if (r < 0) {
    c->state = CS_FAILED;
    B.failed++;
    B.conn_errors++;
    fault("conn %d: socket: %s", c->id, uv_strerror(r));
    return;
  }
  c->tcp.data = c;
  c->state = CS_CONNECTING;
  B.handshaking++;
  if (!B.t_first_connect) B.t_first_connect = now_ns() | 1;
  if (!B.o.no_spread) {
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&c->tcp, &fd);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src;
    uv_ip4_addr(B.o.src_base, 0, &src);
    uint32_t base = ntohl(src.sin_addr.s_addr);
    src.sin_addr.s_addr = htonl(base + (uint32_t)(c->id / B.o.per_addr));
    r = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0);
    if (r < 0) {
      conn_fail(c, "bind source address", r);
      return;
    }
  }
  struct sockaddr_in dst;
  uv_ip4_addr(B.o.addr, B.o.port, &dst);
  multi_dst(c->id, &dst);
  c->creq.data = c;
  r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&dst, on_connect);
  if (r < 0) conn_fail(c, "connect", r);
}

static void open_more(void) {
  while (B.handshaking < B.o.concurrency && B.next_open < B.nconns && !B.finishing) {
    conn *c = &B.conns[B.next_open++];
    start_connect(c);
  }
  if (B.phase == PH_CONNECT && B.opened + B.failed == B.nconns) all_open();
}

/* --- phases ----------------------------------------------------------------------- */

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void begin_sending(void);

static void on_sync_timer(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ns();
  int ready = 0;
  for (int i = 0; i < B.nrooms; i++) {
    room *r = &B.rooms[i];
    if (r->ready) {
      ready++;
      continue;
    }
    if (r->sync_round && now - r->sync_at < SYNC_RETRY_NS) continue;
    conn *c = &B.conns[member(i, 0)];
    if (c->state != CS_OPEN) continue;
    if (c->json && !c->joined) continue; /* wschat: wait for `joined` */
    r->sync_round++;
    r->sync_seen = 0;
    r->sync_at = now;
    char msg[96];
    int n = snprintf(msg, sizeof msg, "s:%u:%d:%u:", B.run_id, i, r->sync_round);
    send_frame(c, WSC_TEXT, msg, (size_t)n);
  }
  if (ready == B.nrooms) {
    uv_timer_stop(&B.sync_timer);
    begin_sending();
    return;
  }
  if (secs(now - B.t_all_open) > B.o.join_timeout) {
    int bad = B.nrooms - ready;
    fault("%d of %d rooms never had all members subscribed within %.0f s", bad, B.nrooms, B.o.join_timeout);
    B.conn_errors += (uint64_t)bad;
    finish();
  }
}

static void on_settle(uv_timer_t *t);

static void all_open(void) {
  if (B.phase != PH_CONNECT) return;
  B.t_all_open = now_ns();
  if (!B.o.quiet)
    logf_("%d/%d connections open in %.2f s (%d failed)", B.opened, B.nconns, secs(B.t_all_open - B.t_first_connect),
          B.failed);
  if (B.o.sc == SC_CONNECT) {
    B.cpu_end = take_cpu();
    B.phase = PH_HOLD;
    uv_timer_start(&B.settle_timer, on_settle, (uint64_t)(B.o.settle * 1000), 0);
    return;
  }
  if (B.failed) {
    fault("%d connections failed; not measuring", B.failed);
    finish();
    return;
  }
  B.phase = PH_SYNC;
  uv_timer_start(&B.sync_timer, on_sync_timer, SYNC_START_DELAY_NS / 1000000, 20);
}

static void finish_drain_check(uint64_t now) {
  if (B.unique >= B.expected || secs(now - B.t_drain_start) > B.o.drain_timeout) finish();
}

static void on_tick(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ns();
  if (B.phase == PH_WARMUP && now >= B.t_meas_start) {
    B.phase = PH_MEASURE;
    B.cpu_start = take_cpu();
  }
  if (B.o.rate > 0 && sending_phase()) {
    double per = 1e9 / B.o.rate;
    uint64_t until = now < B.t_meas_end ? now : B.t_meas_end;
    for (;;) {
      uint64_t ts = B.t_sched0 + (uint64_t)((double)B.open_sent * per);
      if (ts > until || ts >= B.t_meas_end) break;
      conn *c = &B.conns[B.pubs[B.open_sent % (uint64_t)B.npubs]];
      B.open_sent++;
      if (c->state == CS_OPEN) send_msg(c, ts);
    }
  }
  if (B.phase == PH_MEASURE && now >= B.t_meas_end) {
    B.phase = PH_DRAIN;
    B.cpu_end = take_cpu();
    B.t_drain_start = now;
  }
  if (B.phase == PH_DRAIN) finish_drain_check(now);
}

static void begin_sending(void) {
  uint64_t now = now_ns();
  if (!B.o.quiet) logf_("all %d rooms subscribed after %.2f s; sending", B.nrooms, secs(now - B.t_all_open));
  B.t_meas_start = now + (uint64_t)(B.o.warmup * 1e9);
  B.t_meas_end = B.t_meas_start + (uint64_t)(B.o.duration * 1e9);
  B.t_sched0 = now;
  B.phase = B.o.warmup > 0 ? PH_WARMUP : PH_MEASURE;
  if (B.phase == PH_MEASURE) B.cpu_start = take_cpu();
  if (B.o.rate <= 0)
    for (int i = 0; i < B.npubs; i++) top_up(&B.conns[B.pubs[i]]);
  uv_timer_start(&B.tick, on_tick, TICK_MS, TICK_MS);
}

static void on_hold_done(uv_timer_t *t) {
  (void)t;
  finish();
}

static void on_settle(uv_timer_t *t) {
  (void)t;
  B.rss_after_kb = B.o.server_pid > 0 ? read_rss_kb(B.o.server_pid) : -1;
  if (!B.o.quiet && B.o.hold > 0) logf_("holding %d idle connections for %.0f s", B.opened, B.o.hold);
  if (B.o.hold > 0)
    uv_timer_start(&B.settle_timer, on_hold_done, (uint64_t)(B.o.hold * 1000), 0);
  else
    finish();
}

static void on_progress(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ns();
  if (B.phase == PH_CONNECT && B.t_first_connect && secs(now - B.t_first_connect) > B.o.join_timeout) {
    int pending = B.nconns - B.opened - B.failed;
    fault("%d connections still not open after %.0f s", pending, B.o.join_timeout);
    B.conn_errors += (uint64_t)pending;
    B.cpu_end = take_cpu();
    B.t_all_open = now;
    finish();
    return;
  }
  if (B.o.quiet) return;
  uint64_t d = B.unique - B.last_unique;
  B.last_unique = B.unique;
  uint64_t errs = B.dups + B.reorders + B.corrupt + B.misrouted + B.server_errors + B.conn_errors;
  fprintf(stderr,
          "wschat-bench: t=%.1fs phase=%s open=%d/%d handshaking=%d sent=%" PRIu64 " delivered=%" PRIu64
          " rate=%" PRIu64 "/s p99=%.3fms errors=%" PRIu64 "\n",
          secs(now), phase_name[B.phase], B.opened - B.closed_unexpected, B.nconns, B.handshaking, B.sent, B.unique,
          d, hist_percentile(&B.lat, 99) / 1e6, errs);
}

/* --- report ------------------------------------------------------------------------ */

static void verify_counts(void) {
  for (int i = 0; i < B.nrooms; i++) {
    room *r = &B.rooms[i];
    for (int m = 0; m < r->n; m++)
      for (int p = 0; p < r->npubs; p++) {
        pair *pp = &r->pairs[(size_t)m * (size_t)r->npubs + (size_t)p];
        uint32_t sent = r->sent[p];
        if (pp->got < sent) {
          fault("lost: conn %d missed %u of %u messages of conn %d", member(i, m), sent - pp->got, sent,
                member(i, p));
          B.lost += sent - pp->got;
        } else if (pp->got > sent) {
          B.dups += pp->got - sent;
        }
      }
  }
}

static void finish(void) {
  if (B.finishing) return;
  B.finishing = true;
  uint64_t now = now_ns();
  if (B.phase == PH_MEASURE || B.phase == PH_WARMUP) B.cpu_end = take_cpu();
  bool measured = B.phase == PH_DRAIN;
  enum phase ended = B.phase;
  B.phase = PH_DONE;
  verify_counts();
  if (ended == PH_DRAIN && B.unique < B.expected && !B.lost) B.lost = B.expected - B.unique;

  const opts *o = &B.o;
  double dur = o->duration;
  double client_cpu = B.cpu_end.client_s - B.cpu_start.client_s;
  double server_cpu = B.cpu_end.server_ok && B.cpu_start.server_ok ? B.cpu_end.server_s - B.cpu_start.server_s : -1;
  uint64_t errors = B.lost + B.dups + B.reorders + B.corrupt + B.misrouted + B.server_errors + B.conn_errors +
                    B.backlog_errors + (uint64_t)B.failed;
  if (o->sc != SC_CONNECT && !measured) errors += errors ? 0 : 1;
  B.exit_code = errors ? 1 : 0;
  const char *sc = o->sc == SC_FANOUT ? "fanout" : o->sc == SC_ECHO ? "echo" : "connect";

  char line[2048];
  int n = 0;
  if (o->sc == SC_CONNECT) {
    double ct = secs(B.t_all_open - B.t_first_connect);
    double rate = ct > 0 ? B.opened / ct : 0;
    double per = (B.rss_before_kb >= 0 && B.rss_after_kb >= 0 && B.opened)
                     ? (double)(B.rss_after_kb - B.rss_before_kb) * 1024.0 / B.opened
                     : -1;
    n = snprintf(line, sizeof line,
                 "RESULT scenario=connect conns=%d opened=%d failed=%d concurrency=%d connect_s=%.3f "
                 "accept_per_s=%.0f rss_before_kb=%ld rss_after_kb=%ld rss_per_conn_bytes=%.0f "
                 "client_cpu_s=%.3f server_cpu_s=%.3f errors=%" PRIu64,
                 B.nconns, B.opened, B.failed, o->concurrency, ct, rate, B.rss_before_kb, B.rss_after_kb, per,
                 client_cpu, server_cpu, errors);
    printf("%s\n", line);
    if (o->json) {
      FILE *f = fopen(o->json, "w");
      if (f) {
        fprintf(f,
                "{\"scenario\":\"connect\",\"url\":\"%s\",\"conns\":%d,\"rooms\":%d,\"opened\":%d,\"failed\":%d,"
                "\"concurrency\":%d,\"connect_s\":%.6f,\"accept_per_s\":%.1f,\"rss_before_kb\":%ld,"
                "\"rss_after_kb\":%ld,\"rss_per_conn_bytes\":%.1f,\"client_cpu_s\":%.4f,\"server_cpu_s\":%.4f,"
                "\"chatter\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"ok\":%s}\n",
                o->url, B.nconns, B.nrooms, B.opened, B.failed, o->concurrency, ct, rate, B.rss_before_kb,
                B.rss_after_kb, per, client_cpu, server_cpu, B.chatter, errors, errors ? "false" : "true");
        fclose(f);
      }
    }
  } else {
    double dps = B.delivered_measured / dur;
    double spd = B.sent_measured / dur;
    double p50 = hist_percentile(&B.lat, 50) / 1e6, p90 = hist_percentile(&B.lat, 90) / 1e6,
           p99 = hist_percentile(&B.lat, 99) / 1e6, p999 = hist_percentile(&B.lat, 99.9) / 1e6,
           mx = B.lat.max / 1e6, mean = hist_mean(&B.lat) / 1e6;
    double scpu_per = server_cpu >= 0 && B.delivered_measured ? server_cpu * 1e9 / B.delivered_measured : -1;
    double ccpu_per = B.delivered_measured ? client_cpu * 1e9 / B.delivered_measured : -1;
    char mode[64];
    if (o->rate > 0)
      snprintf(mode, sizeof mode, "mode=open rate=%.0f", o->rate);
    else
      snprintf(mode, sizeof mode, "mode=closed window=%d", o->window);
    n = snprintf(line, sizeof line,
                 "RESULT scenario=%s rooms=%d conns=%d pubs=%d size=%d %s duration_s=%.2f sent=%" PRIu64
                 " deliveries=%" PRIu64 " msgs_per_s=%.0f deliveries_per_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
                 "p999_ms=%.3f max_ms=%.3f client_cpu_s=%.3f server_cpu_s=%.3f server_cpu_ns_per_delivery=%.0f "
                 "lost=%" PRIu64 " duplicates=%" PRIu64 " reordered=%" PRIu64 " corrupt=%" PRIu64 " errors=%" PRIu64,
                 sc, B.nrooms, o->sc == SC_ECHO ? B.nconns : o->conns, B.npubs, o->size, mode, dur,
                 B.sent_measured, B.delivered_measured, spd, dps, p50, p90, p99, p999, mx, client_cpu, server_cpu,
                 scpu_per, B.lost, B.dups, B.reorders, B.corrupt, errors);
    printf("%s\n", line);
    secure_report(B.delivered_measured);
    if (o->json) {
      FILE *f = fopen(o->json, "w");
      if (f) {
        fprintf(f,
                "{\"scenario\":\"%s\",\"url\":\"%s\",\"rooms\":%d,\"conns_per_room\":%d,\"conns\":%d,"
                "\"publishers\":%d,\"size\":%d,\"mode\":\"%s\",\"window\":%d,\"rate\":%.1f,"
                "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"sent_total\":%" PRIu64 ",\"sent_measured\":%" PRIu64
                ",\"deliveries_total\":%" PRIu64 ",\"deliveries_measured\":%" PRIu64
                ",\"msgs_per_s\":%.1f,\"deliveries_per_s\":%.1f,"
                "\"latency_ms\":{\"count\":%" PRIu64 ",\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
                "\"p999\":%.4f,\"max\":%.4f},"
                "\"client_cpu_s\":%.4f,\"server_cpu_s\":%.4f,\"client_cpu_ns_per_delivery\":%.1f,"
                "\"server_cpu_ns_per_delivery\":%.1f,"
                "\"verification\":{\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"reordered\":%" PRIu64
                ",\"corrupt\":%" PRIu64 ",\"misrouted\":%" PRIu64 ",\"server_errors\":%" PRIu64
                ",\"connection_errors\":%" PRIu64 ",\"failed_connects\":%d,\"foreign\":%" PRIu64
                ",\"chatter\":%" PRIu64 "},\"errors\":%" PRIu64 ",\"ok\":%s}\n",
                sc, o->url, B.nrooms, o->sc == SC_ECHO ? 1 : o->conns, B.nconns, B.npubs, o->size,
                o->rate > 0 ? "open" : "closed", o->window, o->rate, o->warmup, dur, B.sent, B.sent_measured,
                B.unique, B.delivered_measured, spd, dps, B.lat.total, mean, p50, p90, p99, p999, mx, client_cpu,
                server_cpu, ccpu_per, scpu_per, B.lost, B.dups, B.reorders, B.corrupt, B.misrouted,
                B.server_errors, B.conn_errors, B.failed, B.foreign, B.chatter, errors, errors ? "false" : "true");
        fclose(f);
      }
    }
  }
  (void)n;
  (void)now;
  fflush(stdout);
  if (errors && !o->quiet) logf_("FAILED: %" PRIu64 " errors (see FAULT lines above)", errors);
  /* The kernel closes every socket; no need to walk 15,000 handles. */
  exit(B.exit_code);
}

/* --- setup ---------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: wschat-bench fanout|echo|connect --url ws://HOST:PORT [options]\n"
        "       wschat-bench transports --url http://HOST:PORT --pid PID [--clients 50] [--rate 10]\n"
        "           [--duration 30] [--transport poll:1000,poll:250,longpoll,ws] [--held N] [--json FILE]\n"
        "  fanout:  --rooms R (1) --conns C per room (100) --pubs P per room (all) --size S (64)\n"
        "           --window W messages in flight per publisher (1), or --rate N msgs/s total (open loop)\n"
        "  echo:    --conns C (100) --inflight D (16) --size S (64) [--rate N]\n"
        "  connect: --conns C (1000) [--rooms R: spread over /ws/ROOM, else /echo] --settle s (2) --hold s (0)\n"
        "  common:  --duration s (5) --warmup s (1) --drain-timeout s (5) --join-timeout s (30)\n"
        "           --url wss://HOST:PORT speaks TLS; --deflate offers permessage-deflate;\n"
        "           --chat-text pads messages with chat-like words (compressible like chat)\n"
        "           --concurrency K concurrent handshakes (256) --server-pid PID --json FILE\n"
        "           --src-base 127.0.0.2 --per-addr N (10000) --no-spread --room-prefix P --quiet\n"
        "           --h3 N  N WebSockets per HTTP/3 (QUIC) connection (RFC 9220) to the --url port over UDP\n"
        "           --h2 N  N WebSockets per HTTP/2 connection (h2c, RFC 8441 extended CONNECT)\n"
        "           --mux N N rooms per HTTP/1.1 WebSocket (one /ws connection, a `join` per room)\n"
        "           --mix-rooms  fanout: consecutive connections are in different rooms, so each\n"
        "                   --h3/--h2/--mux N connection carries N rooms (R >= N)\n"
        "  cluster: --node ws://HOST:PORT (repeatable: client i goes to node i mod (1+nodes))\n"
        "           --node-pid PID (repeatable: its CPU counts as server CPU)\n"
        "  storm:   reconnect storm across a server restart (storm.h): --conns C --rooms R --rate N\n",
        f);
}

static bool parse_url(opts *o) {
  const char *u = o->url;
  secure_opt_tls = strncmp(u, "wss://", 6) == 0;
  if (secure_opt_tls) u++;
  else if (strncmp(u, "ws://", 5) != 0) return false;
  u += 5;
  const char *slash = strchr(u, '/');
  size_t hl = slash ? (size_t)(slash - u) : strlen(u);
  if (hl == 0 || hl >= sizeof o->host) return false;
  memcpy(o->host, u, hl);
  o->host[hl] = '\0';
  char hostonly[256];
  snprintf(hostonly, sizeof hostonly, "%s", o->host);
  char *colon = strrchr(hostonly, ':');
  o->port = secure_opt_tls ? 443 : 80;
  if (colon) {
    *colon = '\0';
    o->port = atoi(colon + 1);
  }
  if (strcmp(hostonly, "localhost") == 0) snprintf(hostonly, sizeof hostonly, "127.0.0.1");
  struct sockaddr_in sa;
  if (uv_ip4_addr(hostonly, o->port, &sa) != 0) return false;
  size_t al = strlen(hostonly);
  if (al >= sizeof o->addr) return false;
  memcpy(o->addr, hostonly, al + 1);
  return o->port > 0 && o->port < 65536;
}

static void raise_fd_limit(int need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)need + FD_RESERVE > rl.rlim_cur) {
      logf_("%d connections need more file descriptors than the limit %llu allows", need,
            (unsigned long long)rl.rlim_cur);
      exit(2);
    }
  }
}

void bench_raise_fd_limit(int need) { raise_fd_limit(need); }

int main(int argc, char **argv) {
  opts *o = &B.o;
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "transports")) return transports_main(argc, argv);
  if (!strcmp(argv[1], "storm")) return storm_main(argc - 1, argv + 1); /* storm.c */
  if (!strcmp(argv[1], "fanout")) o->sc = SC_FANOUT;
  else if (!strcmp(argv[1], "echo")) o->sc = SC_ECHO;
  else if (!strcmp(argv[1], "connect")) o->sc = SC_CONNECT;
  else {
    usage(stderr);
    return 2;
  }
  o->url = "ws://127.0.0.1:8000";
  o->rooms = o->sc == SC_CONNECT ? 0 : 1;
  o->conns = o->sc == SC_CONNECT ? 1000 : 100;
  o->pubs = -1;
  o->size = 64;
  o->window = o->sc == SC_ECHO ? 16 : 1;
  o->concurrency = 256;
  o->per_addr = 10000;
  o->duration = 5;
  o->warmup = 1;
  o->drain_timeout = 5;
  o->join_timeout = 30;
  o->settle = 2;
  o->src_base = "127.0.0.2";
  o->room_prefix = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
    if (OPT("--url")) o->url = v;
    else if (OPT("--rooms")) o->rooms = atoi(v);
    else if (OPT("--conns")) o->conns = atoi(v);
    else if (OPT("--pubs")) o->pubs = !strcmp(v, "all") ? -1 : atoi(v);
    else if (OPT("--size")) o->size = atoi(v);
    else if (OPT("--window") || OPT("--inflight")) o->window = atoi(v);
    else if (OPT("--rate")) o->rate = atof(v);
    else if (OPT("--duration")) o->duration = atof(v);
    else if (OPT("--warmup")) o->warmup = atof(v);
    else if (OPT("--drain-timeout")) o->drain_timeout = atof(v);
    else if (OPT("--join-timeout")) o->join_timeout = atof(v);
    else if (OPT("--settle")) o->settle = atof(v);
    else if (OPT("--hold")) o->hold = atof(v);
    else if (OPT("--concurrency")) o->concurrency = atoi(v);
    else if (OPT("--server-pid")) o->server_pid = atoi(v);
    else if (OPT("--json")) o->json = v;
    else if (OPT("--src-base")) o->src_base = v;
    else if (OPT("--per-addr")) o->per_addr = atoi(v);
    else if (OPT("--room-prefix")) o->room_prefix = v;
    else if (OPT("--h3")) o->h3 = atoi(v);
    else if (OPT("--h2")) o->h2 = atoi(v);
    else if (OPT("--mux")) o->mux = atoi(v);
    else if (!strcmp(a, "--mix-rooms")) o->mix_rooms = true;
    else if (!strcmp(a, "--no-spread")) o->no_spread = true;
    else if (!strcmp(a, "--quiet")) o->quiet = true;
    else if (!strcmp(a, "--deflate")) secure_opt_deflate = true;
    else if (!strcmp(a, "--chat-text")) secure_opt_chat_text = true;
    else if (multi_option(a, v)) i++;
    else {
      logf_("unknown or incomplete option %s", a);
      usage(stderr);
      return 2;
    }
#undef OPT
  }
  if (!parse_url(o)) {
    logf_("--url must be ws:// or wss://IPV4:PORT (or localhost), got %s", o->url);
    return 2;
  }
  if (o->conns < 1 || o->rooms < 0 || o->window < 1 || o->concurrency < 1 || o->per_addr < 1 ||
      o->duration <= 0 || o->warmup < 0 || o->size < MIN_SIZE || o->size > 65536) {
    logf_("bad option value (conns>=1, window>=1, %d<=size<=65536, duration>0)", MIN_SIZE);
    return 2;
  }
  if ((o->mux > 0 || o->mix_rooms) && o->sc != SC_FANOUT) {
    logf_("--mux and --mix-rooms are for fanout");
    return 2;
  }
  if ((o->mux > 0) + (o->h2 > 0) + (o->h3 > 0) > 1 || (o->mux > 0 && secure_opt_tls)) {
    logf_("one of --h3, --h2, --mux (and --mux over ws:// only)");
    return 2;
  }
  struct sockaddr_in tmp;
  if (uv_ip4_addr(o->src_base, 0, &tmp) != 0) {
    logf_("bad --src-base %s", o->src_base);
    return 2;
  }
  if (strncmp(o->addr, "127.", 4) != 0 && strcmp(o->src_base, "127.0.0.2") == 0) o->no_spread = true;

  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
  B.rng = seed | 1;
  B.run_id = (uint32_t)(rng64() % 90000) + 10000;
  B.t0 = uv_hrtime() - 1000000000ull; /* so that t=0 never means "unset" */
  hist_init(&B.lat);
  for (size_t i = 0; i < sizeof B.pad; i++) B.pad[i] = (uint8_t)('a' + i % 26);
  if (secure_opt_chat_text) secure_chat_text(B.pad, sizeof B.pad);
  B.t_meas_start = UINT64_MAX;
  B.t_meas_end = UINT64_MAX;

  /* topology */
  if (o->sc == SC_ECHO) {
    B.nrooms = o->conns;
    B.nconns = o->conns;
  } else if (o->sc == SC_FANOUT) {
    if (o->rooms < 1) o->rooms = 1;
    B.nrooms = o->rooms;
    B.nconns = o->rooms * o->conns;
  } else {
    B.nrooms = o->rooms;
    B.nconns = o->conns;
  }
  raise_fd_limit(B.nconns);
  B.conns = calloc((size_t)B.nconns, sizeof *B.conns);
  B.rooms = calloc(B.nrooms ? (size_t)B.nrooms : 1, sizeof *B.rooms);
  B.pubs = calloc((size_t)B.nconns, sizeof *B.pubs);
  if (!B.conns || !B.rooms || !B.pubs) {
    logf_("out of memory");
    return 2;
  }
  char prefix[40];
  if (o->room_prefix)
    snprintf(prefix, sizeof prefix, "%s", o->room_prefix);
  else
    snprintf(prefix, sizeof prefix, "bench%u-", B.run_id);
  for (int i = 0; i < B.nconns; i++) {
    conn *c = &B.conns[i];
    c->id = i;
    c->pub = -1;
    wsc_parser_init(&c->p, KEEP_MAX);
  }
  if (o->sc == SC_CONNECT) {
    for (int i = 0; i < B.nrooms; i++) snprintf(B.rooms[i].name, sizeof B.rooms[i].name, "%s%d", prefix, i);
    for (int i = 0; i < B.nconns; i++) {
      B.conns[i].room = B.nrooms ? i % B.nrooms : 0;
    }
  } else {
    int per = o->sc == SC_ECHO ? 1 : o->conns;
    int np = o->sc == SC_ECHO ? 1 : (o->pubs < 0 || o->pubs > per ? per : o->pubs);
    for (int i = 0; i < B.nrooms; i++) {
      room *r = &B.rooms[i];
      snprintf(r->name, sizeof r->name, "%s%d", prefix, i);
      r->first = i * per;
      r->n = per;
      r->npubs = np;
      r->pairs = calloc((size_t)per * (size_t)(np ? np : 1), sizeof *r->pairs);
      r->sent = calloc((size_t)(np ? np : 1), sizeof *r->sent);
      if (!r->pairs || !r->sent) {
        logf_("out of memory");
        return 2;
      }
      for (int m = 0; m < per; m++) {
        conn *c = &B.conns[member(i, m)];
        c->room = i;
        c->local = m;
        if (m < np) {
          c->pub = m;
          B.pubs[B.npubs++] = c->id;
        }
      }
    }
  }
  if (!o->quiet) {
    if (o->sc == SC_CONNECT)
      logf_("connect: %d connections to %s (%s), %d concurrent handshakes", B.nconns, o->url,
            B.nrooms ? "/ws/ROOM" : "/echo", o->concurrency);
    else
      logf_("%s: %d rooms x %d conns, %d publishers, %d-byte messages, %s %g, run %u", argv[1], B.nrooms,
            o->sc == SC_ECHO ? 1 : o->conns, B.npubs, o->size, o->rate > 0 ? "rate" : "window",
            o->rate > 0 ? o->rate : o->window, B.run_id);
  }

  B.loop = uv_default_loop();
  uv_timer_init(B.loop, &B.tick);
  uv_timer_init(B.loop, &B.progress);
  uv_timer_init(B.loop, &B.sync_timer);
  uv_timer_init(B.loop, &B.settle_timer);
  uv_check_init(B.loop, &B.flush_check);
  uv_check_start(&B.flush_check, on_flush_check);
  uv_unref((uv_handle_t *)&B.flush_check);
  uv_timer_start(&B.progress, on_progress, 1000, 1000);

  if (o->h3 > 0 && h3b_init(B.loop, o->addr, o->port, o->host, B.nconns, o->h3, &h3_cb) != 0) {
    logf_("cannot set up HTTP/3");
    return 2;
  }
  if (o->mux > 0 && h1mux_init(B.loop, o->addr, o->port, o->host, B.nconns, o->mux, &mux_cb) != 0) {
    logf_("cannot set up the shared WebSockets (--mux)");
    return 2;
  }
  if (o->h2 > 0 && h2b_init(B.loop, o->addr, o->port, o->host, B.nconns, o->h2, &h2_cb) != 0) {
    logf_("cannot set up HTTP/2");
    return 2;
  }
  B.rss_before_kb = o->server_pid > 0 ? read_rss_kb(o->server_pid) : -1;
  if (o->server_pid > 0 && B.rss_before_kb < 0) logf_("warning: cannot read /proc/%d/status", o->server_pid);
  if (o->sc == SC_CONNECT) B.cpu_start = take_cpu();
  B.phase = PH_CONNECT;
  open_more();
  uv_run(B.loop, UV_RUN_DEFAULT);
  return B.exit_code;
}
