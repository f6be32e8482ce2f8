/* chat/order — a room's stored messages reach this node's members in id
 * order, each exactly once, whichever node stored them.
 *
 * Messages arrive from this node's appends (the store callback) and from
 * other nodes (the bus's deliver_msg), in any interleaving. Per room the
 * node keeps the last id it delivered (room->last_id). The next id is
 * delivered at once; an id already delivered is dropped; an id beyond the
 * next one means messages are missing (a node's publish arrived before
 * another's, or the link to the bus broke): nothing more is delivered from
 * the live stream until a store read (store_join after last_id) has
 * brought the room up to date — a refill. The same refill runs when a
 * subscription becomes active (again) and after a lost link.
 *
 * A member joining reads its replay itself (handlers.c); its read reports
 * the room's last id X at the time. Live messages skip a member while it
 * replays and, after, those with id <= its floor (= X): so a member never
 * sees a message twice. If the node delivered beyond X meanwhile, the
 * member catches up with more reads before it goes live: no gap either.
 * With one SQLite node none of this triggers (ids arrive in order, reads
 * are in FIFO order with appends); the code is the same for both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "chat/internal.h"

#define LOG_COMP "chat"

chat_err_t chat_store_err(int status) {
  return status == STORE_EUNAVAILABLE ? CHAT_ERR_UNAVAILABLE : CHAT_ERR_INTERNAL;
}

/* Sends buf (message `id`) to every live member of r not already past it. */
static void deliver_to_members(chat_server_t *srv, chat_room_t *r, wsc_buf_t *buf, int64_t id) {
  chat_enter(srv);
  for (uint32_t i = 0; i < r->n; i++) {
    chat_client_t *c = r->members[i];
    chat_membership_t *m = &chat_rooms(c)[r->member_mi[i]];
    if (m->replaying || id <= m->floor || !chat_client_active(c)) continue;
    if (c->ops->send(c->ud, buf) < 0) c->send_failed = 1;
    else wsc_metrics.chat_messages_out++;
  }
  chat_leave(srv);
}

/* r->last_id + 1 == m->id: deliver and advance. */
static void deliver_next(chat_server_t *srv, chat_room_t *r, const store_msg_t *m) {
  r->last_id = m->id;
  if (r->want < r->last_id) r->want = r->last_id;
  wsc_buf_t *buf = chat_enc_message(&srv->jw, m);
  if (!buf) return;
  deliver_to_members(srv, r, buf, m->id);
  wsc_buf_unref(buf);
}

void chat_room_accept(chat_server_t *srv, chat_room_t *r, const store_msg_t *m) {
  if (r->last_id >= 0 && m->id <= r->last_id) return;          /* already delivered */
  if (r->last_id >= 0 && m->id == r->last_id + 1 && !r->refilling) {
    deliver_next(srv, r, m);
    return;
  }
  /* A gap (or last_id unknown, or a refill already reading): the store has
   * it all; read it rather than buffer here. */
  if (m->id > r->want) r->want = m->id;
  chat_room_refill(srv, r);
}

typedef struct refill_op {
  chat_server_t *srv;
  char room[CHAT_ROOM_MAX + 1];
} refill_op_t;

void chat_room_reset(chat_server_t *srv, chat_room_t *r, int64_t last_id, const char *epoch) {
  LOG_WARN(LOG_COMP, "room history reset room=%s old_epoch=%s epoch=%s members=%u", r->name,
           r->epoch, epoch ? epoch : "", r->n);
  r->last_id = r->want = last_id;
  snprintf(r->epoch, sizeof r->epoch, "%s", epoch ? epoch : "");
  chat_enter(srv);
  for (uint32_t i = 0; i < r->n; i++) {
    chat_client_t *c = r->members[i];
    if (chat_client_active(c)) c->ops->close(c->ud, 1012, "room history was reset; join again");
  }
  chat_leave(srv);
}

/* A chunk of a long refill (plain rows after last_id). */
static void on_refill_rows(void *ud, int status, const store_msg_t *rows, size_t n, int more) {
  refill_op_t *op = ud;
  chat_server_t *srv = op->srv;
  chat_room_t *r = srv->freeing ? NULL : chat_room_get(srv, op->room, strlen(op->room));
  if (r) {
    r->refilling = 0;
    if (status < 0) {
      LOG_WARN(LOG_COMP, "refill failed room=%s status=%d", r->name, status);
    } else {
      for (size_t i = 0; i < n; i++)
        if (rows[i].id > r->last_id) deliver_next(srv, r, &rows[i]);
      if (more || r->want > r->last_id) chat_room_refill(srv, r);
    }
  }
  free(op);
  chat_server_op_done(srv);
}

static void on_refill(void *ud, int status, const store_msg_t *rows, size_t n,
                      const store_join_info_t *info) {
  refill_op_t *op = ud;
  chat_server_t *srv = op->srv;
  chat_room_t *r = srv->freeing ? NULL : chat_room_get(srv, op->room, strlen(op->room));
  if (r) {
    r->refilling = 0;
    if (status < 0) {
      /* The link broke: `reconnected` and `subscribed` bring us back. */
      LOG_WARN(LOG_COMP, "refill failed room=%s status=%d", r->name, status);
    } else if (info->recovered != 1 && strcmp(info->epoch, r->epoch) == 0 && info->last_id >= r->last_id) {
      /* Same history, only far behind (more than a replay): read it in
       * chunks rather than give up on the members. */
      if (info->last_id > r->want) r->want = info->last_id;
      r->refilling = 1;
      if (store_fetch_after(srv->store, r->name, r->last_id, srv->cfg->replay_max, on_refill_rows, op) == 0)
        return;
      r->refilling = 0;
    } else if (info->recovered != 1) {
      chat_room_reset(srv, r, info->last_id, info->epoch);
    } else {
      for (size_t i = 0; i < n; i++)
        if (rows[i].id > r->last_id) deliver_next(srv, r, &rows[i]);
      if (info->last_id > r->last_id) r->last_id = info->last_id;
      if (r->want > r->last_id) chat_room_refill(srv, r);
    }
  }
  free(op);
  chat_server_op_done(srv);
}

void chat_room_refill(chat_server_t *srv, chat_room_t *r) {
  if (r->last_id < 0) {           /* the first join read sets it, then refills */
    r->resync = 1;
    return;
  }
  if (r->refilling) return;
  refill_op_t *op = malloc(sizeof *op);
  if (!op) return;
  op->srv = srv;
  snprintf(op->room, sizeof op->room, "%s", r->name);
  r->refilling = 1;
  r->resync = 0;
  srv->pending++;
  int rc = store_join(srv->store, r->name, r->last_id, r->epoch, strlen(r->epoch), srv->cfg->replay_max,
                      0, on_refill, op);
  if (rc < 0) {
    r->refilling = 0;
    r->resync = 1;
    free(op);
    chat_server_op_done(srv);
  }
}

/* ---- the bus's node events (bus_handler_t) -------------------------------- */

static void on_bus_msg(void *ud, const store_msg_t *m) {
  chat_server_t *srv = ud;
  if (srv->freeing) return;
  chat_room_t *r = chat_room_get(srv, m->room, strlen(m->room));
  if (r) chat_room_accept(srv, r, m);
}

static void on_bus_subscribed(void *ud, const char *room) {
  chat_server_t *srv = ud;
  if (srv->freeing) return;
  chat_room_t *r = chat_room_get(srv, room, strlen(room));
  if (r) chat_room_refill(srv, r);
}

static void on_bus_reconnected(void *ud) {
  chat_server_t *srv = ud;
  if (srv->freeing || !srv->bus) return;
  for (uint32_t i = 0; i < srv->rooms.cap; i++)
    if (srv->rooms.vals[i]) bus_subscribe(srv->bus, ((chat_room_t *)srv->rooms.vals[i])->name);
}

void chat_server_bus_handler(chat_server_t *srv, bus_handler_t *h) {
  h->deliver = chat_server_deliver;
  h->deliver_msg = on_bus_msg;
  h->subscribed = on_bus_subscribed;
  h->reconnected = on_bus_reconnected;
  h->ud = srv;
}

int chat_server_healthy(const chat_server_t *srv) { return !srv->bus || bus_healthy(srv->bus); }
