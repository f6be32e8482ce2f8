/* base/hmap — the one string-keyed hash table of the server.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups stay short after many inserts and removals),
 * grown at 3/4 full by half again (any capacity: a hash's home slot is
 * the hash scaled to the table, hash * cap >> 32). Keys are hashed with SipHash
 * under a per-process random key (base/siphash.h), so a client that
 * chooses the keys (room names, display names, session tokens) cannot make
 * them collide: every table indexed by client-chosen strings uses this one.
 *
 * Keys live in the values: a slot is the value and the key's 32-bit hash
 * (12 bytes, in two arrays: probing reads only the hashes); the map's
 * key_of function finds the key's bytes and length in a value when a
 * lookup meets a slot of the same hash. (A map of 15,000 chat sessions at
 * its load of ~57 % is 26,151 slots: 306 KiB, not the 768 KiB that keeping
 * the key pointer and length in 32,768 slots took.)
 *
 * Ownership: the map owns only its slot array. Keys are NOT copied: the
 * key bytes (key_of(val), the same bytes as the key given to put) must
 * stay valid and unchanged while the entry is in the map. Values are
 * opaque and never NULL. Single-threaded: one map is used by one thread
 * at a time.
 */
#ifndef WSC_BASE_HMAP_H
#define WSC_BASE_HMAP_H

#include <stddef.h>
#include <stdint.h>

/* Where a value keeps its key (the bytes given to put with it): returns
 * them and sets *len. */
typedef const char *(*wsc_hmap_key_fn)(const void *val, size_t *len);

typedef struct wsc_hmap {
  void **vals;        /* cap values, NULL: empty slot; one block with... */
  uint32_t *hashes;   /* ... the low 32 bits of each key's SipHash */
  wsc_hmap_key_fn key_of;
  uint32_t cap;       /* slots (0: none yet) */
  uint32_t n;
  int ci;             /* WSC_HMAP_CASE_FOLD: keys compare ASCII case-insensitively */
} wsc_hmap_t;

#define WSC_HMAP_EXACT 0
#define WSC_HMAP_CASE_FOLD 1
/* The largest table: 2^31 slots. */
#define WSC_HMAP_MAX_CAP 0x80000000u

/* An empty map (flags: WSC_HMAP_EXACT or WSC_HMAP_CASE_FOLD) whose values
 * keep their keys where key_of says. No allocation. */
void wsc_hmap_init(wsc_hmap_t *m, int flags, wsc_hmap_key_fn key_of);
void wsc_hmap_free(wsc_hmap_t *m);

/* The value for key[0..len), or NULL. */
void *wsc_hmap_get(const wsc_hmap_t *m, const char *key, size_t len);
/* Inserts or replaces; key_of(val) must be key. Returns 0, -ENOMEM, -EINVAL
 * (val NULL), or -E2BIG (key or table too big). */
int wsc_hmap_put(wsc_hmap_t *m, const char *key, size_t len, void *val);
/* Removes the entry; returns its value, or NULL if there was none. */
void *wsc_hmap_del(wsc_hmap_t *m, const char *key, size_t len);

static inline uint32_t wsc_hmap_count(const wsc_hmap_t *m) { return m->n; }

/* Slots a lookup of every key in the map would visit, summed (n when no
 * key is displaced from its home slot). For tests and diagnostics: the
 * average, probes / n, is the cost of one lookup. */
uint64_t wsc_hmap_probes(const wsc_hmap_t *m);

/* Iteration: for (uint32_t i = 0; i < m->cap; i++) if (m->vals[i]) ...
 * The map must not be modified while iterating. */

#endif
