/* h1mux — see h1mux.h. */
#include "h1mux.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "wsc.h"

#define MUX_BACKLOG_MAX (64u << 20) /* bytes queued per connection, like the TCP path */
#define MUX_KEEP_MAX (1u << 20)     /* longest message kept whole */
#define MUX_HS_MAX 4096             /* the 101 response */
#define MUX_ROOM_MAX 80

typedef struct mux_ws {
  int index;
  char room[MUX_ROOM_MAX];
  wsc_parser out;        /* the bench's frames for this room */
  bool want, joined, dead;
} mux_ws;

typedef struct mux_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  int index;
  int state;             /* 0 new, 1 connecting, 2 handshake, 3 open, 4 dead */
  char key[WSC_KEY_LEN + 1];
  char hs[MUX_HS_MAX];
  size_t hs_len;
  wsc_parser in;         /* the server's frames */
  uint8_t *q, *w;        /* being filled / being written */
  size_t qlen, qcap, wcap;
  bool writing, dirty;
  struct mux_conn *next_dirty;
} mux_conn;

static struct {
  uv_loop_t *loop;
  uv_prepare_t flusher;
  struct sockaddr_in dst;
  char host[256];
  h1mux_cb cb;
  mux_ws *ws;
  mux_conn *conns;
  int n_ws, per_conn, n_conns;
  mux_conn *dirty;
  uint8_t *scratch;      /* a frame or a JSON message being built */
  size_t scratch_cap;
  uint64_t rng;
} M;

static mux_conn *conn_of(int ws) { return &M.conns[ws / M.per_conn]; }

static uint32_t rnd32(void) {
  M.rng ^= M.rng << 13;
  M.rng ^= M.rng >> 7;
  M.rng ^= M.rng << 17;
  return (uint32_t)M.rng;
}

static bool scratch_reserve(size_t n) {
  if (n <= M.scratch_cap) return true;
  size_t cap = M.scratch_cap ? M.scratch_cap : 4096;
  while (cap < n) cap *= 2;
  uint8_t *b = realloc(M.scratch, cap);
  if (!b) return false;
  M.scratch = b;
  M.scratch_cap = cap;
  return true;
}

static void fail_ws(mux_ws *w, const char *why, int err) {
  if (w->dead) return;
  w->dead = true;
  M.cb.on_fail(w->index, why, err);
}

static void on_tcp_closed(uv_handle_t *h) { (void)h; }

static void fail_conn(mux_conn *c, const char *why, int err) {
  if (c->state == 4) return;
  c->state = 4;
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
  int first = c->index * M.per_conn;
  for (int i = first; i < first + M.per_conn && i < M.n_ws; i++) fail_ws(&M.ws[i], why, err);
}

/* --- writing ---------------------------------------------------------------------- */

static void mark_dirty(mux_conn *c) {
  if (c->dirty) return;
  c->dirty = true;
  c->next_dirty = M.dirty;
  M.dirty = c;
}

static bool queue(mux_conn *c, const void *d, size_t n) {
  if (c->qlen + n > c->qcap) {
    if (c->qlen + n > MUX_BACKLOG_MAX) return false;
    size_t cap = c->qcap ? c->qcap : 16384;
    while (cap < c->qlen + n) cap *= 2;
    uint8_t *b = realloc(c->q, cap);
    if (!b) return false;
    c->q = b;
    c->qcap = cap;
  }
  memcpy(c->q + c->qlen, d, n);
  c->qlen += n;
  mark_dirty(c);
  return true;
}

/* One masked client frame on the shared WebSocket. */
static bool queue_frame(mux_conn *c, int opcode, const uint8_t *payload, size_t len) {
  uint8_t hdr[WSC_MAX_CLIENT_HEADER];
  uint32_t mask = rnd32();
  size_t hl = wsc_frame_header(hdr, opcode, len, mask);
  size_t at = c->qlen;
  if (!queue(c, hdr, hl) || !queue(c, payload, len)) return false;
  wsc_mask(c->q + at + hl, len, mask, 0);
  return true;
}

static void flush(mux_conn *c);

static void on_write(uv_write_t *req, int status) {
  mux_conn *c = req->data;
  c->writing = false;
  if (status < 0) {
    fail_conn(c, "write", status);
    return;
  }
  flush(c);
}

static void flush(mux_conn *c) {
  if (c->writing || c->state < 2 || c->state == 4 || c->qlen == 0) return;
  /* q goes out whole (uv_write tries at once); a fresh q fills meanwhile. */
  uint8_t *t = c->w;
  size_t tcap = c->wcap, len = c->qlen;
  c->w = c->q;
  c->wcap = c->qcap;
  c->q = t;
  c->qcap = tcap;
  c->qlen = 0;
  uv_buf_t b = uv_buf_init((char *)c->w, (unsigned)len);
  c->wreq.data = c;
  int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r < 0) {
    fail_conn(c, "write", r);
    return;
  }
  c->writing = true;
}

static void on_prepare(uv_prepare_t *h) {
  (void)h;
  while (M.dirty) {
    mux_conn *c = M.dirty;
    M.dirty = c->next_dirty;
    c->dirty = false;
    flush(c);
  }
}

/* --- the chat protocol on the shared WebSocket ------------------------------------------ */

/* Appends s as a JSON string body (no quotes) to the scratch at *len. */
static bool put_json_text(size_t *len, const uint8_t *s, size_t n) {
  if (!scratch_reserve(*len + 6 * n + 64)) return false;
  uint8_t *o = M.scratch + *len;
  for (size_t i = 0; i < n; i++) {
    uint8_t ch = s[i];
    if (ch == '"' || ch == '\\') {
      *o++ = '\\';
      *o++ = ch;
    } else if (ch < 0x20) {
      o += sprintf((char *)o, "\\u%04x", ch);
    } else {
      *o++ = ch;
    }
  }
  *len = (size_t)(o - M.scratch);
  return true;
}

static bool send_json(mux_conn *c, const char *type, const mux_ws *w, const uint8_t *text, size_t tlen) {
  size_t len = 0;
  if (!scratch_reserve(256)) return false;
  len = (size_t)snprintf((char *)M.scratch, 256, "{\"type\":\"%s\",\"room\":\"%s\"", type, w->room);
  if (text) {
    if (!scratch_reserve(len + 16)) return false;
    memcpy(M.scratch + len, ",\"text\":\"", 9);
    len += 9;
    if (!put_json_text(&len, text, tlen)) return false;
    M.scratch[len++] = '"';
  }
  M.scratch[len++] = '}';
  return queue_frame(c, 1 /* text */, M.scratch, len);
}

static void join(mux_conn *c, mux_ws *w) {
  if (!send_json(c, "join", w, NULL, 0)) fail_conn(c, "send backlog over limit", 0);
}

/* The bench's frames for one room: each message becomes a `send`. */
static void out_message(void *ud, int opcode, uint8_t *d, size_t len, uint64_t total) {
  mux_ws *w = ud;
  mux_conn *c = conn_of(w->index);
  if ((opcode != 1 && opcode != 2) || total != len) return;
  if (!send_json(c, "send", w, d, len)) fail_conn(c, "send backlog over limit", 0);
}

static void out_control(void *ud, int opcode, uint8_t *d, size_t len) {
  (void)d; (void)len;
  mux_ws *w = ud;
  if (opcode == 8 && !w->dead) h1mux_close(w->index); /* the bench's close: leave the room */
}

static const wsc_cb out_cb = {out_message, out_control};

/* "key":"value" in a flat JSON object (wschat's values for these keys hold no escapes). */
static bool find_str(const uint8_t *d, size_t n, const char *key, const uint8_t **v, size_t *vlen) {
  size_t kl = strlen(key);
  const uint8_t *p = d, *end = d + n;
  while ((p = memmem(p, (size_t)(end - p), key, kl))) {
    p += kl;
    while (p < end && (*p == ' ' || *p == ':')) p++;
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

/* Hands one server message to bench WebSocket w as a frame of its own. */
static void forward(mux_ws *w, const uint8_t *d, size_t len) {
  if (!scratch_reserve(len + WSC_MAX_CLIENT_HEADER)) return;
  size_t hl = wsc_frame_header(M.scratch, 1, len, 0); /* mask 0: the bytes stay as they are */
  memcpy(M.scratch + hl, d, len);
  M.cb.on_data(w->index, M.scratch, hl + len);
}

static void in_message(void *ud, int opcode, uint8_t *d, size_t len, uint64_t total) {
  mux_conn *c = ud;
  if (opcode != 1 || total != len) return;
  const uint8_t *room = NULL, *type = NULL;
  size_t rl = 0, tl = 0;
  find_str(d, len, "\"type\"", &type, &tl);
  int first = c->index * M.per_conn;
  mux_ws *to = NULL;
  if (find_str(d, len, "\"room\"", &room, &rl)) {
    for (int i = first; i < first + M.per_conn && i < M.n_ws; i++) {
      mux_ws *w = &M.ws[i];
      if (w->want && !w->dead && strlen(w->room) == rl && memcmp(w->room, room, rl) == 0) {
        to = w;
        break;
      }
    }
  } else if (tl == 5 && memcmp(type, "error", 5) == 0) {
    for (int i = first; i < first + M.per_conn && i < M.n_ws && !to; i++)
      if (!M.ws[i].dead && M.ws[i].joined) to = &M.ws[i];
  }
  if (!to) return; /* welcome, pong, ... */
  if (!to->joined && tl == 6 && memcmp(type, "joined", 6) == 0) {
    to->joined = true;
    M.cb.on_open(to->index);
    if (to->dead) return;
  }
  if (to->joined) forward(to, d, len);
}

static void in_control(void *ud, int opcode, uint8_t *d, size_t len) {
  mux_conn *c = ud;
  if (opcode == 9) {
    if (!queue_frame(c, 10, d, len)) fail_conn(c, "send backlog over limit", 0);
  } else if (opcode == 8) {
    char why[160];
    int code = len >= 2 ? (d[0] << 8) | d[1] : 1005;
    snprintf(why, sizeof why, "server closed the connection: %d %.*s", code,
             (int)(len > 2 ? (len - 2 > 100 ? 100 : len - 2) : 0), (const char *)d + 2);
    fail_conn(c, why, 0);
  }
}

static const wsc_cb in_cb = {in_message, in_control};

/* --- reading and connecting ------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h; (void)suggested;
  static uint8_t rbuf[256 * 1024];
  *buf = uv_buf_init((char *)rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mux_conn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    fail_conn(c, nread == UV_EOF ? "server closed the connection" : "read", nread == UV_EOF ? 0 : (int)nread);
    return;
  }
  uint8_t *d = (uint8_t *)buf->base;
  size_t n = (size_t)nread;
  if (c->state == 2) {
    size_t take = n < MUX_HS_MAX - 1 - c->hs_len ? n : MUX_HS_MAX - 1 - c->hs_len;
    memcpy(c->hs + c->hs_len, d, take);
    c->hs_len += take;
    long hl = wsc_handshake_response(c->hs, c->hs_len, c->key);
    if (hl == 0 && c->hs_len < MUX_HS_MAX - 1) return;
    if (hl <= 0) {
      fail_conn(c, "WebSocket handshake refused", 0);
      return;
    }
    c->state = 3;
    size_t used = (size_t)hl - (c->hs_len - take); /* of this chunk */
    d += used;
    n -= used;
    int first = c->index * M.per_conn;
    for (int i = first; i < first + M.per_conn && i < M.n_ws; i++)
      if (M.ws[i].want && !M.ws[i].dead) join(c, &M.ws[i]);
  }
  if (c->state == 3 && n && wsc_feed(&c->in, d, n, &in_cb, c) < 0)
    fail_conn(c, "WebSocket protocol error from server", 0);
}

static void on_connect(uv_connect_t *req, int status) {
  mux_conn *c = req->data;
  if (c->state != 1) return;
  if (status < 0) {
    fail_conn(c, "connect", status);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = 2;
  uint8_t rnd[16];
  for (int i = 0; i < 4; i++) {
    uint32_t r = rnd32();
    memcpy(rnd + 4 * i, &r, 4);
  }
  wsc_make_key(rnd, c->key);
  char req_text[512];
  size_t n = wsc_handshake_request(req_text, sizeof req_text, M.host, "/ws", c->key);
  if (n == 0 || !queue(c, req_text, n)) {
    fail_conn(c, "handshake request", 0);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

static void start_conn(mux_conn *c) {
  c->state = 1;
  if (uv_tcp_init(M.loop, &c->tcp) != 0) {
    c->state = 4;
    fail_conn(c, "socket", 0);
    return;
  }
  c->tcp.data = c;
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&M.dst, on_connect);
  if (r < 0) fail_conn(c, "connect", r);
}

/* --- interface ---------------------------------------------------------------------------- */

int h1mux_init(uv_loop_t *loop, const char *addr, int port, const char *host, int n_ws, int per_conn,
               const h1mux_cb *cb) {
  M.loop = loop;
  M.cb = *cb;
  M.n_ws = n_ws;
  M.per_conn = per_conn > 0 ? per_conn : 1;
  M.n_conns = (n_ws + M.per_conn - 1) / M.per_conn;
  snprintf(M.host, sizeof M.host, "%s", host);
  if (uv_ip4_addr(addr, port, &M.dst) != 0) return -1;
  if (getrandom(&M.rng, sizeof M.rng, 0) != sizeof M.rng) M.rng = 0x9e3779b97f4a7c15ull;
  M.rng |= 1;
  M.ws = calloc((size_t)n_ws, sizeof *M.ws);
  M.conns = calloc((size_t)M.n_conns, sizeof *M.conns);
  if (!M.ws || !M.conns) return -1;
  for (int i = 0; i < n_ws; i++) {
    M.ws[i].index = i;
    wsc_parser_init(&M.ws[i].out, MUX_KEEP_MAX);
  }
  for (int i = 0; i < M.n_conns; i++) {
    M.conns[i].index = i;
    wsc_parser_init(&M.conns[i].in, MUX_KEEP_MAX);
  }
  uv_prepare_init(loop, &M.flusher);
  uv_prepare_start(&M.flusher, on_prepare);
  uv_unref((uv_handle_t *)&M.flusher);
  return 0;
}

void h1mux_open(int ws, const char *room) {
  mux_ws *w = &M.ws[ws];
  mux_conn *c = conn_of(ws);
  if (w->want || w->dead) return;
  if (strlen(room) >= sizeof w->room) {
    fail_ws(w, "room name too long", 0);
    return;
  }
  snprintf(w->room, sizeof w->room, "%s", room);
  w->want = true;
  if (c->state == 0) start_conn(c);
  else if (c->state == 3) join(c, w);
  else if (c->state == 4) fail_ws(w, "connection lost", 0);
}

int h1mux_send(int ws, const uint8_t *data, size_t len) {
  mux_ws *w = &M.ws[ws];
  mux_conn *c = conn_of(ws);
  if (w->dead || c->state != 3) return 0;
  /* The parser unmasks in place and may call back into the scratch: parse a copy. */
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -1;
  memcpy(copy, data, len);
  int r = wsc_feed(&w->out, copy, len, &out_cb, w);
  free(copy);
  return r < 0 || c->state == 4 ? -1 : 0;
}

void h1mux_close(int ws) {
  mux_ws *w = &M.ws[ws];
  mux_conn *c = conn_of(ws);
  if (w->dead) return;
  w->dead = true; /* no on_fail for a close we were asked for */
  if (c->state == 3 && w->want) send_json(c, "leave", w, NULL, 0);
}

int h1mux_connections(void) {
  int n = 0;
  for (int i = 0; i < M.n_conns; i++) n += M.conns[i].state != 0;
  return n;
}
