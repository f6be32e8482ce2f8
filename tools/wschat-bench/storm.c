/* storm — see storm.h. */
#include "storm.h"

#include <inttypes.h>
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
#include <uv.h>

#include "wsc.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* The web page's reconnect constants (web/app.js). */
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 10000
#define JOIN_TIMEOUT_MS 20000
#define READ_BUF (256 * 1024)
#define KEEP_MAX (64 * 1024)
#define HS_CAP 1024
#define TOKEN_CAP 80
#define PER_SRC_ADDR 8000 /* connections per source address (ephemeral ports) */
#define PUB_TICK_MS 10
#define MAX_LOGGED 10

typedef struct sroom {
  char name[32];
  int first, n;
  int64_t max_acked;   /* highest id acknowledged to the publisher */
  uint64_t seq;        /* publisher's next sequence number */
} sroom;

typedef struct sclient {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t timer;    /* reconnect backoff and join timeout */
  wsc_parser p;
  int id, room;
  bool open, upgraded, joined, resumed_once, hello_sent, closing, counted;
  int64_t replay_to;         /* last_id of the latest joined: ids up to it are replayed */
  uint32_t attempt;    /* as the page: consecutive failures since the last joined */
  uint32_t gen;        /* connection generation */
  uint32_t attempts_total;
  char *hs;            /* handshake response being read */
  uint32_t hs_len;
  char key[WSC_KEY_LEN + 1];
  char session[TOKEN_CAP];
  char epoch[TOKEN_CAP];
  int64_t first_id, last_id; /* ids of its room seen: first, highest (-1: none yet) */
  int64_t last_seq;          /* publisher sequence in the last message seen */
  uint32_t pending;          /* publisher: sends not yet acknowledged */
} sclient;

static struct {
  const char *url;
  char addr[64], host[128];
  int port, nconns, nrooms, concurrency;
  double rate, after_s, wait_s;
  const char *json;
  uv_loop_t *loop;
  uv_timer_t pub_timer, phase_timer;
  sclient *c;
  sroom *rooms;
  uint64_t rng;
  int next_open, connecting, joined_count;
  bool ready, dropped, all_resumed, publishing, finished;
  uint64_t t0, t_ready, t_drop, t_all_reconnected, t_all_resumed, t_pub_start, t_pub_stop;
  uint64_t pub_started_sent;
  int reconnected, resumed;
  /* counters */
  uint64_t sent, acked, delivered, replayed, in_doubt;
  uint64_t lost, dups, not_recovered, reorder, errors, bad, connect_failures, join_timeouts;
  uint32_t max_attempts;
  int logged;
} S;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void) {
  S.rng ^= S.rng >> 12;
  S.rng ^= S.rng << 25;
  S.rng ^= S.rng >> 27;
  return S.rng * 2685821657736338717ull;
}

static void flog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void flog(const char *fmt, ...) {
  if (S.logged++ >= MAX_LOGGED) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("storm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* --- writing -------------------------------------------------------------------- */

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
  uint8_t data[];
} wreq;

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void send_raw(sclient *c, const void *data, size_t len) {
  if (!c->open) return;
  wreq *w = malloc(sizeof *w + len);
  if (!w) return;
  memcpy(w->data, data, len);
  w->buf = uv_buf_init((char *)w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written) < 0) free(w);
}

static void send_frame(sclient *c, int opcode, const char *payload, size_t len) {
  uint8_t buf[WSC_MAX_CLIENT_HEADER + 512];
  if (len > 512) return;
  uint32_t mask = (uint32_t)rnd();
  size_t h = wsc_frame_header(buf, opcode, len, mask);
  memcpy(buf + h, payload, len);
  wsc_mask(buf + h, len, mask, 0);
  send_raw(c, buf, h + len);
}

static void send_text(sclient *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_text(sclient *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof msg) send_frame(c, WSC_TEXT, msg, (size_t)n);
}

/* --- JSON fields (wschat's own output: no escapes in the fields read) ----------- */

static const char *field(const char *s, size_t n, const char *key) {
  char pat[40];
  int k = snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = memmem(s, n, pat, (size_t)k);
  return p ? p + k : NULL;
}

static int64_t field_int(const char *s, size_t n, const char *key, int64_t dflt) {
  const char *p = field(s, n, key);
  return p ? strtoll(p, NULL, 10) : dflt;
}

static bool field_str(const char *s, size_t n, const char *key, char *out, size_t cap) {
  const char *p = field(s, n, key);
  if (!p || *p != '"') return false;
  p++;
  const char *e = memchr(p, '"', (size_t)(s + n - p));
  if (!e || (size_t)(e - p) >= cap) return false;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = 0;
  return true;
}

/* --- connection life ------------------------------------------------------------- */

static void start_connect(sclient *c);
static void check_progress(void);
static void open_more(void);

static void on_reconnect_timer(uv_timer_t *t) { start_connect(t->data); }

/* The page's scheduleReconnect: equal jitter over an exponential cap. */
static void schedule_reconnect(sclient *c) {
  double cap = BACKOFF_BASE_MS * (double)(1u << (c->attempt < 20 ? c->attempt : 20));
  if (cap > BACKOFF_MAX_MS) cap = BACKOFF_MAX_MS;
  double delay = cap / 2 + (double)(rnd() >> 11) / 9007199254740992.0 * (cap / 2);
  c->attempt++;
  uv_timer_start(&c->timer, on_reconnect_timer, (uint64_t)delay, 0);
}

static void on_closed(uv_handle_t *h) {
  sclient *c = h->data;
  c->closing = false;
  if (S.finished) return;
  schedule_reconnect(c);
}

static void drop(sclient *c) {
  if (c->closing) return;
  bool was_open = c->open;
  c->open = false;
  if (c->joined) S.joined_count--;
  c->joined = false;
  c->upgraded = false;
  free(c->hs);
  c->hs = NULL;
  if (c->pending) {
    S.in_doubt += c->pending;
    c->pending = 0;
  }
  uv_timer_stop(&c->timer);
  if (S.ready && !S.dropped && was_open) {
    S.dropped = true;
    S.t_drop = now_ns();
    S.reconnected = S.resumed = 0;
    fprintf(stdout, "storm: first drop at +%.3f s\n", (double)(S.t_drop - S.t0) / 1e9);
    fflush(stdout);
  }
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_join_timeout(uv_timer_t *t) {
  sclient *c = t->data;
  S.join_timeouts++;
  drop(c);
}

static void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *buf) {
  (void)h;
  (void)sug;
  static char rbuf[READ_BUF];
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_joined(sclient *c, const char *s, size_t n) {
  char room[40];
  if (!field_str(s, n, "room", room, sizeof room) || strcmp(room, S.rooms[c->room].name)) {
    S.bad++;
    flog("client %d: joined for the wrong room", c->id);
    return;
  }
  field_str(s, n, "epoch", c->epoch, sizeof c->epoch);
  if (c->resumed_once) {
    /* A resume: the replay must be exactly what follows last_id. */
    if (!memmem(s, n, "\"recovered\":true", 16)) {
      S.not_recovered++;
      flog("client %d: resume since %" PRId64 " not recovered", c->id, c->last_id);
    }
  }
  c->joined = true;
  c->attempt = 0;
  uv_timer_stop(&c->timer);
  S.joined_count++;
  c->replay_to = field_int(s, n, "last_id", -1);
  if (S.dropped && !c->counted) {
    c->counted = true;
    S.resumed++;
    if (S.resumed == S.nconns && !S.all_resumed) {
      S.all_resumed = true;
      S.t_all_resumed = now_ns();
      fprintf(stdout, "storm: all %d resumed %.3f s after the first drop\n", S.nconns,
              (double)(S.t_all_resumed - S.t_drop) / 1e9);
      fflush(stdout);
    }
  }
  check_progress();
}

static void on_chat(sclient *c, const char *s, size_t n) {
  static const char pre[] = "{\"type\":\"";
  if (n < sizeof pre || memcmp(s, pre, sizeof pre - 1)) {
    S.bad++;
    return;
  }
  const char *t = s + sizeof pre - 1;
  if (!strncmp(t, "message\"", 8)) {
    int64_t id = field_int(s, n, "id", -1);
    char text[64];
    if (!field_str(s, n, "text", text, sizeof text) || text[0] != 'p') {
      S.bad++;
      return;
    }
    int64_t seq = strtoll(text + 1, NULL, 10);
    if (id <= c->replay_to) S.replayed++;
    S.delivered++;
    if (c->last_id < 0) {
      c->first_id = id;
    } else if (id != c->last_id + 1) {
      if (id <= c->last_id) {
        S.dups++;
        flog("client %d: id %" PRId64 " after %" PRId64 " (duplicate)", c->id, id, c->last_id);
        return;
      }
      S.lost += (uint64_t)(id - c->last_id - 1);
      flog("client %d: id %" PRId64 " after %" PRId64 " (lost)", c->id, id, c->last_id);
    }
    if (seq <= c->last_seq) S.reorder++;
    c->last_seq = seq;
    c->last_id = id;
  } else if (!strncmp(t, "ack\"", 4)) {
    int64_t id = field_int(s, n, "id", -1);
    sroom *r = &S.rooms[c->room];
    if (c->pending) c->pending--;
    S.acked++;
    if (id > r->max_acked) r->max_acked = id;
  } else if (!strncmp(t, "welcome\"", 8)) {
    char name[40], want[40];
    snprintf(want, sizeof want, "u%d", c->id);
    field_str(s, n, "session", c->session, sizeof c->session);
    if (!field_str(s, n, "name", name, sizeof name)) name[0] = 0;
    if (!S.dropped || c->joined) {
      if (!c->joined && !c->hello_sent) goto join;
      return;
    }
    if (strcmp(name, want) && !c->hello_sent) {
      /* The restarted server does not know our token: ask for our name. */
      c->hello_sent = true;
      send_text(c, "{\"type\":\"hello\",\"name\":\"%s\"}", want);
      return;
    }
  join:
    c->hello_sent = true; /* one join per connection */
    if (c->last_id >= 0 && c->epoch[0]) {
      c->resumed_once = true;
      send_text(c, "{\"type\":\"join\",\"room\":\"%s\",\"since\":%" PRId64 ",\"epoch\":\"%s\"}",
                S.rooms[c->room].name, c->last_id, c->epoch);
    } else {
      send_text(c, "{\"type\":\"join\",\"room\":\"%s\"}", S.rooms[c->room].name);
    }
  } else if (!strncmp(t, "joined\"", 7)) {
    on_joined(c, s, n);
  } else if (!strncmp(t, "error\"", 6)) {
    S.errors++;
    flog("client %d: %.*s", c->id, (int)(n > 200 ? 200 : n), s);
  }
  /* presence, typing, pong: nothing to check */
}

static void on_message(void *ud, int opcode, uint8_t *data, size_t len, uint64_t total) {
  sclient *c = ud;
  if (opcode != WSC_TEXT || total != len) {
    S.bad++;
    return;
  }
  on_chat(c, (const char *)data, len);
}

static void on_control(void *ud, int opcode, uint8_t *data, size_t len) {
  sclient *c = ud;
  if (opcode == WSC_PING) send_frame(c, WSC_PONG, (const char *)data, len);
  else if (opcode == WSC_CLOSE) drop(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  sclient *c = st->data;
  if (nread < 0) {
    drop(c);
    return;
  }
  uint8_t *d = (uint8_t *)buf->base;
  size_t n = (size_t)nread;
  if (!c->upgraded) {
    size_t take = n;
    if (c->hs_len + take > HS_CAP - 1) take = HS_CAP - 1 - c->hs_len;
    memcpy(c->hs + c->hs_len, d, take);
    c->hs_len += (uint32_t)take;
    c->hs[c->hs_len] = 0;
    long hl = wsc_handshake_response(c->hs, c->hs_len, c->key);
    if (hl == 0) return;
    if (hl < 0) {
      S.connect_failures++;
      drop(c);
      return;
    }
    size_t prev = c->hs_len - take; /* bytes of hs before this read */
    size_t used = (size_t)hl - prev;
    free(c->hs);
    c->hs = NULL;
    c->upgraded = true;
    if (S.dropped) {
      S.reconnected++;
      if (S.reconnected == S.nconns) S.t_all_reconnected = now_ns();
    }
    d += used;
    n -= used;
  }
  if (n && wsc_feed(&c->p, d, n, &(wsc_cb){on_message, on_control}, c) < 0) {
    S.bad++;
    drop(c);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  sclient *c = req->data;
  if (S.connecting) S.connecting--;
  if (status < 0) {
    S.connect_failures++;
    drop(c);
    if (!S.ready) open_more();
    return;
  }
  if (!S.ready) open_more();
  c->open = true;
  c->hs = malloc(HS_CAP);
  c->hs_len = 0;
  uint8_t r16[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t v = rnd();
    memcpy(r16 + i, &v, 8);
  }
  wsc_make_key(r16, c->key);
  char path[160], req_text[512];
  if (c->session[0]) snprintf(path, sizeof path, "/ws?session=%s", c->session);
  else snprintf(path, sizeof path, "/ws?name=u%d", c->id);
  size_t len = wsc_handshake_request(req_text, sizeof req_text, S.host, path, c->key);
  send_raw(c, req_text, len);
  wsc_parser_free(&c->p);
  wsc_parser_init(&c->p, KEEP_MAX);
  c->hello_sent = false;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  uv_timer_start(&c->timer, on_join_timeout, JOIN_TIMEOUT_MS, 0);
}

static void start_connect(sclient *c) {
  if (S.finished) return;
  c->gen++;
  c->attempts_total++;
  if (c->attempt > S.max_attempts) S.max_attempts = c->attempt;
  uv_tcp_init_ex(S.loop, &c->tcp, AF_INET);
  c->tcp.data = c;
  uv_os_fd_t fd;
  uv_fileno((uv_handle_t *)&c->tcp, &fd);
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src, dst;
  uv_ip4_addr("127.0.0.2", 0, &src);
  src.sin_addr.s_addr = htonl(ntohl(src.sin_addr.s_addr) + (uint32_t)(c->id / PER_SRC_ADDR));
  uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0);
  uv_ip4_addr(S.addr, S.port, &dst);
  c->creq.data = c;
  S.connecting++;
  if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&dst, on_connect) < 0) {
    S.connecting--;
    S.connect_failures++;
    drop(c);
  }
}

/* --- phases --------------------------------------------------------------------- */

static void open_more(void) {
  while (S.next_open < S.nconns && S.connecting < S.concurrency) start_connect(&S.c[S.next_open++]);
}

static void on_pub_tick(uv_timer_t *t) {
  (void)t;
  if (!S.publishing) return;
  uint64_t due = (uint64_t)((double)(now_ns() - S.t_pub_start) / 1e9 * S.rate) - (S.sent - S.pub_started_sent);
  static int next_room;
  for (uint64_t k = 0; k < due; k++) {
    sroom *r = &S.rooms[next_room];
    next_room = (next_room + 1) % S.nrooms;
    sclient *p = &S.c[r->first];
    if (!p->joined) continue; /* a disconnected publisher's message is not sent */
    uint64_t seq = ++r->seq;
    send_text(p, "{\"type\":\"send\",\"room\":\"%s\",\"text\":\"p%" PRIu64 "\",\"ref\":%" PRIu64 "}", r->name,
              seq, seq);
    p->pending++;
    S.sent++;
  }
}

static void finish(void);

static void on_phase_timer(uv_timer_t *t) {
  (void)t;
  if (S.publishing && S.all_resumed) {
    /* Traffic after the storm has run its course: stop, then drain. */
    S.publishing = false;
    S.t_pub_stop = now_ns();
    uv_timer_start(&S.phase_timer, on_phase_timer, 3000, 0);
    return;
  }
  finish();
}

static void check_progress(void) {
  if (!S.ready && S.joined_count == S.nconns) {
    S.ready = true;
    S.t_ready = now_ns();
    printf("storm: ready: %d clients joined in %.3f s\n", S.nconns, (double)(S.t_ready - S.t0) / 1e9);
    fflush(stdout);
    S.publishing = true;
    S.t_pub_start = now_ns();
    S.pub_started_sent = S.sent;
    uv_timer_start(&S.pub_timer, on_pub_tick, PUB_TICK_MS, PUB_TICK_MS);
    /* Bounded: the restart must come within --wait seconds. */
    uv_timer_start(&S.phase_timer, on_phase_timer, (uint64_t)(S.wait_s * 1000), 0);
  }
  if (S.all_resumed && S.publishing && S.dropped && S.resumed == S.nconns) {
    static bool armed;
    if (!armed) {
      armed = true;
      uv_timer_start(&S.phase_timer, on_phase_timer, (uint64_t)(S.after_s * 1000), 0);
    }
  }
  if (!S.ready) open_more();
}

static void close_all_cb(uv_handle_t *h) { (void)h; }

static void finish(void) {
  if (S.finished) return;
  S.finished = true;
  uv_timer_stop(&S.pub_timer);
  uv_timer_stop(&S.phase_timer);
  /* The end check: every member of a room ends on the room's highest id,
   * which covers every acknowledged one, and started at or before the
   * room's first. */
  uint64_t short_members = 0, not_joined = 0;
  for (int i = 0; i < S.nrooms; i++) {
    sroom *r = &S.rooms[i];
    int64_t top = r->max_acked;
    for (int k = 0; k < r->n; k++) {
      sclient *c = &S.c[r->first + k];
      if (c->last_id > top) top = c->last_id;
    }
    for (int k = 0; k < r->n; k++) {
      sclient *c = &S.c[r->first + k];
      if (!c->joined) not_joined++;
      if (c->last_id < top) {
        short_members++;
        S.lost += (uint64_t)(top - (c->last_id < 0 ? 0 : c->last_id));
        flog("client %d ends at %" PRId64 ", room %s at %" PRId64, c->id, c->last_id, r->name, top);
      }
      if (r->max_acked > 0 && (c->first_id < 0 || c->first_id > 1)) {
        S.lost++;
        flog("client %d first id %" PRId64, c->id, c->first_id);
      }
    }
  }
  bool ok = S.dropped && S.all_resumed && S.lost == 0 && S.dups == 0 && S.not_recovered == 0 &&
            S.bad == 0 && S.errors == 0 && not_joined == 0 && S.reorder == 0;
  double resume_s = S.all_resumed ? (double)(S.t_all_resumed - S.t_drop) / 1e9 : -1;
  double reconn_s = S.t_all_reconnected ? (double)(S.t_all_reconnected - S.t_drop) / 1e9 : -1;
  printf("storm: %d clients in %d rooms; restart observed: %s\n", S.nconns, S.nrooms, S.dropped ? "yes" : "no");
  printf("storm: all reconnected %.3f s, all resumed %.3f s after the first drop; max attempts %u, "
         "connect failures %" PRIu64 ", join timeouts %" PRIu64 "\n",
         reconn_s, resume_s, S.max_attempts, S.connect_failures, S.join_timeouts);
  printf("storm: messages sent %" PRIu64 ", acked %" PRIu64 ", in doubt at the drop %" PRIu64
         "; deliveries %" PRIu64 " (replayed %" PRIu64 ")\n",
         S.sent, S.acked, S.in_doubt, S.delivered, S.replayed);
  printf("storm: lost %" PRIu64 ", duplicated %" PRIu64 ", not recovered %" PRIu64 ", reordered %" PRIu64
         ", errors %" PRIu64 ", bad %" PRIu64 ", members short %" PRIu64 ", not joined %" PRIu64 "\n",
         S.lost, S.dups, S.not_recovered, S.reorder, S.errors, S.bad, short_members, not_joined);
  printf("storm: %s\n", ok ? "PASS" : "FAIL");
  if (S.json) {
    FILE *f = fopen(S.json, "w");
    if (f) {
      fprintf(f,
              "{\"conns\":%d,\"rooms\":%d,\"rate\":%.0f,\"restart_observed\":%s,\"all_reconnected_s\":%.3f,"
              "\"all_resumed_s\":%.3f,\"max_attempts\":%u,\"connect_failures\":%" PRIu64
              ",\"join_timeouts\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"in_doubt\":%" PRIu64
              ",\"deliveries\":%" PRIu64 ",\"replayed\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
              ",\"not_recovered\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"pass\":%s}\n",
              S.nconns, S.nrooms, S.rate, S.dropped ? "true" : "false", reconn_s, resume_s, S.max_attempts,
              S.connect_failures, S.join_timeouts, S.sent, S.acked, S.in_doubt, S.delivered, S.replayed,
              S.lost, S.dups, S.not_recovered, S.errors, ok ? "true" : "false");
      fclose(f);
    }
  }
  fflush(stdout);
  for (int i = 0; i < S.nconns; i++) {
    sclient *c = &S.c[i];
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, close_all_cb);
    if (!c->closing && !uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, close_all_cb);
    wsc_parser_free(&c->p);
    free(c->hs);
  }
  uv_close((uv_handle_t *)&S.pub_timer, close_all_cb);
  uv_close((uv_handle_t *)&S.phase_timer, close_all_cb);
  exit(ok ? 0 : 1);
}

static int usage(void) {
  fputs("usage: wschat-bench storm --url ws://127.0.0.1:PORT --conns C --rooms R [--rate N]\n"
        "                          [--after S] [--wait S] [--concurrency K] [--json FILE]\n",
        stderr);
  return 2;
}

int storm_main(int argc, char **argv) {
  S.url = "ws://127.0.0.1:8000";
  S.nconns = 15000;
  S.nrooms = 150;
  S.rate = 200;
  S.after_s = 5;
  S.wait_s = 120;
  S.concurrency = 500;
  for (int i = 1; i < argc; i += 2) { /* every option takes a value */
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage();
    if (!strcmp(a, "--url")) S.url = v;
    else if (!strcmp(a, "--conns")) S.nconns = atoi(v);
    else if (!strcmp(a, "--rooms")) S.nrooms = atoi(v);
    else if (!strcmp(a, "--rate")) S.rate = atof(v);
    else if (!strcmp(a, "--after")) S.after_s = atof(v);
    else if (!strcmp(a, "--wait")) S.wait_s = atof(v);
    else if (!strcmp(a, "--concurrency")) S.concurrency = atoi(v);
    else if (!strcmp(a, "--json")) S.json = v;
    else return usage();
  }
  if (S.nconns < 1 || S.nrooms < 1 || S.nrooms > S.nconns) return usage();
  if (sscanf(S.url, "ws://%63[^:/]:%d", S.addr, &S.port) != 2) return usage();
  snprintf(S.host, sizeof S.host, "%s:%d", S.addr, S.port);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrandom(&S.rng, sizeof S.rng, 0) != sizeof S.rng || !S.rng) S.rng = 0x9e3779b97f4a7c15ull;
  S.loop = uv_default_loop();
  S.c = calloc((size_t)S.nconns, sizeof *S.c);
  S.rooms = calloc((size_t)S.nrooms, sizeof *S.rooms);
  if (!S.c || !S.rooms) return 1;
  for (int i = 0; i < S.nrooms; i++) {
    sroom *r = &S.rooms[i];
    snprintf(r->name, sizeof r->name, "storm-%d", i);
    r->first = (int)((int64_t)S.nconns * i / S.nrooms);
    r->n = (int)((int64_t)S.nconns * (i + 1) / S.nrooms) - r->first;
  }
  for (int i = 0; i < S.nrooms; i++)
    for (int k = 0; k < S.rooms[i].n; k++) S.c[S.rooms[i].first + k].room = i;
  for (int i = 0; i < S.nconns; i++) {
    sclient *c = &S.c[i];
    c->id = i;
    c->first_id = c->last_id = -1;
    c->last_seq = 0;
    uv_timer_init(S.loop, &c->timer);
    c->timer.data = c;
    wsc_parser_init(&c->p, KEEP_MAX);
  }
  uv_timer_init(S.loop, &S.pub_timer);
  uv_timer_init(S.loop, &S.phase_timer);
  S.t0 = now_ns();
  open_more();
  uv_run(S.loop, UV_RUN_DEFAULT);
  return 1;
}
