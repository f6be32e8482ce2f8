/* base/hmap and base/siphash: SipHash against the paper's test vector, the
 * table's behaviour (case folding, replace, random inserts and deletes),
 * and hostile keys: 100,000 names that ALL collide under the server's old
 * unkeyed hash (FNV-1a + a final mix) still cost about one probe each. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "base/siphash.h"

/* ---- SipHash ----------------------------------------------------------------- */

/* The paper's appendix: key 00 01 .. 0f, message 00 01 .. 0e (15 bytes),
 * SipHash-2-4 = a129ca6149be45e5; and the empty message of the reference
 * vectors: 726fdb47dd0e0e31. */
static void test_siphash_vectors(void **state) {
  (void)state;
  uint8_t key[16], msg[15];
  for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
  for (int i = 0; i < 15; i++) msg[i] = (uint8_t)i;
  assert_true(wsc_siphash(key, 2, 4, msg, sizeof msg, 0) == 0xa129ca6149be45e5ull);
  assert_true(wsc_siphash(key, 2, 4, msg, 0, 0) == 0x726fdb47dd0e0e31ull);
  /* Folding: hashed as lower case, and only when asked. */
  assert_true(wsc_hash("Hello, World! 0123456789", 24, 1) ==
              wsc_hash("hello, world! 0123456789", 24, 1));
  assert_true(wsc_hash("Hello", 5, 0) != wsc_hash("hello", 5, 0));
  /* The process key is fixed for the process. */
  assert_true(wsc_hash("room", 4, 0) == wsc_hash("room", 4, 0));
}

/* ---- hash map --------------------------------------------------------------- */

/* The values of these maps are their keys (NUL-terminated strings). */
static const char *str_key(const void *v, size_t *len) {
  *len = strlen(v);
  return v;
}

static void test_hmap_basic(void **state) {
  (void)state;
  wsc_hmap_t m;
  wsc_hmap_init(&m, WSC_HMAP_CASE_FOLD, str_key);
  char a[] = "Alice", b[] = "ALICE", room[] = "Room";
  assert_null(wsc_hmap_get(&m, "x", 1));
  assert_null(wsc_hmap_del(&m, "x", 1));
  assert_int_equal(wsc_hmap_put(&m, a, 5, a), 0);
  assert_ptr_equal(wsc_hmap_get(&m, "aLiCe", 5), a);
  assert_null(wsc_hmap_get(&m, "Alic", 4));
  assert_int_equal(wsc_hmap_put(&m, b, 5, b), 0);   /* replaces */
  assert_int_equal(wsc_hmap_count(&m), 1);
  assert_ptr_equal(wsc_hmap_get(&m, "alice", 5), b);
  assert_int_equal(wsc_hmap_put(&m, a, 5, NULL), -EINVAL);   /* values are never NULL */
  assert_ptr_equal(wsc_hmap_del(&m, "alice", 5), b);
  assert_int_equal(wsc_hmap_count(&m), 0);
  wsc_hmap_free(&m);

  wsc_hmap_init(&m, WSC_HMAP_EXACT, str_key);
  assert_int_equal(wsc_hmap_put(&m, room, 4, room), 0);
  assert_null(wsc_hmap_get(&m, "room", 4));                /* case-sensitive */
  wsc_hmap_free(&m);
}

/* Random inserts and deletes against a plain array: after every step each
 * live key is found and each deleted one is not (backward-shift deletion
 * must keep every probe run intact). */
static void test_hmap_random(void **state) {
  (void)state;
  enum { N = 3000, KEYS = 700 };
  static char keys[KEYS][12];
  static int present[KEYS];
  wsc_hmap_t m;
  wsc_hmap_init(&m, WSC_HMAP_EXACT, str_key);
  for (int i = 0; i < KEYS; i++) snprintf(keys[i], sizeof keys[i], "k%d", i * 7919);
  srand(12345);
  for (int step = 0; step < N; step++) {
    int k = rand() % KEYS;
    size_t len = strlen(keys[k]);
    if (present[k] && rand() % 2) {
      assert_ptr_equal(wsc_hmap_del(&m, keys[k], len), keys[k]);
      present[k] = 0;
    } else {
      assert_int_equal(wsc_hmap_put(&m, keys[k], len, keys[k]), 0);
      present[k] = 1;
    }
    if (step % 97 == 0) {
      uint32_t live = 0;
      for (int i = 0; i < KEYS; i++) {
        void *v = wsc_hmap_get(&m, keys[i], strlen(keys[i]));
        if (present[i]) assert_ptr_equal(v, keys[i]), live++;
        else assert_null(v);
      }
      assert_int_equal(wsc_hmap_count(&m), live);
    }
  }
  wsc_hmap_free(&m);
}

/* The table's size follows its entries: never over 3/4 full, and grown
 * by half again, so never over twice the entries (doubling reached 2.67x
 * right after growing) — the map slots of 15,000 sessions are 26,151, not
 * 32,768. Every key still found, across the growths (any capacity). */
static void test_hmap_size(void **state) {
  (void)state;
  enum { N = 15000 };
  static char keys[N][12];
  wsc_hmap_t m;
  wsc_hmap_init(&m, WSC_HMAP_EXACT, str_key);
  for (uint32_t i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "s%u", i);
    assert_int_equal(wsc_hmap_put(&m, keys[i], strlen(keys[i]), keys[i]), 0);
    uint32_t n = i + 1;
    assert_true((uint64_t)n * 4 <= (uint64_t)m.cap * 3);
    if (n >= 8) assert_true(m.cap <= 2 * (n + 1));
  }
  assert_int_equal(m.cap, 26151);
  for (uint32_t i = 0; i < N; i++) assert_ptr_equal(wsc_hmap_get(&m, keys[i], strlen(keys[i])), keys[i]);
  for (uint32_t i = 0; i < N; i += 2) assert_ptr_equal(wsc_hmap_del(&m, keys[i], strlen(keys[i])), keys[i]);
  for (uint32_t i = 0; i < N; i++)
    if (i % 2) assert_ptr_equal(wsc_hmap_get(&m, keys[i], strlen(keys[i])), keys[i]);
    else assert_null(wsc_hmap_get(&m, keys[i], strlen(keys[i])));
  wsc_hmap_free(&m);
}

/* ---- hostile keys ------------------------------------------------------------- */

/* The hash the chat tables used before base/hmap (for case-sensitive
 * tables): FNV-1a over the bytes, then a final mix (a bijection, so equal FNV states give equal
 * hashes, and equal hashes land in one slot whatever the table size). */
#define FNV_BASIS 2166136261u
#define FNV_PRIME 16777619u

static uint32_t fnv_step(uint32_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= FNV_PRIME;
  }
  return h;
}

static uint32_t old_hash(const char *key, size_t len) {
  uint32_t h = fnv_step(FNV_BASIS, key, len);
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return h;
}

enum {
  BLOCK = 8,                  /* characters per stage */
  STAGES = 17,                /* 2^17 = 131072 colliding keys */
  KEY_LEN = BLOCK * STAGES,
  HOSTILE_N = 100000,
  SEEN_BITS = 20,             /* birthday table for one stage */
  MAX_TRIES = 900000,         /* about 2^16 expected; the table holds 2^20 */
};

static const char ALPHABET[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

/* A fixed pseudo-random sequence (xorshift64), so every run builds the
 * same keys. Counting through blocks in order would not do: FNV maps
 * neighbouring blocks to structured states that rarely meet. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void block_of(uint64_t bits, char out[BLOCK]) {
  for (int k = 0; k < BLOCK; k++, bits >>= 6) out[k] = ALPHABET[bits & 63];
}

/* Two different blocks that take FNV state `h` to the same state: a
 * birthday search over 32 bits. */
static uint32_t find_pair(uint32_t h, char a[BLOCK], char b[BLOCK]) {
  static uint32_t seen_state[1u << SEEN_BITS];
  static uint64_t seen_bits[1u << SEEN_BITS];
  static uint8_t used[1u << SEEN_BITS];
  memset(used, 0, sizeof used);
  const uint32_t mask = (1u << SEEN_BITS) - 1;
  for (uint32_t i = 0; i < MAX_TRIES; i++) {
    uint64_t bits = rng();
    block_of(bits, b);
    uint32_t s = fnv_step(h, b, BLOCK);
    uint32_t j = (s * 2654435761u) >> (32 - SEEN_BITS);
    while (used[j] && seen_state[j] != s) j = (j + 1) & mask;
    if (used[j]) {
      block_of(seen_bits[j], a);
      if (memcmp(a, b, BLOCK) != 0) return s;
      continue;
    }
    used[j] = 1;
    seen_state[j] = s;
    seen_bits[j] = bits;
  }
  fail_msg("no FNV collision in %d tries", MAX_TRIES);
  return 0;
}

/* The hostile keys are KEY_LEN bytes, back to back (no NUL). */
static const char *hostile_key(const void *v, size_t *len) {
  *len = KEY_LEN;
  return v;
}

/* HOSTILE_N keys of KEY_LEN letters, digits, '_' and '-', all with one old_hash:
 * at stage s, key k takes block a[s] or b[s] by bit s of k. */
static char *hostile_keys(void) {
  char a[STAGES][BLOCK], b[STAGES][BLOCK];
  uint32_t h = FNV_BASIS;
  for (int s = 0; s < STAGES; s++) h = find_pair(h, a[s], b[s]);
  char *keys = malloc((size_t)HOSTILE_N * KEY_LEN);
  assert_non_null(keys);
  for (uint32_t k = 0; k < HOSTILE_N; k++)
    for (int s = 0; s < STAGES; s++)
      memcpy(keys + (size_t)k * KEY_LEN + s * BLOCK, (k >> s) & 1 ? b[s] : a[s], BLOCK);
  return keys;
}

static void test_hmap_hostile_keys(void **state) {
  (void)state;
  char *keys = hostile_keys();
  /* They are hostile: one hash for all under the unkeyed function, so an
   * unkeyed table would put them in one probe run — inserting the n-th
   * would compare with the n-1 before it: 5 * 10^9 comparisons in all. */
  const uint32_t h0 = old_hash(keys, KEY_LEN);
  for (uint32_t k = 1; k < HOSTILE_N; k++)
    assert_int_equal(old_hash(keys + (size_t)k * KEY_LEN, KEY_LEN), h0);
  assert_true(memcmp(keys, keys + KEY_LEN, KEY_LEN) != 0);

  /* Under the keyed hash the total work is linear: the probes a lookup of
   * every key takes, summed, stay a small multiple of the key count, and
   * doubling the keys about doubles them. Probes are counted, not timed. */
  wsc_hmap_t m;
  wsc_hmap_init(&m, WSC_HMAP_EXACT, hostile_key);
  uint64_t probes_half = 0;
  for (uint32_t k = 0; k < HOSTILE_N; k++) {
    assert_int_equal(wsc_hmap_put(&m, keys + (size_t)k * KEY_LEN, KEY_LEN, keys + (size_t)k * KEY_LEN), 0);
    if (k + 1 == HOSTILE_N / 2) probes_half = wsc_hmap_probes(&m);
  }
  uint64_t probes_all = wsc_hmap_probes(&m);
  assert_int_equal(wsc_hmap_count(&m), HOSTILE_N);
  print_message("hostile keys: %d keys, %llu probes (%.2f per key); %d keys, %llu probes;"
                " unkeyed: %llu\n", HOSTILE_N / 2, (unsigned long long)probes_half,
                (double)probes_all / HOSTILE_N, HOSTILE_N, (unsigned long long)probes_all,
                (unsigned long long)HOSTILE_N * (HOSTILE_N + 1) / 2);
  assert_true(probes_all < 3ull * HOSTILE_N);
  assert_true(probes_half < 3ull * HOSTILE_N / 2);
  assert_true(probes_all < 3 * probes_half);   /* 2x keys: well under 3x work */
  for (uint32_t k = 0; k < HOSTILE_N; k += 7) {
    const char *key = keys + (size_t)k * KEY_LEN;
    assert_ptr_equal(wsc_hmap_get(&m, key, KEY_LEN), key);
  }
  wsc_hmap_free(&m);
  free(keys);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_siphash_vectors),
      cmocka_unit_test(test_hmap_basic),
      cmocka_unit_test(test_hmap_random),
      cmocka_unit_test(test_hmap_size),
      cmocka_unit_test(test_hmap_hostile_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
