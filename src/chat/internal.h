/* chat/internal — the structs shared by the chat/ sources (never included outside
 * src/chat/).
 *
 * Who owns what:
 *   chat_server_t  owns the rooms map (-> chat_room_t), the names map
 *                  (display name -> chat_session_t, ASCII case-insensitive;
 *                  an entry exists while the session's name is held by a
 *                  connection), the sessions map (the token's 16 bytes -> chat_session_t,
 *                  owned; a session without a connection is kept on the idle
 *                  list, up to idle_max of them, oldest dropped), the array
 *                  of attached clients and the JSON scratch writer. It also
 *                  owns the endpoints map (/ws/{room} name -> one shared,
 *                  counted copy of it) and, while the directory is a shared
 *                  one, the conns map (cid -> client, not owned).
 *   chat_room_t    owns its members array. A room exists while it has
 *                  members; it is freed when the last one leaves.
 *   chat_client_t  owns its memberships array and one reference to its
 *                  endpoint room name (dropped at detach). It is
 *                  reference counted: one reference from attach until
 *                  detach, one per store operation in flight, so a store
 *                  callback that arrives after the connection is gone finds
 *                  the client (state DEAD) and simply drops it.
 *
 * Room membership is kept on both sides with cross indexes, so joining and
 * leaving are O(1) (index swap) and fan-out walks one flat array:
 *   room->members[ri] = client, room->member_mi[ri] = mi   and
 *   chat_rooms(client)[mi] = {room, ri}.
 */
#ifndef WSC_CHAT_INTERNAL_H
#define WSC_CHAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bus/dir.h"
#include "chat/chat.h"
#include "chat/encode.h"
#include "base/hmap.h"
#include "chat/names.h"
#include "chat/proto.h"

#define CHAT_TYPING_INTERVAL_MS 2000   /* one typing event per member+room per 2 s */
#define CHAT_GUEST_TRIES 16            /* random guest names tried per digit count */
/* Sessions of closed connections kept for ?session= (oldest dropped first),
 * so connection churn cannot grow the heap without bound. */
#define CHAT_IDLE_SESSIONS_MAX 100000
#define CHAT_ROOMS_PER_CLIENT_MAX 100  /* rooms one connection may be in at once */
/* Room events (presence, typing) a room keeps for its members until the
 * lazy round (server.c, chat_transport_ops_t.hold): a member that would be
 * owed more gets them queued at once, which then go with the next write
 * (like net's NET_LAZY_FULL). A power of two below 256 (chat_client_t.held_at). */
#ifndef CHAT_HELD_MAX
#define CHAT_HELD_MAX 128
#endif
#define CHAT_NO_HELD 0xff              /* chat_client_t.held_mi: nothing held */

typedef struct chat_room chat_room_t;

struct chat_room {
  /* One block of cap members and then cap bytes of member_mi: 9 bytes a
   * member, not 16 for a {pointer, index} pair. */
  chat_client_t **members;
  uint8_t *member_mi;          /* members[i]'s index in its client's rooms
                                  (< CHAT_ROOMS_PER_CLIENT_MAX) */
  uint32_t n, cap;
  /* Ordered delivery (order.c): the last message id delivered on this node
   * (-1: not known yet, until the first join read), the highest id seen
   * beyond it (a gap to refill), and the room's epoch. */
  int64_t last_id, want;
  uint8_t refilling;           /* a refill read is in flight */
  uint8_t resync;              /* refill once last_id is known */
  uint8_t delivering;          /* server.c deliver_held is walking the members */
  /* Events held for members (server.c): the last CHAT_HELD_MAX, a ring
   * indexed by held_end (events appended so far) modulo its size; NULL
   * while no member is owed any. */
  uint32_t held_by;            /* members owed events from the ring */
  uint32_t held_end;
  wsc_buf_t **held;
  /* The last run of held events filled to a member, as one buffer of
   * consecutive frames: the next member owed the same run (every member
   * that was in the room when it began, at a lazy round) shares it. */
  wsc_buf_t *held_run;
  uint32_t run_from, run_end;
  /* While events are held (a join storm), joined.members of this node's
   * members [0, names_n), rendered once: a join renders only the names
   * added since. Reset when a member leaves or is renamed, freed with the
   * ring (room.c). */
  uint32_t names_n;
  chat_jw_t names;
  char epoch[STORE_EPOCH_MAX + 1];
  uint32_t name_len;
  char name[];                 /* NUL-terminated; the rooms map key */
};

typedef struct chat_membership {
  chat_room_t *room;
  uint32_t ri;                 /* index in room->members */
  uint32_t gen;                /* which join made it (pending fetches check it) */
  uint32_t replaying;          /* join fetches in flight: broadcasts skip it */
  uint32_t typing_ms;          /* monotonic ms of the last typing relayed, low 32 bits
                                  (compared as a difference; 32 bytes in all) */
  int64_t floor;               /* ids <= floor reached it in its replay */
} chat_membership_t;

/* Names this short (guest-xxxx) live in the session itself; longer ones
 * are malloc'd. The size fills the struct's padding (56 bytes either way). */
#define CHAT_NAME_INLINE 14

typedef struct chat_session {
  union {
    chat_client_t *client;     /* not idle: the connection holding the name, or NULL
                                  (read it with chat_session_client) */
    struct chat_session *idle_prev;   /* idle: the idle list */
  };
  struct chat_session *idle_next;
  char *name;                  /* current name (the names map key while held): name_buf,
                                  or malloc'd when longer; NULL until named */
  uint8_t token[CHAT_TOKEN_BYTES];  /* the sessions map key: the token's bytes, not
                                       its hex text (chat_session_token) */
  uint8_t name_len;            /* <= CHAT_NAME_MAX_BYTES */
  uint8_t idle;                /* on the server's idle list (kept for ?session=) */
  char name_buf[CHAT_NAME_INLINE];
} chat_session_t;

static inline chat_client_t *chat_session_client(const chat_session_t *s) {
  return s->idle ? NULL : s->client;
}

enum chat_client_state {
  CHAT_CLIENT_LIVE = 0,
  CHAT_CLIENT_ZOMBIE,          /* replaced by ?session=: closed, waits for detach */
  CHAT_CLIENT_DEAD,            /* detached: only pending store ops still hold it */
};

struct chat_client {
  chat_server_t *srv;          /* NULL once the server is freed */
  const chat_transport_ops_t *ops;
  void *ud;
  chat_session_t *session;     /* NULL unless LIVE */
  uint8_t n_rooms, cap_rooms;  /* <= CHAT_ROOMS_PER_CLIENT_MAX (cap <= 128); the
                                  memberships are chat_rooms(c) */
  uint8_t held_mi;             /* the membership whose room holds events owed to it
                                  (one room at a time: order), or CHAT_NO_HELD */
  uint8_t held_at;             /* from that room's event held_at (its held_end's low
                                  8 bits when the first was appended) */
  uint32_t idx;                /* in srv->clients */
  uint32_t refs;
  uint32_t next_gen;
  uint8_t state;
  uint8_t send_failed;         /* ops->send said over limit: send nothing more */
  uint8_t detach_deferred;
  uint8_t attaching;           /* the directory has not confirmed the name yet: no welcome */
  float tokens;                /* rate limit bucket (when config.rate_limit > 0) */
  const char *endpoint_room;   /* /ws/{room}: plain text goes here; else NULL (shared:
                                  the server's endpoints map, one copy per name) */
  uint64_t cid;                /* connection id, unique on this node (the directory's key;
                                  its 8 bytes are the conns map key) */
  union {
    struct attach_op *attach;  /* while attaching (the directory has not confirmed the
                                  name, no welcome yet): the attach, holding what the
                                  client sent */
    int64_t tokens_ms;         /* after: the rate limit bucket's last refill (nothing is
                                  rate limited before the welcome) */
  };
  union {
    chat_membership_t room0;   /* cap_rooms 1: the one membership (most clients are in
                                  one room) */
    chat_membership_t *rooms_heap;   /* cap_rooms > 1: a base/pool size-class block */
  };
};

/* A client's memberships (n_rooms of them). */
static inline chat_membership_t *chat_rooms(const chat_client_t *c) {
  return c->cap_rooms > 1 ? c->rooms_heap : (chat_membership_t *)(uintptr_t)&c->room0;
}

struct chat_server {
  uv_loop_t *loop;
  const wsc_config_t *cfg;
  store_t *store;
  bus_t *bus;
  chat_limits_t lim;
  wsc_hmap_t rooms, names, sessions;
  wsc_hmap_t conns;           /* cid (its 8 bytes) -> chat_client_t, for kicks and DMs
                                 from other nodes: kept only while the directory is a
                                 shared one (dir_is_shared; nobody else looks a
                                 connection up) */
  wsc_hmap_t endpoints;       /* /ws/{room} names of the clients -> chat_endpoint_t */
  dir_t *dir;                  /* the directory (names, sessions, members beyond this node) */
  unsigned char random[1024];  /* CSPRNG output not yet used (server.c random_bytes) */
  uint16_t random_left;        /* its last random_left bytes */
  dir_t *own_dir;              /* the local one made by chat_server_new, until set_dir */
  uint64_t next_cid;
  chat_session_t *idle_head, *idle_tail;   /* sessions without a connection, oldest first */
  uint32_t n_idle, idle_max;
  chat_client_t **clients;
  uint32_t n_clients, cap_clients;
  chat_client_t **deferred;    /* detaches requested during a fan-out */
  uint32_t n_deferred, cap_deferred;
  chat_jw_t jw;
  int depth;                   /* > 0 while chat code is on the stack */
  uint32_t pending;            /* store operations in flight */
  int freeing;                 /* chat_server_free ran; free when pending == 0 */
  chat_client_t *exclude;      /* a broadcast in progress skips this client */
};

/* --- server.c ------------------------------------------------------------- */
void chat_enter(chat_server_t *srv);
void chat_leave(chat_server_t *srv);    /* runs deferred detaches at depth 0 */
int chat_client_active(const chat_client_t *c);
/* Queues b to c if it is active; does not consume the caller's reference. */
void chat_send(chat_client_t *c, wsc_buf_t *b);
/* Queues b to c and drops the caller's reference (b may be NULL: OOM). */
void chat_send_own(chat_client_t *c, wsc_buf_t *b);
void chat_send_error(chat_client_t *c, chat_err_t e, const char *msg, const json_t *ref);
/* Publishes b to the room (through the bus) skipping `exclude`, then drops
 * the caller's reference. */
void chat_broadcast(chat_server_t *srv, const char *room, wsc_buf_t *b, chat_client_t *exclude);
const char *chat_client_name(const chat_client_t *c);
/* The session's token as text (32 hex digits) into out; returns out. */
const char *chat_session_token(const chat_session_t *s, char out[CHAT_TOKEN_TEXT]);
void chat_client_unref(chat_client_t *c);
/* Index of c's membership of room, or -1. */
int chat_find_membership(const chat_client_t *c, const chat_room_t *room);
/* A store operation finished: one fewer in flight; completes a deferred
 * chat_server_free. */
void chat_server_op_done(chat_server_t *srv);
/* Renames c (the name is valid and free or c's own) with presence rename
 * to every room of c. 0 or -1 (out of memory). */
int chat_rename(chat_client_t *c, const char *name, size_t len);

/* --- room.c --------------------------------------------------------------- */
chat_room_t *chat_room_get(chat_server_t *srv, const char *name, size_t len);
chat_room_t *chat_room_get_or_create(chat_server_t *srv, const char *name, size_t len);
/* Adds c to room (new membership, replaying = 0); its index in chat_rooms(c) or -1. */
int chat_room_add(chat_room_t *room, chat_client_t *c);
/* Removes membership mi of c; frees the room when it is left empty (the
 * room pointer is then invalid). Returns the members left. */
uint32_t chat_room_remove(chat_server_t *srv, chat_client_t *c, uint32_t mi);
void chat_room_free(chat_server_t *srv, chat_room_t *room);
/* Frees the room's blocks alone (no map, bus or metrics). */
void chat_room_release(chat_room_t *room);
/* Frees the client's membership array when it has one (rooms_heap). */
void chat_rooms_release(chat_client_t *c);
/* Drops the room's held events (no member is owed any) and its cached
 * member list. */
void chat_room_held_release(chat_room_t *r);
/* The cached member list is stale (a member left or was renamed). */
static inline void chat_room_names_reset(chat_room_t *r) {
  r->names.len = 0;
  r->names.oom = 0;
  r->names_n = 0;
}

/* --- order.c -------------------------------------------------------------- */
/* A stored message of room r, from this node's append or another node's:
 * delivered to the members now if it is the next id, dropped if already
 * delivered, else the gap is refilled from the store first. */
void chat_room_accept(chat_server_t *srv, chat_room_t *r, const store_msg_t *m);
/* Reads what the room may have missed (after a gap, a lost link, a new
 * subscription) and delivers it; once last_id is known. */
void chat_room_refill(chat_server_t *srv, chat_room_t *r);
/* The room's history was lost (a new epoch): its members here are closed
 * (1012) so they join again and learn it (recovered:false). */
void chat_room_reset(chat_server_t *srv, chat_room_t *r, int64_t last_id, const char *epoch);
/* The chat error for a store status (unavailable or internal). */
chat_err_t chat_store_err(int status);

/* --- handlers.c ----------------------------------------------------------- */
void chat_handle(chat_client_t *c, chat_req_t *req);
/* Plain text on /ws/{room}: a `send` without ref. */
void chat_handle_plain(chat_client_t *c, const char *text, size_t len);
/* Joins room (validated) with an optional since/epoch, as `join` does. */
void chat_do_join(chat_client_t *c, const char *room, size_t room_len, int has_since,
                  int64_t since, const char *epoch, size_t epoch_len);
/* Presence rename of c in room with the directory's count (here: this
 * node's members). */
void chat_rename_presence(chat_client_t *c, const char *room, const char *name, const char *old, uint32_t here);
/* Leaves membership mi sending presence leave to the others. */
void chat_do_leave(chat_client_t *c, uint32_t mi);

#endif
