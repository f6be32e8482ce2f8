/* chat/handlers — what each client message does (after chat/proto has
 * parsed and validated it), and the store callbacks that finish `send`,
 * `join` and `history`.
 *
 * Joining without missing or duplicating a message: the store runs appends
 * and reads strictly in the order they were issued. A joiner is added to
 * the room at once but marked `replaying`; broadcasts skip it. Its fetch is
 * issued now, so it sees every message appended before the join and none
 * appended after; the callbacks of earlier appends (whose broadcasts the
 * joiner skipped) run before the fetch callback, the later ones after it.
 * The fetch callback sends `joined` and the replay, then the member is
 * live. Exact, with no buffering.
 *
 * Store operations carry a chat_op_t holding a reference to the client
 * (the connection may be gone by the callback) and the server's count of
 * operations in flight (the server may be freed before them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "chat/internal.h"
#include "msg/outbuf.h"

typedef struct chat_op {
  chat_server_t *srv;
  chat_client_t *c;         /* one reference held */
  json_t *ref;              /* one reference held, or NULL */
  int64_t last_id;          /* join: the room's last id when the fetch was issued */
  uint32_t gen;             /* join: the membership it belongs to */
  int recovered;            /* join: -1 (no since), 0, 1 */
  int64_t since;            /* join: since (-1: none) */
  char *epoch;              /* join: the client's epoch (copy), or NULL */
  size_t epoch_len;
  char **others;            /* join: member names on other nodes (copies) */
  size_t n_others;
  int64_t t0_ns;            /* send: when it arrived (delivery latency) */
  char room[CHAT_ROOM_MAX + 1];
  char name[CHAT_NAME_MAX_BYTES + 1];   /* hello: the new name; dm: the recipient */
} chat_op_t;

static chat_op_t *op_new(chat_client_t *c, const char *room, const json_t *ref) {
  chat_op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->srv = c->srv;
  op->c = c;
  c->refs++;
  if (ref) op->ref = json_incref((json_t *)ref);
  snprintf(op->room, sizeof op->room, "%s", room);
  op->srv->pending++;
  return op;
}

static void op_release(chat_op_t *op) {
  chat_server_t *srv = op->srv;
  if (op->ref) json_decref(op->ref);
  for (size_t i = 0; i < op->n_others; i++) free(op->others[i]);
  free(op->others);
  free(op->epoch);
  chat_client_unref(op->c);
  free(op);
  chat_server_op_done(srv);
}

/* c's membership of the named room, or -1. */
static int membership(chat_client_t *c, const char *room, size_t len, chat_room_t **out) {
  chat_room_t *r = chat_room_get(c->srv, room, len);
  if (out) *out = r;
  return r ? chat_find_membership(c, r) : -1;
}

static void send_store_error(chat_client_t *c, int status, const char *what, const json_t *ref) {
  chat_err_t e = chat_store_err(status);
  chat_send_error(c, e, e == CHAT_ERR_UNAVAILABLE ? "the shared store is unreachable; try again" : what, ref);
}

static void not_member(chat_client_t *c, const json_t *ref) {
  chat_send_error(c, CHAT_ERR_NOT_MEMBER, "you are not in that room", ref);
}

/* ---- send ---------------------------------------------------------------- */

/* Token bucket: `rate` per second, burst of twice that. */
static int rate_ok(chat_client_t *c) {
  double rate = c->srv->cfg->rate_limit;
  if (rate <= 0) return 1;
  double burst = 2 * rate < 1 ? 1 : 2 * rate;
  int64_t now = wsc_mono_ms();
  c->tokens += (float)((double)(now - c->tokens_ms) * rate / 1000.0);
  if (c->tokens > burst) c->tokens = burst;
  c->tokens_ms = now;
  if (c->tokens < 1) return 0;
  c->tokens -= 1;
  return 1;
}

static void on_appended(void *ud, int status, const store_msg_t *msg) {
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  if (!srv->freeing) {
    chat_enter(srv);
    if (status == 0) {
      wsc_metrics.chat_messages_in++;
      /* The sender's ack goes before its own copy of the message. */
      if (chat_client_active(op->c))
        chat_send_own(op->c, chat_enc_ack(&srv->jw, op->ref, msg->room, msg->id));
      /* Other nodes get it from the store; this node delivers it here, in
       * id order (order.c). */
      chat_room_t *r = chat_room_get(srv, msg->room, strlen(msg->room));
      if (r) chat_room_accept(srv, r, msg);
      wsc_hist_observe_ns(&wsc_metrics.delivery_seconds, wsc_mono_ns() - op->t0_ns);
    } else {
      send_store_error(op->c, status, "the message could not be stored", op->ref);
    }
    chat_leave(srv);
  }
  op_release(op);
}

static void do_send(chat_client_t *c, const char *room, size_t room_len, const char *text,
                    size_t len, const json_t *ref) {
  chat_server_t *srv = c->srv;
  chat_room_t *r;
  if (membership(c, room, room_len, &r) < 0) { not_member(c, ref); return; }
  if (!rate_ok(c)) {
    chat_send_error(c, CHAT_ERR_RATE_LIMITED, "too many messages; slow down", ref);
    return;
  }
  chat_op_t *op = op_new(c, r->name, ref);
  if (!op) { chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", ref); return; }
  op->t0_ns = wsc_mono_ns();
  store_msg_t m = {
      .room = r->name, .from = chat_client_name(c), .text = text, .text_len = len, .ts = wsc_now_ms(),
  };
  int64_t rc = store_append(srv->store, &m, on_appended, op);
  if (rc < 0) {
    send_store_error(c, (int)rc, "the message could not be stored", ref);
    op_release(op);
  }
}

void chat_handle_plain(chat_client_t *c, const char *text, size_t len) {
  chat_err_t e = chat_text_check(len, c->srv->cfg->max_text);
  if (e == CHAT_ERR_BAD_REQUEST) { chat_send_error(c, e, "text is empty", NULL); return; }
  if (e == CHAT_ERR_TOO_LARGE) { chat_send_error(c, e, "text is longer than the server allows", NULL); return; }
  do_send(c, c->endpoint_room, strlen(c->endpoint_room), text, len, NULL);
}

/* ---- join and leave ------------------------------------------------------ */

/* joined.members: this node's members, then those of other nodes. */
typedef struct members_view {
  chat_room_t *r;
  const chat_op_t *op;
} members_view_t;

static const char *member_name_at(void *ud, size_t i, size_t *len) {
  members_view_t *v = ud;
  const char *name;
  if (i < v->r->n) {
    const chat_session_t *s = v->r->members[i]->session;
    if (s && s->name) {
      *len = s->name_len;
      return s->name;
    }
    name = chat_client_name(v->r->members[i]);
  } else {
    name = v->op->others[i - v->r->n];
  }
  *len = strlen(name);
  return name;
}

static void join_live(chat_client_t *c, chat_membership_t *m, int64_t upto) {
  m->floor = upto;
  if (m->replaying) m->replaying--;
}

/* A member whose replay ended at op->last_id while the node delivered
 * beyond it: more rows for it alone, then live (order.c). */
static void on_catch_up_rows(void *ud, int status, const store_msg_t *rows, size_t n, int more) {
  (void)more;
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  chat_client_t *c = op->c;
  if (!srv->freeing && c->state == CHAT_CLIENT_LIVE) {
    chat_enter(srv);
    chat_room_t *r;
    int mi = membership(c, op->room, strlen(op->room), &r);
    if (mi >= 0 && chat_rooms(c)[mi].gen == op->gen) {
      if (status < 0) n = 0;
      for (size_t i = 0; i < n; i++) {
        chat_send_own(c, chat_enc_message(&srv->jw, &rows[i]));
        op->last_id = rows[i].id;
      }
      wsc_metrics.chat_messages_out += n;
      if (status < 0 || n == 0 || op->last_id >= r->last_id) {
        /* Done (or the store cannot say more): live from here. */
        join_live(c, &chat_rooms(c)[mi], op->last_id > r->last_id ? op->last_id : r->last_id);
      } else {
        if (store_fetch_after(srv->store, r->name, op->last_id, srv->cfg->replay_max, on_catch_up_rows, op) == 0) {
          chat_leave(srv);
          return;   /* the op lives on for one more read */
        }
        join_live(c, &chat_rooms(c)[mi], r->last_id);
      }
    }
    chat_leave(srv);
  }
  op_release(op);
}

static void on_join_rows(void *ud, int status, const store_msg_t *rows, size_t n,
                         const store_join_info_t *info) {
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  chat_client_t *c = op->c;
  if (!srv->freeing && c->state == CHAT_CLIENT_LIVE) {
    chat_enter(srv);
    chat_room_t *r;
    int mi = membership(c, op->room, strlen(op->room), &r);
    /* A leave (and maybe a new join) since: this fetch is stale. */
    if (mi >= 0 && chat_rooms(c)[mi].gen == op->gen) {
      if (status < 0 && r->last_id < 0) {
        /* Nothing known of the room (the shared store is unreachable). */
        send_store_error(c, status, "history is unavailable", NULL);
        chat_do_leave(c, (uint32_t)mi);
        chat_leave(srv);
        op_release(op);
        return;
      }
      int64_t last = status < 0 ? r->last_id : info->last_id;
      const char *epoch = status < 0 ? r->epoch : info->epoch;
      if (status == 0) {
        if (r->last_id < 0) {
          r->last_id = info->last_id;
          if (r->want < r->last_id) r->want = r->last_id;
          snprintf(r->epoch, sizeof r->epoch, "%s", info->epoch);
        } else if (strcmp(r->epoch, info->epoch) != 0) {
          if (r->epoch[0]) {
            chat_room_reset(srv, r, info->last_id, info->epoch);
          } else {
            snprintf(r->epoch, sizeof r->epoch, "%s", info->epoch);
          }
        }
        if (r->resync || r->want > r->last_id) chat_room_refill(srv, r);
      }
      chat_membership_t *m = &chat_rooms(c)[mi];
      int recovered = op->recovered < 0 ? -1 : status < 0 ? 0 : info->recovered;
      if (status < 0) {
        send_store_error(c, status, "history is unavailable", NULL);
        n = 0;
      }
      /* joined and its replay leave as one reply (consecutive frames in
       * one buffer), so the transport judges the burst once. */
      wsc_buf_t **parts = malloc((n + 1) * sizeof *parts);
      if (parts) {
        size_t np = 0;
        members_view_t view = {r, op};
        int cached = r->held && !op->n_others;   /* a storm: the room's list (room.c) */
        if (cached) {
          if (r->names_n > r->n) chat_room_names_reset(r);
          chat_jw_names(&r->names, member_name_at, &view, r->names_n, r->n);   /* names added since */
          r->names_n = r->n;
          if (r->names.oom) {
            chat_room_names_reset(r);
            cached = 0;
          }
        }
        parts[np++] = cached ? chat_enc_joined_list(&srv->jw, r->name, r->names.p, r->names.len, last, epoch, recovered)
                             : chat_enc_joined(&srv->jw, r->name, member_name_at, &view, r->n + op->n_others, last,
                                               epoch, recovered);
        for (size_t i = 0; i < n; i++) parts[np++] = chat_enc_message(&srv->jw, &rows[i]);
        chat_send_own(c, outbuf_concat(parts, np));
        for (size_t i = 0; i < np; i++) wsc_buf_unref(parts[i]);
        free(parts);
        wsc_metrics.chat_messages_out += n;
      } else {
        chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", NULL);
      }
      if (last >= r->last_id || status < 0) {
        join_live(c, m, last > r->last_id ? last : r->last_id);
      } else {
        /* The node delivered (last, r->last_id] while this read ran. */
        op->last_id = last;
        if (store_fetch_after(srv->store, r->name, last, srv->cfg->replay_max, on_catch_up_rows, op) == 0) {
          chat_leave(srv);
          return;   /* the op goes on */
        }
        join_live(c, m, r->last_id);
      }
    }
    chat_leave(srv);
  }
  op_release(op);
}

static void join_read(chat_op_t *op) {
  chat_server_t *srv = op->srv;
  int rc = store_join(srv->store, op->room, op->since, op->epoch, op->epoch_len, srv->cfg->replay_max,
                      srv->lim.history_default, on_join_rows, op);
  if (rc < 0) on_join_rows(op, rc, NULL, 0, NULL);
}

/* The directory has the new member: presence join with the cluster's
 * count, then the read for joined and the replay. */
static void on_dir_joined(void *ud, int status, int64_t count, const char *const *others, size_t n) {
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  chat_client_t *c = op->c;
  chat_room_t *r;
  int mi;
  if (srv->freeing || c->state != CHAT_CLIENT_LIVE || (mi = membership(c, op->room, strlen(op->room), &r)) < 0 ||
      chat_rooms(c)[mi].gen != op->gen) {
    op_release(op);
    return;
  }
  chat_enter(srv);
  if (status == 0 && n > 0 && (op->others = calloc(n, sizeof *op->others))) {
    for (size_t i = 0; i < n; i++)
      if ((op->others[op->n_others] = strdup(others[i]))) op->n_others++;
  }
  int64_t total = status == 0 && count >= 0 ? count : (int64_t)r->n;
  chat_broadcast(srv, r->name, chat_enc_presence(&srv->jw, r->name, "join", chat_client_name(c), NULL, (size_t)total), c);
  chat_leave(srv);
  join_read(op);
}

void chat_do_join(chat_client_t *c, const char *room, size_t room_len, int has_since,
                  int64_t since, const char *epoch, size_t epoch_len) {
  chat_server_t *srv = c->srv;
  chat_room_t *r = chat_room_get_or_create(srv, room, room_len);
  if (!r) { chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", NULL); return; }
  int mi = chat_find_membership(c, r);
  int fresh = mi < 0;
  if (fresh) {
    if ((mi = chat_room_add(r, c)) < 0) {
      if (!r->n) chat_room_free(srv, r);
      { chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", NULL); return; }
    }
    chat_rooms(c)[mi].replaying = 1;
  } else {
    chat_client_fill(c);             /* what it is owed comes before its new joined */
    chat_rooms(c)[mi].replaying++;   /* a re-join: joined again, no presence */
  }

  chat_op_t *op = op_new(c, r->name, NULL);
  if (op && epoch && !(op->epoch = malloc(epoch_len + 1))) {
    op_release(op);
    op = NULL;
  }
  if (!op) {
    chat_rooms(c)[mi].replaying--;
    { chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", NULL); return; }
  }
  if (epoch) {
    memcpy(op->epoch, epoch, epoch_len);
    op->epoch[epoch_len] = '\0';
    op->epoch_len = epoch_len;
  }
  op->gen = chat_rooms(c)[mi].gen;
  op->recovered = has_since ? 0 : -1;
  op->since = has_since ? since : -1;
  if (!fresh) {
    join_read(op);
    return;
  }
  int rc = dir_join(srv->dir, r->name, c->cid, chat_client_name(c), on_dir_joined, op);
  if (rc < 0) on_dir_joined(op, rc, -1, NULL, 0);
}

/* A presence event whose count the directory gives (leave, rename). */
typedef struct presence_op {
  chat_server_t *srv;
  const char *event;
  uint32_t here;           /* members left on this node */
  char room[CHAT_ROOM_MAX + 1];
  char name[CHAT_NAME_MAX_BYTES + 1];
  char old[CHAT_NAME_MAX_BYTES + 1];
} presence_op_t;

static void on_dir_presence(void *ud, int status, int64_t count, const char *const *others, size_t n) {
  presence_op_t *op = ud;
  chat_server_t *srv = op->srv;
  int64_t total = status == 0 && count >= 0 ? count : (int64_t)op->here;
  if (!srv->freeing && total > 0) {
    chat_enter(srv);
    chat_broadcast(srv, op->room, chat_enc_presence(&srv->jw, op->room, op->event, op->name,
                                                    op->old[0] ? op->old : NULL, (size_t)total), NULL);
    chat_leave(srv);
  }
  free(op);
  chat_server_op_done(srv);
}

/* Sends presence `event` for name (old: a rename's previous name) to room
 * once the directory has counted; here = this node's members. */
static presence_op_t *presence_op_new(chat_server_t *srv, const char *event, const char *room,
                                      const char *name, const char *old, uint32_t here) {
  presence_op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->srv = srv;
  op->event = event;
  op->here = here;
  snprintf(op->room, sizeof op->room, "%s", room);
  snprintf(op->name, sizeof op->name, "%s", name);
  if (old) snprintf(op->old, sizeof op->old, "%s", old);
  srv->pending++;
  return op;
}

void chat_do_leave(chat_client_t *c, uint32_t mi) {
  chat_server_t *srv = c->srv;
  char room[CHAT_ROOM_MAX + 1];
  snprintf(room, sizeof room, "%s", chat_rooms(c)[mi].room->name);
  uint32_t left = chat_room_remove(srv, c, mi);   /* may free the room */
  presence_op_t *op = presence_op_new(srv, "leave", room, chat_client_name(c), NULL, left);
  if (!op) return;
  int rc = dir_leave(srv->dir, room, c->cid, left == 0, on_dir_presence, op);
  if (rc < 0) on_dir_presence(op, rc, -1, NULL, 0);
}

void chat_rename_presence(chat_client_t *c, const char *room, const char *name, const char *old, uint32_t here) {
  chat_server_t *srv = c->srv;
  presence_op_t *op = presence_op_new(srv, "rename", room, name, old, here);
  if (!op) return;
  int rc = dir_rename(srv->dir, room, c->cid, name, on_dir_presence, op);
  if (rc < 0) on_dir_presence(op, rc, -1, NULL, 0);
}

/* ---- the message types --------------------------------------------------- */

static void on_hello_claimed(void *ud, int status, int taken) {
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  chat_client_t *c = op->c;
  if (!srv->freeing && chat_client_active(c) && c->session) {
    chat_enter(srv);
    chat_session_t *s = c->session;
    size_t len = strlen(op->name);
    chat_session_t *holder = wsc_hmap_get(&srv->names, op->name, len);
    if (status < 0) {
      send_store_error(c, status, "the name could not be changed", op->ref);
    } else if (taken || (holder && holder != s)) {
      char msg[64 + CHAT_NAME_MAX_BYTES];
      snprintf(msg, sizeof msg, "the name %s is in use", op->name);
      chat_send_error(c, CHAT_ERR_NAME_TAKEN, msg, op->ref);
    } else {
      char tok[CHAT_TOKEN_TEXT];
      chat_send_own(c, chat_enc_welcome(&srv->jw, op->name, chat_session_token(s, tok)));
      int same = s->name_len == len && memcmp(s->name, op->name, len) == 0;
      if (!same && chat_rename(c, op->name, len) < 0)
        chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", op->ref);
    }
    chat_leave(srv);
  }
  op_release(op);
}

static void handle_hello(chat_client_t *c, chat_req_t *req) {
  chat_server_t *srv = c->srv;
  chat_session_t *s = c->session;
  char name[CHAT_NAME_MAX_BYTES + 1];
  snprintf(name, sizeof name, "%.*s", (int)req->name.len, req->name.p);
  chat_session_t *holder = wsc_hmap_get(&srv->names, req->name.p, req->name.len);
  if (holder && holder != s) {
    char msg[64 + CHAT_NAME_MAX_BYTES];
    snprintf(msg, sizeof msg, "the name %s is in use", name);
    { chat_send_error(c, CHAT_ERR_NAME_TAKEN, msg, req->ref); return; }
  }
  if (s->name_len == req->name.len && memcmp(s->name, req->name.p, req->name.len) == 0) {
    char tok[CHAT_TOKEN_TEXT];   /* the same name: nothing changes */
    chat_send_own(c, chat_enc_welcome(&srv->jw, name, chat_session_token(s, tok)));
    return;
  }
  /* The directory holds it for the whole cluster first. */
  chat_op_t *op = op_new(c, "", req->ref);
  if (!op) { chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", req->ref); return; }
  snprintf(op->name, sizeof op->name, "%s", name);
  char tok[CHAT_TOKEN_TEXT];
  int rc = dir_claim(srv->dir, chat_session_token(s, tok), name, c->cid, on_hello_claimed, op);
  if (rc < 0) on_hello_claimed(op, rc, 0);
}

static void handle_join(chat_client_t *c, chat_req_t *req) {
  /* Every room a connection is in costs memory and fan-out work: a bound
   * keeps one client from taking them from the others. */
  if (c->n_rooms >= CHAT_ROOMS_PER_CLIENT_MAX && membership(c, req->room.p, req->room.len, NULL) < 0) {
    chat_send_error(c, CHAT_ERR_TOO_MANY_ROOMS, "a connection may be in at most 100 rooms; leave one first", req->ref);
    return;
  }
  chat_do_join(c, req->room.p, req->room.len, req->has_since, req->since, req->epoch.p, req->epoch.len);
}

static void handle_leave(chat_client_t *c, chat_req_t *req) {
  int mi = membership(c, req->room.p, req->room.len, NULL);
  if (mi < 0) { not_member(c, req->ref); return; }
  char room[CHAT_ROOM_MAX + 1];
  snprintf(room, sizeof room, "%.*s", (int)req->room.len, req->room.p);
  chat_do_leave(c, (uint32_t)mi);
  chat_send_own(c, chat_enc_left(&c->srv->jw, room));
}

static void handle_typing(chat_client_t *c, chat_req_t *req) {
  chat_room_t *r;
  int mi = membership(c, req->room.p, req->room.len, &r);
  if (mi < 0) { not_member(c, req->ref); return; }
  uint32_t now = (uint32_t)wsc_mono_ms();
  if (now - chat_rooms(c)[mi].typing_ms < CHAT_TYPING_INTERVAL_MS) return;   /* dropped silently */
  chat_rooms(c)[mi].typing_ms = now;
  chat_broadcast(c->srv, r->name, chat_enc_typing(&c->srv->jw, r->name, chat_client_name(c)), c);
}

static void on_dm_sent(void *ud, int status, int delivered) {
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  if (!srv->freeing && chat_client_active(op->c)) {
    chat_enter(srv);
    if (status < 0) send_store_error(op->c, status, "the message could not be sent", op->ref);
    else if (!delivered) chat_send_error(op->c, CHAT_ERR_NO_SUCH_USER, "no user of that name is connected", op->ref);
    else chat_send_own(op->c, chat_enc_ack(&srv->jw, op->ref, NULL, -1));
    chat_leave(srv);
  }
  op_release(op);
}

static void handle_dm(chat_client_t *c, chat_req_t *req) {
  chat_server_t *srv = c->srv;
  const char *to = req->to.p;
  size_t to_len = req->to.len;
  while (to_len && *to == ' ') to++, to_len--;          /* names are stored trimmed */
  while (to_len && to[to_len - 1] == ' ') to_len--;
  if (chat_name_eq(to, to_len, c->session->name, c->session->name_len))
    { chat_send_error(c, CHAT_ERR_BAD_REQUEST, "you cannot send a dm to yourself", req->ref); return; }
  chat_session_t *s = wsc_hmap_get(&srv->names, to, to_len);
  if (s && chat_session_client(s)) {
    chat_send_own(chat_session_client(s), chat_enc_dm(&srv->jw, c->session->name, s->name, req->text.p, req->text.len, wsc_now_ms()));
    chat_send_own(c, chat_enc_ack(&srv->jw, req->ref, NULL, -1));
    return;
  }
  /* Not on this node: maybe on another (the directory knows). */
  chat_op_t *op = to_len <= CHAT_NAME_MAX_BYTES ? op_new(c, "", req->ref) : NULL;
  if (!op) { chat_send_error(c, CHAT_ERR_NO_SUCH_USER, "no user of that name is connected", req->ref); return; }
  snprintf(op->name, sizeof op->name, "%.*s", (int)to_len, to);
  int rc = dir_dm(srv->dir, op->name, c->session->name, req->text.p, req->text.len, wsc_now_ms(), on_dm_sent, op);
  if (rc < 0) on_dm_sent(op, rc, 0);
}

static void on_history_rows(void *ud, int status, const store_msg_t *rows, size_t n, int more) {
  chat_op_t *op = ud;
  chat_server_t *srv = op->srv;
  if (!srv->freeing && chat_client_active(op->c)) {
    chat_enter(srv);
    if (status < 0) send_store_error(op->c, status, "history is unavailable", op->ref);
    else chat_send_own(op->c, chat_enc_history(&srv->jw, op->room, rows, n, more));
    chat_leave(srv);
  }
  op_release(op);
}

static void handle_history(chat_client_t *c, chat_req_t *req) {
  chat_server_t *srv = c->srv;
  chat_room_t *r;
  if (membership(c, req->room.p, req->room.len, &r) < 0) { not_member(c, req->ref); return; }
  chat_op_t *op = op_new(c, r->name, req->ref);
  if (!op) { chat_send_error(c, CHAT_ERR_INTERNAL, "out of memory", req->ref); return; }
  if (req->has_before && req->before == 0) {   /* nothing is older than id 0 */
    on_history_rows(op, 0, NULL, 0, 0);
    return;
  }
  if (store_fetch_before(srv->store, r->name, req->before, req->limit, on_history_rows, op) < 0)
    on_history_rows(op, -1, NULL, 0, 0);
}

static void handle_ping(chat_client_t *c, chat_req_t *req) {
  chat_send_own(c, chat_enc_pong(&c->srv->jw, req->ref, wsc_now_ms()));
}

void chat_handle(chat_client_t *c, chat_req_t *req) {
  switch (req->type) {
    case CHAT_REQ_HELLO: handle_hello(c, req); break;
    case CHAT_REQ_JOIN: handle_join(c, req); break;
    case CHAT_REQ_LEAVE: handle_leave(c, req); break;
    case CHAT_REQ_SEND: do_send(c, req->room.p, req->room.len, req->text.p, req->text.len, req->ref); break;
    case CHAT_REQ_TYPING: handle_typing(c, req); break;
    case CHAT_REQ_DM: handle_dm(c, req); break;
    case CHAT_REQ_HISTORY: handle_history(c, req); break;
    case CHAT_REQ_PING: handle_ping(c, req); break;
    case CHAT_REQ_NONE: break;
  }
}
