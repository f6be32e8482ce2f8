/* store/room_map — see room_map.h. */
#include "store/room_map.h"

#include <stdlib.h>
#include <string.h>

#define ROOM_MAP_MIN_CAP 64
/* Grow when more than 3/4 full: linear probing stays short below that. */
#define ROOM_MAP_LOAD_NUM 3
#define ROOM_MAP_LOAD_DEN 4

/* FNV-1a over the name, started from the seed, then a 64-bit finalizer
 * (from MurmurHash3) so the low bits used as the slot index are well mixed. */
static uint64_t room_hash(uint64_t seed, const char *name) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

void store_rooms_init(store_room_map_t *m, uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->seed = seed;
}

void store_rooms_free(store_room_map_t *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i]);
  free(m->slots);
  memset(m, 0, sizeof *m);
}

/* The slot holding `name`, or the empty slot where it would go. */
static size_t find_slot(const store_room_map_t *m, const char *name, uint64_t hash) {
  size_t mask = m->cap - 1;
  size_t i = (size_t)hash & mask;
  while (m->slots[i]) {
    if (m->slots[i]->hash == hash && strcmp(m->slots[i]->name, name) == 0) break;
    i = (i + 1) & mask;
  }
  return i;
}

store_room_t *store_rooms_find(const store_room_map_t *m, const char *name) {
  if (m->cap == 0) return NULL;
  return m->slots[find_slot(m, name, room_hash(m->seed, name))];
}

static int grow(store_room_map_t *m) {
  size_t new_cap = m->cap ? m->cap * 2 : ROOM_MAP_MIN_CAP;
  store_room_t **slots = calloc(new_cap, sizeof *slots);
  if (!slots) return -1;
  store_room_map_t bigger = { slots, new_cap, m->count, m->seed };
  for (size_t i = 0; i < m->cap; i++) {
    store_room_t *r = m->slots[i];
    if (r) slots[find_slot(&bigger, r->name, r->hash)] = r;
  }
  free(m->slots);
  *m = bigger;
  return 0;
}

store_room_t *store_rooms_get(store_room_map_t *m, const char *name) {
  store_room_t *found = store_rooms_find(m, name);
  if (found) return found;
  if ((m->count + 1) * ROOM_MAP_LOAD_DEN > m->cap * ROOM_MAP_LOAD_NUM && grow(m) < 0)
    return NULL;
  size_t len = strlen(name);
  store_room_t *r = calloc(1, sizeof *r + len + 1);
  if (!r) return NULL;
  memcpy(r->name, name, len + 1);
  r->hash = room_hash(m->seed, name);
  m->slots[find_slot(m, name, r->hash)] = r;
  m->count++;
  return r;
}
