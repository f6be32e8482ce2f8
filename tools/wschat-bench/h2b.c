/* h2b — see h2b.h. */
#include "h2b.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H2B_BACKLOG_MAX (64u << 20)        /* per WebSocket, like the TCP path */
#define H2B_STREAM_WINDOW (1 << 20)        /* what we let the server send per stream */
#define H2B_CONN_WINDOW (64 << 20)
#define H2B_SCRATCH (64 * 1024)

typedef struct h2b_ws {
  int32_t sid;            /* 0 until the CONNECT is submitted */
  char path[160];
  uint8_t *q;             /* bytes to send */
  size_t qlen, qoff, qcap;
  bool want_open, open, deferred, dead;
} h2b_ws;

typedef struct h2b_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  nghttp2_session *ng;
  int index;
  int state;              /* 0 new, 1 connecting, 2 connected, 3 dead */
  bool settings, writing, dirty;
  uint8_t *wbuf;          /* being written */
  size_t wcap;
  struct h2b_conn *next_dirty;
} h2b_conn;

static struct {
  uv_loop_t *loop;
  uv_prepare_t flusher;
  struct sockaddr_in dst;
  char authority[256];
  h2b_cb cb;
  h2b_ws *ws;
  int n_ws, per_conn, n_conns;
  h2b_conn *conns;
  h2b_conn *dirty;
  nghttp2_session_callbacks *callbacks;
  uint8_t scratch[H2B_SCRATCH];
} H;

static h2b_conn *conn_of(int ws) { return &H.conns[ws / H.per_conn]; }

static void mark_dirty(h2b_conn *c) {
  if (c->dirty || c->state != 2) return;
  c->dirty = true;
  c->next_dirty = H.dirty;
  H.dirty = c;
}

static void fail_ws(int i, const char *why, int err) {
  h2b_ws *w = &H.ws[i];
  if (w->dead) return;
  w->dead = true;
  free(w->q);
  w->q = NULL;
  w->qlen = w->qoff = w->qcap = 0;
  H.cb.on_fail(i, why, err);
}

static void on_tcp_closed(uv_handle_t *h) { (void)h; }

static void fail_conn(h2b_conn *c, const char *why, int err) {
  if (c->state == 3) return;
  c->state = 3;
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
  int first = c->index * H.per_conn;
  for (int i = first; i < first + H.per_conn && i < H.n_ws; i++) fail_ws(i, why, err);
}

/* --- writing ------------------------------------------------------------------ */

static void flush(h2b_conn *c);

static void on_write(uv_write_t *req, int status) {
  h2b_conn *c = req->data;
  c->writing = false;
  if (status < 0) {
    fail_conn(c, "h2 write", status);
    return;
  }
  flush(c);
}

static void flush(h2b_conn *c) {
  if (c->writing || c->state != 2) return;
  size_t len = 0;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->ng, &data);
    if (n < 0) {
      fail_conn(c, nghttp2_strerror((int)n), 0);
      return;
    }
    if (n == 0) break;
    if (len + (size_t)n > c->wcap) {
      size_t cap = c->wcap ? c->wcap : 16384;
      while (cap < len + (size_t)n) cap *= 2;
      uint8_t *nb = realloc(c->wbuf, cap);
      if (!nb) {
        fail_conn(c, "out of memory", 0);
        return;
      }
      c->wbuf = nb;
      c->wcap = cap;
    }
    memcpy(c->wbuf + len, data, (size_t)n);
    len += (size_t)n;
    if (len >= (1u << 20)) break; /* one write at a time: the rest after it */
  }
  if (len == 0) return;
  uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    fail_conn(c, "h2 write", n);
    return;
  }
  if ((size_t)n == len) {
    if (nghttp2_session_want_write(c->ng)) mark_dirty(c);
    return;
  }
  b = uv_buf_init((char *)c->wbuf + n, (unsigned)(len - (size_t)n));
  c->wreq.data = c;
  int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r < 0) {
    fail_conn(c, "h2 write", r);
    return;
  }
  c->writing = true;
}

/* Before the loop waits: everything queued anywhere in this iteration. */
static void on_prepare(uv_prepare_t *h) {
  (void)h;
  while (H.dirty) {
    h2b_conn *c = H.dirty;
    H.dirty = c->next_dirty;
    c->dirty = false;
    flush(c);
  }
}

static ssize_t data_read(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user) {
  (void)ng; (void)sid; (void)flags; (void)user;
  h2b_ws *w = &H.ws[src->fd];
  size_t avail = w->qlen - w->qoff;
  if (avail == 0) {
    w->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = avail < length ? avail : length;
  memcpy(buf, w->q + w->qoff, n);
  w->qoff += n;
  if (w->qoff == w->qlen) w->qoff = w->qlen = 0;
  return (ssize_t)n;
}

static void submit_connect(h2b_conn *c, int i) {
  h2b_ws *w = &H.ws[i];
  if (!w->want_open || w->sid || w->dead) return;
  nghttp2_nv nva[] = {
      {(uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)":protocol", (uint8_t *)"websocket", 9, 9, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)":path", (uint8_t *)w->path, 5, strlen(w->path), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)":authority", (uint8_t *)H.authority, 10, strlen(H.authority), NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"sec-websocket-version", (uint8_t *)"13", 21, 2, NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_data_provider prd = {.source.fd = i, .read_callback = data_read};
  int32_t sid = nghttp2_submit_request(c->ng, NULL, nva, sizeof nva / sizeof nva[0], &prd, (void *)(intptr_t)(i + 1));
  if (sid < 0) {
    fail_ws(i, nghttp2_strerror(sid), 0);
    return;
  }
  w->sid = sid;
  mark_dirty(c);
}

/* --- reading ------------------------------------------------------------------ */

static int ws_of_stream(nghttp2_session *ng, int32_t sid) {
  intptr_t v = (intptr_t)nghttp2_session_get_stream_user_data(ng, sid);
  return v ? (int)v - 1 : -1;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
  h2b_conn *c = user;
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) && !c->settings) {
    c->settings = true;
    if (!nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL)) {
      fail_conn(c, "server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL", 0);
      return 0;
    }
    int first = c->index * H.per_conn;
    for (int i = first; i < first + H.per_conn && i < H.n_ws; i++) submit_connect(c, i);
  }
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
  (void)flags; (void)user;
  if (f->hd.type != NGHTTP2_HEADERS || nlen != 7 || memcmp(name, ":status", 7) != 0) return 0;
  int i = ws_of_stream(ng, f->hd.stream_id);
  if (i < 0 || H.ws[i].open || H.ws[i].dead) return 0;
  if (vlen == 3 && memcmp(value, "200", 3) == 0) {
    H.ws[i].open = true;
    H.cb.on_open(i);
  } else {
    char why[64];
    snprintf(why, sizeof why, "extended CONNECT refused: %.*s", (int)vlen, (const char *)value);
    fail_ws(i, why, 0);
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                         void *user) {
  (void)flags; (void)user;
  int i = ws_of_stream(ng, sid);
  if (i < 0 || H.ws[i].dead || !H.ws[i].open) return 0;
  while (len) {
    size_t n = len < H2B_SCRATCH ? len : H2B_SCRATCH;
    memcpy(H.scratch, data, n);
    H.cb.on_data(i, H.scratch, n);
    data += n;
    len -= n;
  }
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code, void *user) {
  (void)user;
  int i = ws_of_stream(ng, sid);
  if (i >= 0) {
    char why[64];
    snprintf(why, sizeof why, "stream closed (%s)", nghttp2_http2_strerror(code));
    fail_ws(i, why, 0);
  }
  return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h; (void)suggested;
  static uint8_t rbuf[256 * 1024];
  *buf = uv_buf_init((char *)rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  h2b_conn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    fail_conn(c, nread == UV_EOF ? "server closed the h2 connection" : "h2 read", nread == UV_EOF ? 0 : (int)nread);
    return;
  }
  ssize_t r = nghttp2_session_mem_recv(c->ng, (const uint8_t *)buf->base, (size_t)nread);
  if (r < 0) {
    fail_conn(c, nghttp2_strerror((int)r), 0);
    return;
  }
  mark_dirty(c); /* window updates, SETTINGS ACK, CONNECTs */
}

static void on_connect(uv_connect_t *req, int status) {
  h2b_conn *c = req->data;
  if (status < 0) {
    fail_conn(c, "h2 connect", status);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = 2;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2B_STREAM_WINDOW},
  };
  nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, H2B_CONN_WINDOW);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  mark_dirty(c);
}

static void start_conn(h2b_conn *c) {
  c->state = 1;
  if (nghttp2_session_client_new(&c->ng, H.callbacks, c) != 0 || uv_tcp_init(H.loop, &c->tcp) != 0) {
    fail_conn(c, "h2 session", 0);
    return;
  }
  c->tcp.data = c;
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&H.dst, on_connect);
  if (r < 0) fail_conn(c, "h2 connect", r);
}

/* --- API ---------------------------------------------------------------------- */

int h2b_init(uv_loop_t *loop, const char *addr, int port, const char *authority, int n_ws, int per_conn,
             const h2b_cb *cb) {
  H.loop = loop;
  H.cb = *cb;
  H.n_ws = n_ws;
  H.per_conn = per_conn;
  H.n_conns = (n_ws + per_conn - 1) / per_conn;
  snprintf(H.authority, sizeof H.authority, "%s", authority);
  if (uv_ip4_addr(addr, port, &H.dst) != 0) return -1;
  H.ws = calloc((size_t)n_ws, sizeof *H.ws);
  H.conns = calloc((size_t)H.n_conns, sizeof *H.conns);
  if (!H.ws || !H.conns || nghttp2_session_callbacks_new(&H.callbacks) != 0) return -1;
  for (int i = 0; i < H.n_conns; i++) H.conns[i].index = i;
  nghttp2_session_callbacks_set_on_frame_recv_callback(H.callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_header_callback(H.callbacks, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(H.callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(H.callbacks, on_stream_close);
  uv_prepare_init(loop, &H.flusher);
  uv_prepare_start(&H.flusher, on_prepare);
  uv_unref((uv_handle_t *)&H.flusher);
  return 0;
}

void h2b_open(int i, const char *path) {
  h2b_ws *w = &H.ws[i];
  snprintf(w->path, sizeof w->path, "%s", path);
  w->want_open = true;
  h2b_conn *c = conn_of(i);
  if (c->state == 0) start_conn(c);
  else if (c->state == 2 && c->settings) submit_connect(c, i);
  else if (c->state == 3) fail_ws(i, "h2 connection failed", 0);
}

int h2b_send(int i, const uint8_t *data, size_t len) {
  h2b_ws *w = &H.ws[i];
  if (w->dead || !w->sid) return -1;
  if (w->qlen + len > H2B_BACKLOG_MAX) return -1;
  if (w->qlen + len > w->qcap) {
    size_t cap = w->qcap ? w->qcap : 4096;
    while (cap < w->qlen + len) cap *= 2;
    uint8_t *nb = realloc(w->q, cap);
    if (!nb) return -1;
    w->q = nb;
    w->qcap = cap;
  }
  memcpy(w->q + w->qlen, data, len);
  w->qlen += len;
  h2b_conn *c = conn_of(i);
  if (w->deferred) {
    w->deferred = false;
    nghttp2_session_resume_data(c->ng, w->sid);
  }
  mark_dirty(c);
  return 0;
}

void h2b_close(int i) {
  h2b_ws *w = &H.ws[i];
  if (w->dead) return;
  w->dead = true;
  h2b_conn *c = conn_of(i);
  if (w->sid && c->state == 2) {
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, w->sid, NGHTTP2_CANCEL);
    mark_dirty(c);
  }
}

int h2b_connections(void) {
  int n = 0;
  for (int i = 0; i < H.n_conns; i++) n += H.conns[i].state == 2;
  return n;
}
