/* chat/room — rooms and memberships: creation on first join, O(1) add and
 * remove with cross indexes (see internal.h), freed when empty. Rooms are
 * subscribed on the bus while they exist on this node. */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "chat/internal.h"

#define ROOM_MIN_CAP 4

chat_room_t *chat_room_get(chat_server_t *srv, const char *name, size_t len) {
  return wsc_hmap_get(&srv->rooms, name, len);
}

chat_room_t *chat_room_get_or_create(chat_server_t *srv, const char *name, size_t len) {
  chat_room_t *r = chat_room_get(srv, name, len);
  if (r) return r;
  /* Rooms and their member blocks live as long as their members: from
   * base/pool's size classes, out of the heap the join storms churn. */
  if (len > UINT32_MAX - 1 || !(r = wsc_pool_get(sizeof *r + len + 1))) return NULL;
  memcpy(r->name, name, len);
  r->name_len = (uint32_t)len;
  r->last_id = r->want = store_last_id(srv->store, r->name);   /* -1: learnt at the first join */
  if (wsc_hmap_put(&srv->rooms, r->name, len, r) < 0) {
    chat_room_release(r);
    return NULL;
  }
  if (srv->bus) bus_subscribe(srv->bus, r->name);
  wsc_metrics.chat_rooms++;
  return r;
}

void chat_room_held_release(chat_room_t *r) {
  if (r->held) {
    for (uint32_t i = 0; i < CHAT_HELD_MAX; i++)
      if (r->held[i]) wsc_buf_unref(r->held[i]);
    free(r->held);
    r->held = NULL;
  }
  if (r->held_run) wsc_buf_unref(r->held_run);
  r->held_run = NULL;
  chat_jw_free(&r->names);
  r->names_n = 0;
}

void chat_room_free(chat_server_t *srv, chat_room_t *room) {
  wsc_hmap_del(&srv->rooms, room->name, room->name_len);
  if (srv->bus) bus_unsubscribe(srv->bus, room->name);
  wsc_metrics.chat_rooms--;
  chat_room_release(room);
}

static size_t members_bytes(uint32_t cap) {
  return (size_t)cap * (sizeof(chat_client_t *) + 1);
}

void chat_rooms_release(chat_client_t *c) {
  if (c->cap_rooms > 1) wsc_pool_put(c->rooms_heap, c->cap_rooms * sizeof *c->rooms_heap);
}

void chat_room_release(chat_room_t *room) {
  chat_room_held_release(room);   /* and the cached member list */
  wsc_pool_put(room->members, members_bytes(room->cap));
  wsc_pool_put(room, sizeof *room + room->name_len + 1);
}

/* A client's memberships start in c->room0 (cap 1) and move to an array
 * from base/pool's size classes (rooms_heap, in room0's place) from the
 * second room on. */
static int grow_rooms(chat_client_t *c) {
  if (c->n_rooms < c->cap_rooms) return 0;
  if (c->cap_rooms > UINT8_MAX / 2) return -1;
  uint8_t cap = (uint8_t)(c->cap_rooms * 2);
  chat_membership_t *a = wsc_pool_get(cap * sizeof *a);
  if (!a) return -1;
  memcpy(a, chat_rooms(c), c->n_rooms * sizeof *a);
  chat_rooms_release(c);   /* the old array, if any */
  c->rooms_heap = a;
  c->cap_rooms = cap;
  return 0;
}

_Static_assert(CHAT_ROOMS_PER_CLIENT_MAX <= UINT8_MAX, "member_mi is a byte");

/* Doubles the room's member block (members, then member_mi) from
 * ROOM_MIN_CAP when full, to as many members as the block's size class
 * holds (100 members: 113 in 1,024 bytes). */
static int grow_members(chat_room_t *r) {
  if (r->n < r->cap) return 0;
  if (r->cap > UINT32_MAX / 2) return -1;
  size_t bytes = wsc_pool_fit(members_bytes(r->cap ? r->cap * 2 : ROOM_MIN_CAP));
  uint32_t ncap = (uint32_t)(bytes / (sizeof(chat_client_t *) + 1));
  chat_client_t **m = wsc_pool_get(bytes);
  if (!m) return -1;
  uint8_t *mi = (uint8_t *)(m + ncap);
  if (r->n) {   /* the indexes follow the pointers */
    memcpy(m, r->members, r->n * sizeof *m);
    memcpy(mi, r->member_mi, r->n);
  }
  wsc_pool_put(r->members, members_bytes(r->cap));
  r->members = m;
  r->member_mi = mi;
  r->cap = ncap;
  return 0;
}

int chat_room_add(chat_room_t *room, chat_client_t *c) {
  if (c->n_rooms >= UINT8_MAX) return -1;   /* its index must fit member_mi */
  if (grow_members(room) < 0 || grow_rooms(c) < 0) return -1;
  uint32_t mi = c->n_rooms++, ri = room->n++;
  chat_rooms(c)[mi] = (chat_membership_t){
      .room = room, .ri = ri, .gen = ++c->next_gen, .replaying = 0,
      /* "long ago": the first typing always goes out */
      .typing_ms = (uint32_t)(wsc_mono_ms() - CHAT_TYPING_INTERVAL_MS),
      .floor = INT64_MAX,           /* set by its join read */
  };
  room->members[ri] = c;
  room->member_mi[ri] = (uint8_t)mi;
  wsc_metrics.chat_members++;
  return (int)mi;
}

uint32_t chat_room_remove(chat_server_t *srv, chat_client_t *c, uint32_t mi) {
  /* What it is owed goes first (or is dropped if it is going): the
   * memberships move below, and held_mi with them. */
  chat_client_fill(c);
  chat_room_t *room = chat_rooms(c)[mi].room;
  chat_room_names_reset(room);   /* the last member moves into its place */
  uint32_t ri = chat_rooms(c)[mi].ri;

  /* Room side: move the last member into the hole and fix its back index. */
  room->members[ri] = room->members[--room->n];
  room->member_mi[ri] = room->member_mi[room->n];
  if (ri < room->n) chat_rooms(room->members[ri])[room->member_mi[ri]].ri = ri;

  /* Client side: the same with the client's last membership. */
  chat_rooms(c)[mi] = chat_rooms(c)[--c->n_rooms];
  if (mi < c->n_rooms) chat_rooms(c)[mi].room->member_mi[chat_rooms(c)[mi].ri] = (uint8_t)mi;

  wsc_metrics.chat_members--;
  uint32_t left = room->n;
  if (!left) chat_room_free(srv, room);
  return left;
}
