/* transport/ws_transport — see ws_transport.h. */
#include "transport/ws_transport.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "ws/session.h"

#define MISSED_PONGS_LIMIT 2
/* An echo peer held back by back-pressure that takes nothing for this long
 * is not slow but gone, or hostile: it is cut off (1013). */
#define STALL_LIMIT_MS 5000

typedef struct ws_conn {
  ws_session_t session;
  net_conn_t *net;
  chat_client_t *chat;        /* NULL for echo, or once detached */
  int64_t deadline;           /* closing: give up on the peer's close;
                                 open, in back-pressure: stall limit */
  uint32_t pinged_round;      /* heartbeat round of our last ping */
  uint8_t missed_pongs;
  uint8_t kind;
} ws_conn_t;

static wsc_pool_t g_ws_pool = WSC_POOL_INIT(ws_conn_t);
static const wsc_config_t *g_config;
static chat_server_t *g_chat;
/* Heartbeat rounds: one global clock instead of a timer per connection. */
static uint32_t g_round;
static int64_t g_round_at;

void ws_transport_init(const wsc_config_t *config, chat_server_t *chat) {
  g_config = config;
  g_chat = chat;
  g_round_at = wsc_mono_ms();
}

/* --- sending ------------------------------------------------------------------ */

static void start_close(ws_conn_t *w, uint16_t code, const char *reason) {
  if (!ws_session_can_send(&w->session)) return;
  w->deadline = wsc_mono_ms() + NET_CLOSE_GRACE_MS;
  ws_session_close(&w->session, code, reason);
}

static void cut_off_slow_consumer(ws_conn_t *w) {
  wsc_metrics.slow_consumers_dropped++;
  char peer[64];
  net_conn_peer(w->net, peer, sizeof peer);
  LOG_WARN("ws", "slow consumer cut off peer=%s queued=%zu", peer, w->net->queued);
  /* Its queue is full, so no closing handshake can complete in time:
   * queue the close frame, stop reading (nothing it sends matters now),
   * and let net flush what it can and close, or abort at the grace
   * deadline. The chat client is detached when the connection closes. */
  start_close(w, WS_CLOSE_TRY_AGAIN, "send queue limit exceeded");
  net_conn_pause(w->net);
  net_conn_close(w->net);
}

/* Queues a chat frame with one of net's enqueue functions; a refusal means
 * the client is over its send-queue limit and is cut off. */
static int chat_queue(ws_conn_t *w, wsc_buf_t *msg, int (*enqueue)(net_conn_t *, wsc_buf_t *)) {
  if (!ws_session_can_send(&w->session)) return 0;
  if (enqueue(w->net, msg) != 0) {
    cut_off_slow_consumer(w);
    return -1;
  }
  wsc_metrics.ws_messages_out++;
  return 0;
}

/* A reply is accepted whole unless the queue is already over its limit
 * (see chat_transport_ops_t). */
static int enqueue_reply(net_conn_t *c, wsc_buf_t *msg) {
  return c->queued > g_config->send_queue_limit ? -1 : net_conn_send_force(c, msg);
}

/* send: a room message shared with the other recipients; notify: presence
 * or typing, sent lazily; reply: the answer to the client's own request. */
static int chat_send(void *ud, wsc_buf_t *msg) { return chat_queue(ud, msg, net_conn_send); }
static int chat_notify(void *ud, wsc_buf_t *msg) { return chat_queue(ud, msg, net_conn_send_lazy); }
static int chat_reply(void *ud, wsc_buf_t *msg) { return chat_queue(ud, msg, enqueue_reply); }

static void chat_close(void *ud, int code, const char *reason) {
  start_close(ud, (uint16_t)code, reason);
}

static const chat_transport_ops_t chat_ops = {.send = chat_send, .reply = chat_reply, .notify = chat_notify,
                                               .close = chat_close};

static void echo_message(ws_conn_t *w, int opcode, const uint8_t *data, size_t len) {
  size_t hlen = ws_frame_header_size(len);
  wsc_buf_t *b = wsc_buf_new(hlen, len);
  if (!b) {
    start_close(w, WS_CLOSE_INTERNAL, "out of memory");
    return;
  }
  if (len) memcpy(wsc_buf_bytes(b), data, len);
  b->len = (uint32_t)len;
  ws_frame_write_header(wsc_buf_prepend(b, hlen), 1, opcode, len);
  /* An echo is always queued (a 16 MiB echo must fit a 1 MiB queue); past
   * the limit we stop reading the peer until it has taken its echoes, so
   * the queue stays near the limit. A peer that takes nothing for
   * STALL_LIMIT_MS is cut off by the tick. */
  if (net_conn_send_force(w->net, b) == 0) {
    wsc_metrics.ws_messages_out++;
    if (w->net->queued > g_config->send_queue_limit && !net_conn_in_backpressure(w->net)) {
      net_conn_backpressure(w->net);
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
  if (len && (data[0] & 0x0f) == WS_OP_PONG && w->net->queued > g_config->send_queue_limit) {
    cut_off_slow_consumer(w);
    return;
  }
  net_conn_send_copy(w->net, data, len);
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
  if (code == WS_CLOSE_PROTOCOL_ERROR || code == WS_CLOSE_INVALID_DATA || code == WS_CLOSE_TOO_BIG)
    wsc_metrics.ws_protocol_errors++;
  /* The closing handshake is over: the name and rooms are free now, even
   * if the TCP close takes a moment. */
  detach_chat(w);
  net_conn_close(w->net);
}

static const ws_session_cb_t session_cb = {
    .on_message = on_message,
    .on_write = on_write,
    .on_pong = on_pong,
    .on_closed = on_closed,
};

/* --- net handler ------------------------------------------------------------------ */

static void ws_on_data(net_conn_t *c, uint8_t *data, size_t len) {
  ws_conn_t *w = c->ud;
  ws_session_feed(&w->session, data, len);
}

static void heartbeat(ws_conn_t *w, int64_t now) {
  if (g_config->ping_interval_ms <= 0) return;
  if (now - g_round_at >= g_config->ping_interval_ms) {
    g_round++;
    g_round_at = now;
  }
  if (w->pinged_round == g_round) return;
  w->pinged_round = g_round;
  if (w->missed_pongs >= MISSED_PONGS_LIMIT) {
    LOG_INFO("ws", "heartbeat timeout missed_pongs=%d", w->missed_pongs);
    detach_chat(w);
    net_conn_abort(w->net);
    return;
  }
  uint8_t frame[WS_MAX_SERVER_HEADER];
  size_t n = ws_build_frame(frame, WS_OP_PING, NULL, 0);
  net_conn_send_copy(w->net, frame, n);
  w->missed_pongs++;
}

static void ws_on_tick(net_conn_t *c, int64_t now) {
  ws_conn_t *w = c->ud;
  if (!ws_session_can_send(&w->session)) {
    if (w->deadline && now >= w->deadline) {
      detach_chat(w);
      net_conn_abort(c);
    }
    return;
  }
  if (net_conn_in_backpressure(c) && now >= w->deadline) {
    cut_off_slow_consumer(w);
    return;
  }
  heartbeat(w, now);
}

static void ws_on_shutdown(net_conn_t *c) {
  start_close(c->ud, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void ws_on_close(net_conn_t *c) {
  ws_conn_t *w = c->ud;
  if (!w) return;
  detach_chat(w);
  ws_session_free(&w->session);
  wsc_metrics.websockets_open--;
  wsc_pool_free(&g_ws_pool, w);
}

static const net_handler_t ws_net_handler = {
    .on_data = ws_on_data,
    .on_tick = ws_on_tick,
    .on_shutdown = ws_on_shutdown,
    .on_close = ws_on_close,
};

int ws_transport_start(net_conn_t *c, ws_kind_t kind, const chat_connect_params_t *params,
                       uint8_t *rest, size_t rest_len) {
  ws_conn_t *w = wsc_pool_alloc(&g_ws_pool);
  if (!w) {
    net_conn_abort(c);
    return -1;
  }
  w->net = c;
  w->kind = (uint8_t)kind;
  w->pinged_round = g_round;
  size_t limit = kind == WS_KIND_ECHO ? g_config->max_message : g_config->max_chat_message;
  ws_session_init(&w->session, &session_cb, w, limit);
  c->handler = &ws_net_handler;
  c->ud = w;
  wsc_metrics.websockets_open++;
  if (kind == WS_KIND_CHAT) {
    w->chat = chat_client_attach(g_chat, &chat_ops, w, params);
    if (!w->chat) {
      start_close(w, WS_CLOSE_INTERNAL, "out of memory");
      return -1;
    }
  }
  if (rest_len && !net_conn_is_closing(c)) ws_session_feed(&w->session, rest, rest_len);
  return 0;
}
