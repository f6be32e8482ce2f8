/* net/net — the socket layer under libuv: TCP listeners, their
 * connections, corked and bounded writes, and one loop-wide timer.
 *
 * Sockets: a connection is a bare non-blocking fd in an epoll set of net's
 * own, not a libuv handle (libuv's uv_tcp_t is 248 bytes; a net_conn_t
 * is 104). libuv watches that epoll set (and the
 * listeners, which are in it too) through one uv_poll_t, so the loop is
 * still libuv's: timers, checks, the thread pool and the other handles are
 * unchanged. net reads with read(2) and writes with writev(2); what the
 * kernel does not take waits in the connection's pending list and goes out
 * when epoll says the socket is writable. A closed connection is freed at
 * the end of the loop iteration (after the cork below), never while an
 * epoll batch or a list may still point at it.
 *
 * Reading: every connection reads into one loop-wide buffer (NET_READ_BUF
 * bytes), handed to handler->on_data; the handler keeps only what it must
 * (a partial frame), so an idle connection holds no read buffer.
 *
 * Writing (corking): net_conn_send only queues a reference to the bytes.
 * At the end of the loop iteration (a uv_check handle) every connection
 * with queued bytes is flushed with one writev (a remainder the kernel did
 * not take waits for EPOLLOUT, in order). An idle connection
 * holds no write buffer. Each connection's queue (queued + in flight) is
 * bounded by config->send_queue_limit: net_conn_send refuses bytes past it
 * and the caller decides (chat closes the slow consumer with 1013).
 *
 * TLS (net/tls): a second listener (--tls-port) whose connections carry
 * TLS state (conn->tls, NULL on plain ones: OpenSSL's SSL during the
 * handshake, then for TLS 1.3 only net/tls13_rec's keys). net decrypts what it reads before
 * handler->on_data and, at flush, encrypts what the connection is owed
 * this iteration into as few records as fit; handlers see plaintext only.
 * A TLS connection gets its handler (on_accept) only once the handshake
 * is done, so the application can pick it by the ALPN protocol
 * (net_conn_protocol); until then net itself enforces the handshake
 * timeout. SIGHUP-style reloads (net_server_reload_tls) swap the context
 * for new connections; open ones keep theirs.
 *
 * Time: one uv_timer ticks every NET_TICK_MS and calls handler->on_tick of
 * every connection, so timeouts and heartbeats cost no timer per connection.
 *
 * Ownership: net owns net_conn_t from accept until after handler->on_close
 * returns; the handler owns what it hangs on conn->ud and frees it in
 * on_close. Shutdown: net_server_shutdown stops accepting, calls
 * handler->on_shutdown of every connection (they start their closing
 * handshakes), waits up to a deadline for them to close, then closes the
 * rest and calls the done callback.
 */
#ifndef WSC_NET_NET_H
#define WSC_NET_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/config.h"
#include "net/tls.h"

#define NET_READ_BUF (64 * 1024)  /* loop-wide read buffer */
#define NET_TICK_MS 250           /* granularity of timeouts and heartbeats */
#define NET_LISTEN_BACKLOG 4096
/* Listeners defer the accept until the client's first bytes arrive
 * (TCP_DEFER_ACCEPT, at most this long; net.c listen_on), and a connection
 * is read as soon as it is accepted. */
#define NET_DEFER_ACCEPT_S 1
#define NET_CLOSE_GRACE_MS 5000   /* how long a graceful close may take */
#define NET_LAZY_MS 15            /* how long lazy bytes wait for company at least */
#ifndef NET_LAZY_MAX_MS
#define NET_LAZY_MAX_MS 1000      /* ... and at most, however heavy the last round was */
#endif
#ifndef NET_LAZY_FULL
#define NET_LAZY_FULL 64          /* lazy buffers a queue holds before it goes with the next cork */
#endif
#define NET_LAZY_SLICE_MS 4       /* a lazy round writes this long per loop iteration at most */
#ifndef NET_LAZY_BUDGET_PCT
#define NET_LAZY_BUDGET_PCT 1     /* share of the loop's time lazy rounds may take (-D to compare) */
#endif

typedef struct net_conn net_conn_t;
typedef struct net_server net_server_t;

typedef struct net_handler {
  /* Bytes received into the loop-wide buffer; valid (and writable) only
   * during the call. */
  void (*on_data)(net_conn_t *c, uint8_t *data, size_t len);
  /* The peer closed, or an error: net will close the connection after this
   * returns (then on_close). NULL: just close. */
  void (*on_eof)(net_conn_t *c);
  /* Every NET_TICK_MS; now is wsc_mono_ms(). May close the connection. */
  void (*on_tick)(net_conn_t *c, int64_t now);
  /* The server is shutting down: start closing (WebSocket close 1001). */
  void (*on_shutdown)(net_conn_t *c);
  /* The connection is closed; free conn->ud. Called once. */
  void (*on_close)(net_conn_t *c);
  /* Optional: queued bytes were written (the queue shrank); a handler
   * that holds output back while the queue is long (HTTP/2) sends more. */
  void (*on_drain)(net_conn_t *c);
  /* Optional: the lazy bytes this handler holds for the connection
   * (net_conn_hold) are wanted now: queue them (net_conn_send_lazy). */
  void (*on_fill)(net_conn_t *c);
} net_handler_t;

/* Creates a connection's first handler state (the HTTP front). */
typedef void (*net_accept_cb)(net_server_t *srv, net_conn_t *c);

struct net_conn {
  net_server_t *srv;
  const net_handler_t *handler;
  void *ud;                      /* the handler's state */
  struct net_out *out;           /* queued, not yet written; NULL when idle */
  struct net_out *pend;          /* flushed but not taken by the kernel yet
                                    (written on EPOLLOUT); NULL when none */
  size_t queued;                 /* bytes queued + pending */
  net_conn_t *prev, *next;       /* all connections of the server */
  net_conn_t *next_dirty;        /* connections with queued bytes */
  net_conn_t *next_lazy;         /* connections with only lazy bytes queued */
  tls_t *tls;                    /* TLS state, NULL for plain connections */
  uint32_t close_deadline;       /* while closing: when to give up; during a TLS
                                    handshake: its deadline (the low 32 bits of the
                                    mono ms: compared as a difference, net_deadline_passed) */
  uint32_t pend_skip;            /* bytes of pend's first buffer already written */
  int fd;                        /* the socket; -1 for a detached connection */
  uint16_t flags;
  uint8_t watch;                 /* what the epoll set watches it for (read, write) */
};

/* One server per loop (loop->data points to it); every connection points
 * to it too (net_conn_server). */
struct net_server {
  uv_loop_t *loop;
  const wsc_config_t *config;
  int epfd;                      /* the connections' (and listeners') epoll set */
  uv_poll_t epoll_watch;         /* libuv polls epfd */
  int listen_fd, tls_listen_fd;  /* -1 when not listening (TLS: --tls-port) */
  int reserve_fd;                /* a spare descriptor given up to shed accepts on EMFILE */
  int started;                   /* net_server_start ran (epfd and the handles exist) */
  net_conn_t **closed;           /* closed connections to free at the end of the iteration */
  size_t n_closed, cap_closed;
  tls_ctx_t *tls_ctx;            /* for new TLS connections; NULL: no TLS */
  tls_alpn_t alpn;               /* the protocols ALPN may select */
  uv_check_t flusher;
  uv_timer_t ticker;
  uv_timer_t shutdown_timer;
  net_accept_cb on_accept;
  void *ud;                      /* the application's */
  net_conn_t *conns;             /* list of open connections */
  net_conn_t *dirty;             /* list of connections to flush */
  net_conn_t *lazy;              /* list of connections with lazy bytes */
  uv_timer_t lazy_timer;         /* starts the next lazy round */
  uint32_t lazy_n;               /* entries on the lazy list */
  int64_t lazy_since_ns;         /* when its oldest entry was added (mono ns) */
  int64_t lazy_end_ns;           /* when the last round ended (mono ns) */
  int64_t lazy_entry_ns;         /* what a round costs per entry (smoothed): the
                                    next round's expected cost is lazy_n times it */
  net_conn_t *lazy_walk;         /* the round in progress: connections still to write */
  int64_t lazy_round_ns;         /* time its slices took so far */
  uint64_t lazy_round_conns;     /* connections it wrote so far */
  uint32_t lazy_round_entries;   /* entries it walked so far */
  size_t n_conns;
  size_t conn_cap;               /* connections held before refusing (503) */
  int shutting_down;
  void (*shutdown_done)(net_server_t *srv);
};

static inline net_server_t *net_conn_server(const net_conn_t *c) { return c->srv; }

/* 1 once mono ms `now` reached a deadline kept as its low 32 bits (deltas
 * of less than 24 days, both ways, compare right across the wrap). */
static inline int net_deadline_passed(int64_t now, uint32_t deadline) {
  return (int32_t)((uint32_t)now - deadline) >= 0;
}

/* Binds config->host:config->port and starts accepting. Returns 0 or a
 * negative libuv error. */
int net_server_start(net_server_t *srv, uv_loop_t *loop, const wsc_config_t *config,
                     net_accept_cb on_accept, void *ud);
/* Adds the TLS listener on config->host:config->tls_port with
 * config->tls_cert/tls_key and the ALPN list config->tls_alpn. Returns 0,
 * or -1 with one line in errbuf (unreadable file, key not matching the
 * certificate, port in use). Call after net_server_start. */
int net_server_start_tls(net_server_t *srv, char *errbuf, size_t errcap);
/* Re-reads the certificate and key: new TLS connections use them, open
 * ones keep the context they started with. On failure (errbuf) the old
 * context stays. Returns 0 or -1. */
int net_server_reload_tls(net_server_t *srv, char *errbuf, size_t errcap);
/* Graceful shutdown (see above); done is called once every connection is
 * closed, or at the deadline. */
void net_server_shutdown(net_server_t *srv, int timeout_ms, void (*done)(net_server_t *srv));
/* Releases the server's handles (after shutdown completed). */
void net_server_close(net_server_t *srv);

/* Queues b's bytes [off, off+len) (takes a reference). Returns 0, or -1
 * when that would take the queue past the limit (nothing queued) or the
 * connection is closing. */
int net_conn_send(net_conn_t *c, wsc_buf_t *b);
/* Like net_conn_send, for bytes that may wait to share a write with others
 * (presence and typing events): a join storm in a big room then costs each
 * member one writev per lazy round, not one per joiner.
 *
 * The lazy round's rule is a CPU budget: a round writes every connection
 * that holds only lazy bytes (NET_LAZY_SLICE_MS per loop iteration at most,
 * so other I/O runs between its slices) and is timed, which gives the cost
 * of a round per connection on the lazy list (smoothed over the rounds). A
 * round starts no earlier than (100 - NET_LAZY_BUDGET_PCT) /
 * NET_LAZY_BUDGET_PCT (99x for 1 %) times its own expected cost — the
 * connections now on the list at that cost each — after the last round
 * ended, never sooner than NET_LAZY_MS after its oldest entry was added and
 * never later than NET_LAZY_MAX_MS after it. So lazy rounds take about 1 %
 * of the loop's time while a round costs less than NET_LAZY_MAX_MS / 99
 * (~10 ms: some 1,000 writes); past that, during a join storm, a round a
 * second: each member gets one presence write a second, however many joins
 * it is told of. A quiet server keeps the 15 ms wait (a round of one write
 * takes some 20 us), a round over a room of 100 waits ~60 ms, and the first
 * round after a storm is back at 15 ms.
 *
 * Why the round about to start and not the last one (as before): in a
 * storm the first round is small, so a budget set by it let the second one
 * come ~0.2 s later with thousands of connections on the list and take a
 * quarter of the loop in the middle of the storm; sized by what is waiting,
 * it waits for the 1 s cap instead, and the storm pays one round, not two
 * (docs/PERFORMANCE.md).
 *
 * A queue that collects NET_LAZY_FULL buffers goes out with the next cork
 * without waiting for the round: one writev's fixed cost is then shared by
 * enough events that waiting longer would save little, and a storm's queues
 * (and the heap they leave behind: base/heap gives it back) stay small.
 *
 * Order is kept: lazy bytes sit in the same queue, and any ordinary send
 * flushes them with it at the end of its loop iteration. */
int net_conn_send_lazy(net_conn_t *c, wsc_buf_t *b);
/* Lazy bytes the handler keeps for now (a room's presence, shared by every
 * member until the round: chat/): c goes on the lazy list as if they were
 * queued, and the handler's on_fill queues them when they are wanted — at
 * the lazy round or the cork that writes c, or before anything else is
 * queued to c (so order is kept). -1 (nothing held) when c is closing or
 * its handler has no on_fill. */
int net_conn_hold(net_conn_t *c);
/* The same, ignoring the limit: for small control frames (pong, close)
 * that must go out even to a slow consumer. */
int net_conn_send_force(net_conn_t *c, wsc_buf_t *b);
/* Copies data and queues it (ignores the limit; for handshake responses
 * and control frames). */
int net_conn_send_copy(net_conn_t *c, const void *data, size_t len);
/* Flushes what is queued, then closes. Idempotent. If the peer does not
 * take the bytes within NET_CLOSE_GRACE_MS the connection is aborted. */
void net_conn_close(net_conn_t *c);
/* Closes now, dropping whatever is queued. */
void net_conn_abort(net_conn_t *c);
/* Stops/starts reading (back-pressure; used after a close). */
void net_conn_pause(net_conn_t *c);
/* Back-pressure for a peer that sends faster than it reads (echo): stops
 * reading until the queue has drained to half the limit, then reads again
 * by itself. */
void net_conn_backpressure(net_conn_t *c);
int net_conn_in_backpressure(const net_conn_t *c);
int net_conn_is_closing(const net_conn_t *c);
/* The ALPN protocol selected on a TLS connection ("h2", "http/1.1"),
 * copied into buf; NULL for plain connections or when ALPN chose none. */
const char *net_conn_protocol(const net_conn_t *c, char *buf, size_t cap);
static inline int net_conn_is_tls(const net_conn_t *c) { return c->tls != NULL; }
/* Peer address as text (for logs). */
void net_conn_peer(const net_conn_t *c, char *out, size_t cap);
/* A connection with no socket, from net's pool and linked into srv (whose
 * loop and config must be set): for fuzzers and tests that feed a handler
 * directly. Its queued bytes are never written; net_conn_abort returns it
 * to the pool (at once on a server that was never started, else at the end
 * of the loop iteration). NULL when out of memory. */
net_conn_t *net_conn_detached(net_server_t *srv);

#endif
