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
#include <inttypes.h>
#include <openssl/crypto.h>
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

/* Random bytes for session tokens and guest names, drawn from OpenSSL's
 * CSPRNG a kilobyte at a time (srv->random): each RAND_bytes call costs a
 * getpid() system call (its fork check) and a DRBG round, two per join
 * otherwise. The server never forks, so the pool is never shared. */
static void random_bytes(chat_server_t *srv, unsigned char *p, size_t n) {
  unsigned char *pool = srv->random;
  size_t left = srv->random_left;
  while (n) {
    if (!left) {
      if (RAND_bytes(pool, (int)sizeof srv->random) != 1) {
        /* OpenSSL's CSPRNG does not fail in practice; never hand out a
         * predictable token silently. */
        LOG_ERROR(LOG_COMP, "RAND_bytes failed");
        abort();
      }
      left = sizeof srv->random;
    }
    size_t k = n < left ? n : left;
    unsigned char *src = pool + sizeof srv->random - left;
    memcpy(p, src, k);
    memset(src, 0, k);   /* handed out once, then gone from the pool */
    left -= k;
    p += k;
    n -= k;
  }
  srv->random_left = (uint16_t)left;
}

const char *chat_client_name(const chat_client_t *c) { return c->session ? c->session->name : ""; }

const char *chat_session_token(const chat_session_t *s, char out[CHAT_TOKEN_TEXT]) {
  chat_hex(out, s->token, sizeof s->token);
  return out;
}

const char *chat_client_token(const chat_client_t *c, char buf[CHAT_TOKEN_TEXT]) {
  return c->state == CHAT_CLIENT_LIVE && c->session ? chat_session_token(c->session, buf) : NULL;
}

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

/* A token's text (exactly CHAT_TOKEN_HEX lowercase hex digits, as made
 * here) into its bytes: 0, or -1 when it is not one. */
static int token_bytes(const char *t, uint8_t out[CHAT_TOKEN_BYTES]) {
  if (!t || strlen(t) != CHAT_TOKEN_HEX) return -1;
  for (size_t i = 0; i < CHAT_TOKEN_BYTES; i++) {
    int hi = hex_digit(t[2 * i]), lo = hex_digit(t[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

_Static_assert(CHAT_TOKEN_TEXT == CHAT_TOKEN_HEX + 1, "chat.h and names.h agree on the token text");

/* The session of a token given as text, or NULL. */
static chat_session_t *session_by_token(chat_server_t *srv, const char *t) {
  uint8_t raw[CHAT_TOKEN_BYTES];
  if (token_bytes(t, raw) < 0) return NULL;
  return wsc_hmap_get(&srv->sessions, (const char *)raw, sizeof raw);
}

int chat_client_attaching(const chat_client_t *c) { return c && c->attaching; }

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
    if (chat_rooms(c)[i].room == room) return (int)i;
  return -1;
}

/* ---- fan-out ------------------------------------------------------------- */

/* ---- held room events ---------------------------------------------------
 *
 * A room event that is not a message (presence, typing) goes to every
 * member, and may wait for the lazy round (net.h). Queued to each member
 * one by one, it cost each of them a touch of its connection per event:
 * ~99 per join in a room of 100. Instead the room keeps the event once (a
 * ring of the last CHAT_HELD_MAX) and a member whose transport can hold
 * (ops->hold: a TCP WebSocket) only records where its events start; its
 * transport calls chat_client_fill when they are wanted (the lazy round,
 * the write of its next message or reply), and only then are they queued,
 * each the same shared buffer as before. A member is owed events of one
 * room at a time: an event of another room first fills what it is owed,
 * so everything reaches it in the order it happened. */

/* Held events [from, held_end) as one buffer of consecutive frames, shared
 * with the last member owed the same run (msg/outbuf's concat: a WebSocket
 * recipient writes it as it is, frames need no per-member form). NULL when
 * out of memory. */
static wsc_buf_t *held_run(chat_room_t *r, uint32_t from) {
  if (r->held_run && r->run_from == from && r->run_end == r->held_end) return r->held_run;
  wsc_buf_t *parts[CHAT_HELD_MAX];
  uint32_t n = 0;
  for (uint32_t k = from; k != r->held_end; k++) parts[n++] = r->held[k % CHAT_HELD_MAX];
  wsc_buf_t *b = outbuf_concat(parts, n);
  if (!b) return NULL;
  if (r->held_run) wsc_buf_unref(r->held_run);
  r->held_run = b;
  r->run_from = from;
  r->run_end = r->held_end;
  return b;
}

/* What fill does with the events c is owed. */
enum { FILL_LAZY, FILL_NOW, FILL_DROP };

/* Queues what c is owed: lazily (FILL_LAZY: it goes with c's next write),
 * or now (FILL_NOW: with the next cork; CHAT_HELD_MAX of them are enough
 * company); FILL_DROP forgets them (c is detaching: its connection is gone
 * or closing, and a send to it would fail as if it were a slow consumer). */
static void fill(chat_client_t *c, int how) {
  if (c->held_mi == CHAT_NO_HELD) return;
  chat_server_t *srv = c->srv;
  if (!srv || c->held_mi >= c->n_rooms) {   /* the server is gone (it freed the rooms) */
    c->held_mi = CHAT_NO_HELD;
    return;
  }
  chat_enter(srv);   /* a transport that fails a send detaches only after this */
  chat_room_t *r = chat_rooms(c)[c->held_mi].room;
  uint32_t n = (uint8_t)((uint8_t)r->held_end - c->held_at);
  c->held_mi = CHAT_NO_HELD;
  int now = how == FILL_NOW;
  if (n && how != FILL_DROP && chat_client_active(c)) {
    wsc_buf_t *b = n == 1 ? r->held[(r->held_end - 1) % CHAT_HELD_MAX] : held_run(r, r->held_end - n);
    if (b && (now ? c->ops->send(c->ud, b) : c->ops->notify(c->ud, b)) < 0) c->send_failed = 1;
    if (b && now) wsc_metrics.lazy_full++;
    for (uint32_t k = r->held_end - n; !b && k != r->held_end && chat_client_active(c); k++) {
      if (c->ops->notify(c->ud, r->held[k % CHAT_HELD_MAX]) < 0) c->send_failed = 1;   /* out of memory */
    }
  }
  if (--r->held_by == 0 && !r->delivering) chat_room_held_release(r);
  chat_leave(srv);
}

void chat_client_fill(chat_client_t *c) { fill(c, FILL_LAZY); }

/* A presence or typing event to every member: held by the room for those
 * whose transport can hold, queued lazily to the others. */
static void deliver_held(chat_server_t *srv, chat_room_t *room, wsc_buf_t *msg) {
  room->delivering = 1;
  uint8_t at = (uint8_t)room->held_end;
  for (uint32_t i = 0; i < room->n; i++) {
    chat_client_t *c = room->members[i];
    uint8_t mi = room->member_mi[i];
    if (c->held_mi == mi) {
      /* Owed events of this room already: this one is covered too, unless
       * it is the excluded sender, or the ring would lose its first. */
      if (c != srv->exclude && (uint8_t)(at - c->held_at) < CHAT_HELD_MAX) continue;
      fill(c, c != srv->exclude ? FILL_NOW : FILL_LAZY);   /* CHAT_HELD_MAX owed: out they go (net's NET_LAZY_FULL) */
    }
    if (c == srv->exclude || chat_rooms(c)[mi].replaying || !chat_client_active(c)) continue;
    if (c->held_mi != CHAT_NO_HELD) chat_client_fill(c);   /* another room's events go first */
    /* (a hold without the ring costs nothing: the transport's fill finds
     * nothing owed) */
    if (c->ops->hold && c->ops->hold(c->ud) == 0 &&
        (room->held || (room->held = calloc(CHAT_HELD_MAX, sizeof *room->held)))) {
      c->held_mi = mi;
      c->held_at = at;
      room->held_by++;
    } else if (c->ops->notify(c->ud, msg) < 0) {
      c->send_failed = 1;
    }
  }
  room->delivering = 0;
  if (room->held_by) {   /* someone is owed it: the ring keeps it (for its first CHAT_HELD_MAX) */
    wsc_buf_t **slot = &room->held[room->held_end % CHAT_HELD_MAX];
    if (*slot) wsc_buf_unref(*slot);
    *slot = wsc_buf_ref(msg);
    room->held_end++;
  } else if (room->held) {
    chat_room_held_release(room);
  }
}

void chat_server_deliver(void *ud, const char *room_name, wsc_buf_t *msg) {
  chat_server_t *srv = ud;
  if (srv->freeing) return;
  chat_room_t *room = chat_room_get(srv, room_name, strlen(room_name));
  if (!room) return;
  chat_enter(srv);
  int is_message = outbuf_json_len(msg) >= sizeof MESSAGE_PREFIX - 1 &&
                   memcmp(outbuf_json(msg), MESSAGE_PREFIX, sizeof MESSAGE_PREFIX - 1) == 0;
  if (!is_message) {
    /* Room events other than messages (presence, typing) may wait a few
     * ms to share a write: a join storm costs each member one write. */
    deliver_held(srv, room, msg);
    chat_leave(srv);
    return;
  }
  for (uint32_t i = 0; i < room->n; i++) {
    chat_client_t *c = room->members[i];
    if (c == srv->exclude || chat_rooms(c)[room->member_mi[i]].replaying || !chat_client_active(c))
      continue;
    if (c->ops->send(c->ud, msg) < 0) c->send_failed = 1;
    else wsc_metrics.chat_messages_out++;
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

static void session_drop_name(chat_session_t *s) {
  if (s->name != s->name_buf) free(s->name);
  s->name = NULL;
  s->name_len = 0;
}

/* Sets the session's name (not yet held) to a copy of name[0..len) (which
 * must not point into the session): in name_buf when short, else malloc'd. */
static int session_set_name(chat_session_t *s, const char *name, size_t len) {
  if (len > CHAT_NAME_MAX_BYTES) return -1;
  char *copy = len < sizeof s->name_buf ? s->name_buf : malloc(len + 1);
  if (!copy) return -1;
  if (s->name != copy) session_drop_name(s);
  memcpy(copy, name, len);
  copy[len] = '\0';
  s->name = copy;
  s->name_len = (uint8_t)len;
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
      random_bytes(srv, rnd, sizeof rnd);
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
  random_bytes(srv, raw, sizeof raw);
  memcpy(s->token, raw, sizeof s->token);
  if (wsc_hmap_put(&srv->sessions, (const char *)s->token, sizeof s->token, s) < 0) {
    wsc_pool_free(&g_session_pool, s);
    return NULL;
  }
  return s;
}

/* A session with a token made on another node (the directory knows it). */
static chat_session_t *session_new_token(chat_server_t *srv, const char *token) {
  chat_session_t *s = wsc_pool_alloc(&g_session_pool);
  if (!s) return NULL;
  if (token_bytes(token, s->token) < 0 ||
      wsc_hmap_put(&srv->sessions, (const char *)s->token, sizeof s->token, s) < 0) {
    wsc_pool_free(&g_session_pool, s);
    return NULL;
  }
  return s;
}

static void session_free(chat_session_t *s) {
  session_drop_name(s);
  wsc_pool_free(&g_session_pool, s);
}

static void idle_remove(chat_server_t *srv, chat_session_t *s) {
  if (!s->idle) return;   /* not on the list */
  if (s->idle_prev) s->idle_prev->idle_next = s->idle_next;
  else srv->idle_head = s->idle_next;
  if (s->idle_next) s->idle_next->idle_prev = s->idle_prev;
  else srv->idle_tail = s->idle_prev;
  s->idle_next = NULL;
  s->idle = 0;
  s->client = NULL;       /* the union's other side */
  srv->n_idle--;
}

/* s lost its connection: keep it for ?session=, dropping the oldest idle
 * sessions over the cap (their tokens are then unknown: a new session). */
static void idle_push(chat_server_t *srv, chat_session_t *s) {
  s->idle = 1;
  s->idle_next = NULL;
  s->idle_prev = srv->idle_tail;
  if (srv->idle_tail) srv->idle_tail->idle_next = s;
  else srv->idle_head = s;
  srv->idle_tail = s;
  srv->n_idle++;
  while (srv->n_idle > srv->idle_max) {
    chat_session_t *old = srv->idle_head;
    idle_remove(srv, old);
    wsc_hmap_del(&srv->sessions, (const char *)old->token, sizeof old->token);
    session_free(old);
  }
}

int chat_rename(chat_client_t *c, const char *name, size_t len) {
  chat_server_t *srv = c->srv;
  chat_session_t *s = c->session;
  /* The old name is kept for the presence: a malloc'd one is taken over,
   * an inline one copied (name_buf is reused by the new name). */
  char old_buf[sizeof s->name_buf];
  char *old = s->name;
  size_t old_len = s->name_len;
  release_name(srv, s);                 /* the map's key is the old name: drop it first */
  if (old == s->name_buf) old = memcpy(old_buf, s->name_buf, sizeof old_buf);
  else s->name = NULL;                  /* keep the malloc'd `old` alive */
  if (session_set_name(s, name, len) < 0) {
    if (old != old_buf) s->name = old;  /* an inline old name is still in name_buf */
    s->name_len = (uint8_t)old_len;
    if (hold_name(srv, s) < 0) LOG_ERROR(LOG_COMP, "out of memory holding a name");
    return -1;
  }
  if (hold_name(srv, s) < 0) LOG_ERROR(LOG_COMP, "out of memory holding a name");
  for (uint32_t i = 0; i < c->n_rooms; i++) {
    chat_room_t *r = chat_rooms(c)[i].room;
    chat_room_names_reset(r);
    chat_rename_presence(c, r->name, s->name, old, r->n);
  }
  if (old != old_buf) free(old);
  return 0;
}

/* ---- client lifetime ----------------------------------------------------- */

static void client_free(chat_client_t *c) {
  chat_rooms_release(c);
  wsc_pool_free(&g_client_pool, c);
}

/* ---- endpoint rooms: one copy of each /ws/{room} name ------------------- */

/* A /ws/{room} name shared by every client of that endpoint (15,000 clients
 * in 150 rooms keep 150 copies, not 15,000), counted by its clients. */
typedef struct chat_endpoint {
  uint32_t refs;
  uint32_t len;
  char name[];                 /* NUL-terminated; the endpoints map key */
} chat_endpoint_t;

static const char *endpoint_ref(chat_server_t *srv, const char *name) {
  size_t len = strlen(name);
  chat_endpoint_t *e = wsc_hmap_get(&srv->endpoints, name, len);
  if (!e) {
    if (len > UINT32_MAX - 1 || !(e = wsc_pool_get(sizeof *e + len + 1))) return NULL;   /* long-lived */
    e->refs = 0;
    e->len = (uint32_t)len;
    memcpy(e->name, name, len + 1);
    if (wsc_hmap_put(&srv->endpoints, e->name, len, e) < 0) {
      wsc_pool_put(e, sizeof *e + len + 1);
      return NULL;
    }
  }
  e->refs++;
  return e->name;
}

static void endpoint_unref(chat_server_t *srv, const char *name) {
  if (!name) return;
  chat_endpoint_t *e = wsc_hmap_get(&srv->endpoints, name, strlen(name));
  if (e && --e->refs == 0) {
    wsc_hmap_del(&srv->endpoints, e->name, e->len);
    wsc_pool_put(e, sizeof *e + e->len + 1);
  }
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
    fill(c, FILL_DROP);   /* before leave_all, whose room removals would send them */
    leave_all(c);
    if (c->session) {
      release_name(srv, c->session);
      char tok[CHAT_TOKEN_TEXT];
      if (c->session->name && srv->dir)
        dir_release(srv->dir, chat_session_token(c->session, tok), c->session->name, c->cid);
      c->session->client = NULL;
      idle_push(srv, c->session);
      c->session = NULL;
    }
  }
  c->state = CHAT_CLIENT_DEAD;
  endpoint_unref(srv, c->endpoint_room);
  c->endpoint_room = NULL;
  if (wsc_hmap_get(&srv->conns, (const char *)&c->cid, sizeof c->cid) == c)
    wsc_hmap_del(&srv->conns, (const char *)&c->cid, sizeof c->cid);
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

/* ---- attaching: a name held in the whole cluster ------------------------- */

/* What an attach still needs once the directory has answered: the URL's
 * parameters (copied) and a reference to the client. */
typedef struct attach_op {
  chat_client_t *c;
  char *name, *room, *since, *epoch, *session;
  int tries;
  char **inq;                  /* messages received meanwhile (length-prefixed copies) */
  uint32_t n_inq;
  size_t inq_bytes;
} attach_op_t;

#define ATTACH_CLAIM_TRIES 8       /* guest names tried when the directory says taken */
#define ATTACH_QUEUE_MAX 32        /* client messages held until welcome */
#define ATTACH_QUEUE_BYTES (256 * 1024)

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void attach_op_free(attach_op_t *op) {
  chat_server_t *srv = op->c->srv;
  /* Ended without welcome (a failed claim, the connection closing): what
   * the client sent meanwhile is dropped, as is anything it still sends. */
  if (op->c->attaching && op->c->attach == op) op->c->attach = NULL;
  for (uint32_t i = 0; i < op->n_inq; i++) free(op->inq[i]);
  free(op->inq);
  free(op->name);
  free(op->room);
  free(op->since);
  free(op->epoch);
  free(op->session);
  chat_client_unref(op->c);
  free(op);
  if (srv) chat_server_op_done(srv);
}

static void send_name_taken(chat_client_t *c, const char *name, size_t len) {
  char msg[64 + CHAT_NAME_MAX_BYTES];
  snprintf(msg, sizeof msg, "the name %.*s is in use", (int)len, name);
  chat_send_error(c, CHAT_ERR_NAME_TAKEN, msg, NULL);
}

/* The room of the URL, after welcome: checked like a `join` (PROTOCOL.md),
 * bad_request before bad_room, and an invalid field means no join at all
 * (a client that asked to resume must not get a plain join instead). */
static void attach_room(chat_client_t *c, const attach_op_t *p) {
  int64_t since = 0;
  if (p->since && chat_parse_since(p->since, &since) < 0) {
    chat_send_error(c, CHAT_ERR_BAD_REQUEST, "since must be an integer >= 0 (room not joined)", NULL);
    return;
  }
  size_t rlen = strlen(p->room);
  if (!chat_room_check(p->room, rlen)) {
    chat_send_error(c, CHAT_ERR_BAD_ROOM, "room names are 1-64 of A-Z a-z 0-9 . _ -", NULL);
    return;
  }
  chat_do_join(c, p->room, rlen, p->since != NULL, since, p->epoch, p->epoch ? strlen(p->epoch) : 0);
}

/* The name is held in the cluster: welcome, the URL's room, then what the
 * client sent meanwhile. */
static void attach_finish(attach_op_t *op) {
  chat_client_t *c = op->c;
  chat_server_t *srv = c->srv;
  c->attaching = 0;
  c->attach = NULL;
  if (srv->cfg->rate_limit > 0) {   /* the bucket starts full at the welcome */
    c->tokens = 2 * srv->cfg->rate_limit;
    c->tokens_ms = wsc_mono_ms();
  }
  char tok[CHAT_TOKEN_TEXT];
  chat_send_own(c, chat_enc_welcome(&srv->jw, c->session->name, chat_session_token(c->session, tok)));
  if (op->room) attach_room(c, op);
  else if (op->since || op->epoch)
    chat_send_error(c, CHAT_ERR_BAD_REQUEST, "since and epoch resume a room: give room too", NULL);
  uint32_t n = op->n_inq;
  char **q = op->inq;
  op->inq = NULL;
  op->n_inq = 0;
  op->inq_bytes = 0;
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    memcpy(&len, q[i], sizeof len);
    if (c->state == CHAT_CLIENT_LIVE && !c->detach_deferred) chat_client_receive(c, q[i] + sizeof len, len);
    free(q[i]);
  }
  free(q);
}

static void on_attach_claimed(void *ud, int status, int taken);

static void attach_claim(attach_op_t *op) {
  chat_client_t *c = op->c;
  char tok[CHAT_TOKEN_TEXT];
  int rc = dir_claim(c->srv->dir, chat_session_token(c->session, tok), c->session->name, c->cid,
                     on_attach_claimed, op);
  if (rc < 0) on_attach_claimed(op, rc, 0);
}

static void on_attach_claimed(void *ud, int status, int taken) {
  attach_op_t *op = ud;
  chat_client_t *c = op->c;
  chat_server_t *srv = c->srv;
  if (!srv || srv->freeing || c->state != CHAT_CLIENT_LIVE || !c->session) {
    attach_op_free(op);
    return;
  }
  chat_enter(srv);
  chat_session_t *s = c->session;
  if (status < 0) {
    chat_send_error(c, chat_store_err(status), "the shared directory is unreachable; try again", NULL);
    c->ops->close(c->ud, 1013, "try again later");
  } else if (taken && op->tries++ < ATTACH_CLAIM_TRIES) {
    /* Held on another node: as a local clash, an error then a guest name. */
    if (!chat_name_is_guest(s->name, s->name_len)) send_name_taken(c, s->name, s->name_len);
    release_name(srv, s);
    if (pick_guest_name(srv, s) < 0 || hold_name(srv, s) < 0) {
      c->ops->close(c->ud, 1011, "out of memory");
    } else {
      attach_claim(op);
      chat_leave(srv);
      return;
    }
  } else if (taken) {
    c->ops->close(c->ud, 1013, "no free name; try again later");
  } else {
    attach_finish(op);
  }
  chat_leave(srv);
  attach_op_free(op);
}

/* Settles the new connection's session and name (PROTOCOL.md): a known
 * ?session= reclaims its name, closing the stale connection; otherwise a
 * new session with ?name= or a guest name. Sends the errors it meets.
 * remote_name: the session's name as the directory knows it (a session
 * made on another node), or NULL. Then the directory is asked to hold the
 * name in the whole cluster (attach_claim). */
static int attach_session(attach_op_t *op, const char *remote_name) {
  chat_client_t *c = op->c;
  chat_server_t *srv = c->srv;
  chat_session_t *s = op->session ? session_by_token(srv, op->session) : NULL;
  if (s) {
    if (chat_session_client(s)) {
      replace_client(chat_session_client(s), c, s);
      attach_claim(op);
      return 0;
    }
    idle_remove(srv, s);
    if (name_held(srv, s->name, s->name_len)) {
      send_name_taken(c, s->name, s->name_len);
      if (pick_guest_name(srv, s) < 0) return -1;
    }
  } else if (remote_name && (s = session_new_token(srv, op->session))) {
    size_t len = strlen(remote_name);
    if (session_set_name(s, remote_name, len) < 0) return -1;
    if (name_held(srv, s->name, s->name_len)) {
      send_name_taken(c, s->name, s->name_len);
      if (pick_guest_name(srv, s) < 0) return -1;
    }
  } else {
    if (!(s = session_new(srv))) return -1;
    size_t start, len;
    int have = 0;
    if (op->name) {
      if (chat_name_check(op->name, strlen(op->name), &start, &len) < 0) {
        chat_send_error(c, CHAT_ERR_BAD_NAME, "names are 1-32 characters without control characters "
                        "and not starting with guest-", NULL);
      } else if (name_held(srv, op->name + start, len)) {
        send_name_taken(c, op->name + start, len);
      } else {
        have = session_set_name(s, op->name + start, len) == 0;
      }
    }
    if (!have && pick_guest_name(srv, s) < 0) {
      idle_push(srv, s);
      return -1;
    }
  }
  if (hold_name(srv, s) < 0) {
    idle_push(srv, s);
    return -1;
  }
  s->client = c;
  c->session = s;
  attach_claim(op);
  return 0;
}

static int token_shape(const char *t) {
  uint8_t raw[CHAT_TOKEN_BYTES];
  return token_bytes(t, raw) == 0;
}

static void on_attach_lookup(void *ud, int status, const char *name) {
  attach_op_t *op = ud;
  chat_client_t *c = op->c;
  chat_server_t *srv = c->srv;
  if (!srv || srv->freeing || c->state != CHAT_CLIENT_LIVE) {
    attach_op_free(op);
    return;
  }
  chat_enter(srv);
  if (status < 0) {
    chat_send_error(c, chat_store_err(status), "the shared directory is unreachable; try again", NULL);
    c->ops->close(c->ud, 1013, "try again later");
    chat_leave(srv);
    attach_op_free(op);
    return;
  }
  /* A session name from the directory must still be a valid name. */
  size_t st, len;
  if (name && chat_name_check(name, strlen(name), &st, &len) < 0 && !chat_name_is_guest(name, strlen(name)))
    name = NULL;
  if (attach_session(op, name) < 0) {
    c->ops->close(c->ud, 1011, "out of memory");
    attach_op_free(op);
  }
  chat_leave(srv);
}

chat_client_t *chat_client_attach(chat_server_t *srv, const chat_transport_ops_t *ops,
                                  void *transport_ud, const chat_connect_params_t *params) {
  chat_client_t *c = wsc_pool_alloc(&g_client_pool);
  if (!c) return NULL;
  c->srv = srv;
  c->ops = ops;
  c->ud = transport_ud;
  c->cap_rooms = 1;
  c->held_mi = CHAT_NO_HELD;
  c->refs = 1;
  c->idx = srv->n_clients;
  c->cid = ++srv->next_cid;
  if (params->room_endpoint && params->room && !(c->endpoint_room = endpoint_ref(srv, params->room))) {
    wsc_pool_free(&g_client_pool, c);
    return NULL;
  }
  attach_op_t *op = calloc(1, sizeof *op);
  if (!op || push_ptr((void ***)&srv->clients, &srv->n_clients, &srv->cap_clients, c) < 0) {
    free(op);
    endpoint_unref(srv, c->endpoint_room);
    client_free(c);
    return NULL;
  }
  wsc_metrics.chat_clients++;
  if (dir_is_shared(srv->dir)) wsc_hmap_put(&srv->conns, (const char *)&c->cid, sizeof c->cid, c);
  op->c = c;
  c->refs++;
  srv->pending++;
  c->attaching = 1;
  c->attach = op;
  op->name = dup_or_null(params->name);
  op->room = dup_or_null(params->room);
  op->since = dup_or_null(params->since);
  op->epoch = dup_or_null(params->epoch);
  op->session = dup_or_null(params->session);
  chat_enter(srv);
  int known_here = op->session && session_by_token(srv, op->session);
  if (op->session && !known_here && token_shape(op->session)) {
    /* Maybe a session of another node: ask the directory. */
    if (dir_lookup(srv->dir, op->session, on_attach_lookup, op) < 0) on_attach_lookup(op, STORE_EUNAVAILABLE, NULL);
  } else if (attach_session(op, NULL) < 0) {
    unlink_client(c);
    attach_op_free(op);
    chat_leave(srv);
    chat_client_unref(c);
    return NULL;
  }
  chat_leave(srv);
  return c;
}

void chat_client_receive(chat_client_t *c, const char *text, size_t len) {
  chat_server_t *srv = c->srv;
  if (!srv || c->state != CHAT_CLIENT_LIVE || c->detach_deferred) return;
  if (c->attaching) {
    /* The directory has not answered yet: keep it for after welcome. */
    attach_op_t *op = c->attach;
    if (!op) return;   /* the attach failed: the connection is closing */
    char *copy = op->n_inq < ATTACH_QUEUE_MAX && op->inq_bytes + len <= ATTACH_QUEUE_BYTES
                     ? malloc(sizeof len + len) : NULL;
    char **q = copy ? realloc(op->inq, (op->n_inq + 1) * sizeof *q) : NULL;
    if (!q) {
      free(copy);
      c->ops->close(c->ud, 1008, "too much sent before welcome");
      return;
    }
    memcpy(copy, &len, sizeof len);
    memcpy(copy + sizeof len, text, len);
    op->inq = q;
    op->inq[op->n_inq++] = copy;
    op->inq_bytes += len;
    return;
  }
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

/* Where the maps' values keep their keys (base/hmap). */
static const char *room_key(const void *v, size_t *len) {
  *len = ((const chat_room_t *)v)->name_len;
  return ((const chat_room_t *)v)->name;
}
static const char *name_key(const void *v, size_t *len) {
  *len = ((const chat_session_t *)v)->name_len;
  return ((const chat_session_t *)v)->name;
}
static const char *token_key(const void *v, size_t *len) {
  *len = CHAT_TOKEN_BYTES;
  return (const char *)((const chat_session_t *)v)->token;
}
static const char *cid_key(const void *v, size_t *len) {
  *len = sizeof(uint64_t);
  return (const char *)&((const chat_client_t *)v)->cid;
}
static const char *endpoint_key(const void *v, size_t *len) {
  *len = ((const chat_endpoint_t *)v)->len;
  return ((const chat_endpoint_t *)v)->name;
}

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
  wsc_hmap_init(&srv->rooms, WSC_HMAP_EXACT, room_key);
  wsc_hmap_init(&srv->names, WSC_HMAP_CASE_FOLD, name_key);
  wsc_hmap_init(&srv->sessions, WSC_HMAP_EXACT, token_key);
  wsc_hmap_init(&srv->conns, WSC_HMAP_EXACT, cid_key);
  wsc_hmap_init(&srv->endpoints, WSC_HMAP_EXACT, endpoint_key);
  srv->own_dir = srv->dir = dir_local_new();
  if (!srv->dir) {
    free(srv);
    return NULL;
  }
  srv->idle_max = CHAT_IDLE_SESSIONS_MAX;
  chat_jw_init(&srv->jw);
  return srv;
}

void chat_server_set_bus(chat_server_t *srv, bus_t *bus) { srv->bus = bus; }

void chat_server_set_dir(chat_server_t *srv, dir_t *dir) {
  srv->dir = dir ? dir : srv->own_dir;
  /* Only another node looks a connection up by its id: index the clients
   * while the directory is a shared one, not for the local one. */
  wsc_hmap_free(&srv->conns);
  wsc_hmap_init(&srv->conns, WSC_HMAP_EXACT, cid_key);
  if (!dir_is_shared(srv->dir)) return;
  for (uint32_t i = 0; i < srv->n_clients; i++) {
    chat_client_t *c = srv->clients[i];
    if (wsc_hmap_put(&srv->conns, (const char *)&c->cid, sizeof c->cid, c) < 0)
      LOG_ERROR(LOG_COMP, "out of memory indexing connections cid=%" PRIu64, c->cid);
  }
}

/* ---- what other nodes ask (dir_handler_t) -------------------------------- */

static chat_client_t *client_by_cid(chat_server_t *srv, uint64_t cid) {
  return wsc_hmap_get(&srv->conns, (const char *)&cid, sizeof cid);
}

/* Another node took over the session of a local connection: as
 * replace_client, but the session now lives there: forget it here. */
static void on_dir_kick(void *ud, uint64_t cid) {
  chat_server_t *srv = ud;
  chat_client_t *c = srv->freeing ? NULL : client_by_cid(srv, cid);
  if (!c || c->state != CHAT_CLIENT_LIVE || !c->session) return;
  chat_enter(srv);
  chat_session_t *s = c->session;
  leave_all(c);
  release_name(srv, s);
  wsc_hmap_del(&srv->sessions, (const char *)s->token, sizeof s->token);
  session_free(s);
  c->session = NULL;
  c->state = CHAT_CLIENT_ZOMBIE;
  LOG_INFO(LOG_COMP, "session taken over by another node cid=%llu", (unsigned long long)cid);
  c->ops->close(c->ud, 4001, "replaced");
  chat_leave(srv);
}

static void on_dir_dm(void *ud, uint64_t cid, const char *json, size_t len) {
  chat_server_t *srv = ud;
  chat_client_t *c = srv->freeing ? NULL : client_by_cid(srv, cid);
  if (!c || !chat_client_active(c)) return;
  chat_enter(srv);
  chat_send_own(c, outbuf_text(json, len));
  chat_leave(srv);
}

/* The cluster took this node for dead and removed its members (with their
 * presence leaves): every connection is closed to come back. Its rooms are
 * left without presence (already sent) and without the directory. */
static uint64_t on_dir_mark(void *ud) { return ((chat_server_t *)ud)->next_cid; }

static void on_dir_lost(void *ud, uint64_t mark) {
  chat_server_t *srv = ud;
  if (srv->freeing) return;
  chat_enter(srv);
  for (uint32_t i = 0; i < srv->n_clients; i++) {
    chat_client_t *c = srv->clients[i];
    if (c->state != CHAT_CLIENT_LIVE || c->cid > mark) continue;
    while (c->n_rooms) chat_room_remove(srv, c, c->n_rooms - 1);
    if (c->session) {
      release_name(srv, c->session);
      c->session->client = NULL;
      idle_push(srv, c->session);
      c->session = NULL;
    }
    c->state = CHAT_CLIENT_ZOMBIE;
    c->ops->close(c->ud, 1012, "this node lost the cluster; reconnect");
  }
  chat_leave(srv);
}

void chat_server_dir_handler(chat_server_t *srv, dir_handler_t *h) {
  h->kick = on_dir_kick;
  h->dm = on_dir_dm;
  h->mark = on_dir_mark;
  h->lost = on_dir_lost;
  h->ud = srv;
}

static void server_destroy(chat_server_t *srv) {
  free(srv->clients);
  free(srv->deferred);
  chat_jw_free(&srv->jw);
  OPENSSL_cleanse(srv->random, sizeof srv->random);
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
    c->held_mi = CHAT_NO_HELD;
    c->session = NULL;
    c->state = CHAT_CLIENT_DEAD;
    c->srv = NULL;
    c->endpoint_room = NULL;   /* the endpoints map goes below */
  }
  for (uint32_t i = 0; i < srv->n_deferred; i++) chat_client_unref(srv->deferred[i]);
  srv->n_clients = srv->n_deferred = 0;
  wsc_metrics.chat_clients = wsc_metrics.chat_members = 0;
  for (uint32_t i = 0; i < srv->rooms.cap; i++) {
    chat_room_t *r = srv->rooms.vals[i];
    if (!r) continue;
    if (srv->bus) bus_unsubscribe(srv->bus, r->name);
    chat_room_release(r);
  }
  wsc_metrics.chat_rooms = 0;
  for (uint32_t i = 0; i < srv->sessions.cap; i++) {
    chat_session_t *s = srv->sessions.vals[i];
    if (!s) continue;
    session_free(s);
  }
  wsc_hmap_free(&srv->rooms);
  wsc_hmap_free(&srv->names);
  wsc_hmap_free(&srv->sessions);
  wsc_hmap_free(&srv->conns);
  for (uint32_t i = 0; i < srv->endpoints.cap; i++) {
    chat_endpoint_t *e = srv->endpoints.vals[i];
    if (e) wsc_pool_put(e, sizeof *e + e->len + 1);
  }
  wsc_hmap_free(&srv->endpoints);
  dir_free(srv->own_dir);
  srv->own_dir = NULL;
  srv->freeing = 1;
  if (srv->pending == 0) server_destroy(srv);
}

void chat_server_op_done(chat_server_t *srv) {
  if (--srv->pending == 0 && srv->freeing) server_destroy(srv);
}
