/* h3/h3 — see h3.h. The only file that includes ngtcp2 and nghttp3. */
#include "h3/h3.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/hmap.h"
#include "base/metrics.h"
#include "h3/request.h"
#include "h3/udp.h"

#define SCID_LEN 16
#define PKT_MAX H3_UDP_PKT_MAX      /* 1452 (NGTCP2_MAX_PMTUD_UDP_PAYLOAD_SIZE): what we send at most */
#define RX_BUF (64 * 1024)
#define RX_MMSG 16                  /* datagrams per recvmmsg (libuv: one 64 KiB chunk each) */
#define TX_PER_FLUSH 256            /* packets per connection per loop iteration */
#define TICK_MS 250
#define RESETS_PER_SEC 200          /* stateless resets sent at most */
#define REFUSALS_PER_SEC 200        /* CONNECTION_REFUSED answers at most */
#define RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)
#define STREAM_WINDOW (256 * 1024)  /* per-stream receive window */
#define CONN_WINDOW (4 * 1024 * 1024)
#define COALESCE_SEG 1024           /* messages up to this size are copied together ... */
#define COALESCE_MAX (16 * 1024)    /* ... into one buffer of at most this size per vec */
#define TLS_PRIORITY                                                                     \
  "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:" \
  "+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1"

typedef struct h3_conn h3_conn_t;

typedef struct seg {
  wsc_buf_t *b;
  uint32_t off, len;
} seg_t;

struct h3_stream {
  h3_conn_t *c;
  int64_t id;
  h3_stream_t *prev, *next;       /* the connection's streams */
  h3_head_t head;                 /* the request's header section, while it arrives */
  uint8_t answered, tunnel, closing, paused, eof;
  uint8_t deferred;               /* read_data said WOULDBLOCK: nghttp3 waits for a resume */
  /* send queue: segs[head .. head+n) in a ring; [0, given) went to nghttp3 */
  seg_t *segs;
  uint32_t seg_cap, seg_head, seg_n, given, acked_off;
  size_t queued;                  /* bytes not yet acknowledged (held in segs) */
  size_t unsent;                  /* bytes not yet put in a packet: the carrier's queued() */
  uint8_t fin;                    /* send FIN after the queue */
  uint64_t unconsumed;            /* received while paused: window owed */
  uint8_t bp;                     /* back-pressure: paused until queued <= limit/2 */
  uint8_t pending;                /* PEND_*: stream calls deferred out of library callbacks */
  int64_t close_deadline;         /* after close(): abort at this time (mono ms) */
  const char *subprotocol;        /* for the 200 of a WebSocket */
  const wsc_carrier_cb_t *cb;     /* a WebSocket carrier's owner */
  void *ud;
};

enum { PEND_RESET = 1, PEND_STOP_READ = 2 };

/* One connection ID of a connection: the value in the server's CID map
 * (base/hmap, keyed by SipHash: the client chooses the first one), the key
 * pointing at `id`; also on its connection's list, to drop them all. */
typedef struct cid_node {
  struct cid_node *next;          /* the connection's other IDs */
  h3_conn_t *c;
  uint8_t len;
  uint8_t id[NGTCP2_MAX_CIDLEN];
} cid_node_t;

static const char *cid_key(const void *v, size_t *len) {
  *len = ((const cid_node_t *)v)->len;
  return (const char *)((const cid_node_t *)v)->id;
}

struct h3_conn {
  h3_server_t *srv;
  ngtcp2_conn *q;
  nghttp3_conn *h;
  gnutls_session_t tls;
  ngtcp2_crypto_conn_ref ref;
  struct sockaddr_storage local, remote;
  socklen_t local_len, remote_len;
  uv_timer_t timer;
  h3_conn_t *prev, *next;         /* all connections */
  h3_conn_t *next_dirty;
  h3_stream_t *streams;
  cid_node_t *cids;               /* its connection IDs (in srv->cids) */
  ngtcp2_connection_close_error ccerr;
  size_t pkt_max;                 /* our packets' size at most once the handshake is done
                                     (larger than PKT_MAX for a loopback peer) */
  uint8_t *close_pkt;             /* our CONNECTION_CLOSE, resent while closing */
  size_t close_pkt_len;
  uint8_t dirty, closing, draining, dead, handshake_done, in_handshake_count;
};

struct h3_server {
  uv_loop_t *loop;
  const wsc_config_t *config;
  h3_options_t opt;
  uv_udp_t udp;
  uv_check_t flusher;
  uv_prepare_t preflusher;        /* flushes what timers queued, before the loop blocks */
  uv_timer_t ticker, shutdown_timer;
  int fd;
  gnutls_certificate_credentials_t cred;
  uint8_t secret[32];             /* stateless reset and Retry tokens */
  wsc_hmap_t cids;                /* connection ID -> cid_node_t */
  h3_conn_t *conns, *dirty;
  size_t n_conns, n_handshaking;
  int max_conns, retry_above;
  int64_t rate_sec;
  int resets_this_sec, refusals_this_sec;
  int shutting_down, handles;
  void (*shutdown_done)(void *);
  void *shutdown_ud;
  uint8_t rx[RX_MMSG * RX_BUF];   /* recvmmsg: RX_MMSG chunks of 64 KiB */
  h3_udp_t tx;                    /* packets out: sendmmsg batches, GSO datagrams */
};

static ngtcp2_tstamp now_ts(void) { return (ngtcp2_tstamp)wsc_mono_ns(); }

static void conn_write(h3_conn_t *c);
static void conn_write_(h3_conn_t *c, int timers);
static void conn_arm_timer(h3_conn_t *c);
static void stream_release(h3_stream_t *s);
static void conn_free(h3_conn_t *c);
static int conn_expire(h3_conn_t *c, ngtcp2_tstamp ts);

/* --- connection IDs ------------------------------------------------------------------ */

static h3_conn_t *cid_find(h3_server_t *srv, const uint8_t *id, size_t len) {
  cid_node_t *n = wsc_hmap_get(&srv->cids, (const char *)id, len);
  return n ? n->c : NULL;
}

/* Returns 0, or -1 when out of memory or when the ID already names
 * another connection (two clients' Initials with one DCID: the second is
 * refused rather than taking the first one's packets). */
static int cid_add(h3_server_t *srv, const uint8_t *id, size_t len, h3_conn_t *c) {
  if (len > NGTCP2_MAX_CIDLEN) return -1;
  cid_node_t *old = wsc_hmap_get(&srv->cids, (const char *)id, len);
  if (old) return old->c == c ? 0 : -1;
  cid_node_t *n = malloc(sizeof *n);
  if (!n) return -1;
  n->c = c;
  n->len = (uint8_t)len;
  memcpy(n->id, id, len);
  if (wsc_hmap_put(&srv->cids, (const char *)n->id, len, n) != 0) {
    free(n);
    return -1;
  }
  n->next = c->cids;
  c->cids = n;
  return 0;
}

static void cid_remove(h3_server_t *srv, const uint8_t *id, size_t len) {
  cid_node_t *n = wsc_hmap_del(&srv->cids, (const char *)id, len);
  if (!n) return;
  for (cid_node_t **p = &n->c->cids; *p; p = &(*p)->next) {
    if (*p == n) {
      *p = n->next;
      break;
    }
  }
  free(n);
}

static void cid_remove_conn(h3_server_t *srv, h3_conn_t *c) {
  while (c->cids) {
    cid_node_t *n = c->cids;
    c->cids = n->next;
    wsc_hmap_del(&srv->cids, (const char *)n->id, n->len);
    free(n);
  }
}

static void rand_bytes(uint8_t *p, size_t n) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, p, n) != 0) abort();
}

/* --- sending datagrams ------------------------------------------------------------------ */

static void tx_flush(h3_server_t *srv) { h3_udp_flush(&srv->tx); }

/* Where the next packet goes (flushing a full batch first). */
static uint8_t *tx_slot(h3_server_t *srv) { return h3_udp_slot(&srv->tx); }

/* A packet on its own (not coalesced with the ones before it). */
static void tx_commit(h3_server_t *srv, size_t len, const struct sockaddr *to, socklen_t tolen) {
  h3_udp_commit(&srv->tx, len, to, tolen, 0);
}

static void send_one(h3_server_t *srv, const uint8_t *pkt, size_t len, const struct sockaddr *to,
                     socklen_t tolen) {
  uint8_t *slot = tx_slot(srv);
  if (len > PKT_MAX) return;
  memmove(slot, pkt, len);
  tx_commit(srv, len, to, tolen);
}

static int rate_ok(h3_server_t *srv, int *counter, int per_sec) {
  int64_t sec = wsc_mono_ms() / 1000;
  if (sec != srv->rate_sec) {
    srv->rate_sec = sec;
    srv->resets_this_sec = srv->refusals_this_sec = 0;
  }
  return (*counter)++ < per_sec;
}

/* --- streams: the send queue ---------------------------------------------------------------- */

static seg_t *seg_at(h3_stream_t *s, uint32_t i) { return &s->segs[(s->seg_head + i) % s->seg_cap]; }

static int seg_push(h3_stream_t *s, wsc_buf_t *b) {
  if (s->seg_n == s->seg_cap) {
    uint32_t cap = s->seg_cap ? s->seg_cap * 2 : 4;
    seg_t *n = malloc(sizeof(seg_t) * cap);
    if (!n) return -1;
    for (uint32_t i = 0; i < s->seg_n; i++) n[i] = *seg_at(s, i);
    free(s->segs);
    s->segs = n;
    s->seg_cap = cap;
    s->seg_head = 0;
  }
  seg_t *g = &s->segs[(s->seg_head + s->seg_n) % s->seg_cap];
  g->b = wsc_buf_ref(b);
  g->off = b->off;
  g->len = b->len;
  s->seg_n++;
  s->queued += b->len;
  s->unsent += b->len;
  return 0;
}

/* The peer acknowledged n more bytes: drop them from the front. */
static void seg_acked(h3_stream_t *s, uint64_t n) {
  while (n && s->seg_n) {
    seg_t *g = seg_at(s, 0);
    uint64_t rem = g->len - s->acked_off;
    if (n < rem) {
      s->acked_off += (uint32_t)n;
      s->queued -= n;
      return;
    }
    n -= rem;
    s->queued -= rem;
    wsc_buf_unref(g->b);
    s->seg_head = (s->seg_head + 1) % s->seg_cap;
    s->seg_n--;
    if (s->given) s->given--;
    s->acked_off = 0;
  }
}

static void stream_resume(h3_stream_t *s);

/* After an acknowledgement: a stream in back-pressure reads again once its
 * queue has drained to half the limit. */
static void bp_check(h3_stream_t *s) {
  if (s->bp && s->unsent <= s->c->srv->config->send_queue_limit / 2) {
    s->bp = 0;
    stream_resume(s);
  }
}

static void mark_dirty(h3_conn_t *c) {
  if (c->dirty || c->dead) return;
  c->dirty = 1;
  c->next_dirty = c->srv->dirty;
  c->srv->dirty = c;
}

/* Small messages queued since nghttp3 last asked (segs from `given` on)
 * are copied into one buffer of their own: nghttp3 then tracks, frames and
 * acknowledges one vec instead of one per message, and ngtcp2 copies one.
 * A run stops at a message larger than COALESCE_SEG (it keeps its shared
 * buffer, no copy) or at COALESCE_MAX bytes. Bytes, queue accounting and
 * flow control do not change; only the number of segments. Out of memory:
 * the segments stay as they are. */
static void seg_coalesce(h3_stream_t *s) {
  uint32_t i = s->given;
  while (i + 1 < s->seg_n) {
    uint32_t k = 0;
    size_t total = 0;
    while (i + k < s->seg_n) {
      seg_t *g = seg_at(s, i + k);
      if (g->len > COALESCE_SEG || total + g->len > COALESCE_MAX) break;
      total += g->len;
      k++;
    }
    if (k < 2) {
      i += k ? k : 1; /* a large message, or a lone small one before it */
      continue;
    }
    wsc_buf_t *b = wsc_buf_new(0, total);
    if (!b) return;
    for (uint32_t j = 0; j < k; j++) {
      seg_t *g = seg_at(s, i + j);
      memcpy(b->data + b->len, g->b->data + g->off, g->len);
      b->len += g->len;
      wsc_buf_unref(g->b);
    }
    seg_t *first = seg_at(s, i);
    first->b = b;
    first->off = b->off;
    first->len = b->len;
    for (uint32_t j = i + k; j < s->seg_n; j++) *seg_at(s, j - k + 1) = *seg_at(s, j);
    s->seg_n -= k - 1;
    wsc_metrics.h3_segs_coalesced += k;
    i++;
  }
}

static nghttp3_ssize read_data(nghttp3_conn *h, int64_t id, nghttp3_vec *vec, size_t veccnt,
                               uint32_t *pflags, void *cud, void *sud) {
  h3_stream_t *s = sud;
  if (!s) return NGHTTP3_ERR_CALLBACK_FAILURE;
  seg_coalesce(s);
  size_t n = 0;
  while (s->given < s->seg_n && n < veccnt) {
    seg_t *g = seg_at(s, s->given);
    vec[n].base = g->b->data + g->off;
    vec[n].len = g->len;
    /* The front segment may be partly acknowledged already only if it was
     * given before; a segment is given whole, so acked_off applies to
     * given segments only. */
    n++;
    s->given++;
  }
  if (s->given == s->seg_n && s->fin) *pflags |= NGHTTP3_DATA_FLAG_EOF;
  else if (n == 0) {
    s->deferred = 1;
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  return (nghttp3_ssize)n;
}

/* More to give nghttp3 (bytes or the FIN): a stream it stopped asking
 * (WOULDBLOCK) is resumed; one it still asks needs nothing, which spares a
 * library call per message and recipient. */
static void stream_more(h3_stream_t *s) {
  if (!s->deferred) return;
  s->deferred = 0;
  nghttp3_conn_resume_stream(s->c->h, s->id);
}

static void stream_free(h3_stream_t *s) {
  h3_conn_t *c = s->c;
  stream_release(s);
  for (uint32_t i = 0; i < s->seg_n; i++) wsc_buf_unref(seg_at(s, i)->b);
  free(s->segs);
  h3_head_free(&s->head);
  if (s->prev) s->prev->next = s->next;
  else c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s);
}

/* --- the application side of a stream ---------------------------------------------------------- */

static int submit(h3_stream_t *s, const nghttp3_nv *nv, size_t n, int with_body) {
  nghttp3_data_reader dr = {read_data};
  int rv = nghttp3_conn_submit_response(s->c->h, s->id, nv, n, with_body ? &dr : NULL);
  if (rv != 0) {
    LOG_WARN("h3", "submit_response failed stream=%lld err=\"%s\"", (long long)s->id,
             nghttp3_strerror(rv));
    return -1;
  }
  s->answered = 1;
  mark_dirty(s->c);
  return 0;
}

#define NV(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP3_NV_FLAG_NONE}

int h3_respond(h3_stream_t *s, int status, const char *content_type, const char *extra_headers,
               const void *body, size_t len) {
  if (s->answered) return -1;
  char st[8], cl[24];
  snprintf(st, sizeof st, "%03d", status % 1000);
  int cln = snprintf(cl, sizeof cl, "%zu", len);
  nghttp3_nv nv[3 + H3_MAX_EXTRA_FIELDS];
  size_t n = 0;
  nv[n++] = (nghttp3_nv)NV(":status", st, 3);
  if (content_type) nv[n++] = (nghttp3_nv)NV("content-type", content_type, strlen(content_type));
  nv[n++] = (nghttp3_nv)NV("content-length", cl, (size_t)cln);
  /* "Name: value\r\n" lines -> lower-case names (HTTP/3 wants them so). */
  char names[H3_MAX_EXTRA_FIELDS][H3_FIELD_NAME_MAX];
  h3_field_t extra[H3_MAX_EXTRA_FIELDS];
  size_t ne = h3_header_lines(extra_headers, extra, names);
  for (size_t i = 0; i < ne; i++)
    nv[n++] = (nghttp3_nv){(uint8_t *)extra[i].name, (uint8_t *)extra[i].value, extra[i].name_len,
                           extra[i].value_len, NGHTTP3_NV_FLAG_NONE};
  if (body && len) {
    wsc_buf_t *b = wsc_buf_from(0, body, len);
    if (!b || seg_push(s, b) != 0) {
      if (b) wsc_buf_unref(b);
      return -1;
    }
    wsc_buf_unref(b);
  }
  s->fin = 1;
  return submit(s, nv, n, body && len);
}

int h3_error(h3_stream_t *s, int status, const char *message) {
  char body[256];
  int n = snprintf(body, sizeof body, "%s\n", message);
  if (n < 0 || (size_t)n >= sizeof body) n = (int)sizeof body - 1;
  return h3_respond(s, status, "text/plain; charset=utf-8", NULL, body, (size_t)n);
}

/* --- a WebSocket carrier (net/carrier.h) ------------------------------------------------------ */

/* The WebSocket is done with its carrier: on_close now (the stream itself
 * goes when ngtcp2 closes it). */
static void stream_release(h3_stream_t *s) {
  if (!s->cb) return;
  const wsc_carrier_cb_t *cb = s->cb;
  s->cb = NULL;
  cb->on_close(s->ud);
}

/* Resets the stream now; the WebSocket's on_close is called at once. */
static void h3_stream_abort_(h3_stream_t *s) {
  if (s->closing) return;
  s->closing = 1;
  s->pending |= PEND_RESET; /* may be inside an ngtcp2 callback: done at the flush */
  mark_dirty(s->c);
  stream_release(s);
}

static void c_attach(void *h, const wsc_carrier_cb_t *cb, void *ud) {
  h3_stream_t *s = h;
  s->cb = cb;
  s->ud = ud;
  s->tunnel = 1;
  nghttp3_nv nv[2] = {NV(":status", "200", 3)};
  size_t n = 1;
  if (s->subprotocol)
    nv[n++] = (nghttp3_nv)NV("sec-websocket-protocol", s->subprotocol, strlen(s->subprotocol));
  if (submit(s, nv, n, 1) != 0) h3_stream_abort_(s);
}

static int c_send(void *h, wsc_buf_t *b, unsigned flags) {
  h3_stream_t *s = h;
  /* WSC_SEND_LAZY needs nothing: every stream's bytes already wait for the
   * end of the loop iteration and leave together. */
  if (s->closing || s->fin || s->c->closing || s->c->draining) return -1;
  if (!(flags & WSC_SEND_FORCE) && s->unsent + b->len > s->c->srv->config->send_queue_limit) return -1;
  if (seg_push(s, b) != 0) return -1;
  stream_more(s);
  mark_dirty(s->c);
  return 0;
}

/* Like TCP's queue (bytes the kernel has not taken), the bytes not yet put
 * in a packet: held back by the peer's flow-control window or congestion. */
static size_t c_queued(const void *h) { return ((const h3_stream_t *)h)->unsent; }

static void c_close(void *h) {
  h3_stream_t *s = h;
  if (s->fin || s->closing) return;
  s->fin = 1;
  s->close_deadline = wsc_mono_ms() + H3_CLOSE_GRACE_MS;
  stream_more(s);
  mark_dirty(s->c);
}

static void c_abort(void *h) { h3_stream_abort_(h); }

static void c_pause(void *h) { ((h3_stream_t *)h)->paused = 1; }

static void stream_resume(h3_stream_t *s) {
  if (!s->paused) return;
  s->paused = 0;
  if (s->unconsumed) {
    ngtcp2_conn_extend_max_stream_offset(s->c->q, s->id, s->unconsumed);
    s->unconsumed = 0;
    mark_dirty(s->c);
  }
}

static void c_backpressure(void *h) {
  h3_stream_t *s = h;
  s->bp = 1;
  s->paused = 1;
  bp_check(s);
}

static int c_in_backpressure(const void *h) { return ((const h3_stream_t *)h)->bp; }

static int c_is_closing(const void *h) {
  const h3_stream_t *s = h;
  return s->closing || s->fin || s->c->closing || s->c->draining;
}

static void c_peer(const void *h, char *out, size_t cap) {
  const h3_stream_t *s = h;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  const struct sockaddr_storage *a = &s->c->remote;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const void *)a;
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    port = ntohs(v4->sin_port);
  } else if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const void *)a;
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    port = ntohs(v6->sin6_port);
  }
  snprintf(out, cap, "%s:%d/h3", ip, port);
}

const wsc_carrier_ops_t h3_carrier_ops = {
    .name = "h3",
    .kind = WSC_CARRIER_H3,
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

wsc_carrier_t h3_stream_websocket(h3_stream_t *s, const char *subprotocol) {
  s->subprotocol = subprotocol;
  s->answered = 1; /* the 200 goes out at attach */
  return (wsc_carrier_t){&h3_carrier_ops, s};
}

/* --- nghttp3 callbacks ------------------------------------------------------------------------ */

static int h3_acked_stream_data(nghttp3_conn *h, int64_t id, uint64_t datalen, void *cud, void *sud) {
  h3_stream_t *s = sud;
  if (!s) return 0;
  seg_acked(s, datalen);
  bp_check(s);
  /* A closed WebSocket whose last bytes the peer has acknowledged is over,
   * as a TCP connection is once its FIN is sent: the WebSocket is released
   * without waiting for the peer's FIN, and we stop reading. */
  if (s->tunnel && s->fin && s->queued == 0 && s->cb && !s->closing) {
    s->pending |= PEND_STOP_READ;
    mark_dirty(s->c);
    stream_release(s);
  }
  return 0;
}

static int h3_stream_close_cb(nghttp3_conn *h, int64_t id, uint64_t code, void *cud, void *sud) {
  h3_conn_t *c = cud;
  if (sud) stream_free(sud);
  if (ngtcp2_is_bidi_stream(id)) ngtcp2_conn_extend_max_streams_bidi(c->q, 1);
  return 0;
}

static void consume(h3_conn_t *c, h3_stream_t *s, int64_t id, size_t n) {
  ngtcp2_conn_extend_max_offset(c->q, n);
  if (s && s->paused) s->unconsumed += n;
  else ngtcp2_conn_extend_max_stream_offset(c->q, id, n);
}

static int h3_recv_data(nghttp3_conn *h, int64_t id, const uint8_t *data, size_t len, void *cud,
                        void *sud) {
  h3_conn_t *c = cud;
  h3_stream_t *s = sud;
  wsc_metrics.bytes_in += len;
  if (s && s->tunnel && s->cb && !s->closing) {
    /* Handlers take mutable bytes (the WebSocket parser unmasks in place),
     * and these are nghttp3's: hand over a copy. */
    static uint8_t scratch[RX_BUF];
    size_t off = 0;
    while (off < len && s->cb && !s->closing) {
      size_t n = len - off < sizeof scratch ? len - off : sizeof scratch;
      memcpy(scratch, data + off, n);
      s->cb->on_data(s->ud, scratch, n);
      off += n;
    }
  }
  consume(c, s, id, len);
  return 0;
}

static int h3_deferred_consume(nghttp3_conn *h, int64_t id, size_t n, void *cud, void *sud) {
  consume(cud, sud, id, n);
  return 0;
}

static int h3_begin_headers(nghttp3_conn *h, int64_t id, void *cud, void *sud) {
  h3_conn_t *c = cud;
  if (sud) return 0;
  h3_stream_t *s = calloc(1, sizeof *s);
  if (!s) return NGHTTP3_ERR_CALLBACK_FAILURE;
  s->c = c;
  s->id = id;
  h3_head_init(&s->head);
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  nghttp3_conn_set_stream_user_data(h, id, s);
  return 0;
}

static int h3_recv_header(nghttp3_conn *h, int64_t id, int32_t token, nghttp3_rcbuf *name,
                          nghttp3_rcbuf *value, uint8_t flags, void *cud, void *sud) {
  h3_stream_t *s = sud;
  if (!s) return 0;
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
  int which = -1;
  switch (token) {
    case NGHTTP3_QPACK_TOKEN__METHOD: which = H3_PSEUDO_METHOD; break;
    case NGHTTP3_QPACK_TOKEN__PROTOCOL: which = H3_PSEUDO_PROTOCOL; break;
    case NGHTTP3_QPACK_TOKEN__SCHEME: which = H3_PSEUDO_SCHEME; break;
    case NGHTTP3_QPACK_TOKEN__AUTHORITY: which = H3_PSEUDO_AUTHORITY; break;
    case NGHTTP3_QPACK_TOKEN__PATH: which = H3_PSEUDO_PATH; break;
    default: break;
  }
  h3_head_add(&s->head, which, n.base, n.len, v.base, v.len);
  return 0;
}

static int h3_end_headers(nghttp3_conn *h, int64_t id, int fin, void *cud, void *sud) {
  h3_conn_t *c = cud;
  h3_stream_t *s = sud;
  if (!s || s->answered) return 0;
  wsc_metrics.http_requests++;
  ws_hs_header_t fields[H3_MAX_HEADERS];
  h3_request_t req;
  int st = h3_head_request(&s->head, &req, fields);
  if (st == H3_HEAD_TOO_BIG) {
    h3_error(s, 431, "request header fields too large");
    return 0;
  }
  if (st != H3_HEAD_OK) {
    h3_error(s, 400, "malformed request header section");
    return 0;
  }
  if (c->srv->shutting_down) h3_error(s, 503, "server shutting down");
  else c->srv->opt.on_request(c->srv->opt.app, s, &req);
  if (!s->answered) h3_error(s, 500, "no response");
  h3_head_free(&s->head);
  return 0;
}

static int h3_end_stream(nghttp3_conn *h, int64_t id, void *cud, void *sud) {
  h3_stream_t *s = sud;
  /* The peer ended its side of a WebSocket (after its close frame, or
   * without one): end ours once what is queued has gone; the stream then
   * closes and the WebSocket gets on_close. */
  if (s && s->tunnel && !s->eof) {
    s->eof = 1;
    c_close(s);
  }
  return 0;
}

static int h3_stop_sending(nghttp3_conn *h, int64_t id, uint64_t code, void *cud, void *sud) {
  h3_conn_t *c = cud;
  ngtcp2_conn_shutdown_stream_read(c->q, id, code);
  return 0;
}

static int h3_reset_stream(nghttp3_conn *h, int64_t id, uint64_t code, void *cud, void *sud) {
  h3_conn_t *c = cud;
  ngtcp2_conn_shutdown_stream_write(c->q, id, code);
  return 0;
}

static int setup_http3(h3_conn_t *c) {
  nghttp3_callbacks cb = {
      .acked_stream_data = h3_acked_stream_data,
      .stream_close = h3_stream_close_cb,
      .recv_data = h3_recv_data,
      .deferred_consume = h3_deferred_consume,
      .begin_headers = h3_begin_headers,
      .recv_header = h3_recv_header,
      .end_headers = h3_end_headers,
      .stop_sending = h3_stop_sending,
      .end_stream = h3_end_stream,
      .reset_stream = h3_reset_stream,
  };
  nghttp3_settings settings;
  nghttp3_settings_default(&settings);
  settings.qpack_max_dtable_capacity = 4096;
  settings.qpack_blocked_streams = 100;
  settings.max_field_section_size = H3_MAX_HEAD;
  settings.enable_connect_protocol = 1; /* RFC 9220: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 */
  if (nghttp3_conn_server_new(&c->h, &cb, &settings, NULL, c) != 0) return -1;
  const ngtcp2_transport_params *params = ngtcp2_conn_get_local_transport_params(c->q);
  nghttp3_conn_set_max_client_streams_bidi(c->h, params->initial_max_streams_bidi);
  int64_t ctrl, enc, dec;
  if (ngtcp2_conn_open_uni_stream(c->q, &ctrl, NULL) != 0 ||
      nghttp3_conn_bind_control_stream(c->h, ctrl) != 0 ||
      ngtcp2_conn_open_uni_stream(c->q, &enc, NULL) != 0 ||
      ngtcp2_conn_open_uni_stream(c->q, &dec, NULL) != 0 ||
      nghttp3_conn_bind_qpack_streams(c->h, enc, dec) != 0)
    return -1;
  return 0;
}

/* --- ngtcp2 callbacks -------------------------------------------------------------------------- */

static int q_recv_stream_data(ngtcp2_conn *q, uint32_t flags, int64_t id, uint64_t offset,
                              const uint8_t *data, size_t len, void *ud, void *sud) {
  h3_conn_t *c = ud;
  if (!c->h && setup_http3(c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  nghttp3_ssize n = nghttp3_conn_read_stream(c->h, id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
  if (n < 0) {
    LOG_DEBUG("h3", "read_stream failed stream=%lld err=\"%s\"", (long long)id, nghttp3_strerror((int)n));
    ngtcp2_connection_close_error_set_application_error(
        &c->ccerr, nghttp3_err_infer_quic_app_error_code((int)n), NULL, 0);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  ngtcp2_conn_extend_max_stream_offset(q, id, (uint64_t)n);
  ngtcp2_conn_extend_max_offset(q, (uint64_t)n);
  return 0;
}

static int q_acked_stream_data_offset(ngtcp2_conn *q, int64_t id, uint64_t offset, uint64_t len,
                                      void *ud, void *sud) {
  h3_conn_t *c = ud;
  if (c->h && nghttp3_conn_add_ack_offset(c->h, id, len) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int q_stream_close(ngtcp2_conn *q, uint32_t flags, int64_t id, uint64_t code, void *ud,
                          void *sud) {
  h3_conn_t *c = ud;
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) code = NGHTTP3_H3_NO_ERROR;
  if (!c->h) return 0;
  int rv = nghttp3_conn_close_stream(c->h, id, code);
  if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) {
    ngtcp2_connection_close_error_set_application_error(
        &c->ccerr, nghttp3_err_infer_quic_app_error_code(rv), NULL, 0);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static void tunnel_eof(h3_conn_t *c, int64_t id) {
  if (!c->h) return;
  nghttp3_conn_shutdown_stream_read(c->h, id);
}

static int q_stream_reset(ngtcp2_conn *q, int64_t id, uint64_t final_size, uint64_t code, void *ud,
                          void *sud) {
  tunnel_eof(ud, id);
  return 0;
}

static int q_stream_stop_sending(ngtcp2_conn *q, int64_t id, uint64_t code, void *ud, void *sud) {
  tunnel_eof(ud, id);
  return 0;
}

static int q_extend_max_remote_streams_bidi(ngtcp2_conn *q, uint64_t max, void *ud) {
  h3_conn_t *c = ud;
  if (c->h) nghttp3_conn_set_max_client_streams_bidi(c->h, max);
  return 0;
}

static int q_extend_max_stream_data(ngtcp2_conn *q, int64_t id, uint64_t max, void *ud, void *sud) {
  h3_conn_t *c = ud;
  if (c->h && nghttp3_conn_unblock_stream(c->h, id) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static void q_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx) { rand_bytes(dest, len); }

static int q_get_new_connection_id(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                                   void *ud) {
  h3_conn_t *c = ud;
  rand_bytes(cid->data, cidlen);
  cid->datalen = cidlen;
  if (ngtcp2_crypto_generate_stateless_reset_token(token, c->srv->secret, sizeof c->srv->secret, cid) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (cid_add(c->srv, cid->data, cid->datalen, c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int q_remove_connection_id(ngtcp2_conn *q, const ngtcp2_cid *cid, void *ud) {
  h3_conn_t *c = ud;
  cid_remove(c->srv, cid->data, cid->datalen);
  return 0;
}

static int q_handshake_completed(ngtcp2_conn *q, void *ud) {
  h3_conn_t *c = ud;
  c->handshake_done = 1;
  wsc_metrics.h3_connections_accepted++;
  if (c->in_handshake_count) {
    c->in_handshake_count = 0;
    c->srv->n_handshaking--;
  }
  return 0;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  h3_conn_t *c = ref->user_data;
  return c->q;
}

/* --- connections ---------------------------------------------------------------------------------- */

static void conn_timer_closed(uv_handle_t *h) { free(h->data); }

static void conn_free(h3_conn_t *c) {
  h3_server_t *srv = c->srv;
  while (c->streams) stream_free(c->streams);
  if (c->h) nghttp3_conn_del(c->h);
  if (c->q) ngtcp2_conn_del(c->q);
  if (c->tls) gnutls_deinit(c->tls);
  free(c->close_pkt);
  cid_remove_conn(srv, c);
  if (c->in_handshake_count) srv->n_handshaking--;
  if (c->prev) c->prev->next = c->next;
  else srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->n_conns--;
  wsc_metrics.h3_connections_open--;
  /* Unlink from the dirty list if present. */
  for (h3_conn_t **p = &srv->dirty; *p; p = &(*p)->next_dirty)
    if (*p == c) {
      *p = c->next_dirty;
      break;
    }
  uv_timer_stop(&c->timer);
  c->timer.data = c;
  uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
  if (srv->shutting_down && srv->n_conns == 0 && srv->shutdown_done) {
    void (*done)(void *) = srv->shutdown_done;
    srv->shutdown_done = NULL;
    uv_timer_stop(&srv->shutdown_timer);
    done(srv->shutdown_ud);
  }
}

static void conn_path(h3_conn_t *c, ngtcp2_path *path) {
  path->local.addr = (ngtcp2_sockaddr *)&c->local;
  path->local.addrlen = c->local_len;
  path->remote.addr = (ngtcp2_sockaddr *)&c->remote;
  path->remote.addrlen = c->remote_len;
}

/* Enter the closing period: our CONNECTION_CLOSE goes out now and again for
 * each packet the peer still sends; the connection is freed after 3 PTO. */
static void conn_start_closing(h3_conn_t *c) {
  if (c->closing || c->draining) return;
  c->closing = 1;
  if (ngtcp2_conn_is_in_closing_period(c->q) || ngtcp2_conn_is_in_draining_period(c->q)) {
    conn_arm_timer(c);
    return;
  }
  uint8_t buf[PKT_MAX];
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->q, &ps.path, &pi, buf, sizeof buf, &c->ccerr,
                                                      now_ts());
  if (n > 0 && (c->close_pkt = malloc((size_t)n))) {
    memcpy(c->close_pkt, buf, (size_t)n);
    c->close_pkt_len = (size_t)n;
    send_one(c->srv, buf, (size_t)n, (struct sockaddr *)&c->remote, c->remote_len);
  }
  conn_arm_timer(c);
}

/* ngtcp2's timers at ts (loss detection, ACK delay, pacing, idle).
 * Returns 0, or -1 when c is closed or freed. */
static int conn_expire(h3_conn_t *c, ngtcp2_tstamp ts) {
  int rv = ngtcp2_conn_handle_expiry(c->q, ts);
  if (rv == 0) return 0;
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    LOG_DEBUG("h3", "idle timeout");
    conn_free(c);
    return -1;
  }
  ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
  conn_start_closing(c);
  return -1;
}

static void conn_on_timer(uv_timer_t *t) {
  h3_conn_t *c = t->data;
  if (c->closing || c->draining) {
    conn_free(c);
    return;
  }
  /* The timer may be due before ngtcp2's expiry (conn_arm_timer leaves an
   * earlier one alone): nothing to do yet but wait for the real one. */
  ngtcp2_tstamp now = now_ts();
  if (ngtcp2_conn_get_expiry(c->q) > now) {
    conn_arm_timer(c);
    return;
  }
  wsc_metrics.h3_expiries++;
  if (conn_expire(c, now) == 0) conn_write_(c, 1);
}

static void conn_arm_timer(h3_conn_t *c) {
  uint64_t ms;
  if (c->closing || c->draining) {
    ms = ngtcp2_conn_get_pto(c->q) * 3 / NGTCP2_MILLISECONDS + 1;
  } else {
    ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(c->q), now = now_ts();
    if (expiry == UINT64_MAX) {
      uv_timer_stop(&c->timer);
      return;
    }
    ms = expiry <= now ? 0 : (expiry - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS;
  }
  /* Once per connection per flush. A timer already due no later than the
   * new expiry stays as it is (the loss-detection deadline moves forward
   * with every packet sent; re-arming each time costs more than the one
   * early wake-up, which conn_on_timer turns into the real deadline). */
  if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= ms &&
      !c->closing && !c->draining)
    return;
  uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

/* A library error on c: close it the way the error asks. Returns -1 (c may
 * be freed). */
static int conn_fail(h3_conn_t *c, int rv) {
  switch (rv) {
    case NGTCP2_ERR_DRAINING: {
      /* The peer closed the connection: what it said, for the operator. */
      ngtcp2_connection_close_error peer;
      ngtcp2_conn_get_connection_close_error(c->q, &peer);
      LOG_DEBUG("h3", "peer closed the connection type=%d code=0x%llx frame=0x%llx reason=\"%.*s\"",
                (int)peer.type, (unsigned long long)peer.error_code, (unsigned long long)peer.frame_type,
                (int)(peer.reasonlen > 200 ? 200 : peer.reasonlen), peer.reason ? (const char *)peer.reason : "");
      c->draining = 1;
      conn_arm_timer(c);
      return -1;
    }
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_IDLE_CLOSE:
      conn_free(c);
      return -1;
    case NGTCP2_ERR_CRYPTO:
      if (!c->ccerr.error_code)
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &c->ccerr, ngtcp2_conn_get_tls_alert(c->q), NULL, 0);
      break;
    case NGTCP2_ERR_CALLBACK_FAILURE:
      if (!c->ccerr.error_code) ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
      break;
    default:
      ngtcp2_connection_close_error_set_transport_error_liberr(&c->ccerr, rv, NULL, 0);
  }
  LOG_DEBUG("h3", "connection error err=\"%s\"", ngtcp2_strerror(rv));
  conn_start_closing(c);
  return -1;
}

/* n bytes of stream sid went into a packet (HTTP/3 framing included, so
 * unsent reaches 0 a little early). */
static void stream_written(h3_conn_t *c, int64_t sid, size_t n) {
  for (h3_stream_t *s = c->streams; s; s = s->next) {
    if (s->id != sid) continue;
    s->unsent = n >= s->unsent ? 0 : s->unsent - n;
    bp_check(s);
    return;
  }
}

static size_t vec_len(const nghttp3_vec *v, size_t n) {
  size_t t = 0;
  for (size_t i = 0; i < n; i++) t += v[i].len;
  return t;
}

/* nghttp3 just gave (fewer than all the vecs it could) data of sid: is
 * that all it has for this write? Yes when sid is the connection's only
 * request stream and every message queued on it has been handed over:
 * nghttp3 writes its control and QPACK streams before any request stream,
 * so none of them had anything, and nothing in a write gives them more.
 * Should it be wrong, the rest waits for the connection's next write (at
 * the latest the peer's acknowledgement of this packet), nothing is lost. */
static int stream_drained(const h3_conn_t *c, int64_t sid) {
  const h3_stream_t *s = c->streams;
  return s && !s->next && s->id == sid && s->given == s->seg_n;
}

/* Tells ngtcp2's pacer what this write sent. ngtcp2 0.12 spaces writes by
 * bytes / (cwnd / srtt * 1.25) and holds the next one back until then; a
 * chat connection's write per loop iteration is small, and holding it
 * only delays messages (and costs a timer and a second write). So, as RFC
 * 9002 7.7 allows, a write of at most the initial window goes unpaced (the
 * pacer is told it was sent that much earlier); larger bursts are paced.
 * The congestion window bounds what is in flight either way. */
static void conn_pace(h3_conn_t *c, ngtcp2_tstamp ts, size_t bytes) {
  size_t mds = c->handshake_done ? c->pkt_max : PKT_MAX;
  size_t burst = 2 * mds > 14720 ? 2 * mds : 14720;
  if (burst > 10 * mds) burst = 10 * mds;
  if (bytes && bytes <= burst) {
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->q, &st);
    double rate = st.pacing_rate > 0 ? st.pacing_rate
                                     : (double)st.cwnd / (double)(st.smoothed_rtt ? st.smoothed_rtt : 1) * 1.25;
    if (rate > 0) {
      ngtcp2_duration iv = (ngtcp2_duration)((double)bytes / rate) + 1;
      ts = iv < ts ? ts - iv : 0;
    }
  }
  ngtcp2_conn_update_pkt_tx_time(c->q, ts);
}

/* Writes everything c may send now (stream data from nghttp3, ACKs,
 * retransmissions) into the server's packet batch. */
static void conn_write(h3_conn_t *c) { conn_write_(c, 0); }

/* timers: ngtcp2's timers were just handled (loss detection, PTO): it may
 * want several packets (a PTO sends two probes), so the write goes on
 * until ngtcp2 has nothing, however short a packet was. */
static void conn_write_(h3_conn_t *c, int timers) {
  h3_server_t *srv = c->srv;
  if (c->closing || c->draining || c->dead) return;
  wsc_metrics.h3_conn_writes++;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_tstamp ts = now_ts();
  for (h3_stream_t *s = c->streams; s; s = s->next) {
    if (s->pending & PEND_RESET) ngtcp2_conn_shutdown_stream(c->q, s->id, NGHTTP3_H3_REQUEST_CANCELLED);
    else if (s->pending & PEND_STOP_READ) ngtcp2_conn_shutdown_stream_read(c->q, s->id, NGHTTP3_H3_NO_ERROR);
    s->pending = 0;
  }
  int pkts = 0, settled = 0;
  size_t bytes = 0;
again:;
  /* Once nghttp3 has nothing to write it stays so for this write (nothing
   * below gives it more): it is not asked again, only ngtcp2 is. */
  int h3_idle = 0, last = 0;
  while (pkts < TX_PER_FLUSH) {
    int64_t sid = -1;
    int fin = 0;
    nghttp3_vec vec[16];
    nghttp3_ssize nvec = 0;
    if (c->h && !h3_idle && ngtcp2_conn_get_max_data_left(c->q)) {
      nvec = nghttp3_conn_writev_stream(c->h, &sid, &fin, vec, 16);
      if (nvec < 0) {
        ngtcp2_connection_close_error_set_application_error(
            &c->ccerr, nghttp3_err_infer_quic_app_error_code((int)nvec), NULL, 0);
        conn_fail(c, NGTCP2_ERR_CALLBACK_FAILURE);
        return;
      }
      h3_idle = nvec == 0 && sid < 0;
      last = nvec > 0 && nvec < 16 && stream_drained(c, sid);
    }
    ngtcp2_ssize ndatalen = -1;
    /* Without MORE, ngtcp2 ends the packet in this call instead of asking
     * for more stream data first (one library call less each way). */
    uint32_t flags = (last ? 0 : NGTCP2_WRITE_STREAM_FLAG_MORE) | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    /* Larger packets only once the handshake is done (ngtcp2 also keeps
     * them within the peer's max_udp_payload_size). */
    size_t room = c->handshake_done ? c->pkt_max : PKT_MAX;
    uint8_t *slot = h3_udp_slot_n(&srv->tx, room);
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->q, &ps.path, &pi, slot, room, &ndatalen, flags,
                                               sid, (const ngtcp2_vec *)vec, (size_t)nvec, ts);
    if (n < 0) {
      switch (n) {
        case NGTCP2_ERR_STREAM_DATA_BLOCKED:
          nghttp3_conn_block_stream(c->h, sid);
          continue;
        case NGTCP2_ERR_STREAM_SHUT_WR:
          nghttp3_conn_shutdown_stream_write(c->h, sid);
          continue;
        case NGTCP2_ERR_WRITE_MORE:
          if (nghttp3_conn_add_write_offset(c->h, sid, (size_t)ndatalen) != 0) {
            conn_fail(c, NGTCP2_ERR_CALLBACK_FAILURE);
            return;
          }
          stream_written(c, sid, (size_t)ndatalen);
          continue;
        default:
          conn_fail(c, (int)n);
          return;
      }
    }
    if (ndatalen >= 0 && sid >= 0) {
      if (nghttp3_conn_add_write_offset(c->h, sid, (size_t)ndatalen) != 0) {
        conn_fail(c, NGTCP2_ERR_CALLBACK_FAILURE);
        return;
      }
      stream_written(c, sid, (size_t)ndatalen);
      if (last && (size_t)ndatalen == vec_len(vec, (size_t)nvec)) h3_idle = 1; /* all of it went */
    }
    if (n == 0) break;
    /* A connection's packets in a row go out as one GSO datagram. */
    h3_udp_commit(&srv->tx, (size_t)n, (struct sockaddr *)ps.path.remote.addr, ps.path.remote.addrlen, 1);
    pkts++;
    bytes += (size_t)n;
    /* A packet ngtcp2 ended with room to spare while nghttp3 had nothing
     * more: ngtcp2 has nothing more either (it fills a packet with what
     * is due: ACKs, retransmissions, flow control). */
    if (h3_idle && !timers && (size_t)n + 256 < room) break;
  }
  ngtcp2_tstamp due = ngtcp2_conn_get_expiry(c->q); /* before the pacing deadline is set */
  conn_pace(c, ts, bytes);
  bytes = 0;
  /* ngtcp2 counts a pacing deadline within 1 ms as passed, but only
   * handle_expiry clears it: without this every write would cost a timer
   * callback and a second, empty write. Whatever else fell due (an ACK, a
   * probe) is written at once, by one more pass. */
  if (!settled && pkts < TX_PER_FLUSH && ngtcp2_conn_get_expiry(c->q) <= ts + NGTCP2_MILLISECONDS) {
    settled = 1;
    if (conn_expire(c, ts) != 0) return;
    if (due <= ts) {
      timers = 1;
      goto again;
    }
  }
  if (pkts == TX_PER_FLUSH) uv_timer_start(&c->timer, conn_on_timer, 0, 0); /* more next iteration */
  else conn_arm_timer(c);
}

/* --- receiving datagrams ------------------------------------------------------------------------------ */

static void send_stateless_reset(h3_server_t *srv, const uint8_t *dcid, size_t dcidlen, size_t pktlen,
                                 const struct sockaddr *from, socklen_t fromlen) {
  /* A reset must be shorter than what provoked it (no reset loops), and we
   * send few of them. */
  if (pktlen < 43 || !rate_ok(srv, &srv->resets_this_sec, RESETS_PER_SEC)) return;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64];
  if (ngtcp2_crypto_generate_stateless_reset_token(token, srv->secret, sizeof srv->secret, &cid) != 0) return;
  size_t rlen = pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
  if (rlen > sizeof rnd) rlen = sizeof rnd;
  rand_bytes(rnd, rlen);
  uint8_t *slot = tx_slot(srv);
  ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(slot, PKT_MAX, token, rnd, rlen);
  if (n > 0) tx_commit(srv, (size_t)n, from, fromlen);
}

static void send_version_negotiation(h3_server_t *srv, const ngtcp2_version_cid *vc,
                                     const struct sockaddr *from, socklen_t fromlen) {
  if (!rate_ok(srv, &srv->refusals_this_sec, REFUSALS_PER_SEC)) return;
  uint32_t sv[] = {NGTCP2_PROTO_VER_V1};
  uint8_t r;
  rand_bytes(&r, 1);
  uint8_t *slot = tx_slot(srv);
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(slot, PKT_MAX, r, vc->scid, vc->scidlen, vc->dcid,
                                                        vc->dcidlen, sv, 1);
  if (n > 0) tx_commit(srv, (size_t)n, from, fromlen);
}

/* A clear refusal that keeps no state: CONNECTION_CLOSE(CONNECTION_REFUSED)
 * in an Initial packet. */
static void send_refusal(h3_server_t *srv, const ngtcp2_pkt_hd *hd, const struct sockaddr *from,
                         socklen_t fromlen) {
  if (!rate_ok(srv, &srv->refusals_this_sec, REFUSALS_PER_SEC)) return;
  static const char reason[] = "server busy: too many connections";
  uint8_t *slot = tx_slot(srv);
  ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(slot, PKT_MAX, hd->version, &hd->scid, &hd->dcid,
                                                        NGTCP2_CONNECTION_REFUSED, (const uint8_t *)reason,
                                                        sizeof reason - 1);
  if (n > 0) tx_commit(srv, (size_t)n, from, fromlen);
}

static int send_retry(h3_server_t *srv, const ngtcp2_pkt_hd *hd, const struct sockaddr *from,
                      socklen_t fromlen) {
  if (!rate_ok(srv, &srv->refusals_this_sec, REFUSALS_PER_SEC)) return -1;
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  ngtcp2_cid scid;
  scid.datalen = SCID_LEN;
  rand_bytes(scid.data, SCID_LEN);
  ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(token, srv->secret, sizeof srv->secret, hd->version,
                                                       (const ngtcp2_sockaddr *)from, (ngtcp2_socklen)fromlen,
                                                       &scid, &hd->dcid, now_ts());
  if (tl < 0) return -1;
  uint8_t *slot = tx_slot(srv);
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(slot, PKT_MAX, hd->version, &hd->scid, &scid, &hd->dcid, token,
                                             (size_t)tl);
  if (n > 0) tx_commit(srv, (size_t)n, from, fromlen);
  return 0;
}

static h3_conn_t *conn_new(h3_server_t *srv, const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid,
                           int retried, const struct sockaddr *from, socklen_t fromlen) {
  h3_conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->srv = srv;
  memcpy(&c->remote, from, fromlen);
  c->remote_len = fromlen;
  c->local_len = sizeof c->local;
  if (uv_udp_getsockname(&srv->udp, (struct sockaddr *)&c->local, (int *)&c->local_len) != 0) {
    free(c);
    return NULL;
  }
  uv_timer_init(srv->loop, &c->timer);
  c->timer.data = c;
  /* Linked first, so conn_free can undo any partial setup below. */
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->n_conns++;
  srv->n_handshaking++;
  c->in_handshake_count = 1;
  wsc_metrics.h3_connections_open++;

  ngtcp2_cid scid;
  scid.datalen = SCID_LEN;
  rand_bytes(scid.data, SCID_LEN);
  ngtcp2_callbacks cb = {
      .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
      .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
      .handshake_completed = q_handshake_completed,
      .encrypt = ngtcp2_crypto_encrypt_cb,
      .decrypt = ngtcp2_crypto_decrypt_cb,
      .hp_mask = ngtcp2_crypto_hp_mask_cb,
      .recv_stream_data = q_recv_stream_data,
      .acked_stream_data_offset = q_acked_stream_data_offset,
      .stream_close = q_stream_close,
      .rand = q_rand,
      .get_new_connection_id = q_get_new_connection_id,
      .remove_connection_id = q_remove_connection_id,
      .update_key = ngtcp2_crypto_update_key_cb,
      .stream_reset = q_stream_reset,
      .extend_max_remote_streams_bidi = q_extend_max_remote_streams_bidi,
      .extend_max_stream_data = q_extend_max_stream_data,
      .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
      .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
      .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
      .stream_stop_sending = q_stream_stop_sending,
      .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
  };
  ngtcp2_settings settings;
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now_ts();
  /* A loopback peer may get packets as large as the loopback route allows
   * (as TCP sends 64 KiB segments there): fewer packets, fewer system
   * calls and decryptions per message. Anything else gets PKT_MAX, with no
   * Path MTU Discovery (ngtcp2 0.12 would probe no further than PKT_MAX). */
  c->pkt_max = h3_udp_local_payload(from, fromlen);
  settings.max_tx_udp_payload_size = c->pkt_max;
  if (c->pkt_max > PKT_MAX) settings.no_tx_udp_payload_size_shaping = 1;
  settings.no_pmtud = 1;
  settings.handshake_timeout = (ngtcp2_duration)H3_HANDSHAKE_TIMEOUT_MS * NGTCP2_MILLISECONDS;
  settings.max_window = CONN_WINDOW * 2;
  settings.max_stream_window = STREAM_WINDOW;
  if (hd->token.len) settings.token = hd->token;
  ngtcp2_transport_params params;
  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = STREAM_WINDOW;
  params.initial_max_stream_data_bidi_remote = STREAM_WINDOW;
  params.initial_max_stream_data_uni = STREAM_WINDOW;
  params.initial_max_data = CONN_WINDOW;
  params.initial_max_streams_bidi = H3_MAX_STREAMS_BIDI;
  params.initial_max_streams_uni = 3;
  int idle_ms = srv->opt.idle_timeout_ms > 0 ? srv->opt.idle_timeout_ms : H3_IDLE_TIMEOUT_MS;
  params.max_idle_timeout = (ngtcp2_duration)idle_ms * NGTCP2_MILLISECONDS;
  params.stateless_reset_token_present = 1;
  params.active_connection_id_limit = 7;
  params.original_dcid = *odcid;
  if (retried) {
    params.retry_scid = hd->dcid;
    params.retry_scid_present = 1;
  }
  if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, srv->secret,
                                                   sizeof srv->secret, &scid) != 0)
    goto fail;
  ngtcp2_path path;
  conn_path(c, &path);
  if (ngtcp2_conn_server_new(&c->q, &hd->scid, &scid, &path, hd->version, &cb, &settings, &params, NULL, c) != 0)
    goto fail;
  if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NO_END_OF_EARLY_DATA) != 0) goto fail;
  c->ref.get_conn = get_conn;
  c->ref.user_data = c;
  gnutls_session_set_ptr(c->tls, &c->ref);
  static const gnutls_datum_t alpn = {(unsigned char *)"h3", 2};
  if (gnutls_priority_set_direct(c->tls, TLS_PRIORITY, NULL) != 0 ||
      ngtcp2_crypto_gnutls_configure_server_session(c->tls) != 0 ||
      gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, srv->cred) != 0 ||
      gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0)
    goto fail;
  ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
  if (cid_add(srv, scid.data, scid.datalen, c) != 0 || cid_add(srv, hd->dcid.data, hd->dcid.datalen, c) != 0)
    goto fail;
  return c;
fail:
  conn_free(c);
  return NULL;
}

/* Feeds one datagram to c. Returns 0, or -1 when c is gone or closing. */
static int conn_read(h3_conn_t *c, const uint8_t *data, size_t len, const struct sockaddr *from,
                     socklen_t fromlen) {
  if (c->draining) return -1;
  if (c->closing) {
    if (c->close_pkt && rate_ok(c->srv, &c->srv->refusals_this_sec, REFUSALS_PER_SEC))
      send_one(c->srv, c->close_pkt, c->close_pkt_len, from, fromlen);
    return -1;
  }
  /* ngtcp2 detects a new remote address itself (migration / NAT rebinding)
   * and validates the path; we keep the latest one for sending. */
  memcpy(&c->remote, from, fromlen);
  c->remote_len = fromlen;
  ngtcp2_path path;
  conn_path(c, &path);
  ngtcp2_pkt_info pi = {0};
  int rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, data, len, now_ts());
  if (rv != 0) return conn_fail(c, rv);
  mark_dirty(c);
  return 0;
}

static void on_datagram(h3_server_t *srv, uint8_t *data, size_t len, const struct sockaddr *from,
                        socklen_t fromlen) {
  wsc_metrics.bytes_in += len;
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, SCID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    send_version_negotiation(srv, &vc, from, fromlen);
    return;
  }
  if (rv != 0) {
    wsc_metrics.h3_datagrams_dropped++;
    return;
  }
  h3_conn_t *c = cid_find(srv, vc.dcid, vc.dcidlen);
  if (c) {
    conn_read(c, data, len, from, fromlen);
    return;
  }
  if (vc.version == 0) {                    /* short header, unknown connection */
    wsc_metrics.h3_datagrams_dropped++;
    send_stateless_reset(srv, vc.dcid, vc.dcidlen, len, from, fromlen);
    return;
  }
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0) { /* not a valid Initial (truncated, garbage) */
    wsc_metrics.h3_datagrams_dropped++;
    return;
  }
  if (srv->shutting_down || (int)srv->n_conns >= srv->max_conns) {
    wsc_metrics.h3_connections_refused++;
    send_refusal(srv, &hd, from, fromlen);
    return;
  }
  ngtcp2_cid odcid = hd.dcid;
  int retried = 0;
  if (hd.type == NGTCP2_PKT_INITIAL && hd.token.len && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, srv->secret, sizeof srv->secret,
                                         hd.version, (const ngtcp2_sockaddr *)from, (ngtcp2_socklen)fromlen,
                                         &hd.dcid, RETRY_TOKEN_TIMEOUT, now_ts()) != 0) {
      wsc_metrics.h3_datagrams_dropped++;
      return;
    }
    retried = 1;
  } else if (hd.type == NGTCP2_PKT_INITIAL && (int)srv->n_handshaking >= srv->retry_above) {
    /* Many handshakes in progress (an Initial flood?): prove the address
     * first, at the cost of one round trip. */
    send_retry(srv, &hd, from, fromlen);
    return;
  } else if (hd.type == NGTCP2_PKT_0RTT) {
    return;                                 /* no 0-RTT */
  }
  c = conn_new(srv, &hd, &odcid, retried, from, fromlen);
  if (!c) return;
  if (conn_read(c, data, len, from, fromlen) != 0) wsc_metrics.h3_datagrams_dropped++;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  h3_server_t *srv = h->data;
  buf->base = (char *)srv->rx;
  buf->len = sizeof srv->rx;
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
  h3_server_t *srv = u->data;
  if (flags & UV_UDP_MMSG_FREE) wsc_metrics.h3_recv_calls++; /* the end of one recvmmsg */
  if (nread <= 0 || !addr) return;
  if (!(flags & UV_UDP_MMSG_CHUNK)) wsc_metrics.h3_recv_calls++; /* a plain recvmsg */
  wsc_metrics.h3_datagrams_in++;
  if (flags & UV_UDP_PARTIAL) return;     /* truncated: larger than any QUIC packet we accept */
  socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  on_datagram(srv, (uint8_t *)buf->base, (size_t)nread, addr, alen);
}

/* End of each loop iteration: every connection with something to send
 * writes it, and the packets of all of them leave in batches. */
static void flush_all(h3_server_t *srv) {
  if (srv->dirty) wsc_metrics.h3_flushes++;
  while (srv->dirty) {
    h3_conn_t *c = srv->dirty;
    srv->dirty = c->next_dirty;
    c->dirty = 0;
    conn_write(c);
  }
  tx_flush(srv);
}

static void on_check(uv_check_t *h) { flush_all(h->data); }
static void on_prepare(uv_prepare_t *h) { flush_all(h->data); }

static void on_tick(uv_timer_t *t) {
  h3_server_t *srv = t->data;
  int64_t now = wsc_mono_ms();
  for (h3_conn_t *c = srv->conns; c; c = c->next) {
    for (h3_stream_t *s = c->streams; s; s = s->next) {
      if (s->fin && s->close_deadline && now >= s->close_deadline) h3_stream_abort_(s);
      else if (s->cb && s->cb->on_tick) s->cb->on_tick(s->ud, now);
    }
    /* Shutting down: a connection whose streams are all done is closed
     * (H3_NO_ERROR); the closing period frees it. */
    if (srv->shutting_down && !c->streams && !c->closing && !c->draining) {
      ngtcp2_connection_close_error_set_application_error(&c->ccerr, NGHTTP3_H3_NO_ERROR, NULL, 0);
      conn_start_closing(c);
    }
  }
  tx_flush(srv);
}

/* --- the server ------------------------------------------------------------------------------------- */

int h3_server_start(h3_server_t **out, uv_loop_t *loop, const wsc_config_t *config,
                    const h3_options_t *opt, const char **err) {
  h3_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) {
    *err = "out of memory";
    return -1;
  }
  srv->loop = loop;
  srv->config = config;
  wsc_hmap_init(&srv->cids, WSC_HMAP_EXACT, cid_key);
  srv->opt = *opt;
  srv->max_conns = opt->max_connections > 0 ? opt->max_connections : H3_MAX_CONNECTIONS;
  srv->retry_above = opt->retry_above >= 0 ? opt->retry_above : H3_RETRY_ABOVE;
  rand_bytes(srv->secret, sizeof srv->secret);
  if (gnutls_certificate_allocate_credentials(&srv->cred) != 0 ||
      gnutls_certificate_set_x509_key_file(srv->cred, opt->cert_file, opt->key_file, GNUTLS_X509_FMT_PEM) != 0) {
    *err = "cannot load the certificate or key (PEM)";
    if (srv->cred) gnutls_certificate_free_credentials(srv->cred);
    free(srv);
    return -1;
  }
  struct sockaddr_storage sa;
  if (uv_ip4_addr(opt->host, opt->port, (struct sockaddr_in *)&sa) != 0 &&
      uv_ip6_addr(opt->host, opt->port, (struct sockaddr_in6 *)&sa) != 0) {
    *err = "bad host address";
    gnutls_certificate_free_credentials(srv->cred);
    free(srv);
    return -1;
  }
  /* recvmmsg: up to RX_MMSG datagrams per system call (libuv >= 1.40). */
  uv_udp_init_ex(loop, &srv->udp, (unsigned)(sa.ss_family == AF_INET6 ? AF_INET6 : AF_INET) | UV_UDP_RECVMMSG);
  srv->udp.data = srv;
  int rc = uv_udp_bind(&srv->udp, (struct sockaddr *)&sa, UV_UDP_REUSEADDR);
  uv_os_fd_t fd;
  if (rc == 0) rc = uv_fileno((uv_handle_t *)&srv->udp, &fd);
  if (rc == 0) {
    srv->fd = fd;
    h3_udp_init(&srv->tx, fd, 1);
    int size = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    rc = uv_udp_recv_start(&srv->udp, on_alloc, on_recv);
  }
  if (rc != 0) {
    *err = uv_strerror(rc);
    uv_close((uv_handle_t *)&srv->udp, NULL);
    gnutls_certificate_free_credentials(srv->cred);
    srv->cred = NULL;
    /* the handle is closed on the next loop run; keep srv until then */
    return rc;
  }
  uv_check_init(loop, &srv->flusher);
  srv->flusher.data = srv;
  uv_check_start(&srv->flusher, on_check);
  uv_prepare_init(loop, &srv->preflusher);
  srv->preflusher.data = srv;
  uv_prepare_start(&srv->preflusher, on_prepare);
  uv_timer_init(loop, &srv->ticker);
  srv->ticker.data = srv;
  uv_timer_start(&srv->ticker, on_tick, TICK_MS, TICK_MS);
  uv_timer_init(loop, &srv->shutdown_timer);
  srv->shutdown_timer.data = srv;
  *out = srv;
  return 0;
}

size_t h3_server_connections(const h3_server_t *srv) { return srv->n_conns; }

static void on_shutdown_timeout(uv_timer_t *t) {
  h3_server_t *srv = t->data;
  while (srv->conns) conn_free(srv->conns);
  tx_flush(srv);
  if (srv->shutdown_done) {
    void (*done)(void *) = srv->shutdown_done;
    srv->shutdown_done = NULL;
    done(srv->shutdown_ud);
  }
}

void h3_server_shutdown(h3_server_t *srv, int timeout_ms, void (*done)(void *), void *ud) {
  srv->shutting_down = 1;
  srv->shutdown_done = done;
  srv->shutdown_ud = ud;
  for (h3_conn_t *c = srv->conns; c; c = c->next) {
    if (c->h) nghttp3_conn_submit_shutdown_notice(c->h);
    for (h3_stream_t *s = c->streams; s; s = s->next)
      if (s->cb && s->cb->on_shutdown) s->cb->on_shutdown(s->ud);
    mark_dirty(c);
  }
  if (srv->n_conns == 0) {
    srv->shutdown_done = NULL;
    if (done) done(ud);
    return;
  }
  uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, (uint64_t)timeout_ms, 0);
}

static void srv_handle_closed(uv_handle_t *h) {
  h3_server_t *srv = h->data;
  if (--srv->handles == 0) free(srv);
}

void h3_server_free(h3_server_t *srv) {
  if (!srv) return;
  while (srv->conns) conn_free(srv->conns);
  wsc_hmap_free(&srv->cids);
  tx_flush(srv);
  gnutls_certificate_free_credentials(srv->cred);
  srv->handles = 5;
  uv_close((uv_handle_t *)&srv->preflusher, srv_handle_closed);
  uv_close((uv_handle_t *)&srv->udp, srv_handle_closed);
  uv_close((uv_handle_t *)&srv->flusher, srv_handle_closed);
  uv_close((uv_handle_t *)&srv->ticker, srv_handle_closed);
  uv_close((uv_handle_t *)&srv->shutdown_timer, srv_handle_closed);
}
