/* base/hmap — see hmap.h. */
#include "base/hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/siphash.h"

#define HMAP_MIN_CAP 8u
/* Grow at 3/4 full: linear probing degrades fast above that. */
#define HMAP_LOAD_NUM 3u
#define HMAP_LOAD_DEN 4u
/* ... by half again, not double: a table is 1.33-2x its entries, not
 * 1.33-2.67x (15,000 sessions: 26,151 slots, not 32,768). */
#define HMAP_GROW_NUM 3u
#define HMAP_GROW_DEN 2u

/* A hash's home slot in a table of cap slots (any cap: the hash scaled to
 * it, no modulo). */
static inline uint32_t home_of(uint32_t h, uint32_t cap) {
  return (uint32_t)(((uint64_t)h * cap) >> 32);
}

static inline uint32_t next_slot(uint32_t i, uint32_t cap) {
  return i + 1 == cap ? 0 : i + 1;
}

static inline unsigned char fold(unsigned char ch) {
  return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + ('a' - 'A')) : ch;
}

static inline uint32_t hash_key(const wsc_hmap_t *m, const char *key, size_t len) {
  return (uint32_t)wsc_hash(key, len, m->ci);
}

static int key_eq(const wsc_hmap_t *m, uint32_t slot, const char *key, size_t len, uint32_t h) {
  if (m->hashes[slot] != h) return 0;
  size_t klen;
  const char *k = m->key_of(m->vals[slot], &klen);
  if (klen != len) return 0;
  if (!m->ci) return memcmp(k, key, len) == 0;
  for (size_t i = 0; i < len; i++)
    if (fold((unsigned char)k[i]) != fold((unsigned char)key[i])) return 0;
  return 1;
}

void wsc_hmap_init(wsc_hmap_t *m, int flags, wsc_hmap_key_fn key_of) {
  m->vals = NULL;
  m->hashes = NULL;
  m->key_of = key_of;
  m->cap = 0;
  m->n = 0;
  m->ci = (flags & WSC_HMAP_CASE_FOLD) != 0;
}

void wsc_hmap_free(wsc_hmap_t *m) {
  free(m->vals);
  m->vals = NULL;
  m->hashes = NULL;
  m->cap = m->n = 0;
}

/* Index of the key's slot, or of the empty slot where it would go. */
static uint32_t find_slot(const wsc_hmap_t *m, const char *key, size_t len, uint32_t h) {
  uint32_t i = home_of(h, m->cap);
  while (m->vals[i] && !key_eq(m, i, key, len, h)) i = next_slot(i, m->cap);
  return i;
}

void *wsc_hmap_get(const wsc_hmap_t *m, const char *key, size_t len) {
  if (!m->n) return NULL;
  uint32_t i = find_slot(m, key, len, hash_key(m, key, len));
  return m->vals[i];
}

static int grow(wsc_hmap_t *m) {
  if (m->cap >= WSC_HMAP_MAX_CAP) return -E2BIG;
  uint64_t want = m->cap ? (uint64_t)m->cap * HMAP_GROW_NUM / HMAP_GROW_DEN : HMAP_MIN_CAP;
  uint32_t ncap = want > WSC_HMAP_MAX_CAP ? WSC_HMAP_MAX_CAP : (uint32_t)want;
  /* One block: the values, then the hashes. */
  void **nv = calloc(ncap, sizeof(void *) + sizeof(uint32_t));
  if (!nv) return -ENOMEM;
  uint32_t *nh = (uint32_t *)(nv + ncap);
  void **ov = m->vals;
  uint32_t *oh = m->hashes;
  uint32_t ocap = m->cap;
  m->vals = nv;
  m->hashes = nh;
  m->cap = ncap;
  for (uint32_t i = 0; i < ocap; i++) {
    if (!ov[i]) continue;
    uint32_t j = home_of(oh[i], ncap);
    while (nv[j]) j = next_slot(j, ncap);
    nv[j] = ov[i];
    nh[j] = oh[i];
  }
  free(ov);
  return 0;
}

int wsc_hmap_put(wsc_hmap_t *m, const char *key, size_t len, void *val) {
  if (len > UINT32_MAX) return -E2BIG;
  if (!val) return -EINVAL;
  uint32_t h = hash_key(m, key, len);
  if ((uint64_t)(m->n + 1) * HMAP_LOAD_DEN > (uint64_t)m->cap * HMAP_LOAD_NUM) {
    int rc = grow(m);
    if (rc < 0) return rc;
  }
  uint32_t i = find_slot(m, key, len, h);
  if (!m->vals[i]) m->n++;
  m->vals[i] = val;
  m->hashes[i] = h;
  return 0;
}

void *wsc_hmap_del(wsc_hmap_t *m, const char *key, size_t len) {
  if (!m->n) return NULL;
  uint32_t i = find_slot(m, key, len, hash_key(m, key, len));
  void *val = m->vals[i];
  if (!val) return NULL;
  /* Backward shift: pull later entries of the probe run into the hole when
   * the hole lies on their path from home slot to current slot. */
  uint32_t j = i;
  for (;;) {
    j = next_slot(j, m->cap);
    if (!m->vals[j]) break;
    uint32_t home = home_of(m->hashes[j], m->cap);
    int on_path = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
    if (on_path) {
      m->vals[i] = m->vals[j];
      m->hashes[i] = m->hashes[j];
      i = j;
    }
  }
  m->vals[i] = NULL;
  m->n--;
  return val;
}

uint64_t wsc_hmap_probes(const wsc_hmap_t *m) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < m->cap; i++) {
    if (!m->vals[i]) continue;
    uint32_t home = home_of(m->hashes[i], m->cap);
    total += (i >= home ? i - home : m->cap - home + i) + 1;
  }
  return total;
}
