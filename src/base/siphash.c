/* base/siphash — see siphash.h. Written from the description in the
 * SipHash paper ("SipHash: a fast short-input PRF", section 2). */
#include "base/siphash.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "base/log.h"

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

typedef struct sip_state { uint64_t v0, v1, v2, v3; } sip_state_t;

static inline void sip_round(sip_state_t *s) {
  s->v0 += s->v1; s->v1 = rotl(s->v1, 13); s->v1 ^= s->v0; s->v0 = rotl(s->v0, 32);
  s->v2 += s->v3; s->v3 = rotl(s->v3, 16); s->v3 ^= s->v2;
  s->v0 += s->v3; s->v3 = rotl(s->v3, 21); s->v3 ^= s->v0;
  s->v2 += s->v1; s->v1 = rotl(s->v1, 17); s->v1 ^= s->v2; s->v2 = rotl(s->v2, 32);
}

static inline unsigned char fold(unsigned char ch, int fold_ascii) {
  return (fold_ascii && ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + ('a' - 'A')) : ch;
}

/* n (<= 8) bytes as a little-endian word. */
static inline uint64_t load_le(const unsigned char *p, size_t n, int fold_ascii) {
  uint64_t m = 0;
  for (size_t i = 0; i < n; i++) m |= (uint64_t)fold(p[i], fold_ascii) << (8 * i);
  return m;
}

static inline uint64_t load_key(const uint8_t *k) {
  uint64_t m = 0;
  for (int i = 0; i < 8; i++) m |= (uint64_t)k[i] << (8 * i);
  return m;
}

uint64_t wsc_siphash(const uint8_t key[WSC_SIPHASH_KEY_BYTES], int c_rounds, int d_rounds,
                     const void *data, size_t len, int fold_ascii) {
  const uint64_t k0 = load_key(key), k1 = load_key(key + 8);
  /* The initial state: the key xored with "somepseudorandomlygeneratedbytes". */
  sip_state_t s = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                   k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
  const unsigned char *p = data;
  size_t whole = len - len % 8;
  for (size_t off = 0; off < whole; off += 8) {
    uint64_t m = load_le(p + off, 8, fold_ascii);
    s.v3 ^= m;
    for (int r = 0; r < c_rounds; r++) sip_round(&s);
    s.v0 ^= m;
  }
  /* The last word: the 0..7 remaining bytes, the length mod 256 on top. */
  uint64_t m = load_le(p + whole, len % 8, fold_ascii) | ((uint64_t)(len & 0xff) << 56);
  s.v3 ^= m;
  for (int r = 0; r < c_rounds; r++) sip_round(&s);
  s.v0 ^= m;
  s.v2 ^= 0xff;
  for (int r = 0; r < d_rounds; r++) sip_round(&s);
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

static uint8_t process_key[WSC_SIPHASH_KEY_BYTES];
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

static void make_process_key(void) {
  size_t got = 0;
  while (got < sizeof process_key) {
    ssize_t n = getrandom(process_key + got, sizeof process_key - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* Without a secret key the tables are open to collision floods;
       * better not to run than to run exposed. */
      LOG_ERROR("base", "getrandom failed: no key for the hash tables errno=%d", errno);
      abort();
    }
    got += (size_t)n;
  }
}

uint64_t wsc_hash(const void *data, size_t len, int fold_ascii) {
  pthread_once(&process_key_once, make_process_key);
  return wsc_siphash(process_key, 1, 3, data, len, fold_ascii);
}
