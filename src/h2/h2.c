/* h2/h2 — see h2.h. */
#include "h2/h2.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "h2/request.h"

#define PEND_CAP 4096            /* frame bytes gathered before they go to net */
#define DATA_CHUNK_MAX (16 * 1024)
#define QUEUE_MIN_CAP 4
#define RESP_MAX_FIELDS 16

enum {
  S_WS = 1 << 0,          /* a WebSocket carrier */
  S_DISPATCHED = 1 << 1,  /* the request went to the handler */
  S_RESPONDED = 1 << 2,   /* response headers submitted */
  S_END_OUT = 1 << 3,     /* END_STREAM once the queue is out */
  S_DEFERRED = 1 << 4,    /* the data source said DEFERRED: resume on send */
  S_PAUSED = 1 << 5,      /* input dropped */
  S_BACKPRESSURE = 1 << 6,/* stream window held back */
  S_CLOSING = 1 << 7,     /* carrier close/abort called */
  S_AWAIT_BODY = 1 << 8,  /* headers done, body arriving */
  S_RESET = 1 << 9,       /* RST_STREAM submitted */
  S_HELD = 1 << 10,       /* answered later (h2_stream_hold) */
};

typedef struct h2_conn h2_conn_t;

struct h2_server {
  uv_check_t check;            /* sends what connections owe, before net's cork */
  const wsc_config_t *config;
  h2_request_fn handler;
  void *app;
  h2_conn_t *dirty;            /* connections with something to send */
  uint8_t scratch[DATA_CHUNK_MAX]; /* a writable copy of a DATA chunk */
  nghttp2_session_callbacks *callbacks;
  nghttp2_option *option;
};

struct h2_conn {
  nghttp2_session *ng;
  net_conn_t *net;
  h2_server_t *srv;
  h2_stream_t *streams;
  h2_conn_t *next_dirty;
  wsc_buf_t *pend;             /* small frames gathered for one net send */
  size_t n_streams;
  uint32_t n_requests;         /* streams opened so far (for the log) */
  int64_t idle_since;
  uint8_t dirty, in_recv, shutting_down, write_blocked;
};

struct h2_stream {
  h2_conn_t *conn;
  h2_stream_t *prev, *next;
  int32_t id;
  uint16_t flags;
  h2_req_t *req;               /* while the request arrives */
  http_request_t request;      /* points into req */
  uint8_t *body;
  size_t body_len;
  int64_t started;             /* request start; while closing: the deadline */
  /* output: references, oldest first, from q[head] */
  wsc_buf_t **q;
  uint32_t head, n, cap;
  uint32_t first_off;          /* bytes of q[head] already sent */
  size_t queued;
  /* WebSocket */
  const wsc_carrier_cb_t *cb;
  void *ud;
  const char *subprotocol, *extensions; /* for the 200, until attach */
  size_t unconsumed;           /* received, window not yet returned */
  /* a held request (long poll): told if the stream goes first */
  void (*held_gone)(void *ud);
  void *held_ud;
};

/* --- output plumbing ------------------------------------------------------------ */

static void mark_dirty(h2_conn_t *hc) {
  if (hc->dirty) return;
  hc->dirty = 1;
  hc->next_dirty = hc->srv->dirty;
  hc->srv->dirty = hc;
}

static void pend_flush(h2_conn_t *hc) {
  if (!hc->pend) return;
  if (hc->pend->len) net_conn_send_force(hc->net, hc->pend);
  wsc_buf_unref(hc->pend);
  hc->pend = NULL;
}

static int pend_append(h2_conn_t *hc, const uint8_t *p, size_t n) {
  if (hc->pend && hc->pend->len + n > hc->pend->cap) pend_flush(hc);
  if (!hc->pend) {
    hc->pend = wsc_buf_new(0, n > PEND_CAP ? n : PEND_CAP);
    if (!hc->pend) return -1;
  }
  memcpy(wsc_buf_bytes(hc->pend) + hc->pend->len, p, n);
  hc->pend->len += (uint32_t)n;
  return 0;
}

static int net_full(const h2_conn_t *hc) { return hc->net->queued > H2_WRITE_CAP; }

/* Sends what nghttp2 has for the connection; closes it when the session
 * is over. Never from inside an nghttp2 callback (see in_recv). */
static void conn_flush(h2_conn_t *hc) {
  if (hc->in_recv || net_conn_is_closing(hc->net)) return;
  hc->write_blocked = 0;
  int rv = nghttp2_session_send(hc->ng);
  pend_flush(hc);
  if (rv != 0) {
    LOG_INFO("h2", "session send failed err=\"%s\"", nghttp2_strerror(rv));
    net_conn_close(hc->net);
    return;
  }
  if (!nghttp2_session_want_read(hc->ng) && !nghttp2_session_want_write(hc->ng))
    net_conn_close(hc->net);
  else if (hc->shutting_down && hc->n_streams == 0 && !nghttp2_session_want_write(hc->ng))
    net_conn_close(hc->net);
}

static void on_check(uv_check_t *h) {
  h2_server_t *srv = h->data;
  while (srv->dirty) {
    h2_conn_t *hc = srv->dirty;
    srv->dirty = hc->next_dirty;
    hc->dirty = 0;
    conn_flush(hc);
  }
}

/* --- stream queue ------------------------------------------------------------------ */

static int queue_push(h2_stream_t *s, wsc_buf_t *b) {
  if (s->head + s->n == s->cap) {
    if (s->head) {
      memmove(s->q, s->q + s->head, s->n * sizeof s->q[0]);
      s->head = 0;
    } else {
      uint32_t cap = s->cap ? s->cap * 2 : QUEUE_MIN_CAP;
      wsc_buf_t **grown = realloc(s->q, cap * sizeof s->q[0]);
      if (!grown) return -1;
      s->q = grown;
      s->cap = cap;
    }
  }
  s->q[s->head + s->n++] = wsc_buf_ref(b);
  s->queued += b->len;
  return 0;
}

static void queue_pop(h2_stream_t *s) {
  wsc_buf_unref(s->q[s->head]);
  s->head++;
  s->n--;
  s->first_off = 0;
  if (s->n == 0) { /* an idle stream holds no queue array */
    free(s->q);
    s->q = NULL;
    s->head = s->cap = 0;
  }
}

static void queue_drop(h2_stream_t *s) {
  while (s->n) queue_pop(s);
  s->queued = 0;
}

static void stream_wake(h2_stream_t *s) {
  if (s->flags & S_DEFERRED) {
    s->flags &= (uint16_t)~S_DEFERRED;
    nghttp2_session_resume_data(s->conn->ng, s->id);
  }
  mark_dirty(s->conn);
}

/* nghttp2 asks how much of the stream to put in the next DATA frame:
 * whole buffers while they fit, a piece of the first one if it alone is
 * too big. NO_COPY: the bytes go out in send_data. */
static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user) {
  (void)ng; (void)id; (void)buf; (void)user;
  h2_stream_t *s = source->ptr;
  if (s->queued == 0) {
    if (s->flags & S_END_OUT) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->flags |= S_DEFERRED;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    size_t avail = s->q[s->head + i]->len - (i == 0 ? s->first_off : 0);
    if (n + avail <= length) n += avail;
    else {
      if (n == 0) n = length;
      break;
    }
  }
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == s->queued && (s->flags & S_END_OUT)) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void stream_maybe_resume_reading(h2_stream_t *s) {
  if (!(s->flags & S_BACKPRESSURE) || s->queued > s->conn->srv->config->send_queue_limit / 2) return;
  s->flags &= (uint16_t)~S_BACKPRESSURE;
  if (s->unconsumed) {
    nghttp2_session_consume_stream(s->conn->ng, s->id, s->unconsumed);
    s->unconsumed = 0;
  }
}

static int send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                     nghttp2_data_source *source, void *user) {
  (void)ng;
  h2_conn_t *hc = user;
  h2_stream_t *s = source->ptr;
  if (net_full(hc)) {
    hc->write_blocked = 1;
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  if (pend_append(hc, framehd, 9) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  size_t left = length;
  while (left) {
    wsc_buf_t *b = s->q[s->head];
    size_t avail = b->len - s->first_off;
    if (s->first_off == 0 && avail <= left) {
      /* The whole buffer, by reference: the broadcast's bytes, shared. */
      pend_flush(hc);
      net_conn_send_force(hc->net, b);
      left -= avail;
      queue_pop(s);
      continue;
    }
    size_t take = avail < left ? avail : left;
    if (pend_append(hc, wsc_buf_bytes(b) + s->first_off, take) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    left -= take;
    s->first_off += (uint32_t)take;
    if (s->first_off == b->len) queue_pop(s);
  }
  (void)frame;
  s->queued -= length;
  stream_maybe_resume_reading(s);
  return 0;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t length, int flags, void *user) {
  (void)ng; (void)flags;
  h2_conn_t *hc = user;
  if (net_full(hc)) {
    hc->write_blocked = 1;
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  if (pend_append(hc, data, length) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  return (ssize_t)length;
}

/* --- plain responses ------------------------------------------------------------------ */

#define NV(n, v, vl) ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), (vl), NGHTTP2_NV_FLAG_NONE})

static void stream_reset(h2_stream_t *s, uint32_t code) {
  if (s->flags & S_RESET) return;
  s->flags |= S_RESET | S_CLOSING;
  nghttp2_submit_rst_stream(s->conn->ng, NGHTTP2_FLAG_NONE, s->id, code);
  mark_dirty(s->conn);
}

/* Submits a response: body by reference (NULL: headers only, with
 * content-length as given, for HEAD). */
static void submit(h2_stream_t *s, int status, const char *content_type, const char *extra_headers,
                   wsc_buf_t *body, size_t content_length) {
  if (s->flags & (S_RESPONDED | S_RESET)) return;
  s->flags |= S_RESPONDED | S_END_OUT;
  s->flags &= (uint16_t)~S_HELD;
  s->held_gone = NULL;
  char st[8], len[24], lower[1024];
  snprintf(st, sizeof st, "%03u", (unsigned)status % 1000u);
  int ln = snprintf(len, sizeof len, "%zu", content_length);
  h2_field_t extra[RESP_MAX_FIELDS];
  int n_extra = extra_headers ? h2_resp_fields(extra_headers, extra, RESP_MAX_FIELDS, lower, sizeof lower) : 0;
  if (n_extra < 0) n_extra = 0;
  nghttp2_nv nva[5 + RESP_MAX_FIELDS];
  size_t nv = 0;
  nva[nv++] = NV(":status", st, 3);
  nva[nv++] = NV("content-type", content_type, strlen(content_type));
  nva[nv++] = NV("content-length", len, (size_t)ln);
  nva[nv++] = NV("x-content-type-options", "nosniff", 7);
  /* HTTPS responses advertise HTTP/3 when it is on (RFC 7838), as over
   * HTTP/1.1: a browser that negotiated h2 learns of h3 only from here. */
  char alt[40];
  const wsc_config_t *cfg = net_conn_server(s->conn->net)->config;
  if (net_conn_is_tls(s->conn->net) && cfg->h3_port) {
    int al = snprintf(alt, sizeof alt, "h3=\":%d\"; ma=86400", cfg->h3_port);
    nva[nv++] = NV("alt-svc", alt, (size_t)al);
  }
  for (int i = 0; i < n_extra; i++)
    nva[nv++] = (nghttp2_nv){(uint8_t *)extra[i].name, (uint8_t *)extra[i].value, extra[i].name_len,
                             extra[i].value_len, NGHTTP2_NV_FLAG_NONE};
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read};
  int with_body = body && body->len;
  if (with_body && queue_push(s, body) != 0) {
    stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  if (nghttp2_submit_response(s->conn->ng, s->id, nva, nv, with_body ? &prd : NULL) != 0) {
    stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  mark_dirty(s->conn);
}

static void h2_respond(void *target, int status, const char *content_type, const char *extra_headers,
                       const void *body, size_t body_len, int keep_alive) {
  (void)keep_alive;
  h2_stream_t *s = target;
  wsc_buf_t *b = NULL;
  if (body && body_len && !(b = wsc_buf_from(0, body, body_len))) {
    stream_reset(s, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  submit(s, status, content_type, extra_headers, b, body_len);
  if (b) wsc_buf_unref(b);
}

void h2_stream_hold(h2_stream_t *s, void (*gone)(void *ud), void *ud) {
  s->flags |= S_HELD;
  s->held_gone = gone;
  s->held_ud = ud;
}

void h2_stream_answer(h2_stream_t *s, int status, const char *content_type, const char *extra_headers,
                      wsc_buf_t *body) {
  submit(s, status, content_type, extra_headers, body, body ? body->len : 0);
}

static const http_reply_ops_t h2_reply_ops = {.respond = h2_respond};

http_reply_t h2_stream_reply(h2_stream_t *s) { return (http_reply_t){&h2_reply_ops, s}; }

/* --- the WebSocket carrier ----------------------------------------------------------------- */

wsc_carrier_t h2_stream_websocket(h2_stream_t *s, const char *subprotocol, const char *extensions) {
  s->flags |= S_WS;
  s->subprotocol = subprotocol;
  s->extensions = extensions;
  return (wsc_carrier_t){&h2_carrier_ops, s};
}

static void c_attach(void *h, const wsc_carrier_cb_t *cb, void *ud) {
  h2_stream_t *s = h;
  s->cb = cb;
  s->ud = ud;
  s->flags |= S_RESPONDED;
  nghttp2_nv nva[3];
  size_t nv = 0;
  nva[nv++] = NV(":status", "200", 3);
  if (s->subprotocol) nva[nv++] = NV("sec-websocket-protocol", s->subprotocol, strlen(s->subprotocol));
  if (s->extensions && s->extensions[0])
    nva[nv++] = NV("sec-websocket-extensions", s->extensions, strlen(s->extensions));
  s->extensions = NULL;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read};
  if (nghttp2_submit_response(s->conn->ng, s->id, nva, nv, &prd) != 0) stream_reset(s, NGHTTP2_INTERNAL_ERROR);
  mark_dirty(s->conn);
  LOG_DEBUG("h2", "websocket on stream stream=%d streams_before=%u tls=%d", (int)s->id,
            s->conn->n_requests - 1, net_conn_is_tls(s->conn->net));
}

static int c_is_closing(const void *h) {
  const h2_stream_t *s = h;
  return (s->flags & (S_CLOSING | S_RESET)) || net_conn_is_closing(s->conn->net);
}

static int c_send(void *h, wsc_buf_t *b, unsigned flags) {
  h2_stream_t *s = h;
  if (c_is_closing(s)) return -1;
  if (!(flags & WSC_SEND_FORCE) && s->queued + b->len > s->conn->srv->config->send_queue_limit) return -1;
  if (b->len == 0) return 0;
  if (queue_push(s, b) != 0) return -1;
  stream_wake(s);
  return 0;
}

static size_t c_queued(const void *h) { return ((const h2_stream_t *)h)->queued; }

static void c_close(void *h) {
  h2_stream_t *s = h;
  if (s->flags & (S_CLOSING | S_RESET)) return;
  s->flags |= S_CLOSING | S_END_OUT;
  s->started = wsc_mono_ms() + NET_CLOSE_GRACE_MS; /* the deadline from now on */
  stream_wake(s);
}

/* Tells the WebSocket its carrier is gone, once. */
static void ws_gone(h2_stream_t *s) {
  const wsc_carrier_cb_t *cb = s->cb;
  if (!cb) return;
  s->cb = NULL;
  cb->on_close(s->ud);
}

static void c_abort(void *h) {
  h2_stream_t *s = h;
  queue_drop(s);
  stream_reset(s, NGHTTP2_CANCEL);
  ws_gone(s);
}

static void c_pause(void *h) { ((h2_stream_t *)h)->flags |= S_PAUSED; }
static void c_backpressure(void *h) { ((h2_stream_t *)h)->flags |= S_BACKPRESSURE; }
static int c_in_backpressure(const void *h) { return (((const h2_stream_t *)h)->flags & S_BACKPRESSURE) != 0; }

static void c_peer(const void *h, char *out, size_t cap) {
  const h2_stream_t *s = h;
  char addr[64];
  net_conn_peer(s->conn->net, addr, sizeof addr);
  snprintf(out, cap, "%s#%d", addr, (int)s->id);
}

const wsc_carrier_ops_t h2_carrier_ops = {
    .name = "h2",
    .kind = WSC_CARRIER_H2,
    .attach = c_attach,
    .send = c_send,
    .queued = c_queued,
    .close = c_close,
    .abort = c_abort,
    .pause = c_pause,
    .backpressure = c_backpressure,
    .in_backpressure = c_in_backpressure,
    .is_closing = c_is_closing,
    .peer = c_peer,
};

/* --- streams ------------------------------------------------------------------------------- */

static h2_stream_t *stream_new(h2_conn_t *hc, int32_t id) {
  h2_stream_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->req = malloc(sizeof *s->req);
  if (!s->req) {
    free(s);
    return NULL;
  }
  h2_req_init(s->req);
  s->conn = hc;
  s->id = id;
  s->started = wsc_mono_ms();
  s->next = hc->streams;
  if (hc->streams) hc->streams->prev = s;
  hc->streams = s;
  hc->n_streams++;
  return s;
}

static void stream_release_request(h2_stream_t *s) {
  if (s->req) {
    h2_req_free(s->req);
    free(s->req);
    s->req = NULL;
  }
  free(s->body);
  s->body = NULL;
  s->body_len = 0;
}

static void stream_free(h2_stream_t *s) {
  h2_conn_t *hc = s->conn;
  ws_gone(s);
  if (s->held_gone) { /* a held request's stream went first */
    void (*gone)(void *) = s->held_gone;
    s->held_gone = NULL;
    gone(s->held_ud);
  }
  if (s->prev) s->prev->next = s->next;
  else hc->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  hc->n_streams--;
  if (hc->n_streams == 0) hc->idle_since = wsc_mono_ms();
  queue_drop(s);
  stream_release_request(s);
  free(s);
}

static void dispatch(h2_stream_t *s) {
  if (s->flags & S_DISPATCHED) return;
  s->flags |= S_DISPATCHED;
  s->flags &= (uint16_t)~S_AWAIT_BODY;
  s->request.body = s->body;
  s->request.body_len = s->body_len;
  wsc_metrics.http_requests++;
  h2_server_t *srv = s->conn->srv;
  srv->handler(srv->app, s, &s->request);
  /* A plain request is answered within the call; a WebSocket kept what it
   * needs (chat copies the URL's parameters): the request goes either way. */
  if (!(s->flags & (S_WS | S_RESPONDED | S_RESET | S_HELD)))
    http_reply_error(h2_stream_reply(s), 500, "no response", NULL);
  stream_release_request(s);
}

/* --- nghttp2 receive callbacks ---------------------------------------------------------------- */

static h2_stream_t *stream_of(nghttp2_session *ng, int32_t id) {
  return nghttp2_session_get_stream_user_data(ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  h2_conn_t *hc = user;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (hc->shutting_down) {
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  h2_stream_t *s = stream_new(hc, frame->hd.stream_id);
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  hc->n_requests++;
  nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, s);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user) {
  (void)flags; (void)user;
  h2_stream_t *s = stream_of(ng, frame->hd.stream_id);
  if (!s || !s->req || (s->flags & S_DISPATCHED)) return 0; /* trailers: ignored */
  h2_req_header(s->req, name, namelen, value, valuelen);
  return 0;
}

static void headers_done(h2_stream_t *s, int end_stream) {
  if (h2_req_finish(s->req, &s->request) != 0) {
    s->flags |= S_DISPATCHED;
    http_reply_error(h2_stream_reply(s), s->req->status, s->req->reason, NULL);
    stream_release_request(s);
    return;
  }
  int connect = strcmp(s->request.method, "CONNECT") == 0;
  if (connect || end_stream) dispatch(s);
  else s->flags |= S_AWAIT_BODY;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  (void)user;
  h2_stream_t *s = stream_of(ng, frame->hd.stream_id);
  if (!s) return 0;
  int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && s->req && !(s->flags & S_DISPATCHED))
        headers_done(s, end_stream);
      else if (end_stream && (s->flags & S_AWAIT_BODY)) dispatch(s);
      break;
    case NGHTTP2_DATA:
      if (!end_stream) break;
      if (s->flags & S_AWAIT_BODY) dispatch(s);
      else if ((s->flags & S_WS) && s->cb) c_close(s); /* the peer ended its half */
      break;
    default: break;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user) {
  (void)flags;
  h2_conn_t *hc = user;
  /* The connection window comes back at once: one stream holding its
   * window never blocks the others. */
  nghttp2_session_consume_connection(ng, len);
  h2_stream_t *s = stream_of(ng, id);
  if (!s) return 0;
  if ((s->flags & S_WS) && s->cb && !(s->flags & S_PAUSED)) {
    if (s->flags & S_BACKPRESSURE) s->unconsumed += len;
    else nghttp2_session_consume_stream(ng, id, len);
    /* ws/ unmasks in place: give it a writable copy. */
    size_t n = len < DATA_CHUNK_MAX ? len : DATA_CHUNK_MAX;
    for (size_t off = 0; off < len && s->cb; off += n) {
      n = len - off < DATA_CHUNK_MAX ? len - off : DATA_CHUNK_MAX;
      memcpy(hc->srv->scratch, data + off, n);
      s->cb->on_data(s->ud, hc->srv->scratch, n);
    }
    return 0;
  }
  nghttp2_session_consume_stream(ng, id, len);
  if (!(s->flags & S_AWAIT_BODY)) return 0;
  if (s->body_len + len > hc->srv->config->max_body) {
    s->flags &= (uint16_t)~S_AWAIT_BODY;
    s->flags |= S_DISPATCHED;
    http_reply_error(h2_stream_reply(s), 413, "request body too large", NULL);
    stream_release_request(s);
    return 0;
  }
  uint8_t *grown = realloc(s->body, s->body_len + len);
  if (!grown) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  memcpy(grown + s->body_len, data, len);
  s->body = grown;
  s->body_len += len;
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *user) {
  (void)user;
  h2_stream_t *s = stream_of(ng, id);
  if (!s) return 0;
  if (s->cb && error_code != NGHTTP2_NO_ERROR)
    LOG_DEBUG("h2", "websocket stream reset id=%d code=%u", (int)id, error_code);
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  stream_free(s);
  return 0;
}

/* --- the net handler ------------------------------------------------------------------------- */

static void h2_on_data(net_conn_t *c, uint8_t *data, size_t len) {
  h2_conn_t *hc = c->ud;
  hc->in_recv = 1;
  ssize_t rv = nghttp2_session_mem_recv(hc->ng, data, len);
  hc->in_recv = 0;
  if (rv < 0) {
    LOG_INFO("h2", "connection error err=\"%s\"", nghttp2_strerror((int)rv));
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      net_conn_abort(c);
      return;
    }
    /* nghttp2 queued a GOAWAY: send it, then close. */
    conn_flush(hc);
    net_conn_close(c);
    return;
  }
  conn_flush(hc);
}

static void h2_on_tick(net_conn_t *c, int64_t now) {
  h2_conn_t *hc = c->ud;
  h2_stream_t *next;
  for (h2_stream_t *s = hc->streams; s; s = next) {
    next = s->next;
    if (s->flags & S_RESET) continue;
    if (s->cb) {
      if ((s->flags & S_CLOSING) && now >= s->started) c_abort(s);
      else s->cb->on_tick(s->ud, now);
    } else if (!(s->flags & S_DISPATCHED) && now - s->started > hc->srv->config->handshake_timeout_ms) {
      stream_reset(s, NGHTTP2_CANCEL); /* a request that never completes */
    }
  }
  if (hc->n_streams == 0 && now - hc->idle_since > H2_IDLE_MS) {
    nghttp2_session_terminate_session(hc->ng, NGHTTP2_NO_ERROR);
  }
  conn_flush(hc);
}

static void h2_on_shutdown(net_conn_t *c) {
  h2_conn_t *hc = c->ud;
  hc->shutting_down = 1;
  nghttp2_submit_goaway(hc->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(hc->ng),
                        NGHTTP2_NO_ERROR, NULL, 0);
  for (h2_stream_t *s = hc->streams; s; s = s->next)
    if (s->cb && !(s->flags & S_CLOSING)) s->cb->on_shutdown(s->ud);
  conn_flush(hc);
}

static void h2_on_drain(net_conn_t *c) {
  h2_conn_t *hc = c->ud;
  if (hc->write_blocked && !net_full(hc)) conn_flush(hc);
}

static void h2_on_close(net_conn_t *c) {
  h2_conn_t *hc = c->ud;
  if (!hc) return;
  while (hc->streams) stream_free(hc->streams); /* tells every WebSocket */
  nghttp2_session_del(hc->ng);
  if (hc->pend) wsc_buf_unref(hc->pend);
  if (hc->dirty) {
    h2_conn_t **pp = &hc->srv->dirty;
    while (*pp && *pp != hc) pp = &(*pp)->next_dirty;
    if (*pp) *pp = hc->next_dirty;
  }
  free(hc);
}

static const net_handler_t h2_net_handler = {
    .on_data = h2_on_data,
    .on_tick = h2_on_tick,
    .on_shutdown = h2_on_shutdown,
    .on_close = h2_on_close,
    .on_drain = h2_on_drain,
};

void h2_conn_attach(h2_server_t *srv, net_conn_t *c, uint8_t *data, size_t len) {
  h2_conn_t *hc = calloc(1, sizeof *hc);
  if (!hc || nghttp2_session_server_new2(&hc->ng, srv->callbacks, hc, srv->option) != 0) {
    free(hc);
    net_conn_abort(c);
    return;
  }
  hc->net = c;
  hc->srv = srv;
  hc->idle_since = wsc_mono_ms();
  c->handler = &h2_net_handler;
  c->ud = hc;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HTTP_MAX_HEAD},
  };
  nghttp2_submit_settings(hc->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  nghttp2_session_set_local_window_size(hc->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
  if (len) h2_on_data(c, data, len);
  else conn_flush(hc);
}

/* --- the server ------------------------------------------------------------------------------- */

h2_server_t *h2_server_new(uv_loop_t *loop, const wsc_config_t *config, h2_request_fn handler, void *app) {
  h2_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  srv->config = config;
  srv->handler = handler;
  srv->app = app;
  if (nghttp2_session_callbacks_new(&srv->callbacks) != 0 || nghttp2_option_new(&srv->option) != 0) {
    if (srv->callbacks) nghttp2_session_callbacks_del(srv->callbacks);
    free(srv);
    return NULL;
  }
  nghttp2_session_callbacks *cb = srv->callbacks;
  nghttp2_session_callbacks_set_send_callback(cb, send_cb);
  nghttp2_session_callbacks_set_send_data_callback(cb, send_data);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  /* Every HTTP rule is ours (h2/request), and so is the window. */
  nghttp2_option_set_no_http_messaging(srv->option, 1);
  nghttp2_option_set_no_auto_window_update(srv->option, 1);
  uv_check_init(loop, &srv->check);
  srv->check.data = srv;
  /* libuv runs check handles newest first: started after net's cork, this
   * one runs before it, so what it sends is flushed in the same iteration. */
  uv_check_start(&srv->check, on_check);
  uv_unref((uv_handle_t *)&srv->check);
  return srv;
}

static void on_check_closed(uv_handle_t *h) {
  h2_server_t *srv = h->data;
  nghttp2_session_callbacks_del(srv->callbacks);
  nghttp2_option_del(srv->option);
  free(srv);
}

void h2_server_free(h2_server_t *srv) {
  if (!srv) return;
  uv_check_stop(&srv->check);
  uv_close((uv_handle_t *)&srv->check, on_check_closed);
}
