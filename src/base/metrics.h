/* base/metrics — process-wide counters for GET /metrics (Prometheus text).
 *
 * One global struct, written only on the event-loop thread (the store's
 * worker threads report through their completion callbacks, which run on
 * the loop). Each layer bumps its own fields; http renders them all.
 */
#ifndef WSC_BASE_METRICS_H
#define WSC_BASE_METRICS_H

#include <stdint.h>

#define WSC_METRICS_CARRIERS 3

/* A latency histogram in seconds, Prometheus-style cumulative on render:
 * bucket i counts observations <= wsc_hist_bounds[i]; the last is +Inf. */
#define WSC_HIST_BUCKETS 15
extern const double wsc_hist_bounds[WSC_HIST_BUCKETS - 1];
typedef struct wsc_hist {
  uint64_t buckets[WSC_HIST_BUCKETS]; /* not cumulative */
  uint64_t count;
  uint64_t sum_ns;
} wsc_hist_t;
void wsc_hist_observe_ns(wsc_hist_t *h, int64_t ns);

/* Why connections were cut off (wschat_cutoffs_total{reason}). */
typedef enum {
  WSC_CUTOFF_SLOW_CONSUMER,    /* send queue over --send-queue: close 1013 */
  WSC_CUTOFF_PROTOCOL_ERROR,   /* WebSocket protocol violation: 1002/1007/1009 */
  WSC_CUTOFF_HEARTBEAT,        /* missed pongs: dropped */
  WSC_CUTOFF_HANDSHAKE_TIMEOUT,/* HTTP request not received in time: 408 */
  WSC_CUTOFF_CONNECTION_LIMIT, /* over --max-connections: refused at accept */
  WSC_CUTOFF_HTTP_OVERFLOW,    /* an HTTP session's event queue overflowed: reset */
  WSC_CUTOFF_HTTP_EXPIRED,     /* an HTTP session without requests for --http-session-ttl */
  WSC_CUTOFF_HTTP_HELD_LIMIT,  /* a request refused past --max-held: 503 */
  WSC_CUTOFF_REASONS
} wsc_cutoff_t;
extern const char *const wsc_cutoff_names[WSC_CUTOFF_REASONS];

typedef struct wsc_metrics {
  /* net */
  uint64_t connections_accepted;
  int64_t connections_open;        /* gauge */
  uint64_t bytes_in, bytes_out;
  uint64_t slow_consumers_dropped; /* closed for a send queue over its limit */
  uint64_t tls_handshakes;         /* TLS handshakes completed */
  uint64_t tls_handovers;          /* TLS 1.3 connections whose records moved to net/tls13_rec */
  uint64_t tls_failures;           /* TLS handshakes or records that failed, handshake timeouts */
  uint64_t lazy_rounds;            /* lazy rounds (net.h: presence and typing writes) */
  uint64_t lazy_writes;            /* connections written by lazy rounds */
  uint64_t lazy_round_ns_total;    /* time spent in lazy rounds */
  int64_t lazy_wait_ms;            /* gauge: how long the last lazy round's oldest entry was due to wait */
  int64_t lazy_wait_ms_max;        /* gauge: the longest such wait since start */
  int64_t lazy_round_ns_max;       /* gauge: the longest lazy round (all its slices) since start */
  uint64_t lazy_full;              /* queues that collected NET_LAZY_FULL lazy buffers (sent at the cork) */
  /* ws */
  int64_t websockets_open;         /* gauge */
  int64_t websockets_by_carrier[WSC_METRICS_CARRIERS]; /* gauge: http1, h2, h3 (net/carrier.h) */
  uint64_t ws_messages_in, ws_messages_out;
  uint64_t ws_deflate_built;       /* compressed wire forms built (once per message) */
  uint64_t ws_deflate_sent;        /* compressed frames queued to recipients */
  uint64_t ws_inflated;            /* compressed messages received and inflated */
  uint64_t ws_protocol_errors;     /* connections failed with 1002/1007/1009... */
  /* http */
  uint64_t http_requests;
  /* h3 (QUIC) */
  int64_t h3_connections_open;     /* gauge */
  uint64_t h3_connections_accepted;
  uint64_t h3_connections_refused; /* past the connection limit */
  uint64_t h3_datagrams_dropped;   /* garbage, truncated, unknown or unverifiable */
  uint64_t h3_packets_out;         /* QUIC packets sent (a GSO datagram counts its segments) */
  uint64_t h3_send_calls;          /* sendmmsg/sendmsg system calls that sent them */
  uint64_t h3_datagrams_in;        /* UDP datagrams received */
  uint64_t h3_recv_calls;          /* recvmmsg/recvmsg system calls that read them */
  uint64_t h3_flushes;             /* loop iterations that wrote to at least one connection */
  uint64_t h3_conn_writes;         /* connection writes (at most one per connection per flush) */
  uint64_t h3_expiries;            /* connection timers that fired (loss, ACK delay, idle) */
  uint64_t h3_segs_coalesced;      /* queued messages copied into a shared per-stream buffer */
  int64_t http_sessions;           /* gauge: HTTP chat sessions (polling) */
  int64_t http_held;               /* gauge: HTTP requests held open (long polls, sends) */
  uint64_t http_polls, http_polls_empty; /* poll/longpoll answers, and those that were [] */
  /* chat */
  int64_t chat_clients;            /* gauge: attached chat clients */
  int64_t chat_rooms;              /* gauge: rooms with members */
  int64_t chat_members;            /* gauge: (client, room) memberships */
  uint64_t chat_messages_in;       /* `send`s accepted */
  uint64_t chat_messages_out;      /* `message` deliveries queued */
  /* store */
  uint64_t store_commits;          /* transactions committed */
  uint64_t store_commit_ns_total;  /* sum of commit latencies */
  uint64_t store_commit_ns_max;
  uint64_t store_errors;
  uint64_t store_reads;             /* reads asked of the store (joins, history) */
  wsc_hist_t store_commit_seconds; /* one observation per committed batch */
  int64_t store_queue_appends;     /* gauge: appends waiting for their commit */
  int64_t store_queue_reads;       /* gauge: history reads waiting */
  /* chat: from a send's arrival to its message queued to every member */
  wsc_hist_t delivery_seconds;
  /* net: send queues, sampled every tick (250 ms) */
  int64_t send_queue_bytes;        /* gauge: bytes queued on all connections */
  int64_t send_queue_bytes_max;    /* gauge: the largest single queue */
  int64_t send_queues_nonempty;    /* gauge: connections with bytes waiting */
  uint64_t cutoffs[WSC_CUTOFF_REASONS];
} wsc_metrics_t;

extern wsc_metrics_t wsc_metrics;

#endif
