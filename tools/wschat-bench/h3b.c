/* h3b — see h3b.h. */
#include "h3b.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PKT_MAX 1452
#define RX_BATCH 32      /* datagrams taken per recvmmsg */
#define RX_SLOT 65536    /* bytes per datagram slot: any UDP payload (a loopback peer may get 16 KiB packets) */
#define BACKLOG_MAX (8 * 1024 * 1024) /* bytes queued on one stream */
#define MAX_HDRS 4
#define TLS_PRIO                                                                         \
  "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:" \
  "+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1"

typedef struct chunk {
  struct chunk *next;
  size_t len;
  uint8_t data[];
} chunk;

typedef struct qconn qconn;

typedef struct wsock {
  qconn *q;
  int64_t sid;            /* -1 until opened */
  char path[256];
  int want_open, open, failed, fin, stalled, status;
  chunk *head, *tail, *next_give; /* queued; chunks before next_give went to nghttp3 */
  uint64_t acked_in_head; /* bytes of head already acknowledged */
  size_t queued;
  uint64_t unconsumed;
} wsock;

struct qconn {
  int idx;
  ngtcp2_conn *q;
  nghttp3_conn *h;
  gnutls_session_t tls;
  ngtcp2_crypto_conn_ref ref;
  int fd;          /* a connected UDP socket of our own, read with recvmmsg */
  uv_poll_t poll;
  uv_timer_t timer;
  struct sockaddr_storage local, remote;
  socklen_t local_len, remote_len;
  int started, ready, dead, dirty;
  qconn *next_dirty;
};

static struct {
  uv_loop_t *loop;
  struct sockaddr_storage addr;
  char authority[256];
  int n_ws, per_conn, n_conns;
  wsock *ws;
  qconn *conns;
  qconn *dirty;
  h3b_cb cb;
  gnutls_certificate_credentials_t cred;
  uv_check_t check;
  uv_prepare_t prepare;
  const char *hname[MAX_HDRS], *hval[MAX_HDRS];
  int nh;
  uint8_t rx[RX_BATCH][RX_SLOT];
} G;

static ngtcp2_tstamp ts_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (ngtcp2_tstamp)t.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)t.tv_nsec;
}

static void rnd(uint8_t *p, size_t n) { gnutls_rnd(GNUTLS_RND_RANDOM, p, n); }

static void conn_write(qconn *c);
static void conn_lost(qconn *c, const char *why);

static void mark(qconn *c) {
  if (c->dirty || c->dead) return;
  c->dirty = 1;
  c->next_dirty = G.dirty;
  G.dirty = c;
}

static void ws_fail(wsock *w, const char *why, int status) {
  if (w->failed) return;
  w->failed = 1;
  w->open = 0;
  int idx = (int)(w - G.ws);
  if (G.cb.on_fail) G.cb.on_fail(idx, why, status);
}

/* --- per-stream send queue ------------------------------------------------------ */

static void q_ack(wsock *w, uint64_t n) {
  while (n && w->head) {
    uint64_t rem = w->head->len - w->acked_in_head;
    if (n < rem) {
      w->acked_in_head += n;
      w->queued -= n;
      return;
    }
    n -= rem;
    w->queued -= rem;
    chunk *c = w->head;
    w->head = c->next;
    if (!w->head) w->tail = NULL;
    w->acked_in_head = 0;
    free(c);
  }
}

static nghttp3_ssize read_data(nghttp3_conn *h, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *cud, void *sud) {
  wsock *w = sud;
  size_t n = 0;
  while (w->next_give && n < veccnt) {
    vec[n].base = w->next_give->data;
    vec[n].len = w->next_give->len;
    n++;
    w->next_give = w->next_give->next;
  }
  if (!w->next_give && w->fin) *pflags |= NGHTTP3_DATA_FLAG_EOF;
  else if (n == 0) return NGHTTP3_ERR_WOULDBLOCK;
  return (nghttp3_ssize)n;
}

/* --- nghttp3 callbacks ---------------------------------------------------------------- */

static int h_acked(nghttp3_conn *h, int64_t sid, uint64_t len, void *cud, void *sud) {
  /* Acknowledged bytes were given before: freeing them from the head never
   * reaches next_give. */
  if (sud) q_ack(sud, len);
  return 0;
}

static int h_stream_close(nghttp3_conn *h, int64_t sid, uint64_t code, void *cud, void *sud) {
  wsock *w = sud;
  if (w && !w->failed) ws_fail(w, "stream closed", 0);
  return 0;
}

static int h_recv_data(nghttp3_conn *h, int64_t sid, const uint8_t *data, size_t len, void *cud, void *sud) {
  qconn *c = cud;
  wsock *w = sud;
  ngtcp2_conn_extend_max_offset(c->q, len);
  if (w && w->stalled) w->unconsumed += len;
  else ngtcp2_conn_extend_max_stream_offset(c->q, sid, len);
  if (w && w->open && G.cb.on_data) {
    static uint8_t copy[65536];
    size_t off = 0;
    while (off < len && w->open) {
      size_t n = len - off < sizeof copy ? len - off : sizeof copy;
      memcpy(copy, data + off, n);
      G.cb.on_data((int)(w - G.ws), copy, n);
      off += n;
    }
  }
  return 0;
}

static int h_deferred(nghttp3_conn *h, int64_t sid, size_t n, void *cud, void *sud) {
  qconn *c = cud;
  ngtcp2_conn_extend_max_offset(c->q, n);
  ngtcp2_conn_extend_max_stream_offset(c->q, sid, n);
  return 0;
}

static int h_recv_header(nghttp3_conn *h, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                         nghttp3_rcbuf *value, uint8_t flags, void *cud, void *sud) {
  wsock *w = sud;
  if (w && token == NGHTTP3_QPACK_TOKEN__STATUS) {
    nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
    w->status = 0;
    for (size_t i = 0; i < v.len; i++) w->status = w->status * 10 + (v.base[i] - '0');
  }
  return 0;
}

static int h_end_headers(nghttp3_conn *h, int64_t sid, int fin, void *cud, void *sud) {
  wsock *w = sud;
  if (!w) return 0;
  if (w->status == 200) {
    w->open = 1;
    if (G.cb.on_open) G.cb.on_open((int)(w - G.ws));
  } else {
    char why[64];
    snprintf(why, sizeof why, "CONNECT answered %d", w->status);
    ws_fail(w, why, w->status);
  }
  return 0;
}

static int h_end_stream(nghttp3_conn *h, int64_t sid, void *cud, void *sud) {
  wsock *w = sud;
  if (w && !w->failed) ws_fail(w, "server ended the stream", 0);
  return 0;
}

static int h_stop_sending(nghttp3_conn *h, int64_t sid, uint64_t code, void *cud, void *sud) {
  qconn *c = cud;
  ngtcp2_conn_shutdown_stream_read(c->q, sid, code);
  return 0;
}

static int h_reset_stream(nghttp3_conn *h, int64_t sid, uint64_t code, void *cud, void *sud) {
  qconn *c = cud;
  ngtcp2_conn_shutdown_stream_write(c->q, sid, code);
  return 0;
}

static void open_pending(qconn *c) {
  if (!c->ready) return;
  for (int i = c->idx * G.per_conn; i < (c->idx + 1) * G.per_conn && i < G.n_ws; i++) {
    wsock *w = &G.ws[i];
    if (!w->want_open || w->sid >= 0 || w->failed) continue;
    int64_t sid;
    if (ngtcp2_conn_open_bidi_stream(c->q, &sid, w) != 0) return; /* wait for MAX_STREAMS */
    w->sid = sid;
    nghttp3_nv nv[5 + MAX_HDRS];
    size_t n = 0;
#define NV(a, b) (nghttp3_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP3_NV_FLAG_NONE}
    nv[n++] = NV(":method", "CONNECT");
    nv[n++] = NV(":protocol", "websocket");
    nv[n++] = NV(":scheme", "https");
    nv[n++] = NV(":path", w->path);
    nv[n++] = NV(":authority", G.authority);
    int own_version = 0; /* a test may send its own version */
    for (int k = 0; k < G.nh; k++) own_version |= !strcmp(G.hname[k], "sec-websocket-version");
    if (!own_version) nv[n++] = NV("sec-websocket-version", "13");
    for (int k = 0; k < G.nh; k++) nv[n++] = NV(G.hname[k], G.hval[k]);
    nghttp3_data_reader dr = {read_data};
    if (nghttp3_conn_submit_request(c->h, sid, nv, n, &dr, w) != 0) {
      ws_fail(w, "submit_request failed", 0);
      continue;
    }
  }
  mark(c);
}

static int setup_h3(qconn *c) {
  nghttp3_callbacks cb = {
      .acked_stream_data = h_acked,
      .stream_close = h_stream_close,
      .recv_data = h_recv_data,
      .deferred_consume = h_deferred,
      .recv_header = h_recv_header,
      .end_headers = h_end_headers,
      .stop_sending = h_stop_sending,
      .end_stream = h_end_stream,
      .reset_stream = h_reset_stream,
  };
  nghttp3_settings s;
  nghttp3_settings_default(&s);
  s.qpack_max_dtable_capacity = 4096;
  s.qpack_blocked_streams = 100;
  if (nghttp3_conn_client_new(&c->h, &cb, &s, NULL, c) != 0) return -1;
  int64_t ctrl, enc, dec;
  if (ngtcp2_conn_open_uni_stream(c->q, &ctrl, NULL) || nghttp3_conn_bind_control_stream(c->h, ctrl) ||
      ngtcp2_conn_open_uni_stream(c->q, &enc, NULL) || ngtcp2_conn_open_uni_stream(c->q, &dec, NULL) ||
      nghttp3_conn_bind_qpack_streams(c->h, enc, dec))
    return -1;
  return 0;
}

/* --- ngtcp2 callbacks --------------------------------------------------------------------- */

static int q_handshake_completed(ngtcp2_conn *q, void *ud) {
  qconn *c = ud;
  if (setup_h3(c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  c->ready = 1;
  open_pending(c);
  return 0;
}

static int q_recv_stream_data(ngtcp2_conn *q, uint32_t flags, int64_t sid, uint64_t off,
                              const uint8_t *data, size_t len, void *ud, void *sud) {
  qconn *c = ud;
  if (!c->h) return 0;
  nghttp3_ssize n = nghttp3_conn_read_stream(c->h, sid, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
  if (n < 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  ngtcp2_conn_extend_max_stream_offset(q, sid, (uint64_t)n);
  ngtcp2_conn_extend_max_offset(q, (uint64_t)n);
  return 0;
}

static int q_acked(ngtcp2_conn *q, int64_t sid, uint64_t off, uint64_t len, void *ud, void *sud) {
  qconn *c = ud;
  if (c->h && nghttp3_conn_add_ack_offset(c->h, sid, len) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int q_stream_close(ngtcp2_conn *q, uint32_t flags, int64_t sid, uint64_t code, void *ud, void *sud) {
  qconn *c = ud;
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) code = NGHTTP3_H3_NO_ERROR;
  if (c->h) {
    int rv = nghttp3_conn_close_stream(c->h, sid, code);
    if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int q_stream_reset(ngtcp2_conn *q, int64_t sid, uint64_t fs, uint64_t code, void *ud, void *sud) {
  qconn *c = ud;
  if (c->h) nghttp3_conn_shutdown_stream_read(c->h, sid);
  return 0;
}

static int q_extend_bidi(ngtcp2_conn *q, uint64_t max, void *ud) {
  open_pending(ud);
  return 0;
}

static int q_extend_stream(ngtcp2_conn *q, int64_t sid, uint64_t max, void *ud, void *sud) {
  qconn *c = ud;
  if (c->h) nghttp3_conn_unblock_stream(c->h, sid);
  return 0;
}

static void q_rand(uint8_t *d, size_t n, const ngtcp2_rand_ctx *r) { rnd(d, n); }

static int q_new_cid(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token, size_t len, void *ud) {
  rnd(cid->data, len);
  cid->datalen = len;
  rnd(token, NGTCP2_STATELESS_RESET_TOKENLEN);
  return 0;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *r) { return ((qconn *)r->user_data)->q; }

/* --- I/O ------------------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void arm(qconn *c) {
  ngtcp2_tstamp e = ngtcp2_conn_get_expiry(c->q), now = ts_now();
  if (e == UINT64_MAX) return;
  uint64_t ms = e <= now ? 0 : (e - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void conn_write(qconn *c) {
  if (c->dead) return;
  uint8_t buf[PKT_MAX];
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_tstamp ts = ts_now();
  for (;;) {
    int64_t sid = -1;
    int fin = 0;
    nghttp3_vec vec[16];
    nghttp3_ssize nv = 0;
    if (c->h && ngtcp2_conn_get_max_data_left(c->q)) {
      nv = nghttp3_conn_writev_stream(c->h, &sid, &fin, vec, 16);
      if (nv < 0) {
        conn_lost(c, "nghttp3 write failed");
        return;
      }
    }
    ngtcp2_ssize nd = -1;
    uint32_t fl = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->q, &ps.path, &pi, buf, sizeof buf, &nd, fl, sid,
                                               (const ngtcp2_vec *)vec, (size_t)nv, ts);
    if (n < 0) {
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) { nghttp3_conn_block_stream(c->h, sid); continue; }
      if (n == NGTCP2_ERR_STREAM_SHUT_WR) { nghttp3_conn_shutdown_stream_write(c->h, sid); continue; }
      if (n == NGTCP2_ERR_WRITE_MORE) { nghttp3_conn_add_write_offset(c->h, sid, (size_t)nd); continue; }
      conn_lost(c, ngtcp2_strerror((int)n));
      return;
    }
    if (nd >= 0 && sid >= 0) nghttp3_conn_add_write_offset(c->h, sid, (size_t)nd);
    if (n == 0) break;
    (void)!send(c->fd, buf, (size_t)n, 0); /* EAGAIN: a loss, recovered by QUIC */
  }
  ngtcp2_conn_update_pkt_tx_time(c->q, ts);
  arm(c);
}

static void flush_all(void) {
  while (G.dirty) {
    qconn *c = G.dirty;
    G.dirty = c->next_dirty;
    c->dirty = 0;
    conn_write(c);
  }
}

/* After the callbacks of an iteration (check), and before the loop blocks
 * (prepare: catches what timers queued). */
static void on_check(uv_check_t *h) { flush_all(); }
static void on_prepare(uv_prepare_t *h) { flush_all(); }

static void conn_lost(qconn *c, const char *why) {
  if (c->dead) return;
  c->dead = 1;
  uv_timer_stop(&c->timer);
  uv_poll_stop(&c->poll);
  for (int i = c->idx * G.per_conn; i < (c->idx + 1) * G.per_conn && i < G.n_ws; i++)
    if (G.ws[i].want_open) ws_fail(&G.ws[i], why, 0);
}

static void on_timer(uv_timer_t *t) {
  qconn *c = t->data;
  int rv = ngtcp2_conn_handle_expiry(c->q, ts_now());
  if (rv != 0) {
    conn_lost(c, rv == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : ngtcp2_strerror(rv));
    return;
  }
  conn_write(c);
}

/* One datagram from the server. Returns -1 once the connection is lost. */
static int conn_read(qconn *c, const uint8_t *data, size_t n) {
  ngtcp2_path path = {{(ngtcp2_sockaddr *)&c->local, c->local_len}, {(ngtcp2_sockaddr *)&c->remote, c->remote_len}, NULL};
  ngtcp2_pkt_info pi = {0};
  int rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, data, n, ts_now());
  if (rv == 0) return 0;
  if (rv == NGTCP2_ERR_DRAINING) {
    ngtcp2_connection_close_error e;
    ngtcp2_conn_get_connection_close_error(c->q, &e);
    char why[160];
    snprintf(why, sizeof why, "connection closed by server (0x%llx %.*s)", (unsigned long long)e.error_code,
             (int)e.reasonlen, e.reason ? (const char *)e.reason : "");
    conn_lost(c, why);
  } else {
    conn_lost(c, ngtcp2_strerror(rv));
  }
  return -1;
}

/* Why not uv_udp: it makes one recvmsg system call per datagram, and a
 * fan-out client receives one datagram per delivery or two; one recvmmsg
 * per wake-up takes up to RX_BATCH at once (measured: ~14% less client
 * CPU per delivery, so the client is less often what limits the run). */
static void on_readable(uv_poll_t *p, int status, int events) {
  qconn *c = p->data;
  if (status < 0 || c->dead) return;
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  for (;;) {
    for (int i = 0; i < RX_BATCH; i++) {
      iov[i] = (struct iovec){G.rx[i], RX_SLOT};
      msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
    }
    int got = recvmmsg(c->fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
    if (got <= 0) break; /* EAGAIN: drained; an error (ICMP refused) is left to QUIC's timers */
    for (int i = 0; i < got; i++) {
      if (conn_read(c, G.rx[i], msgs[i].msg_len) < 0) return;
    }
    mark(c);
    if (got < RX_BATCH) break;
  }
}

static int conn_start(qconn *c) {
  c->started = 1;
  uv_timer_init(G.loop, &c->timer);
  c->timer.data = c;
  struct sockaddr_in any = {0};
  any.sin_family = AF_INET;
  c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  socklen_t l = sizeof c->local;
  if (bind(c->fd, (struct sockaddr *)&any, sizeof any) != 0 ||
      connect(c->fd, (struct sockaddr *)&G.addr, sizeof(struct sockaddr_in)) != 0 ||
      getsockname(c->fd, (struct sockaddr *)&c->local, &l) != 0 ||
      uv_poll_init_socket(G.loop, &c->poll, c->fd) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->poll.data = c;
  c->local_len = l;
  memcpy(&c->remote, &G.addr, sizeof G.addr);
  c->remote_len = sizeof(struct sockaddr_in);
  ngtcp2_cid dcid, scid;
  dcid.datalen = 18;
  rnd(dcid.data, 18);
  scid.datalen = 16;
  rnd(scid.data, 16);
  ngtcp2_callbacks cb = {
      .client_initial = ngtcp2_crypto_client_initial_cb,
      .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
      .handshake_completed = q_handshake_completed,
      .encrypt = ngtcp2_crypto_encrypt_cb,
      .decrypt = ngtcp2_crypto_decrypt_cb,
      .hp_mask = ngtcp2_crypto_hp_mask_cb,
      .recv_stream_data = q_recv_stream_data,
      .acked_stream_data_offset = q_acked,
      .stream_close = q_stream_close,
      .recv_retry = ngtcp2_crypto_recv_retry_cb,
      .extend_max_local_streams_bidi = q_extend_bidi,
      .rand = q_rand,
      .get_new_connection_id = q_new_cid,
      .update_key = ngtcp2_crypto_update_key_cb,
      .stream_reset = q_stream_reset,
      .extend_max_stream_data = q_extend_stream,
      .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
      .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
      .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
      .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
  };
  ngtcp2_settings s;
  ngtcp2_settings_default(&s);
  s.initial_ts = ts_now();
  s.no_pmtud = 1;
  ngtcp2_transport_params p;
  ngtcp2_transport_params_default(&p);
  p.initial_max_stream_data_bidi_local = 1 << 20;
  p.initial_max_stream_data_bidi_remote = 1 << 20;
  p.initial_max_stream_data_uni = 1 << 20;
  p.initial_max_data = 16 << 20;
  p.initial_max_streams_uni = 3;
  p.max_idle_timeout = 30 * NGTCP2_SECONDS;
  ngtcp2_path path = {{(ngtcp2_sockaddr *)&c->local, c->local_len}, {(ngtcp2_sockaddr *)&c->remote, c->remote_len}, NULL};
  if (ngtcp2_conn_client_new(&c->q, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &s, &p, NULL, c) != 0)
    return -1;
  if (gnutls_init(&c->tls, GNUTLS_CLIENT) != 0) return -1;
  c->ref.get_conn = get_conn;
  c->ref.user_data = c;
  gnutls_session_set_ptr(c->tls, &c->ref);
  gnutls_datum_t alpn = {(unsigned char *)"h3", 2};
  if (gnutls_priority_set_direct(c->tls, TLS_PRIO, NULL) != 0 ||
      ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0 ||
      gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, G.cred) != 0)
    return -1;
  gnutls_alpn_set_protocols(c->tls, &alpn, 1, 0);
  gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, "localhost", 9);
  ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
  uv_poll_start(&c->poll, UV_READABLE, on_readable);
  mark(c);
  return 0;
}

/* --- the interface ------------------------------------------------------------------------------- */

int h3b_init(uv_loop_t *loop, const char *addr, int port, const char *authority, int n_ws, int per_conn,
             const h3b_cb *cb) {
  G.loop = loop;
  if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&G.addr) != 0) return -1;
  snprintf(G.authority, sizeof G.authority, "%s", authority);
  G.n_ws = n_ws;
  G.per_conn = per_conn > 0 ? per_conn : 1;
  G.n_conns = (n_ws + G.per_conn - 1) / G.per_conn;
  G.ws = calloc((size_t)n_ws, sizeof *G.ws);
  G.conns = calloc((size_t)G.n_conns, sizeof *G.conns);
  if (!G.ws || !G.conns) return -1;
  for (int i = 0; i < n_ws; i++) G.ws[i].sid = -1;
  for (int i = 0; i < G.n_conns; i++) G.conns[i].idx = i;
  G.cb = *cb;
  if (gnutls_certificate_allocate_credentials(&G.cred) != 0) return -1;
  uv_check_init(loop, &G.check);
  uv_check_start(&G.check, on_check);
  uv_unref((uv_handle_t *)&G.check);
  uv_prepare_init(loop, &G.prepare);
  uv_prepare_start(&G.prepare, on_prepare);
  uv_unref((uv_handle_t *)&G.prepare);
  return 0;
}

void h3b_add_header(const char *name, const char *value) {
  if (G.nh == MAX_HDRS) return;
  G.hname[G.nh] = name;
  G.hval[G.nh++] = value;
}

void h3b_open(int ws, const char *path) {
  wsock *w = &G.ws[ws];
  qconn *c = &G.conns[ws / G.per_conn];
  w->q = c;
  w->want_open = 1;
  snprintf(w->path, sizeof w->path, "%s", path);
  if (!c->started && conn_start(c) != 0) {
    conn_lost(c, "cannot start QUIC connection");
    return;
  }
  open_pending(c);
}

int h3b_send(int ws, const uint8_t *data, size_t len) {
  wsock *w = &G.ws[ws];
  if (!w->open || w->fin || w->q->dead) return -1;
  if (w->queued + len > BACKLOG_MAX) return -1;
  chunk *c = malloc(sizeof *c + len);
  if (!c) return -1;
  c->next = NULL;
  c->len = len;
  memcpy(c->data, data, len);
  if (w->tail) w->tail->next = c;
  else w->head = c;
  w->tail = c;
  if (!w->next_give) w->next_give = c;
  w->queued += len;
  nghttp3_conn_resume_stream(w->q->h, w->sid);
  mark(w->q);
  return 0;
}

void h3b_close(int ws, int reset) {
  wsock *w = &G.ws[ws];
  if (!w->q || w->sid < 0 || w->q->dead) return;
  if (reset) {
    ngtcp2_conn_shutdown_stream(w->q->q, w->sid, NGHTTP3_H3_REQUEST_CANCELLED);
    w->open = 0;
  } else {
    w->fin = 1;
    nghttp3_conn_resume_stream(w->q->h, w->sid);
  }
  mark(w->q);
}

void h3b_stall(int ws, int stalled) {
  wsock *w = &G.ws[ws];
  w->stalled = stalled;
  if (!stalled && w->unconsumed && w->q && !w->q->dead) {
    ngtcp2_conn_extend_max_stream_offset(w->q->q, w->sid, w->unconsumed);
    w->unconsumed = 0;
    mark(w->q);
  }
}

int h3b_connections(void) {
  int n = 0;
  for (int i = 0; i < G.n_conns; i++) n += G.conns[i].started && !G.conns[i].dead;
  return n;
}

static void closed(uv_handle_t *h) { (void)h; }

void h3b_free(void) {
  for (int i = 0; i < G.n_conns; i++) {
    qconn *c = &G.conns[i];
    if (!c->started) continue;
    if (c->h) nghttp3_conn_del(c->h);
    if (c->q) ngtcp2_conn_del(c->q);
    if (c->tls) gnutls_deinit(c->tls);
    if (c->fd >= 0) {
      uv_close((uv_handle_t *)&c->poll, closed);
      close(c->fd); /* libuv never closes a polled descriptor; it is unwatched once uv_close ran */
    }
    uv_close((uv_handle_t *)&c->timer, closed);
  }
  for (int i = 0; i < G.n_ws; i++)
    while (G.ws[i].head) {
      chunk *c = G.ws[i].head;
      G.ws[i].head = c->next;
      free(c);
    }
  if (G.cred) gnutls_certificate_free_credentials(G.cred);
  uv_close((uv_handle_t *)&G.check, closed);
  uv_close((uv_handle_t *)&G.prepare, closed);
}
