/* bus/redis — see redis.h. */
#include "bus/redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "msg/outbuf.h"
#include "store/redis.h"

#define CHANNEL_MAX (sizeof STORE_REDIS_KEY_PREFIX + 64 + 2)
#define ROOM_MAX 64
#define NODE_HEX 16

typedef struct rbus {
  bus_t base;
  wsc_redis_t *link;
  bus_handler_t h;
  char *scratch;        /* "e<node> " + json */
  size_t scratch_cap;
} rbus_t;

static void channel_of(char *out, const char *room) {
  snprintf(out, CHANNEL_MAX, STORE_REDIS_KEY_PREFIX "%s}", room);
}

/* "wschat:{ROOM}" -> ROOM in out (NUL-terminated); -1 if not ours. */
static int room_of(const char *ch, size_t len, char out[ROOM_MAX + 1]) {
  size_t pre = sizeof STORE_REDIS_KEY_PREFIX - 1;
  if (len < pre + 2 || memcmp(ch, STORE_REDIS_KEY_PREFIX, pre) != 0 || ch[len - 1] != '}') return -1;
  size_t n = len - pre - 1;
  if (n > ROOM_MAX) return -1;
  memcpy(out, ch + pre, n);
  out[n] = '\0';
  return 0;
}

static int rbus_publish(bus_t *b, const char *room, wsc_buf_t *msg) {
  rbus_t *rb = (rbus_t *)b;
  if (!room || !msg) return -1;
  b->deliver(b->ud, room, msg);
  if (!wsc_redis_is_up(rb->link)) return 0;   /* events are for who is connected now */
  size_t jlen = outbuf_json_len(msg), need = 1 + NODE_HEX + 1 + jlen;
  if (need > rb->scratch_cap) {
    char *p = realloc(rb->scratch, need);
    if (!p) return -1;
    rb->scratch = p;
    rb->scratch_cap = need;
  }
  rb->scratch[0] = 'e';
  memcpy(rb->scratch + 1, wsc_redis_node_id(rb->link), NODE_HEX);
  rb->scratch[1 + NODE_HEX] = ' ';
  memcpy(rb->scratch + 2 + NODE_HEX, outbuf_json(msg), jlen);
  char channel[CHANNEL_MAX];
  channel_of(channel, room);
  const char *argv[3] = {"PUBLISH", channel, rb->scratch};
  size_t lens[3] = {7, strlen(channel), need};
  return wsc_redis_command(rb->link, NULL, NULL, 3, argv, lens) < 0 ? -1 : 0;
}

static int rbus_subscribe(bus_t *b, const char *room) {
  char channel[CHANNEL_MAX];
  channel_of(channel, room);
  return wsc_redis_subscribe(((rbus_t *)b)->link, channel) < 0 ? -1 : 0;
}

static int rbus_unsubscribe(bus_t *b, const char *room) {
  char channel[CHANNEL_MAX];
  channel_of(channel, room);
  return wsc_redis_unsubscribe(((rbus_t *)b)->link, channel) < 0 ? -1 : 0;
}

static int rbus_healthy(const bus_t *b) { return wsc_redis_is_up(((const rbus_t *)b)->link); }

static void rbus_free(bus_t *b) {
  rbus_t *rb = (rbus_t *)b;
  wsc_redis_set_events(rb->link, 0, NULL);
  free(rb->scratch);
  free(rb);
}

static const bus_ops_t rbus_ops = {
  .publish = rbus_publish,
  .subscribe = rbus_subscribe,
  .unsubscribe = rbus_unsubscribe,
  .healthy = rbus_healthy,
  .free = rbus_free,
};

/* ---- from the link --------------------------------------------------------- */

static void on_up(void *ud) {
  rbus_t *rb = ud;
  if (rb->h.reconnected) rb->h.reconnected(rb->h.ud);
}

static void on_subscribed(void *ud, const char *ch, size_t len) {
  rbus_t *rb = ud;
  char room[ROOM_MAX + 1];
  if (room_of(ch, len, room) == 0 && rb->h.subscribed) rb->h.subscribed(rb->h.ud, room);
}

/* Reads a decimal number ending in ' ' at *p; advances past the space. */
static int read_num(const char **p, const char *end, int64_t *out) {
  int64_t v = 0;
  const char *q = *p;
  if (q == end || *q < '0' || *q > '9') return -1;
  while (q < end && *q >= '0' && *q <= '9') {
    if (v > (INT64_MAX - 9) / 10) return -1;
    v = v * 10 + (*q++ - '0');
  }
  if (q == end || *q != ' ') return -1;
  *p = q + 1;
  *out = v;
  return 0;
}

static void on_message(void *ud, const char *ch, size_t chlen, const char *payload, size_t len) {
  rbus_t *rb = ud;
  char room[ROOM_MAX + 1];
  if (len < 1 || room_of(ch, chlen, room) < 0) return;
  const char *p = payload + 1, *end = payload + len;
  if (payload[0] == 'm') {
    /* One or more records: m<id> <ts> <from bytes> <text bytes> <from><text> */
    const char *q = payload;
    while (q < end && *q == 'm') {
      p = q + 1;
      int64_t id, ts, from_len, text_len;
      if (read_num(&p, end, &id) < 0 || read_num(&p, end, &ts) < 0 || read_num(&p, end, &from_len) < 0 ||
          read_num(&p, end, &text_len) < 0 || from_len > 4096 || from_len > end - p ||
          text_len > end - p - from_len) {
        LOG_WARN("bus", "malformed message payload channel=%.*s", (int)chlen, ch);
        return;
      }
      char from[4097];
      memcpy(from, p, (size_t)from_len);
      from[from_len] = '\0';
      store_msg_t m = {.room = room, .id = id, .from = from, .text = p + from_len,
                       .text_len = (size_t)text_len, .ts = ts};
      if (rb->h.deliver_msg) rb->h.deliver_msg(rb->h.ud, &m);
      q = p + from_len + text_len;
    }
  } else if (payload[0] == 'e') {
    if (len < 2 + NODE_HEX || payload[1 + NODE_HEX] != ' ') return;
    if (memcmp(payload + 1, wsc_redis_node_id(rb->link), NODE_HEX) == 0) return;   /* ours: delivered */
    wsc_buf_t *b = outbuf_text(payload + 2 + NODE_HEX, len - 2 - NODE_HEX);
    if (!b) return;
    rb->base.deliver(rb->base.ud, room, b);
    wsc_buf_unref(b);
  }
}

bus_t *bus_redis_new(wsc_redis_t *link, const bus_handler_t *h) {
  if (!link || !h || !h->deliver) return NULL;
  rbus_t *rb = calloc(1, sizeof *rb);
  if (!rb) return NULL;
  rb->base.ops = &rbus_ops;
  rb->base.deliver = h->deliver;
  rb->base.ud = h->ud;
  rb->link = link;
  rb->h = *h;
  wsc_redis_events_t ev = {.up = on_up, .subscribed = on_subscribed, .message = on_message, .ud = rb};
  wsc_redis_set_events(link, 0, &ev);
  return &rb->base;
}
