/* store/room_map — see room_map.h. */
#include "store/room_map.h"

#include <stdlib.h>
#include <string.h>

#include "base/pool.h"

/* Entries live as long as the map: from base/pool's size classes, out of
 * the heap the join storms churn. */
static size_t entry_bytes(size_t name_len) {
  return sizeof(store_room_t) + name_len + 1;
}

static const char *room_key(const void *v, size_t *len) {
  *len = strlen(((const store_room_t *)v)->name);
  return ((const store_room_t *)v)->name;
}

void store_rooms_init(store_room_map_t *m) {
  wsc_hmap_init(&m->map, WSC_HMAP_EXACT, room_key);
  m->count = 0;
}

void store_rooms_free(store_room_map_t *m) {
  for (uint32_t i = 0; i < m->map.cap; i++)
    if (m->map.vals[i]) {
      store_room_t *r = m->map.vals[i];
      wsc_pool_put(r, entry_bytes(strlen(r->name)));
    }
  wsc_hmap_free(&m->map);
  m->count = 0;
}

store_room_t *store_rooms_find(const store_room_map_t *m, const char *name) {
  return wsc_hmap_get(&m->map, name, strlen(name));
}

store_room_t *store_rooms_get(store_room_map_t *m, const char *name) {
  size_t len = strlen(name);
  store_room_t *r = wsc_hmap_get(&m->map, name, len);
  if (r) return r;
  r = wsc_pool_get(entry_bytes(len));
  if (!r) return NULL;
  memcpy(r->name, name, len + 1);
  if (wsc_hmap_put(&m->map, r->name, len, r) < 0) {
    wsc_pool_put(r, entry_bytes(len));
    return NULL;
  }
  m->count++;
  return r;
}
