/* chat/hashmap — a small string-keyed hash map (open addressing, linear
 * probing, backward-shift deletion: no tombstones, so lookups stay short
 * after many joins and leaves).
 *
 * chat/ keeps its rooms (by name), names (by display name, ASCII
 * case-insensitive) and sessions (by token) in these maps.
 *
 * Ownership: the map owns only its slot array. Keys are NOT copied: the
 * key bytes must stay valid and unchanged while the entry is in the map
 * (chat/ points them into the value's own storage). Values are opaque.
 */
#ifndef WSC_CHAT_HASHMAP_H
#define WSC_CHAT_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat_hmap_slot {
  const char *key;    /* NULL: empty slot */
  uint32_t len;
  uint32_t hash;
  void *val;
} chat_hmap_slot_t;

typedef struct chat_hmap {
  chat_hmap_slot_t *slots;
  uint32_t cap;       /* 0 or a power of two */
  uint32_t n;
  int ci;             /* 1: keys compare ASCII case-insensitively */
} chat_hmap_t;

/* An empty map; `ci` selects ASCII case-insensitive keys. No allocation. */
void chat_hmap_init(chat_hmap_t *m, int ci);
void chat_hmap_free(chat_hmap_t *m);

/* The value for key[0..len), or NULL. */
void *chat_hmap_get(const chat_hmap_t *m, const char *key, size_t len);
/* Inserts or replaces. Returns 0, or -1 on allocation failure. */
int chat_hmap_put(chat_hmap_t *m, const char *key, size_t len, void *val);
/* Removes the entry; returns its value, or NULL if there was none. */
void *chat_hmap_del(chat_hmap_t *m, const char *key, size_t len);

static inline uint32_t chat_hmap_count(const chat_hmap_t *m) { return m->n; }

/* Iteration: for (uint32_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...
 * The map must not be modified while iterating. */

#endif
