/* chat/server — the connection manager's lifetime: server creation and
 * teardown, attaching and detaching clients, names and sessions, and the
 * fan-out of room events to local members (chat_server_deliver, called by
 * the bus).
 *
 * Re-entrancy: a transport may call chat_client_detach from inside one of
 * our ops calls (a send over the limit, a close). Detaching then would
 * reshuffle the member arrays being walked, so while chat code is on the
 * stack (srv->depth > 0) a detach only marks the client and is finished
 * when the outermost chat call returns.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "chat/internal.h"
#include "msg/outbuf.h"

#define CLIENTS_MIN_CAP 64
#define LOG_COMP "chat"

/* Every connection keeps a client and a session: pooled (base/pool.h). */
static wsc_pool_t g_client_pool = WSC_POOL_INIT(chat_client_t);
static wsc_pool_t g_session_pool = WSC_POOL_INIT(chat_session_t);

static const char MESSAGE_PREFIX[] = "{\"type\":\"message\"";

/* ---- small helpers ------------------------------------------------------- */

static int push_ptr(void ***arr, uint32_t *n, uint32_t *cap, void *p) {
  if (*n == *cap) {
    uint32_t ncap = *cap ? *cap * 2 : CLIENTS_MIN_CAP;
    void **a = realloc(*arr, (size_t)ncap * sizeof *a);
    if (!a) return -1;
    *arr = a;
    *cap = ncap;
  }
  (*arr)[(*n)++] = p;
  return 0;
}

static void random_bytes(unsigned char *p, size_t n) {
  if (RAND_bytes(p, (int)n) != 1) {
    /* OpenSSL's CSPRNG does not fail in practice; never hand out a
     * predictable token silently. */
    LOG_ERROR(LOG_COMP, "RAND_bytes failed");
    abort();
  }
}

const char *chat_client_name(const chat_client_t *c) { return c->session ? c->session->name : ""; }

int chat_client_active(const chat_client_t *c) {
  return c->state == CHAT_CLIENT_LIVE && !c->send_failed && !c->detach_deferred;
}

void chat_send(chat_client_t *c, wsc_buf_t *b) {
  if (!b || !chat_client_active(c)) return;
  if (c->ops->reply(c->ud, b) < 0) c->send_failed = 1;
}

void chat_send_own(chat_client_t *c, wsc_buf_t *b) {
  if (!b) return;
  chat_send(c, b);
  wsc_buf_unref(b);
}

void chat_send_error(chat_client_t *c, chat_err_t e, const char *msg, const json_t *ref) {
  if (!chat_client_active(c)) return;
  chat_send_own(c, chat_enc_error(&c->srv->jw, chat_err_code(e), msg, ref));
}

int chat_find_membership(const chat_client_t *c, const chat_room_t *room) {
  for (uint32_t i = 0; i < c->n_rooms; i++)
    if (c->rooms[i].room == room) return (int)i;
  return -1;
}

/* ---- fan-out ------------------------------------------------------------- */

void chat_server_deliver(void *ud, const char *room_name, wsc_buf_t *msg) {
  chat_server_t *srv = ud;
  if (srv->freeing) return;
  chat_room_t *room = chat_room_get(srv, room_name, strlen(room_name));
  if (!room) return;
  chat_enter(srv);
  int is_message = outbuf_json_len(msg) >= sizeof MESSAGE_PREFIX - 1 &&
                   memcmp(outbuf_json(msg), MESSAGE_PREFIX, sizeof MESSAGE_PREFIX - 1) == 0;
  for (uint32_t i = 0; i < room->n; i++) {
    chat_client_t *c = room->members[i].c;
    if (c == srv->exclude || c->rooms[room->members[i].mi].replaying || !chat_client_active(c))
      continue;
    /* Room events other than messages (presence, typing) may wait a few
     * ms to share a write: a join storm costs each member one write. */
    int rc = is_message ? c->ops->send(c->ud, msg) : c->ops->notify(c->ud, msg);
    if (rc < 0) c->send_failed = 1;
    else if (is_message) wsc_metrics.chat_messages_out++;
  }
  chat_leave(srv);
}

void chat_broadcast(chat_server_t *srv, const char *room, wsc_buf_t *b, chat_client_t *exclude) {
  if (!b) return;
  /* The exclusion works because the local bus delivers synchronously; a
   * remote node never has the excluded client among its members. */
  chat_client_t *saved = srv->exclude;
  srv->exclude = exclude;
  if (srv->bus) bus_publish(srv->bus, room, b);
  else chat_server_deliver(srv, room, b);
  srv->exclude = saved;
  wsc_buf_unref(b);
}

/* ---- names and sessions -------------------------------------------------- */

static int name_held(chat_server_t *srv, const char *name, size_t len) {
  return wsc_hmap_get(&srv->names, name, len) != NULL;
}

/* Sets the session's name (not yet held) to a copy of name[0..len). */
static int session_set_name(chat_session_t *s, const char *name, size_t len) {
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, name, len);
  copy[len] = '\0';
  free(s->name);
  s->name = copy;
  s->name_len = len;
  return 0;
}

static int hold_name(chat_server_t *srv, chat_session_t *s) {
  return wsc_hmap_put(&srv->names, s->name, s->name_len, s);
}

static void release_name(chat_server_t *srv, chat_session_t *s) {
  if (s->name && wsc_hmap_get(&srv->names, s->name, s->name_len) == s)
    wsc_hmap_del(&srv->names, s->name, s->name_len);
}

/* A free guest name ("guest-" and 4 hex digits, more when those seem exhausted). */
static int pick_guest_name(chat_server_t *srv, chat_session_t *s) {
  char name[CHAT_GUEST_PREFIX_LEN + CHAT_GUEST_MAX_DIGITS + 1];
  unsigned char rnd[CHAT_GUEST_MAX_DIGITS / 2 + 1];
  for (int digits = CHAT_GUEST_MIN_DIGITS; digits <= CHAT_GUEST_MAX_DIGITS; digits++) {
    for (int t = 0; t < CHAT_GUEST_TRIES; t++) {
      random_bytes(rnd, sizeof rnd);
      size_t n = chat_guest_name(name, rnd, digits);
      if (!name_held(srv, name, n)) return session_set_name(s, name, n);
    }
  }
  return -1;
}

static chat_session_t *session_new(chat_server_t *srv) {
  chat_session_t *s = wsc_pool_alloc(&g_session_pool);
  if (!s) return NULL;
  unsigned char raw[CHAT_TOKEN_BYTES];
  random_bytes(raw, sizeof raw);
  chat_hex(s->token, raw, sizeof raw);
  if (wsc_hmap_put(&srv->sessions, s->token, CHAT_TOKEN_HEX, s) < 0) {
    wsc_pool_free(&g_session_pool, s);
    return NULL;
  }
  return s;
}

static void session_free(chat_session_t *s) {
  free(s->name);
  wsc_pool_free(&g_session_pool, s);
}

static void idle_remove(chat_server_t *srv, chat_session_t *s) {
  if (s->idle_prev) s->idle_prev->idle_next = s->idle_next;
  else if (srv->idle_head == s) srv->idle_head = s->idle_next;
  else return;   /* not on the list */
  if (s->idle_next) s->idle_next->idle_prev = s->idle_prev;
  else srv->idle_tail = s->idle_prev;
  s->idle_prev = s->idle_next = NULL;
  srv->n_idle--;
}

/* s lost its connection: keep it for ?session=, dropping the oldest idle
 * sessions over the cap (their tokens are then unknown: a new session). */
static void idle_push(chat_server_t *srv, chat_session_t *s) {
  s->idle_next = NULL;
  s->idle_prev = srv->idle_tail;
  if (srv->idle_tail) srv->idle_tail->idle_next = s;
  else srv->idle_head = s;
  srv->idle_tail = s;
  srv->n_idle++;
  while (srv->n_idle > srv->idle_max) {
    chat_session_t *old = srv->idle_head;
    idle_remove(srv, old);
    wsc_hmap_del(&srv->sessions, old->token, CHAT_TOKEN_HEX);
    session_free(old);
  }
}

int chat_rename(chat_client_t *c, const char *name, size_t len) {
  chat_server_t *srv = c->srv;
  chat_session_t *s = c->session;
  char *old = s->name;
  size_t old_len = s->name_len;
  s->name = NULL;                       /* keep `old` alive for the presence */
  if (session_set_name(s, name, len) < 0) {
    s->name = old;
    return -1;
  }
  /* The old key points into `old`: swap the entry before freeing it. */
  wsc_hmap_del(&srv->names, old, old_len);
  if (hold_name(srv, s) < 0) LOG_ERROR(LOG_COMP, "out of memory holding a name");
  for (uint32_t i = 0; i < c->n_rooms; i++) {
    chat_room_t *r = c->rooms[i].room;
    chat_broadcast(srv, r->name, chat_enc_presence(&srv->jw, r->name, "rename", s->name, old, r->n), NULL);
  }
  free(old);
  return 0;
}

/* ---- client lifetime ----------------------------------------------------- */

static void client_free(chat_client_t *c) {
  free(c->rooms);
  free(c->endpoint_room);
  wsc_pool_free(&g_client_pool, c);
}

void chat_client_unref(chat_client_t *c) {
  if (--c->refs == 0) client_free(c);
}

/* Leaves every room (presence leave to the others). */
static void leave_all(chat_client_t *c) {
  while (c->n_rooms) chat_do_leave(c, c->n_rooms - 1);
}

/* A newer connection took over c's session: c leaves its rooms at once and
 * gives up the name (kept by the session), then its connection is closed. */
static void replace_client(chat_client_t *old, chat_client_t *c, chat_session_t *s) {
  leave_all(old);
  old->session = NULL;
  old->state = CHAT_CLIENT_ZOMBIE;
  s->client = c;
  c->session = s;
  LOG_INFO(LOG_COMP, "session replaced name=%s", s->name);
  old->ops->close(old->ud, 4001, "replaced");
}

static void unlink_client(chat_client_t *c) {
  chat_server_t *srv = c->srv;
  if (c->state == CHAT_CLIENT_LIVE) {
    leave_all(c);
    if (c->session) {
      release_name(srv, c->session);
      c->session->client = NULL;
      idle_push(srv, c->session);
      c->session = NULL;
    }
  }
  c->state = CHAT_CLIENT_DEAD;
  /* Swap-remove from the clients array. */
  chat_client_t *last = srv->clients[--srv->n_clients];
  srv->clients[c->idx] = last;
  last->idx = c->idx;
  wsc_metrics.chat_clients--;
}

void chat_enter(chat_server_t *srv) { srv->depth++; }

void chat_leave(chat_server_t *srv) {
  if (--srv->depth > 0) return;
  srv->depth++;   /* the detaches below may themselves send */
  for (uint32_t i = 0; i < srv->n_deferred; i++) {
    chat_client_t *c = srv->deferred[i];
    unlink_client(c);
    chat_client_unref(c);
  }
  srv->n_deferred = 0;
  srv->depth--;
}

void chat_client_detach(chat_client_t *c) {
  if (!c) return;
  chat_server_t *srv = c->srv;
  if (!srv) {                 /* the server is already gone */
    chat_client_unref(c);
    return;
  }
  if (c->detach_deferred || c->state == CHAT_CLIENT_DEAD) return;
  if (srv->depth > 0 &&
      push_ptr((void ***)&srv->deferred, &srv->n_deferred, &srv->cap_deferred, c) == 0) {
    c->detach_deferred = 1;
    return;
  }
  chat_enter(srv);
  unlink_client(c);
  chat_client_unref(c);
  chat_leave(srv);
}

/* Settles the new connection's session and name (PROTOCOL.md): a known
 * ?session= reclaims its name, closing the stale connection; otherwise a
 * new session with ?name= or a guest name. Sends the errors it meets. */
static int attach_session(chat_client_t *c, const chat_connect_params_t *p) {
  chat_server_t *srv = c->srv;
  chat_session_t *s = p->session ? wsc_hmap_get(&srv->sessions, p->session, strlen(p->session)) : NULL;
  if (s) {
    if (s->client) {
      replace_client(s->client, c, s);
      return 0;
    }
    idle_remove(srv, s);
    if (name_held(srv, s->name, s->name_len)) {
      char msg[64 + CHAT_NAME_MAX_BYTES];
      snprintf(msg, sizeof msg, "the name %s is in use", s->name);
      chat_send_error(c, CHAT_ERR_NAME_TAKEN, msg, NULL);
      if (pick_guest_name(srv, s) < 0) return -1;
    }
  } else {
    if (!(s = session_new(srv))) return -1;
    size_t start, len;
    int have = 0;
    if (p->name) {
      if (chat_name_check(p->name, strlen(p->name), &start, &len) < 0) {
        chat_send_error(c, CHAT_ERR_BAD_NAME, "names are 1-32 characters without control characters "
                        "and not starting with guest-", NULL);
      } else if (name_held(srv, p->name + start, len)) {
        char msg[64 + CHAT_NAME_MAX_BYTES];
        snprintf(msg, sizeof msg, "the name %.*s is in use", (int)len, p->name + start);
        chat_send_error(c, CHAT_ERR_NAME_TAKEN, msg, NULL);
      } else {
        have = session_set_name(s, p->name + start, len) == 0;
      }
    }
    if (!have && pick_guest_name(srv, s) < 0) return -1;
  }
  if (hold_name(srv, s) < 0) return -1;
  s->client = c;
  c->session = s;
  return 0;
}

/* The room of the URL, after welcome. */
static void attach_room(chat_client_t *c, const chat_connect_params_t *p) {
  size_t rlen = strlen(p->room);
  if (!chat_room_check(p->room, rlen)) {
    chat_send_error(c, CHAT_ERR_BAD_ROOM, "room names are 1-64 of A-Z a-z 0-9 . _ -", NULL);
    return;
  }
  int64_t since = 0;
  int has_since = 0;
  if (p->since) {
    if (chat_parse_since(p->since, &since) == 0) has_since = 1;
    else chat_send_error(c, CHAT_ERR_BAD_REQUEST, "since must be an integer >= 0 (ignored)", NULL);
  }
  chat_do_join(c, p->room, rlen, has_since, since, p->epoch, p->epoch ? strlen(p->epoch) : 0);
}

chat_client_t *chat_client_attach(chat_server_t *srv, const chat_transport_ops_t *ops,
                                  void *transport_ud, const chat_connect_params_t *params) {
  chat_client_t *c = wsc_pool_alloc(&g_client_pool);
  if (!c) return NULL;
  c->srv = srv;
  c->ops = ops;
  c->ud = transport_ud;
  c->refs = 1;
  c->idx = srv->n_clients;
  if (srv->cfg->rate_limit > 0) {
    c->tokens = 2 * srv->cfg->rate_limit;
    c->tokens_ms = wsc_mono_ms();
  }
  if (params->room_endpoint && params->room && !(c->endpoint_room = strdup(params->room))) {
    wsc_pool_free(&g_client_pool, c);
    return NULL;
  }
  if (push_ptr((void ***)&srv->clients, &srv->n_clients, &srv->cap_clients, c) < 0) {
    client_free(c);
    return NULL;
  }
  wsc_metrics.chat_clients++;
  chat_enter(srv);
  if (attach_session(c, params) < 0) {
    unlink_client(c);
    client_free(c);
    chat_leave(srv);
    return NULL;
  }
  chat_send_own(c, chat_enc_welcome(&srv->jw, c->session->name, c->session->token));
  if (params->room) attach_room(c, params);
  chat_leave(srv);
  return c;
}

void chat_client_receive(chat_client_t *c, const char *text, size_t len) {
  chat_server_t *srv = c->srv;
  if (!srv || c->state != CHAT_CLIENT_LIVE || c->detach_deferred) return;
  chat_enter(srv);
  chat_req_t req;
  chat_parse_result_t r = chat_req_parse(text, len, &srv->lim, &req);
  if (r == CHAT_PARSE_OK) chat_handle(c, &req);
  else if (r == CHAT_PARSE_NOT_PROTOCOL && c->endpoint_room) chat_handle_plain(c, text, len);
  else chat_send_error(c, req.err, req.errmsg, req.ref);
  chat_req_free(&req);
  chat_leave(srv);
}

/* ---- server lifetime ----------------------------------------------------- */

chat_server_t *chat_server_new(uv_loop_t *loop, const wsc_config_t *config, store_t *store) {
  chat_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  srv->loop = loop;
  srv->cfg = config;
  srv->store = store;
  srv->lim.max_text = config->max_text;
  srv->lim.history_max_limit = config->history_max_limit > 0 ? config->history_max_limit : 1;
  srv->lim.history_default = config->history_default > 0 ? config->history_default : 1;
  if (srv->lim.history_default > srv->lim.history_max_limit)
    srv->lim.history_default = srv->lim.history_max_limit;
  wsc_hmap_init(&srv->rooms, WSC_HMAP_EXACT);
  wsc_hmap_init(&srv->names, WSC_HMAP_CASE_FOLD);
  wsc_hmap_init(&srv->sessions, WSC_HMAP_EXACT);
  srv->idle_max = CHAT_IDLE_SESSIONS_MAX;
  chat_jw_init(&srv->jw);
  return srv;
}

void chat_server_set_bus(chat_server_t *srv, bus_t *bus) { srv->bus = bus; }

static void server_destroy(chat_server_t *srv) {
  free(srv->clients);
  free(srv->deferred);
  chat_jw_free(&srv->jw);
  free(srv);
}

void chat_server_free(chat_server_t *srv) {
  if (!srv) return;
  srv->depth++;   /* nothing below may run deferred work */
  /* Clients the transport has not detached become orphans: their detach
   * later only drops the reference. Nothing is sent to them any more. */
  for (uint32_t i = 0; i < srv->n_clients; i++) {
    chat_client_t *c = srv->clients[i];
    c->n_rooms = 0;
    c->session = NULL;
    c->state = CHAT_CLIENT_DEAD;
    c->srv = NULL;
  }
  for (uint32_t i = 0; i < srv->n_deferred; i++) chat_client_unref(srv->deferred[i]);
  srv->n_clients = srv->n_deferred = 0;
  wsc_metrics.chat_clients = wsc_metrics.chat_members = 0;
  for (uint32_t i = 0; i < srv->rooms.cap; i++) {
    chat_room_t *r = srv->rooms.slots[i].val;
    if (!srv->rooms.slots[i].key) continue;
    if (srv->bus) bus_unsubscribe(srv->bus, r->name);
    free(r->members);
    free(r);
  }
  wsc_metrics.chat_rooms = 0;
  for (uint32_t i = 0; i < srv->sessions.cap; i++) {
    chat_session_t *s = srv->sessions.slots[i].val;
    if (!srv->sessions.slots[i].key) continue;
    session_free(s);
  }
  wsc_hmap_free(&srv->rooms);
  wsc_hmap_free(&srv->names);
  wsc_hmap_free(&srv->sessions);
  srv->freeing = 1;
  if (srv->pending == 0) server_destroy(srv);
}

void chat_server_op_done(chat_server_t *srv) {
  if (--srv->pending == 0 && srv->freeing) server_destroy(srv);
}
