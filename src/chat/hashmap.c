/* chat/hashmap — see hashmap.h. */
#include "chat/hashmap.h"

#include <stdlib.h>
#include <string.h>

#define HMAP_MIN_CAP 8u
/* Grow at 3/4 full: linear probing degrades fast above that. */
#define HMAP_LOAD_NUM 3u
#define HMAP_LOAD_DEN 4u

static inline unsigned char fold(unsigned char ch, int ci) {
  return (ci && ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + ('a' - 'A')) : ch;
}

/* FNV-1a, then a final avalanche so the low bits (the slot index) depend
 * on every input byte. */
static uint32_t hash_key(const char *key, size_t len, int ci) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= fold((unsigned char)key[i], ci);
    h *= 16777619u;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return h;
}

static int key_eq(const chat_hmap_slot_t *s, const char *key, size_t len, uint32_t h, int ci) {
  if (s->hash != h || s->len != len) return 0;
  if (!ci) return memcmp(s->key, key, len) == 0;
  for (size_t i = 0; i < len; i++)
    if (fold((unsigned char)s->key[i], 1) != fold((unsigned char)key[i], 1)) return 0;
  return 1;
}

void chat_hmap_init(chat_hmap_t *m, int ci) {
  m->slots = NULL;
  m->cap = 0;
  m->n = 0;
  m->ci = ci;
}

void chat_hmap_free(chat_hmap_t *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->n = 0;
}

/* Index of the key's slot, or of the empty slot where it would go. */
static uint32_t find_slot(const chat_hmap_t *m, const char *key, size_t len, uint32_t h) {
  uint32_t mask = m->cap - 1, i = h & mask;
  while (m->slots[i].key && !key_eq(&m->slots[i], key, len, h, m->ci)) i = (i + 1) & mask;
  return i;
}

void *chat_hmap_get(const chat_hmap_t *m, const char *key, size_t len) {
  if (!m->n) return NULL;
  uint32_t i = find_slot(m, key, len, hash_key(key, len, m->ci));
  return m->slots[i].key ? m->slots[i].val : NULL;
}

static int grow(chat_hmap_t *m) {
  uint32_t ncap = m->cap ? m->cap * 2 : HMAP_MIN_CAP;
  if (ncap < m->cap) return -1;
  chat_hmap_slot_t *ns = calloc(ncap, sizeof *ns);
  if (!ns) return -1;
  chat_hmap_slot_t *old = m->slots;
  uint32_t ocap = m->cap;
  m->slots = ns;
  m->cap = ncap;
  for (uint32_t i = 0; i < ocap; i++) {
    if (!old[i].key) continue;
    uint32_t j = old[i].hash & (ncap - 1);
    while (ns[j].key) j = (j + 1) & (ncap - 1);
    ns[j] = old[i];
  }
  free(old);
  return 0;
}

int chat_hmap_put(chat_hmap_t *m, const char *key, size_t len, void *val) {
  if (len > UINT32_MAX) return -1;
  if ((m->n + 1) * HMAP_LOAD_DEN > m->cap * HMAP_LOAD_NUM && grow(m) < 0) return -1;
  uint32_t h = hash_key(key, len, m->ci);
  uint32_t i = find_slot(m, key, len, h);
  if (!m->slots[i].key) m->n++;
  m->slots[i] = (chat_hmap_slot_t){key, (uint32_t)len, h, val};
  return 0;
}

void *chat_hmap_del(chat_hmap_t *m, const char *key, size_t len) {
  if (!m->n) return NULL;
  uint32_t mask = m->cap - 1;
  uint32_t i = find_slot(m, key, len, hash_key(key, len, m->ci));
  if (!m->slots[i].key) return NULL;
  void *val = m->slots[i].val;
  /* Backward-shift: pull later entries of the probe run into the hole when
   * the hole lies on their path from home slot to current slot. */
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (!m->slots[j].key) break;
    uint32_t home = m->slots[j].hash & mask;
    int on_path = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
    if (on_path) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = NULL;
  m->slots[i].val = NULL;
  m->n--;
  return val;
}
