/* http/metrics — see metrics.h. */
#include "http/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/metrics.h"

typedef struct out {
  char *p;
  size_t cap, len;
} out_t;

static void emit(out_t *o, const char *name, const char *type, const char *help, double value) {
  if (o->len >= o->cap) return;
  int n = snprintf(o->p + o->len, o->cap - o->len, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n",
                   name, help, name, type, name, value);
  if (n > 0) o->len += (size_t)n;
  if (o->len >= o->cap) o->len = o->cap - 1;
}

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
  if (o->len >= o->cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n > 0) o->len += (size_t)n;
  if (o->len >= o->cap) o->len = o->cap - 1;
}

static void emit_hist(out_t *o, const char *name, const char *help, const wsc_hist_t *h) {
  put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cum = 0;
  for (int i = 0; i < WSC_HIST_BUCKETS; i++) {
    cum += h->buckets[i];
    if (i < WSC_HIST_BUCKETS - 1) put(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, wsc_hist_bounds[i], cum);
    else put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
  }
  put(o, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name, (double)h->sum_ns / 1e9, name, h->count);
}

size_t metrics_render(char *buf, size_t cap) {
  const wsc_metrics_t *m = &wsc_metrics;
  out_t o = {buf, cap, 0};
  if (cap) buf[0] = '\0';
  emit(&o, "wschat_connections", "gauge", "Open TCP connections.", (double)m->connections_open);
  emit(&o, "wschat_connections_accepted_total", "counter", "TCP connections accepted.", (double)m->connections_accepted);
  emit(&o, "wschat_websockets", "gauge", "Open WebSocket connections.", (double)m->websockets_open);
  static const char *const carriers[WSC_METRICS_CARRIERS] = {"http1", "h2", "h3"};
  if (o.len < o.cap) {
    int n = snprintf(o.p + o.len, o.cap - o.len,
                     "# HELP wschat_websockets_by_carrier Open WebSockets by what carries them.\n"
                     "# TYPE wschat_websockets_by_carrier gauge\n");
    if (n > 0) o.len += (size_t)n;
    for (int i = 0; i < WSC_METRICS_CARRIERS && o.len < o.cap; i++) {
      n = snprintf(o.p + o.len, o.cap - o.len, "wschat_websockets_by_carrier{carrier=\"%s\"} %lld\n",
                   carriers[i], (long long)m->websockets_by_carrier[i]);
      if (n > 0) o.len += (size_t)n;
    }
    if (o.len >= o.cap) o.len = o.cap - 1;
  }
  emit(&o, "wschat_rooms", "gauge", "Rooms with at least one member.", (double)m->chat_rooms);
  emit(&o, "wschat_members", "gauge", "Room memberships (client, room).", (double)m->chat_members);
  emit(&o, "wschat_chat_clients", "gauge", "Attached chat clients.", (double)m->chat_clients);
  emit(&o, "wschat_messages_in_total", "counter", "WebSocket messages received.", (double)m->ws_messages_in);
  emit(&o, "wschat_messages_out_total", "counter", "WebSocket messages queued to clients.", (double)m->ws_messages_out);
  emit(&o, "wschat_chat_messages_in_total", "counter", "Chat messages accepted (send).", (double)m->chat_messages_in);
  emit(&o, "wschat_chat_messages_out_total", "counter", "Chat message deliveries queued.", (double)m->chat_messages_out);
  emit(&o, "wschat_bytes_in_total", "counter", "Bytes read from sockets.", (double)m->bytes_in);
  emit(&o, "wschat_bytes_out_total", "counter", "Bytes written to sockets.", (double)m->bytes_out);
  emit(&o, "wschat_slow_consumers_dropped_total", "counter", "Connections closed because their send queue passed its limit.", (double)m->slow_consumers_dropped);
  emit(&o, "wschat_ws_deflate_built_total", "counter", "permessage-deflate frames built (a broadcast is compressed once).", (double)m->ws_deflate_built);
  emit(&o, "wschat_ws_deflate_sent_total", "counter", "Compressed frames queued to recipients.", (double)m->ws_deflate_sent);
  emit(&o, "wschat_ws_inflated_total", "counter", "Compressed messages received and inflated.", (double)m->ws_inflated);
  emit(&o, "wschat_tls_handshakes_total", "counter", "TLS handshakes completed.", (double)m->tls_handshakes);
  emit(&o, "wschat_tls_handovers_total", "counter", "TLS 1.3 connections whose records wschat does itself (SSL object freed).", (double)m->tls_handovers);
  emit(&o, "wschat_tls_failures_total", "counter", "TLS handshakes failed or timed out, and TLS connections failed.", (double)m->tls_failures);
  emit(&o, "wschat_lazy_rounds_total", "counter", "Lazy rounds (presence and typing writes that waited for company).", (double)m->lazy_rounds);
  emit(&o, "wschat_lazy_writes_total", "counter", "Connections written by lazy rounds.", (double)m->lazy_writes);
  emit(&o, "wschat_lazy_round_seconds_total", "counter", "Time spent in lazy rounds.", (double)m->lazy_round_ns_total / 1e9);
  emit(&o, "wschat_lazy_wait_seconds", "gauge", "How long the last lazy round's oldest entry was due to wait (the CPU budget: 15 ms to 1 s).", (double)m->lazy_wait_ms / 1e3);
  emit(&o, "wschat_lazy_round_seconds_max", "gauge", "Longest lazy round (all its slices) since start.", (double)m->lazy_round_ns_max / 1e9);
  emit(&o, "wschat_lazy_wait_seconds_max", "gauge", "Longest such wait since start.", (double)m->lazy_wait_ms_max / 1e3);
  emit(&o, "wschat_lazy_full_total", "counter", "Send queues whose lazy events went out early: enough of them to fill a write.", (double)m->lazy_full);
  emit(&o, "wschat_ws_protocol_errors_total", "counter", "WebSocket connections failed for a protocol error.", (double)m->ws_protocol_errors);
  emit(&o, "wschat_http_requests_total", "counter", "HTTP requests served.", (double)m->http_requests);
  emit(&o, "wschat_http_sessions", "gauge", "HTTP chat sessions (polling, long polling).", (double)m->http_sessions);
  emit(&o, "wschat_http_held", "gauge", "HTTP requests held open.", (double)m->http_held);
  emit(&o, "wschat_http_polls_total", "counter", "Poll and long-poll responses.", (double)m->http_polls);
  emit(&o, "wschat_http_polls_empty_total", "counter", "Poll and long-poll responses with no event.", (double)m->http_polls_empty);
  emit(&o, "wschat_store_commits_total", "counter", "History transactions committed.", (double)m->store_commits);
  emit(&o, "wschat_store_commit_seconds_total", "counter", "Time spent committing history batches.", (double)m->store_commit_ns_total / 1e9);
  emit(&o, "wschat_store_commit_seconds_max", "gauge", "Slowest history commit.", (double)m->store_commit_ns_max / 1e9);
  emit(&o, "wschat_store_errors_total", "counter", "History operations that failed.", (double)m->store_errors);
  emit(&o, "wschat_store_reads_total", "counter", "Reads asked of the history store (joins, history pages).", (double)m->store_reads);
  emit(&o, "wschat_h3_connections", "gauge", "Open QUIC (HTTP/3) connections.", (double)m->h3_connections_open);
  emit(&o, "wschat_h3_connections_accepted_total", "counter", "QUIC connections accepted.", (double)m->h3_connections_accepted);
  emit(&o, "wschat_h3_connections_refused_total", "counter", "QUIC connections refused past the limit.", (double)m->h3_connections_refused);
  emit(&o, "wschat_h3_datagrams_dropped_total", "counter", "UDP datagrams dropped: garbage, truncated or unknown.", (double)m->h3_datagrams_dropped);
  emit(&o, "wschat_h3_packets_out_total", "counter", "QUIC packets sent (segments of a GSO datagram counted one by one).", (double)m->h3_packets_out);
  emit(&o, "wschat_h3_send_calls_total", "counter", "System calls that sent QUIC packets (sendmmsg, sendmsg).", (double)m->h3_send_calls);
  emit(&o, "wschat_h3_datagrams_in_total", "counter", "UDP datagrams received on the HTTP/3 port.", (double)m->h3_datagrams_in);
  emit(&o, "wschat_h3_recv_calls_total", "counter", "System calls that read UDP datagrams on the HTTP/3 port.", (double)m->h3_recv_calls);
  emit(&o, "wschat_h3_flushes_total", "counter", "Loop iterations that wrote QUIC packets for at least one connection.", (double)m->h3_flushes);
  emit(&o, "wschat_h3_conn_writes_total", "counter", "QUIC connection writes (one per connection with something owed, per flush).", (double)m->h3_conn_writes);
  emit(&o, "wschat_h3_expiries_total", "counter", "QUIC connection timers that fired (loss detection, ACK delay, idle).", (double)m->h3_expiries);
  emit(&o, "wschat_h3_segs_coalesced_total", "counter", "Small queued messages copied together into one buffer before nghttp3 took them.", (double)m->h3_segs_coalesced);
  emit_hist(&o, "wschat_store_commit_duration_seconds", "Time to commit one batch of history appends.",
            &m->store_commit_seconds);
  emit_hist(&o, "wschat_delivery_duration_seconds",
            "From a chat send's arrival to its message queued to every member (commit included).",
            &m->delivery_seconds);
  emit(&o, "wschat_store_queue_appends", "gauge", "History appends waiting for their commit.", (double)m->store_queue_appends);
  emit(&o, "wschat_store_queue_reads", "gauge", "History reads waiting.", (double)m->store_queue_reads);
  emit(&o, "wschat_send_queue_bytes", "gauge", "Bytes waiting in all connections' send queues (sampled every 250 ms).", (double)m->send_queue_bytes);
  emit(&o, "wschat_send_queue_bytes_max", "gauge", "The largest connection send queue (sampled every 250 ms).", (double)m->send_queue_bytes_max);
  emit(&o, "wschat_send_queues_nonempty", "gauge", "Connections with bytes waiting to be written (sampled every 250 ms).", (double)m->send_queues_nonempty);
  put(&o, "# HELP wschat_cutoffs_total Connections cut off or refused by the server, by reason.\n"
          "# TYPE wschat_cutoffs_total counter\n");
  for (int i = 0; i < WSC_CUTOFF_REASONS; i++)
    put(&o, "wschat_cutoffs_total{reason=\"%s\"} %" PRIu64 "\n", wsc_cutoff_names[i], m->cutoffs[i]);
  return o.len;
}
