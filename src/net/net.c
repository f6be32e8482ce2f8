/* net/net — see net.h. */
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/pool.h"

enum {
  F_DIRTY = 1 << 0,        /* on the server's dirty list */
  F_CLOSING = 1 << 1,      /* net_conn_close called: flush, then shut down */
  F_SHUT = 1 << 2,         /* FIN sent; reading only to drain until EOF */
  F_CLOSED = 1 << 3,       /* closed (socket closed; freed at the end of the iteration) */
  F_PAUSED = 1 << 4,
  F_EOF = 1 << 5,          /* the peer's EOF arrived while we were closing */
  F_BACKPRESSURE = 1 << 6, /* reading stopped until the queue drains */
  F_LAZY = 1 << 7,         /* on the server's lazy list */
  F_FREE_LATER = 1 << 8,   /* closed while on the lazy list: its walk frees it */
  F_HANDSHAKING = 1 << 9,  /* TLS handshake in progress (no handler yet) */
  F_TLS_NOTIFIED = 1 << 10,/* our close_notify is queued */
  F_DOOMED = 1 << 11,      /* finalize at the next cork (the caller may still use it now) */
  F_HELD = 1 << 12,        /* the handler holds lazy bytes for it (net_conn_hold) */
  F_FILLING = 1 << 13,     /* on_fill runs in flush_conn: what it queues is written now */
};

/* What the epoll set watches a connection for (conn->watch). */
enum { W_IN = 1 << 0, W_OUT = 1 << 1 };

/* epoll data of the listeners (connections are pointers: low bit 0). */
#define TAG_LISTENER 1u
#define TAG_TLS_LISTENER 3u
#define NET_EPOLL_BATCH 1024      /* events taken per epoll_wait */
#define NET_READS_PER_EVENT 32    /* reads of a full buffer before others get a turn */

#define OUT_MIN_CAP 4
#define OUT_BUSY_CAP 64
#define FLUSH_STACK_BUFS 64
/* At most this many bytes of several buffers are joined into one send. */
#define NET_JOIN_MAX 16384

/* Near the open-files limit: connections are counted against the soft
 * RLIMIT_NOFILE less NET_FD_RESERVE (the store's files, the listeners,
 * the loop's own descriptors, and the refusals below), so accept() does
 * not meet EMFILE in the first place. A connection past that cap (or past
 * --max-connections) gets a 503 with a body and a graceful close (its
 * request is read and dropped, so our FIN is not turned into an RST),
 * at most NET_FD_RESERVE / 2 of them at a time; beyond, it is closed at
 * once. Should accept() still fail with EMFILE (descriptors taken
 * elsewhere), libuv keeps a reserve descriptor of its own and sheds the
 * pending connections instead of polling the listener in a loop. */
#define NET_FD_RESERVE 64
#define NET_REFUSE_GRACE_MS 1000
#define NET_BUSY_BODY "the server is at its connection limit; try again shortly\n"
static const char k_busy_response[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "Content-Length: 57\r\n\r\n" NET_BUSY_BODY;
_Static_assert(sizeof NET_BUSY_BODY - 1 == 57, "Content-Length of the 503 body");

/* Buffers queued on a connection since the last flush. */
struct net_out {
  uint32_t n, cap;
  wsc_buf_t *bufs[];
};

static uint8_t g_read_buf[NET_READ_BUF];
static wsc_pool_t g_conn_pool = WSC_POOL_INIT(net_conn_t);

static void conn_finalize(net_conn_t *c);

/* --- the queue -------------------------------------------------------------- */

static void mark_dirty(net_conn_t *c) {
  if (c->flags & F_DIRTY) return;
  c->flags |= F_DIRTY;
  c->next_dirty = net_conn_server(c)->dirty;
  net_conn_server(c)->dirty = c;
}

static void on_lazy_timer(uv_timer_t *t);
static void lazy_round_done(net_server_t *srv, int64_t end);

/* When the next lazy round is due (mono ns; the rule is in net.h): once its
 * oldest entry has waited NET_LAZY_MS, and no sooner than the last round's
 * end plus (100 - NET_LAZY_BUDGET_PCT) / NET_LAZY_BUDGET_PCT times what this
 * round is expected to cost (its entries at the last rounds' cost per
 * entry), but never later than its oldest entry's NET_LAZY_MAX_MS. */
static int64_t lazy_due(const net_server_t *srv) {
  int64_t due = srv->lazy_since_ns + (int64_t)NET_LAZY_MS * 1000000;
  int64_t cost = (int64_t)srv->lazy_n * srv->lazy_entry_ns;
  int64_t budget = srv->lazy_end_ns + cost * (100 - NET_LAZY_BUDGET_PCT) / NET_LAZY_BUDGET_PCT;
  if (budget > due) due = budget;
  int64_t latest = srv->lazy_since_ns + (int64_t)NET_LAZY_MAX_MS * 1000000;
  return due < latest ? due : latest;
}

static void lazy_arm(net_server_t *srv) {
  int64_t ms = (lazy_due(srv) - wsc_mono_ns() + 999999) / 1000000;
  uv_timer_start(&srv->lazy_timer, on_lazy_timer, ms > 0 ? (uint64_t)ms : 0, 0);
}

static void mark_lazy(net_conn_t *c) {
  net_server_t *srv = net_conn_server(c);
  c->flags |= F_LAZY;
  if (!srv->lazy) srv->lazy_since_ns = wsc_mono_ns();
  c->next_lazy = srv->lazy;
  srv->lazy = c;
  srv->lazy_n++;
  if (!uv_is_active((uv_handle_t *)&srv->lazy_timer)) lazy_arm(srv);
}

static void unmark_dirty(net_conn_t *c) {
  if (!(c->flags & F_DIRTY)) return;
  net_conn_t **pp = &net_conn_server(c)->dirty;
  while (*pp && *pp != c) pp = &(*pp)->next_dirty;
  if (*pp) *pp = c->next_dirty;
  c->flags &= (uint16_t)~F_DIRTY;
}

/* Queue arrays of the smallest size come from a pool: nearly every
 * connection needs one for a moment each loop iteration, and from malloc
 * these short-lived arrays would fragment the heap between the long-lived
 * objects. A busy connection's (an echo peer with 16 messages in flight, a
 * member of a busy room) grows straight to OUT_BUSY_CAP, from a second
 * pool; only larger ones use malloc. */
static wsc_pool_t g_out_pool =
    WSC_POOL_INIT_SIZE(sizeof(struct net_out) + OUT_MIN_CAP * sizeof(wsc_buf_t *));
static wsc_pool_t g_out_busy_pool =
    WSC_POOL_INIT_SIZE(sizeof(struct net_out) + OUT_BUSY_CAP * sizeof(wsc_buf_t *));

static void out_free(struct net_out *o) {
  if (!o) return;
  if (o->cap == OUT_MIN_CAP) wsc_pool_free(&g_out_pool, o);
  else if (o->cap == OUT_BUSY_CAP) wsc_pool_free(&g_out_busy_pool, o);
  else free(o);
}

static struct net_out *out_grow(struct net_out *o) {
  if (!o) {
    o = wsc_pool_alloc(&g_out_pool);
    if (o) o->cap = OUT_MIN_CAP;
    return o;
  }
  struct net_out *grown;
  uint32_t cap;
  if (o->cap < OUT_BUSY_CAP) {
    cap = OUT_BUSY_CAP;
    grown = wsc_pool_alloc(&g_out_busy_pool);
  } else {
    cap = o->cap * 2;
    grown = malloc(sizeof *o + cap * sizeof o->bufs[0]);
  }
  if (!grown) return NULL;
  memcpy(grown, o, sizeof *o + o->n * sizeof o->bufs[0]);
  grown->cap = cap;
  out_free(o);
  return grown;
}

static int queue_buf(net_conn_t *c, wsc_buf_t *b, int lazy) {
  struct net_out *o = c->out;
  if (!o || o->n == o->cap) {
    if (!(o = out_grow(o))) return -1;
    c->out = o;
  }
  o->bufs[o->n++] = wsc_buf_ref(b);
  c->queued += b->len;
  if (!lazy) mark_dirty(c);
  else if (c->flags & F_FILLING) return 0;   /* flush_conn writes it next */
  else if (o->n >= NET_LAZY_FULL && !(c->flags & F_DIRTY)) {
    wsc_metrics.lazy_full++;
    mark_dirty(c);   /* enough company: the next cork (net.h) */
  } else if (!(c->flags & (F_DIRTY | F_LAZY))) mark_lazy(c);
  return 0;
}

/* The lazy bytes the handler holds for c go first (net_conn_hold): before
 * anything else is queued, and before c is written. */
static void fill_held(net_conn_t *c) {
  if (!(c->flags & F_HELD)) return;
  c->flags &= (uint16_t)~F_HELD;
  if (c->handler && c->handler->on_fill && !(c->flags & (F_CLOSING | F_CLOSED))) c->handler->on_fill(c);
}

int net_conn_hold(net_conn_t *c) {
  if ((c->flags & (F_CLOSING | F_CLOSED)) || !c->handler || !c->handler->on_fill) return -1;
  c->flags |= F_HELD;
  if (!(c->flags & (F_DIRTY | F_LAZY))) mark_lazy(c);
  return 0;
}

int net_conn_send_force(net_conn_t *c, wsc_buf_t *b) {
  fill_held(c);
  if (c->flags & (F_CLOSING | F_CLOSED)) return -1;
  if (b->len == 0) return 0;
  return queue_buf(c, b, 0);
}

int net_conn_send(net_conn_t *c, wsc_buf_t *b) {
  fill_held(c);
  if (c->queued + b->len > net_conn_server(c)->config->send_queue_limit) return -1;
  return net_conn_send_force(c, b);
}

int net_conn_send_lazy(net_conn_t *c, wsc_buf_t *b) {
  fill_held(c);
  if (c->queued + b->len > net_conn_server(c)->config->send_queue_limit) return -1;
  if (c->flags & (F_CLOSING | F_CLOSED)) return -1;
  if (b->len == 0) return 0;
  return queue_buf(c, b, 1);
}

int net_conn_send_copy(net_conn_t *c, const void *data, size_t len) {
  wsc_buf_t *b = wsc_buf_from(0, data, len);
  if (!b) return -1;
  int rc = net_conn_send_force(c, b);
  wsc_buf_unref(b);
  return rc;
}

static void drop_queue(net_conn_t *c) {
  if (!c->out) return;
  for (uint32_t i = 0; i < c->out->n; i++) {
    c->queued -= c->out->bufs[i]->len;
    wsc_buf_unref(c->out->bufs[i]);
  }
  out_free(c->out);
  c->out = NULL;
}

/* --- flushing (the cork) ---------------------------------------------------- */

/* Sets what the epoll set watches c for (W_IN, W_OUT; 0 takes it out: a
 * hung-up socket would otherwise be reported for ever). 0 or -1. */
static int watch_set(net_conn_t *c, uint8_t w) {
  if (c->fd < 0 || w == c->watch) return 0;
  struct epoll_event e = {.events = ((w & W_IN) ? EPOLLIN : 0u) | ((w & W_OUT) ? EPOLLOUT : 0u)};
  e.data.ptr = c;
  int op = !c->watch ? EPOLL_CTL_ADD : !w ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(c->srv->epfd, op, c->fd, &e) != 0) return -1;
  c->watch = w;
  return 0;
}

/* Finalizes c at the next cork, not now: the caller (maybe a handler on
 * the stack) may still use it. */
static void doom(net_conn_t *c) {
  c->flags |= F_DOOMED;
  mark_dirty(c);
}

/* All queued bytes are written and the connection is closing: send FIN. */
static int send_tls_output(net_conn_t *c);

static void maybe_shutdown(net_conn_t *c) {
  if (!(c->flags & F_CLOSING) || (c->flags & (F_SHUT | F_CLOSED)) || c->queued) return;
  if (c->tls && !(c->flags & (F_TLS_NOTIFIED | F_HANDSHAKING))) {
    /* close_notify goes before our FIN. */
    c->flags |= F_TLS_NOTIFIED;
    tls_shutdown(c->tls);
    if (send_tls_output(c) != 0) return;
    if (c->queued) return;   /* the FIN follows once it is written (conn_writable) */
  }
  c->flags |= F_SHUT;
  /* FIN (nothing is pending: queued is 0). Then keep reading until the
   * peer's EOF (or the grace deadline), so unread input never turns our
   * FIN into an RST that would destroy the close frame we just sent. */
  if (c->fd < 0 || shutdown(c->fd, SHUT_WR) != 0 || (c->flags & F_EOF)) doom(c);
}

/* Reading was stopped for back-pressure: resume once the peer has taken
 * half of the limit's worth back. */
static void maybe_resume(net_conn_t *c) {
  if (!(c->flags & F_BACKPRESSURE) || (c->flags & (F_CLOSING | F_CLOSED))) return;
  if (c->queued > net_conn_server(c)->config->send_queue_limit / 2) return;
  c->flags &= (uint16_t)~F_BACKPRESSURE;
  if (!(c->flags & F_PAUSED)) watch_set(c, c->watch | W_IN);
}

/* Appends n buffers to what waits for EPOLLOUT; their references move to
 * the pending list (dropped here when out of memory). 0 or -1. */
static int pend_push(net_conn_t *c, wsc_buf_t *const *bufs, uint32_t n) {
  struct net_out *p = c->pend;
  uint32_t have = p ? p->n : 0;
  if (!p || p->cap - have < n) {
    uint32_t cap = p ? p->cap : OUT_MIN_CAP;
    while (cap - have < n) cap *= 2;
    struct net_out *grown = realloc(p, sizeof *grown + (size_t)cap * sizeof grown->bufs[0]);
    if (!grown) {
      for (uint32_t i = 0; i < n; i++) wsc_buf_unref(bufs[i]);
      return -1;
    }
    grown->n = have;
    grown->cap = cap;
    c->pend = p = grown;
  }
  memcpy(p->bufs + p->n, bufs, n * sizeof bufs[0]);
  p->n += n;
  return watch_set(c, c->watch | W_OUT);
}

static void drop_pend(net_conn_t *c) {
  if (!c->pend) return;
  for (uint32_t i = 0; i < c->pend->n; i++) {
    c->queued -= c->pend->bufs[i]->len;
    wsc_buf_unref(c->pend->bufs[i]);
  }
  c->queued += c->pend_skip;
  free(c->pend);
  c->pend = NULL;
  c->pend_skip = 0;
}

/* Bytes left the queue (written, or handed to TLS): read again if reading
 * waited for that, FIN if closing and done, and tell the handler. */
static void after_progress(net_conn_t *c) {
  maybe_resume(c);
  maybe_shutdown(c);
  if (c->handler && c->handler->on_drain && !(c->flags & (F_CLOSING | F_CLOSED))) c->handler->on_drain(c);
}

/* One writev of bufs (at most IOV_MAX of them), the first without its
 * first skip bytes. The bytes written, or -1 with errno (ENOMEM: no room
 * for the vector). */
static ssize_t write_bufs(int fd, wsc_buf_t *const *bufs, uint32_t nbufs, size_t skip) {
  struct iovec stack[FLUSH_STACK_BUFS];
  uint32_t n = nbufs < IOV_MAX ? nbufs : IOV_MAX;
  /* Several small frames (echoes, chat events): copied into one buffer and
   * sent as one, which costs less than the kernel walking an iovec of
   * tiny pieces. */
  if (n > 1) {
    static uint8_t joined[NET_JOIN_MAX];
    size_t total = 0;
    uint32_t i = 0;
    for (; i < n && total <= NET_JOIN_MAX; i++) total += bufs[i]->len - (i == 0 ? skip : 0);
    if (total <= NET_JOIN_MAX) {
      size_t at = 0;
      for (i = 0; i < n; i++) {
        size_t off = i == 0 ? skip : 0;
        memcpy(joined + at, wsc_buf_bytes(bufs[i]) + off, bufs[i]->len - off);
        at += bufs[i]->len - off;
      }
      return send(fd, joined, total, MSG_NOSIGNAL);
    }
  }
  struct iovec *iov = n <= FLUSH_STACK_BUFS ? stack : malloc(n * sizeof *iov);
  if (!iov) {
    errno = ENOMEM;
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    size_t off = i == 0 ? skip : 0;
    iov[i] = (struct iovec){(char *)wsc_buf_bytes(bufs[i]) + off, bufs[i]->len - off};
  }
  /* sendmsg, not writev: on a socket it skips the VFS write path (and
   * MSG_NOSIGNAL: a peer gone is an error here, not a signal). */
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
  ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
  int err = errno;
  if (iov != stack) free(iov);
  errno = err;
  return r;
}

/* The socket is writable: the pending list goes out, in order. */
static void conn_writable(net_conn_t *c) {
  struct net_out *p = c->pend;
  if (!p) {
    watch_set(c, c->watch & (uint8_t)~W_OUT);
    return;
  }
  ssize_t r = write_bufs(c->fd, p->bufs, p->n, c->pend_skip);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) conn_finalize(c);
    return;
  }
  c->queued -= (size_t)r;
  size_t skip = c->pend_skip + (size_t)r;
  uint32_t first = 0;
  while (first < p->n && skip >= p->bufs[first]->len) {
    skip -= p->bufs[first]->len;
    wsc_buf_unref(p->bufs[first]);
    first++;
  }
  memmove(p->bufs, p->bufs + first, (p->n - first) * sizeof p->bufs[0]);
  p->n -= first;
  c->pend_skip = (uint32_t)skip;   /* < the first buffer's length */
  if (p->n == 0) {
    free(p);
    c->pend = NULL;
    c->pend_skip = 0;
    watch_set(c, c->watch & (uint8_t)~W_OUT);
  }
  if (r > 0) after_progress(c);
}

/* Writes one buffer now (TLS output: ciphertext); what the kernel does not
 * take waits behind anything already pending, so bytes keep their order.
 * Takes its own reference. */
static int write_now(net_conn_t *c, wsc_buf_t *b) {
  size_t done = 0;
  if (!c->pend) {
    ssize_t r = send(c->fd, wsc_buf_bytes(b), b->len, MSG_NOSIGNAL);
    if (r < 0 && errno != EAGAIN && errno != EINTR) return -1;
    done = r > 0 ? (size_t)r : 0;
    wsc_metrics.bytes_out += done;
    if (done == b->len) return 0;
    c->pend_skip = (uint32_t)done;
  }
  wsc_buf_ref(b);
  c->queued += b->len - done;
  wsc_metrics.bytes_out += b->len - done;
  return pend_push(c, &b, 1);
}

/* Sends what the last SSL calls produced (handshake, records, alerts).
 * Returns 0, or -1 after finalizing the connection. */
static int send_tls_output(net_conn_t *c) {
  wsc_buf_t *b = tls_take_output();
  if (!b) return 0;
  int rc = (c->flags & F_CLOSED) ? 0 : write_now(c, b);
  wsc_buf_unref(b);
  if (rc != 0) conn_finalize(c);
  return rc;
}

/* TLS flush: the queued plaintext becomes records, then ciphertext on the
 * socket. The shared plaintext buffers are released at once. */
static void flush_tls(net_conn_t *c) {
  int rc = tls_write(c->tls, c->out->bufs, c->out->n);
  drop_queue(c);
  if (rc != 0) {
    wsc_buf_unref(tls_take_output());
    conn_finalize(c);
    return;
  }
  if (send_tls_output(c) != 0) return;
  after_progress(c);
}

/* Writes what c has queued (asking its handler for what it holds first).
 * 1 when there was something to write. */
static int flush_conn(net_conn_t *c) {
  if (c->flags & F_DOOMED) {
    conn_finalize(c);
    return 0;
  }
  if (c->flags & F_HELD) {
    c->flags |= F_FILLING;
    fill_held(c);
    c->flags &= (uint16_t)~F_FILLING;
  }
  struct net_out *o = c->out;
  if (!o || o->n == 0 || (c->flags & F_CLOSED)) return 0;
  if (c->tls) {
    flush_tls(c);
    return 1;
  }
  /* One writev now, unless earlier bytes still wait for EPOLLOUT (then
   * these go behind them). */
  size_t done = 0, total = 0;
  for (uint32_t i = 0; i < o->n; i++) total += o->bufs[i]->len;
  if (!c->pend) {
    ssize_t r = write_bufs(c->fd, o->bufs, o->n, 0);
    if (r < 0 && errno != EAGAIN && errno != EINTR) {
      conn_finalize(c);
      return 1;
    }
    done = r > 0 ? (size_t)r : 0;
  }
  c->queued -= done;
  uint32_t first = 0;
  size_t skip = done;
  while (first < o->n && skip >= o->bufs[first]->len) {
    skip -= o->bufs[first]->len;
    wsc_buf_unref(o->bufs[first]);
    first++;
  }
  int rc = 0;
  if (first < o->n) {
    if (!c->pend) c->pend_skip = (uint32_t)skip;
    rc = pend_push(c, o->bufs + first, o->n - first);   /* the references move */
  }
  out_free(c->out);
  c->out = NULL;
  if (rc != 0) {
    conn_finalize(c);
    return 1;
  }
  wsc_metrics.bytes_out += total;   /* taken for writing (as write_now counts) */
  maybe_resume(c);
  maybe_shutdown(c);
  if (done && c->handler && c->handler->on_drain && !(c->flags & (F_CLOSING | F_CLOSED)))
    c->handler->on_drain(c);
  return 1;
}

/* The cork: runs once per loop iteration, after all I/O callbacks.
 *
 * A closed connection may still be on the dirty list: conn_finalize does
 * not unlink it (that would cost a list walk per close, quadratic when a
 * room's members leave together). That is safe because libuv frees nothing
 * before its close phase, which comes after this check phase, and every
 * connection on the list is popped here first. on_closed still unlinks a
 * connection found dirty there, for a close made after this phase. */
static void reap_closed(net_server_t *srv);

static void on_flush(uv_check_t *h) {
  net_server_t *srv = h->data;
  while (srv->dirty) {
    net_conn_t *c = srv->dirty;
    srv->dirty = c->next_dirty;
    c->flags &= (uint16_t)~F_DIRTY;
    if (!(c->flags & F_CLOSED)) flush_conn(c);
  }
  reap_closed(srv);
}

/* A lazy round: lazy bytes have waited long enough. Every connection
 * holding only lazy bytes is written (one writev each; those with ordinary
 * bytes too go with the cork), NET_LAZY_SLICE_MS of it per loop iteration
 * at most (the rest in the next iterations, so accepts and messages are not
 * stuck behind a storm's round; slice_ns 0: all at once). The round is
 * timed, and its cost per entry sets when the next one is due (lazy_due,
 * net.h): however many connections a storm makes it write to, lazy rounds
 * take a small share of the loop, and a member gets one write per round,
 * not one per event. */
static void lazy_round(net_server_t *srv, int64_t slice_ns) {
  if (!srv->lazy_walk) {   /* a new round takes the list */
    int64_t wait_ms = (lazy_due(srv) - srv->lazy_since_ns) / 1000000;
    wsc_metrics.lazy_wait_ms = wait_ms;
    if (wait_ms > wsc_metrics.lazy_wait_ms_max) wsc_metrics.lazy_wait_ms_max = wait_ms;
    srv->lazy_walk = srv->lazy;
    srv->lazy = NULL;
    srv->lazy_n = 0;
  }
  int64_t start = wsc_mono_ns();
  uint32_t n = 0;
  net_conn_t *c;
  while ((c = srv->lazy_walk)) {
    srv->lazy_walk = c->next_lazy;   /* freed only here or at the cork, not by a flush */
    c->flags &= (uint16_t)~F_LAZY;
    if (c->flags & F_FREE_LATER) wsc_pool_free(&g_conn_pool, c);
    else if (!(c->flags & (F_CLOSED | F_DIRTY)) && ((c->flags & F_HELD) || (c->out && c->out->n))) {
      if (flush_conn(c)) srv->lazy_round_conns++;   /* (a held connection may have had nothing) */
    }
    if (++n % 16 == 0 && slice_ns && wsc_mono_ns() - start > slice_ns) break;
  }
  int64_t end = wsc_mono_ns();
  srv->lazy_round_ns += end - start;
  srv->lazy_round_entries += n;
  if (srv->lazy_walk) {   /* the rest after this iteration's I/O */
    uv_timer_start(&srv->lazy_timer, on_lazy_timer, 0, 0);
    return;
  }
  lazy_round_done(srv, end);
}

/* Counts the round that ended at `end`, learns its cost per entry for the
 * next rounds' budget, and arms the timer for bytes made lazy meanwhile. */
static void lazy_round_done(net_server_t *srv, int64_t end) {
  int64_t took = srv->lazy_round_ns;
  if (srv->lazy_round_entries) {
    int64_t per = took / srv->lazy_round_entries;
    srv->lazy_entry_ns = srv->lazy_entry_ns ? (srv->lazy_entry_ns * 3 + per) / 4 : per;
  }
  srv->lazy_end_ns = end;
  wsc_metrics.lazy_rounds++;
  wsc_metrics.lazy_writes += srv->lazy_round_conns;
  wsc_metrics.lazy_round_ns_total += (uint64_t)took;
  if (took > wsc_metrics.lazy_round_ns_max) wsc_metrics.lazy_round_ns_max = took;
  LOG_DEBUG("net", "lazy round conns=%llu entries=%u took_us=%lld per_entry_ns=%lld",
            (unsigned long long)srv->lazy_round_conns, srv->lazy_round_entries, (long long)(took / 1000),
            (long long)srv->lazy_entry_ns);
  srv->lazy_round_ns = 0;
  srv->lazy_round_conns = 0;
  srv->lazy_round_entries = 0;
  /* Bytes made lazy during the round (a failed write's close sends
   * presence leaves; a connection written early in the round) wait for
   * the next one, at the budget. */
  if (srv->lazy) lazy_arm(srv);
}

/* The timer: a round goes on, or starts if it is still due now — entries
 * added since the timer was set make the round cost more, and so due
 * later (up to its oldest entry's NET_LAZY_MAX_MS). */
static void on_lazy_timer(uv_timer_t *t) {
  net_server_t *srv = t->data;
  if (!srv->lazy_walk && srv->lazy && lazy_due(srv) > wsc_mono_ns() + 500000) {
    lazy_arm(srv);
    return;
  }
  lazy_round(srv, (int64_t)NET_LAZY_SLICE_MS * 1000000);
}

/* --- reading ------------------------------------------------------------------ */

static void tls_on_read(net_conn_t *c, uint8_t *data, size_t len);

/* nread bytes in g_read_buf, or UV_EOF, or a negative errno. */
static void on_read(net_conn_t *c, ssize_t nread) {
  if (nread > 0) {
    wsc_metrics.bytes_in += (uint64_t)nread;
    if (c->tls) tls_on_read(c, g_read_buf, (size_t)nread);
    else if (!(c->flags & (F_CLOSING | F_CLOSED)))
      c->handler->on_data(c, g_read_buf, (size_t)nread);
    return;
  }
  if (nread == 0) return;
  /* EOF or error. */
  if (c->flags & (F_CLOSING | F_CLOSED)) {
    if (c->flags & F_CLOSED) return;
    if (nread == UV_EOF && !(c->flags & F_SHUT)) {
      /* Our bytes are still going out: finish them, then close. */
      c->flags |= F_EOF;
      watch_set(c, c->watch & (uint8_t)~W_IN);
      return;
    }
    conn_finalize(c);
    return;
  }
  if (nread == UV_EOF && c->handler && c->handler->on_eof) {
    c->handler->on_eof(c);
    net_conn_close(c);
    return;
  }
  conn_finalize(c);
}

/* The socket is readable (or hung up): read while reading is wanted, a few
 * full buffers at most before the other connections get their turn. */
static void conn_readable(net_conn_t *c) {
  for (int i = 0; i < NET_READS_PER_EVENT; i++) {
    if ((c->flags & F_CLOSED) || !(c->watch & W_IN)) return;
    ssize_t n = recv(c->fd, g_read_buf, sizeof g_read_buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) on_read(c, -errno);
      return;
    }
    on_read(c, n == 0 ? UV_EOF : n);
    if (n == 0 || (size_t)n < sizeof g_read_buf) return;
  }
}

/* --- TLS ---------------------------------------------------------------------- */

/* A plain HTTP request on the TLS port gets a one-line answer instead of
 * a TLS alert it cannot read. */
static int looks_like_http(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n && i < 8 && p[i] >= 'A' && p[i] <= 'Z') i++;
  return i >= 3 && i < n && p[i] == ' ';
}

static void refuse_plain_http(net_conn_t *c) {
  static const char resp[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n"
      "Connection: close\r\n\r\nthis port speaks TLS: use https or wss\r\n";
  if (write(c->fd, resp, sizeof resp - 1) < 0) { /* best effort */ }
  conn_finalize(c);
}

static void tls_failed(net_conn_t *c, const char *when) {
  char peer[64], err[160];
  net_conn_peer(c, peer, sizeof peer);
  LOG_DEBUG("net", "tls %s failed peer=%s err=\"%s\"", when, peer, tls_last_error(err, sizeof err));
  wsc_metrics.tls_failures++;
  send_tls_output(c);   /* the alert, best effort */
  conn_finalize(c);
}

/* Ciphertext in: the handshake first (the handler is attached when it
 * completes), then every whole record's plaintext to the handler. */
static void tls_on_read(net_conn_t *c, uint8_t *data, size_t len) {
  if (c->flags & F_CLOSED) return;
  tls_input(data, len);
  if (c->flags & F_HANDSHAKING) {
    if (looks_like_http(data, len)) {
      tls_input(NULL, 0);
      refuse_plain_http(c);
      return;
    }
    int r = tls_handshake(c->tls);
    if (r == TLS_ERROR || r == TLS_EOF) {
      tls_failed(c, "handshake");
      tls_input(NULL, 0);
      return;
    }
    if (send_tls_output(c) != 0 || r == TLS_AGAIN) {
      tls_input(NULL, 0);
      if (!(c->flags & F_CLOSED)) tls_release_buffers(c->tls);
      return;
    }
    c->flags &= (uint16_t)~F_HANDSHAKING;
    c->close_deadline = 0;
    wsc_metrics.tls_handshakes++;
    if (tls_handed_over(c->tls)) wsc_metrics.tls_handovers++;
    net_server_t *srv = net_conn_server(c);
    srv->on_accept(srv, c);
  }
  for (;;) {
    if (c->flags & F_CLOSED) break;
    uint8_t *p;
    size_t n;
    int r = tls_read(c->tls, &p, &n);
    if (r == TLS_OK) {
      /* What the read produced (a KeyUpdate of ours) goes out before
       * anything the handler writes. */
      if (send_tls_output(c) != 0) break;
      /* While closing, input is only drained (as on plain connections). */
      if (!(c->flags & F_CLOSING)) c->handler->on_data(c, p, n);
      continue;
    }
    if (r == TLS_AGAIN) break;
    if (r == TLS_EOF) {
      /* close_notify: like a TCP EOF. */
      send_tls_output(c);
      if (c->flags & (F_CLOSING | F_CLOSED)) break;
      if (c->handler->on_eof) c->handler->on_eof(c);
      net_conn_close(c);
      break;
    }
    tls_failed(c, "read");
    break;
  }
  tls_input(NULL, 0);
  if (send_tls_output(c) == 0 && !(c->flags & F_CLOSED)) tls_release_buffers(c->tls);
}

const char *net_conn_protocol(const net_conn_t *c, char *buf, size_t cap) {
  if (!c->tls || (c->flags & F_HANDSHAKING)) return NULL;
  return tls_protocol(c->tls, buf, cap);
}

/* --- closing ------------------------------------------------------------------ */

/* A closed connection, at the end of its loop iteration: unlinked and
 * returned to the pool. */
static void reap(net_conn_t *c) {
  net_server_t *srv = net_conn_server(c);
  unmark_dirty(c); /* normally a no-op: see on_flush */
  int free_later = (c->flags & F_LAZY) != 0; /* the lazy walk frees it */
  if (c->prev) c->prev->next = c->next;
  else srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->n_conns--;
  wsc_metrics.connections_open--;
  if (free_later) c->flags |= F_FREE_LATER;
  else wsc_pool_free(&g_conn_pool, c);
  if (srv->shutting_down && srv->n_conns == 0 && srv->shutdown_done) {
    void (*done)(net_server_t *) = srv->shutdown_done;
    srv->shutdown_done = NULL;
    uv_timer_stop(&srv->shutdown_timer);
    done(srv);
  }
}

static void reap_closed(net_server_t *srv) {
  /* Popped one by one: a reap may end the shutdown, whose callback may
   * close the server (and reap the rest) from here. */
  while (srv->n_closed) reap(srv->closed[--srv->n_closed]);
}

/* Closes the socket now; tells the handler once. The object itself is freed
 * at the end of the iteration (an epoll batch or the dirty list may still
 * point at it), or at once on a server that never started (fuzzers). */
static void conn_finalize(net_conn_t *c) {
  if (c->flags & F_CLOSED) return;
  c->flags |= F_CLOSED;
  const net_handler_t *h = c->handler;
  if (h && h->on_close) h->on_close(c);
  c->handler = NULL;
  c->ud = NULL;
  drop_queue(c);
  drop_pend(c);
  if (c->tls) {
    tls_free(c->tls);
    c->tls = NULL;
  }
  net_server_t *srv = net_conn_server(c);
  if (c->fd >= 0) {
    watch_set(c, 0);
    close(c->fd);
    c->fd = -1;
  }
  if (!srv->started) {
    reap(c);
    return;
  }
  if (srv->n_closed == srv->cap_closed) {
    size_t cap = srv->cap_closed ? srv->cap_closed * 2 : 256;
    net_conn_t **grown = realloc(srv->closed, cap * sizeof *grown);
    if (!grown) {
      /* It stays linked (and skipped as closed): a leak, not a crash. */
      LOG_ERROR("net", "out of memory freeing a connection");
      return;
    }
    srv->closed = grown;
    srv->cap_closed = cap;
  }
  srv->closed[srv->n_closed++] = c;
}

void net_conn_close(net_conn_t *c) {
  if (c->flags & (F_CLOSING | F_CLOSED)) return;
  c->flags |= F_CLOSING;
  c->close_deadline = (uint32_t)(wsc_mono_ms() + NET_CLOSE_GRACE_MS);
  if (c->out && c->out->n) mark_dirty(c);
  else maybe_shutdown(c);
}

void net_conn_abort(net_conn_t *c) { conn_finalize(c); }

void net_conn_pause(net_conn_t *c) {
  if (!(c->flags & (F_PAUSED | F_CLOSED))) {
    c->flags |= F_PAUSED;
    watch_set(c, c->watch & (uint8_t)~W_IN);
  }
}

void net_conn_backpressure(net_conn_t *c) {
  if (c->flags & (F_BACKPRESSURE | F_CLOSED)) return;
  c->flags |= F_BACKPRESSURE;
  watch_set(c, c->watch & (uint8_t)~W_IN);
}

int net_conn_in_backpressure(const net_conn_t *c) { return (c->flags & F_BACKPRESSURE) != 0; }

int net_conn_is_closing(const net_conn_t *c) { return (c->flags & (F_CLOSING | F_CLOSED)) != 0; }

void net_conn_peer(const net_conn_t *c, char *out, size_t cap) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  out[0] = '\0';
  if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
  else uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
}

/* --- accepting ------------------------------------------------------------------ */

/* Puts c on the server's list of open connections. */
static void link_conn(net_server_t *srv, net_conn_t *c) {
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->n_conns++;
  wsc_metrics.connections_open++;
}

/* The connections this process can hold: --max-connections, and the soft
 * open-files limit less NET_FD_RESERVE (re-read every tick: prlimit may
 * change it while we run). */
static void update_conn_cap(net_server_t *srv) {
  size_t cap = srv->config->max_connections > 0 ? (size_t)srv->config->max_connections : 0;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    size_t fds = (size_t)rl.rlim_cur;
    size_t by_fds = fds > 2 * NET_FD_RESERVE ? fds - NET_FD_RESERVE : fds / 2;
    if (by_fds < cap) cap = by_fds;
  }
  srv->conn_cap = cap;
}

/* A connection over the cap: 503 and a graceful close while few are being
 * refused, else closed at once (TLS ones too: no handshake for a refusal). */
static void refuse(net_server_t *srv, net_conn_t *c, int tls) {
  static int64_t last_log;
  int64_t now = wsc_mono_ms();
  if (now - last_log >= 1000) {
    last_log = now;
    LOG_WARN("net", "refusing connections open=%zu cap=%zu max=%d", srv->n_conns, srv->conn_cap,
             srv->config->max_connections);
  }
  if (tls || srv->shutting_down || srv->n_conns > srv->conn_cap + NET_FD_RESERVE / 2) {
    conn_finalize(c);
    return;
  }
  net_conn_send_copy(c, k_busy_response, sizeof k_busy_response - 1);
  net_conn_close(c);
  c->close_deadline = (uint32_t)(now + NET_REFUSE_GRACE_MS);
  watch_set(c, c->watch | W_IN);   /* drain until the peer's EOF */
}

static void accept_conn(net_server_t *srv, int fd, int tls) {
  net_conn_t *c = wsc_pool_alloc(&g_conn_pool);
  if (!c) {
    close(fd);
    return;
  }
  c->srv = srv;
  c->fd = fd;
  link_conn(srv, c);
  wsc_metrics.connections_accepted++;
  if (srv->n_conns > srv->conn_cap || srv->shutting_down) {
    if (!srv->shutting_down) wsc_metrics.cutoffs[WSC_CUTOFF_CONNECTION_LIMIT]++;
    refuse(srv, c, tls);
    return;
  }
  /* TCP_NODELAY comes from the listener (Linux copies it to accepted
   * sockets): no setsockopt per connection. */
  if (tls) {
    /* The handler comes when the handshake is done (tls_on_read). */
    if (!srv->tls_ctx || !(c->tls = tls_new(srv->tls_ctx))) {
      conn_finalize(c);
      return;
    }
    c->flags |= F_HANDSHAKING;
    c->close_deadline = (uint32_t)(wsc_mono_ms() + srv->config->handshake_timeout_ms);
  } else {
    srv->on_accept(srv, c);
  }
  if (c->flags & F_CLOSED) return;
  watch_set(c, c->watch | W_IN);
  /* Deferred accept: the request is most likely in already, so read it now
   * rather than in another turn of epoll (a read that finds nothing costs
   * one EAGAIN). */
  conn_readable(c);
}

/* A listener is readable: accept until the backlog is empty. */
static void accept_all(net_server_t *srv, int tls) {
  for (;;) {
    int lfd = tls ? srv->tls_listen_fd : srv->listen_fd;
    if (lfd < 0) return;   /* closed by the shutdown */
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_conn(srv, fd, tls);
      continue;
    }
    int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    /* Out of descriptors comes in floods: say so once a second. */
    static int64_t last_log;
    int64_t now = wsc_mono_ms();
    if (now - last_log >= 1000) {
      last_log = now;
      LOG_WARN("net", "accept failed err=%s open=%zu", strerror(err), srv->n_conns);
    }
    if ((err == EMFILE || err == ENFILE) && srv->reserve_fd >= 0) {
      /* Give up the spare descriptor to accept and close what waits, so a
       * level-triggered listener does not wake us in a loop. */
      close(srv->reserve_fd);
      int shed;
      while ((shed = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) close(shed);
      srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    return;
  }
}

/* libuv says the epoll set has events: take them (without blocking) and
 * dispatch: reads first, then writes, as libuv does for its streams. */
static void on_epoll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  net_server_t *srv = h->data;
  struct epoll_event ev[NET_EPOLL_BATCH];
  int n = epoll_wait(srv->epfd, ev, NET_EPOLL_BATCH, 0);
  for (int i = 0; i < n; i++) {
    uint64_t tag = ev[i].data.u64;
    if (tag & 1u) {
      accept_all(srv, tag == TAG_TLS_LISTENER);
      continue;
    }
    net_conn_t *c = ev[i].data.ptr;
    uint32_t e = ev[i].events;
    if ((c->watch & W_IN) && (e & (EPOLLIN | EPOLLERR | EPOLLHUP))) conn_readable(c);
    if (!(c->flags & F_CLOSED) && (c->watch & W_OUT) && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
      conn_writable(c);
  }
}

net_conn_t *net_conn_detached(net_server_t *srv) {
  net_conn_t *c = wsc_pool_alloc(&g_conn_pool);
  if (!c) return NULL;
  c->srv = srv;
  c->fd = -1;
  link_conn(srv, c);
  return c;
}

static void on_tick(uv_timer_t *t) {
  net_server_t *srv = t->data;
  int64_t now = wsc_mono_ms();
  update_conn_cap(srv);
  net_conn_t *next;
  int64_t q_total = 0, q_max = 0, q_nonempty = 0; /* sampled for /metrics */
  for (net_conn_t *c = srv->conns; c; c = next) {
    next = c->next;
    if (c->queued) {
      q_total += (int64_t)c->queued;
      q_nonempty++;
      if ((int64_t)c->queued > q_max) q_max = (int64_t)c->queued;
    }
    if (c->flags & F_CLOSED) continue;
    if (c->flags & F_CLOSING) {
      if (net_deadline_passed(now, c->close_deadline)) conn_finalize(c);
      continue;
    }
    if (c->flags & F_HANDSHAKING) {
      if (net_deadline_passed(now, c->close_deadline)) {
        LOG_DEBUG("net", "tls handshake timeout");
        wsc_metrics.tls_failures++;
        conn_finalize(c);
      }
      continue;
    }
    if (c->handler && c->handler->on_tick) c->handler->on_tick(c, now);
  }
  wsc_metrics.send_queue_bytes = q_total;
  wsc_metrics.send_queue_bytes_max = q_max;
  wsc_metrics.send_queues_nonempty = q_nonempty;
}

/* A non-blocking listening socket on config->host:port in the epoll set.
 * 0 or a negative errno (libuv's error codes are the same numbers). */
static int listen_on(net_server_t *srv, int *fdp, int port, int tls) {
  struct sockaddr_storage addr;
  socklen_t alen = sizeof(struct sockaddr_in);
  int rc = uv_ip4_addr(srv->config->host, port, (struct sockaddr_in *)&addr);
  if (rc != 0) {
    rc = uv_ip6_addr(srv->config->host, port, (struct sockaddr_in6 *)&addr);
    alen = sizeof(struct sockaddr_in6);
  }
  if (rc != 0) return rc;
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);   /* inherited by accepted sockets */
  /* Deferred accept (as nginx's `deferred`, HAProxy's `defer-accept`): the
   * kernel hands a connection over only once its first bytes are in — every
   * protocol here has the client speak first — so an accept costs one
   * wake-up of this process instead of two (the handshake's last ACK, then
   * the request), and a connection that says nothing stays a kernel request
   * socket, no descriptor and no net_conn_t, until the period ends (then it
   * is accepted and the handshake timeout applies as before). Best effort:
   * without it, the same as before. */
  int defer_s = NET_DEFER_ACCEPT_S;
  setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s);
  if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  struct epoll_event e = {.events = EPOLLIN};
  e.data.u64 = tls ? TAG_TLS_LISTENER : TAG_LISTENER;
  if (bind(fd, (struct sockaddr *)&addr, alen) != 0 || listen(fd, NET_LISTEN_BACKLOG) != 0 ||
      epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  *fdp = fd;
  return 0;
}

static void close_listener(net_server_t *srv, int *fdp) {
  if (*fdp < 0) return;
  epoll_ctl(srv->epfd, EPOLL_CTL_DEL, *fdp, NULL);
  close(*fdp);
  *fdp = -1;
}

int net_server_start(net_server_t *srv, uv_loop_t *loop, const wsc_config_t *config,
                     net_accept_cb on_accept, void *ud) {
  memset(srv, 0, sizeof *srv);
  srv->loop = loop;
  loop->data = srv;
  srv->config = config;
  srv->on_accept = on_accept;
  srv->ud = ud;
  srv->listen_fd = srv->tls_listen_fd = srv->reserve_fd = -1;
  update_conn_cap(srv);
  if ((srv->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) return -errno;
  int rc = listen_on(srv, &srv->listen_fd, config->port, 0);
  if (rc == 0) rc = uv_poll_init(loop, &srv->epoll_watch, srv->epfd);
  if (rc != 0) {
    close_listener(srv, &srv->listen_fd);
    close(srv->epfd);
    srv->epfd = -1;
    return rc;
  }
  srv->epoll_watch.data = srv;
  uv_poll_start(&srv->epoll_watch, UV_READABLE, on_epoll);
  srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  srv->started = 1;
  uv_check_init(loop, &srv->flusher);
  srv->flusher.data = srv;
  uv_check_start(&srv->flusher, on_flush);
  uv_timer_init(loop, &srv->ticker);
  srv->ticker.data = srv;
  uv_timer_start(&srv->ticker, on_tick, NET_TICK_MS, NET_TICK_MS);
  uv_timer_init(loop, &srv->shutdown_timer);
  srv->shutdown_timer.data = srv;
  uv_timer_init(loop, &srv->lazy_timer);
  srv->lazy_timer.data = srv;
  wsc_metrics.lazy_wait_ms = NET_LAZY_MS;
  return 0;
}

int net_server_start_tls(net_server_t *srv, char *errbuf, size_t errcap) {
  const wsc_config_t *cfg = srv->config;
  if (tls_alpn_parse(cfg->tls_alpn, &srv->alpn) != 0) {
    snprintf(errbuf, errcap, "bad ALPN protocol list: %s", cfg->tls_alpn);
    return -1;
  }
  srv->tls_ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, &srv->alpn, errbuf, errcap);
  if (!srv->tls_ctx) return -1;
  int rc = listen_on(srv, &srv->tls_listen_fd, cfg->tls_port, 1);
  if (rc != 0) {
    snprintf(errbuf, errcap, "cannot listen on TLS port %d: %s", cfg->tls_port, uv_strerror(rc));
    tls_ctx_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
    return -1;
  }
  return 0;
}

int net_server_reload_tls(net_server_t *srv, char *errbuf, size_t errcap) {
  if (!srv->tls_ctx) {
    snprintf(errbuf, errcap, "TLS is not enabled");
    return -1;
  }
  const wsc_config_t *cfg = srv->config;
  tls_ctx_t *ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, &srv->alpn, errbuf, errcap);
  if (!ctx) return -1;
  tls_ctx_free(srv->tls_ctx);   /* open connections hold their own reference */
  srv->tls_ctx = ctx;
  return 0;
}

static void on_shutdown_deadline(uv_timer_t *t) {
  net_server_t *srv = t->data;
  LOG_WARN("net", "shutdown deadline reached open=%zu", srv->n_conns);
  net_conn_t *next;
  for (net_conn_t *c = srv->conns; c; c = next) {
    next = c->next;
    conn_finalize(c);
  }
}

void net_server_shutdown(net_server_t *srv, int timeout_ms, void (*done)(net_server_t *srv)) {
  if (srv->shutting_down) return;
  srv->shutting_down = 1;
  srv->shutdown_done = done;
  close_listener(srv, &srv->listen_fd);
  close_listener(srv, &srv->tls_listen_fd);
  net_conn_t *next;
  for (net_conn_t *c = srv->conns; c; c = next) {
    next = c->next;
    if (c->flags & (F_CLOSED | F_CLOSING)) continue;
    if (c->handler && c->handler->on_shutdown) c->handler->on_shutdown(c);
    else net_conn_close(c);
  }
  if (srv->n_conns == 0) {
    srv->shutdown_done = NULL;
    done(srv);
    return;
  }
  uv_timer_start(&srv->shutdown_timer, on_shutdown_deadline, (uint64_t)timeout_ms, 0);
}

static void on_epoll_watch_closed(uv_handle_t *h) {
  net_server_t *srv = h->data;
  close(srv->epfd);
  srv->epfd = -1;
}

void net_server_close(net_server_t *srv) {
  reap_closed(srv);
  free(srv->closed);
  srv->closed = NULL;
  srv->n_closed = srv->cap_closed = 0;
  close_listener(srv, &srv->listen_fd);
  close_listener(srv, &srv->tls_listen_fd);
  if (srv->reserve_fd >= 0) close(srv->reserve_fd);
  srv->reserve_fd = -1;
  uv_poll_stop(&srv->epoll_watch);
  uv_close((uv_handle_t *)&srv->epoll_watch, on_epoll_watch_closed);
  uv_check_stop(&srv->flusher);
  uv_close((uv_handle_t *)&srv->flusher, NULL);
  uv_timer_stop(&srv->ticker);
  uv_close((uv_handle_t *)&srv->ticker, NULL);
  uv_timer_stop(&srv->shutdown_timer);
  uv_close((uv_handle_t *)&srv->shutdown_timer, NULL);
  while (srv->lazy || srv->lazy_walk) lazy_round(srv, 0); /* frees connections closed while lazy */
  uv_timer_stop(&srv->lazy_timer);
  uv_close((uv_handle_t *)&srv->lazy_timer, NULL);
  if (srv->tls_ctx) {
    tls_ctx_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
  }
}
