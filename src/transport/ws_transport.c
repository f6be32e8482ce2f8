/* transport/ws_transport — see ws_transport.h. */
#include "transport/ws_transport.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "msg/outbuf.h"
#include "ws/session.h"

#define MISSED_PONGS_LIMIT 2
/* An echo peer held back by back-pressure that takes nothing for this long
 * is not slow but gone, or hostile: it is cut off (1013). */
#define STALL_LIMIT_MS 5000

struct ws_transport {
  const wsc_config_t *config;
  chat_server_t *chat;
  /* The session callbacks with each kind's message limit, shared by every
   * WebSocket of that kind ([WS_KIND_ECHO], [WS_KIND_CHAT]). */
  ws_session_cb_t session_cb[2];
  /* Heartbeat rounds: one clock for every WebSocket instead of a timer
   * per connection. */
  uint32_t round;
  int64_t round_at;
};

typedef struct ws_conn {
  ws_session_t session;       /* session.cb is &t->session_cb[kind]: transport_of */
  wsc_carrier_t carrier;      /* what carries the bytes (net/carrier.h) */
  chat_client_t *chat;        /* NULL for echo, or once detached */
  int64_t deadline;           /* closing: give up on the peer's close;
                                 open, in back-pressure: stall limit */
  uint16_t pinged_round;      /* heartbeat round of our last ping (its low 16 bits:
                                 only compared with the current one; 128 bytes in all) */
  uint8_t missed_pongs;
  uint8_t kind;
  ws_pmd_t pmd;               /* permessage-deflate (3 bytes; fits the padding) */
} ws_conn_t;

/* Memory for ws_conn objects of every transport (an allocator, like net's
 * connection pool, not transport state). */
static wsc_pool_t g_ws_pool = WSC_POOL_INIT(ws_conn_t);

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len);
static void on_write(void *ud, const uint8_t *data, size_t len);
static void on_pong(void *ud);
static void on_closed(void *ud, int code);

ws_transport_t *ws_transport_new(const wsc_config_t *config, chat_server_t *chat) {
  ws_transport_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->config = config;
  t->chat = chat;
  for (int k = 0; k < 2; k++) {
    t->session_cb[k] = (ws_session_cb_t){
        .on_message = on_message,
        .on_write = on_write,
        .on_pong = on_pong,
        .on_closed = on_closed,
        .max_message = k == WS_KIND_ECHO ? config->max_message : config->max_chat_message,
    };
  }
  t->round_at = wsc_mono_ms();
  return t;
}

void ws_transport_free(ws_transport_t *t) { free(t); }

/* The transport of a WebSocket, from its session's callback table (the
 * ws_conn keeps no pointer of its own: 8 bytes per connection). */
static inline ws_transport_t *transport_of(const ws_conn_t *w) {
  const ws_session_cb_t *cb = w->session.cb - (w->kind == WS_KIND_ECHO ? WS_KIND_ECHO : WS_KIND_CHAT);
  return (ws_transport_t *)((char *)(uintptr_t)cb - offsetof(ws_transport_t, session_cb));
}

static inline size_t queued(const ws_conn_t *w) { return wsc_carrier_queued(w->carrier); }

/* --- sending ------------------------------------------------------------------ */

static void start_close(ws_conn_t *w, uint16_t code, const char *reason) {
  if (!ws_session_can_send(&w->session)) return;
  w->deadline = wsc_mono_ms() + NET_CLOSE_GRACE_MS;
  ws_session_close(&w->session, code, reason);
}

static void cut_off_slow_consumer(ws_conn_t *w) {
  wsc_metrics.slow_consumers_dropped++;
  wsc_metrics.cutoffs[WSC_CUTOFF_SLOW_CONSUMER]++;
  char peer[64];
  w->carrier.ops->peer(w->carrier.h, peer, sizeof peer);
  LOG_WARN("ws", "slow consumer cut off peer=%s carrier=%s queued=%zu", peer, w->carrier.ops->name,
           queued(w));
  /* Its queue is full, so no closing handshake can complete in time:
   * queue the close frame, stop reading (nothing it sends matters now),
   * and let net flush what it can and close, or abort at the grace
   * deadline. The chat client is detached when the connection closes. */
  start_close(w, WS_CLOSE_TRY_AGAIN, "send queue limit exceeded");
  w->carrier.ops->pause(w->carrier.h);
  w->carrier.ops->close(w->carrier.h);
}

/* Queues a chat frame by reference; a refusal means the client is over
 * its send-queue limit and is cut off. */
static int chat_queue(ws_conn_t *w, wsc_buf_t *msg, unsigned flags) {
  if (!ws_session_can_send(&w->session)) return 0;
  if ((flags & WSC_SEND_FORCE) && queued(w) > transport_of(w)->config->send_queue_limit) {
    /* A reply is accepted whole unless the queue is already over its
     * limit (see chat_transport_ops_t). */
    cut_off_slow_consumer(w);
    return -1;
  }
  wsc_buf_t *wire = outbuf_wire(msg, &w->pmd, transport_of(w)->config->deflate_min);
  if (wsc_carrier_send(w->carrier, wire, flags) != 0) {
    cut_off_slow_consumer(w);
    return -1;
  }
  if (wire != msg) wsc_metrics.ws_deflate_sent++;
  wsc_metrics.ws_messages_out++;
  return 0;
}

/* send: a room message shared with the other recipients; notify: presence
 * or typing, sent lazily; reply: the answer to the client's own request. */
static int chat_send(void *ud, wsc_buf_t *msg) { return chat_queue(ud, msg, 0); }
static int chat_notify(void *ud, wsc_buf_t *msg) { return chat_queue(ud, msg, WSC_SEND_LAZY); }
static int chat_reply(void *ud, wsc_buf_t *msg) { return chat_queue(ud, msg, WSC_SEND_FORCE); }
/* hold: the room keeps this member's presence until the carrier asks
 * (TCP only: net's on_fill, below). */
static int chat_hold(void *ud) {
  ws_conn_t *w = ud;
  if (!w->carrier.ops->hold || !ws_session_can_send(&w->session)) return -1;
  return w->carrier.ops->hold(w->carrier.h);
}

static void chat_close(void *ud, int code, const char *reason) {
  start_close(ud, (uint16_t)code, reason);
}

static const chat_transport_ops_t chat_ops = {.send = chat_send, .reply = chat_reply, .notify = chat_notify,
                                               .hold = chat_hold, .close = chat_close};

/* The echo of a message as one frame: compressed when deflate was
 * negotiated, the message is big enough and it shrinks. */
static wsc_buf_t *echo_frame(ws_conn_t *w, int opcode, const uint8_t *data, size_t len) {
  if (len >= transport_of(w)->config->deflate_min && ws_pmd_fits(&w->pmd, len)) {
    wsc_buf_t *z = ws_deflate_frame(opcode, data, len);
    if (z) wsc_metrics.ws_deflate_built++;
    if (z && z->len < len) {
      wsc_metrics.ws_deflate_sent++;
      return z;
    }
    wsc_buf_unref(z);
  }
  size_t hlen = ws_frame_header_size(len);
  wsc_buf_t *b = wsc_buf_new(hlen, len);
  if (!b) return NULL;
  if (len) memcpy(wsc_buf_bytes(b), data, len);
  b->len = (uint32_t)len;
  ws_frame_write_header(wsc_buf_prepend(b, hlen), 1, opcode, len);
  return b;
}

static void echo_message(ws_conn_t *w, int opcode, const uint8_t *data, size_t len) {
  wsc_buf_t *b = echo_frame(w, opcode, data, len);
  if (!b) {
    start_close(w, WS_CLOSE_INTERNAL, "out of memory");
    return;
  }
  /* An echo is always queued (a 16 MiB echo must fit a 1 MiB queue); past
   * the limit we stop reading the peer until it has taken its echoes, so
   * the queue stays near the limit. A peer that takes nothing for
   * STALL_LIMIT_MS is cut off by the tick. */
  const wsc_carrier_ops_t *ops = w->carrier.ops;
  if (wsc_carrier_send(w->carrier, b, WSC_SEND_FORCE) == 0) {
    wsc_metrics.ws_messages_out++;
    if (queued(w) > transport_of(w)->config->send_queue_limit && !ops->in_backpressure(w->carrier.h)) {
      ops->backpressure(w->carrier.h);
      w->deadline = wsc_mono_ms() + STALL_LIMIT_MS;
    }
  }
  wsc_buf_unref(b);
}

/* --- session callbacks ------------------------------------------------------------ */

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len) {
  ws_conn_t *w = ud;
  wsc_metrics.ws_messages_in++;
  if (w->kind == WS_KIND_ECHO) {
    echo_message(w, opcode, data, len);
    return;
  }
  if (opcode != WS_OP_TEXT) {
    start_close(w, WS_CLOSE_UNSUPPORTED, "binary messages are not supported");
    return;
  }
  if (w->chat) chat_client_receive(w->chat, (const char *)data, len);
}

/* The session's own frames: pongs and the close frame. A close always
 * goes out; a pong to a peer whose queue is already over the limit means
 * it pings without reading (a ping flood would otherwise grow the queue
 * without bound), so it is cut off instead. */
static void on_write(void *ud, const uint8_t *data, size_t len) {
  ws_conn_t *w = ud;
  if (len && (data[0] & 0x0f) == WS_OP_PONG && queued(w) > transport_of(w)->config->send_queue_limit) {
    cut_off_slow_consumer(w);
    return;
  }
  wsc_carrier_send_copy(w->carrier, data, len);
}

static void on_pong(void *ud) {
  ws_conn_t *w = ud;
  w->missed_pongs = 0;
}

static void detach_chat(ws_conn_t *w) {
  if (!w->chat) return;
  chat_client_t *c = w->chat;
  w->chat = NULL;
  chat_client_detach(c);
}

static void on_closed(void *ud, int code) {
  ws_conn_t *w = ud;
  if (code == WS_CLOSE_PROTOCOL_ERROR || code == WS_CLOSE_INVALID_DATA || code == WS_CLOSE_TOO_BIG) {
    wsc_metrics.ws_protocol_errors++;
    wsc_metrics.cutoffs[WSC_CUTOFF_PROTOCOL_ERROR]++;
  }
  /* The closing handshake is over: the name and rooms are free now, even
   * if the TCP close takes a moment. */
  detach_chat(w);
  w->carrier.ops->close(w->carrier.h);
}


/* --- carrier callbacks (the same for every carrier) ------------------------------ */

static void ws_data(void *ud, uint8_t *data, size_t len) {
  ws_conn_t *w = ud;
  ws_session_feed(&w->session, data, len);
}

static void heartbeat(ws_conn_t *w, int64_t now) {
  ws_transport_t *t = transport_of(w);
  if (t->config->ping_interval_ms <= 0) return;
  if (now - t->round_at >= t->config->ping_interval_ms) {
    t->round++;
    t->round_at = now;
  }
  if (w->pinged_round == (uint16_t)t->round) return;
  w->pinged_round = (uint16_t)t->round;
  if (w->missed_pongs >= MISSED_PONGS_LIMIT) {
    wsc_metrics.cutoffs[WSC_CUTOFF_HEARTBEAT]++;
    LOG_INFO("ws", "heartbeat timeout missed_pongs=%d carrier=%s", w->missed_pongs, w->carrier.ops->name);
    detach_chat(w);
    w->carrier.ops->abort(w->carrier.h);
    return;
  }
  uint8_t frame[WS_MAX_SERVER_HEADER];
  size_t n = ws_build_frame(frame, WS_OP_PING, NULL, 0);
  wsc_carrier_send_copy(w->carrier, frame, n);
  w->missed_pongs++;
}

static void ws_tick(void *ud, int64_t now) {
  ws_conn_t *w = ud;
  if (!ws_session_can_send(&w->session)) {
    if (w->deadline && now >= w->deadline) {
      detach_chat(w);
      w->carrier.ops->abort(w->carrier.h);
    }
    return;
  }
  if (w->carrier.ops->in_backpressure(w->carrier.h) && now >= w->deadline) {
    cut_off_slow_consumer(w);
    return;
  }
  heartbeat(w, now);
}

static void ws_shutdown(void *ud) { start_close(ud, WS_CLOSE_GOING_AWAY, "server shutting down"); }

static void ws_close(void *ud) {
  ws_conn_t *w = ud;
  if (!w) return;
  detach_chat(w);
  ws_session_free(&w->session);
  wsc_metrics.websockets_open--;
  wsc_metrics.websockets_by_carrier[w->carrier.ops->kind]--;
  wsc_pool_free(&g_ws_pool, w);
}

static const wsc_carrier_cb_t carrier_cb = {
    .on_data = ws_data,
    .on_tick = ws_tick,
    .on_shutdown = ws_shutdown,
    .on_close = ws_close,
};

/* TCP: net's handler is the up direction of the TCP carrier. */
static void tcp_on_data(net_conn_t *c, uint8_t *data, size_t len) { ws_data(c->ud, data, len); }
static void tcp_on_tick(net_conn_t *c, int64_t now) { ws_tick(c->ud, now); }
static void tcp_on_shutdown(net_conn_t *c) { ws_shutdown(c->ud); }
static void tcp_on_close(net_conn_t *c) { ws_close(c->ud); }
static void tcp_on_fill(net_conn_t *c) {
  ws_conn_t *w = c->ud;
  if (w && w->chat) chat_client_fill(w->chat);
}

static const net_handler_t ws_net_handler = {
    .on_data = tcp_on_data,
    .on_tick = tcp_on_tick,
    .on_shutdown = tcp_on_shutdown,
    .on_close = tcp_on_close,
    .on_fill = tcp_on_fill,
};

/* --- starting ------------------------------------------------------------------------ */

static ws_conn_t *conn_new(ws_transport_t *t, wsc_carrier_t carrier, ws_kind_t kind) {
  ws_conn_t *w = wsc_pool_alloc(&g_ws_pool);
  if (!w) return NULL;
  w->carrier = carrier;
  w->kind = (uint8_t)kind;
  w->pinged_round = (uint16_t)t->round;
  ws_session_init(&w->session, &t->session_cb[kind == WS_KIND_ECHO ? WS_KIND_ECHO : WS_KIND_CHAT], w);
  wsc_metrics.websockets_open++;
  wsc_metrics.websockets_by_carrier[carrier.ops->kind]++;
  return w;
}

static int attach_chat(ws_conn_t *w, ws_kind_t kind, const chat_connect_params_t *params) {
  if (kind != WS_KIND_CHAT) return 0;
  w->chat = chat_client_attach(transport_of(w)->chat, &chat_ops, w, params);
  if (!w->chat) {
    start_close(w, WS_CLOSE_INTERNAL, "out of memory");
    return -1;
  }
  return 0;
}

int ws_transport_start_tcp(ws_transport_t *t, net_conn_t *c, ws_kind_t kind,
                           const chat_connect_params_t *params, const ws_pmd_t *pmd,
                           uint8_t *rest, size_t rest_len) {
  ws_conn_t *w = conn_new(t, (wsc_carrier_t){&wsc_tcp_carrier_ops, c}, kind);
  if (!w) {
    net_conn_abort(c);
    return -1;
  }
  if (pmd && pmd->enabled) {
    w->pmd = *pmd;
    ws_session_enable_deflate(&w->session);
  }
  c->handler = &ws_net_handler;
  c->ud = w;
  if (attach_chat(w, kind, params) != 0) return -1;
  if (rest_len && !net_conn_is_closing(c)) ws_session_feed(&w->session, rest, rest_len);
  return 0;
}

int ws_transport_start(ws_transport_t *t, wsc_carrier_t carrier, ws_kind_t kind,
                       const chat_connect_params_t *params, const ws_pmd_t *pmd) {
  ws_conn_t *w = conn_new(t, carrier, kind);
  if (!w) {
    carrier.ops->abort(carrier.h);
    return -1;
  }
  if (pmd && pmd->enabled) {
    w->pmd = *pmd;
    ws_session_enable_deflate(&w->session);
  }
  carrier.ops->attach(carrier.h, &carrier_cb, w);
  return attach_chat(w, kind, params);
}
