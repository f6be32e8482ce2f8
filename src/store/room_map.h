/* store/room_map — the store's in-memory index: room name -> last id.
 *
 * Internal to store/. Lets store_last_id answer without touching the disk
 * and store_append assign ids at once. Rooms may number 100k or more and
 * their names come from clients, so the index is a base/hmap (SipHash under
 * a per-process random key: nobody can pick names that all collide).
 *
 * Entries are allocated one by one and never freed before the map, so a
 * store_room_t pointer stays valid while the map lives (growing the table
 * moves only the slot array). The map's keys point into the entries' names.
 */
#ifndef WSC_STORE_ROOM_MAP_H
#define WSC_STORE_ROOM_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/hmap.h"

typedef struct store_room {
  int64_t last_id;      /* last id assigned (in memory; may be ahead of disk) */
  uint64_t batch_gen;   /* which open batch last marked this room (sqlite.c) */
  size_t batch_slot;    /* this room's index in that batch's room list */
  char name[];          /* NUL-terminated */
} store_room_t;

typedef struct store_room_map {
  wsc_hmap_t map;       /* name -> store_room_t (owned) */
  size_t count;
} store_room_map_t;

void store_rooms_init(store_room_map_t *m);
void store_rooms_free(store_room_map_t *m);
/* The room's entry, or NULL when it has none. */
store_room_t *store_rooms_find(const store_room_map_t *m, const char *name);
/* The room's entry, created with last_id 0 if missing; NULL on ENOMEM. */
store_room_t *store_rooms_get(store_room_map_t *m, const char *name);

#endif
