/* Fuzz target: the TLS 1.3 record decoder (net/tls13_rec).
 *
 * Byte 0 picks the suite (low 2 bits) and the mode (bit 7); byte 1 where
 * to split the input. Mode 0: the rest is ciphertext from a hostile peer,
 * fed in two slices: the decoder must not read past it, never return more
 * than 2^14 bytes of data, and stop for good after an error. Mode 1: the
 * rest is plaintext that one end seals and the other opens (split at any
 * byte): it must come back exactly, and a flipped bit must never yield
 * the whole plaintext or anything that is not a prefix of it.
 * Any breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls13_rec.h"

static const uint16_t SUITES[4] = {0x1301, 0x1302, 0x1303, 0x1301};
static uint8_t plain[TLS13_MAX_CIPHER];

static void pair(tls13_rec_t *a, tls13_rec_t *b, uint16_t suite) {
  uint8_t s1[TLS13_SECRET_MAX], s2[TLS13_SECRET_MAX];
  for (int i = 0; i < TLS13_SECRET_MAX; i++) {
    s1[i] = (uint8_t)(i * 3);
    s2[i] = (uint8_t)(0x55 ^ i);
  }
  size_t hl = tls13_suite_hash_len(suite);
  if (tls13_rec_init(a, suite, s2, s1, hl, 0) != 0 || tls13_rec_init(b, suite, s1, s2, hl, 0) != 0) abort();
}

/* Opens in[0..n) as two slices; returns the plaintext bytes, or -1 after an error. */
static long open_split(tls13_rec_t *r, const uint8_t *in, size_t n, size_t cut, uint8_t *got, size_t cap) {
  size_t total = 0;
  const uint8_t *slices[2] = {in, in + cut};
  size_t lens[2] = {cut, n - cut};
  for (int s = 0; s < 2; s++) {
    const uint8_t *p = slices[s];
    size_t left = lens[s];
    for (;;) {
      size_t pl;
      const uint8_t *before = p;
      int rc = tls13_rec_open(r, &p, &left, plain, &pl);
      if (p < before || p > slices[s] + lens[s]) abort();
      if (rc == TLS13_REC_ERROR) {
        if (tls13_rec_open(r, &p, &left, plain, &pl) != TLS13_REC_ERROR) abort();
        return -1;
      }
      if (rc == TLS13_REC_NEED) {
        if (left != 0) abort();
        break;
      }
      if (rc == TLS13_REC_DATA) {
        if (pl == 0 || pl > TLS13_MAX_PLAIN) abort();
        if (got) {
          if (total + pl > cap) abort();
          memcpy(got + total, plain, pl);
        }
        total += pl;
      }
    }
  }
  return (long)total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint16_t suite = SUITES[data[0] & 3];
  int roundtrip = data[0] & 0x80;
  const uint8_t *body = data + 2;
  size_t n = size - 2;
  if (n > 3 * TLS13_MAX_PLAIN) return 0;
  tls13_rec_t a, b;
  pair(&a, &b, suite);
  if (!roundtrip) {
    /* An exact-size copy, so ASan sees any read past the end. */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) abort();
    memcpy(in, body, n);
    open_split(&b, in, n, n ? data[1] % (n + 1) : 0, NULL, 0);
    free(in);
  } else {
    size_t cap = tls13_rec_sealed_max(n);
    uint8_t *sealed = malloc(cap), *got = malloc(n ? n : 1);
    if (!sealed || !got) abort();
    size_t len;
    if (tls13_rec_seal(&a, TLS13_CT_APP, body, n, sealed, &len) != 0 || len > cap) abort();
    size_t cut = len ? (size_t)data[1] * 257 % (len + 1) : 0;
    if (open_split(&b, sealed, len, cut, got, n) != (long)n) abort();
    if (n && memcmp(got, body, n) != 0) abort();
    if (len) {
      /* The same records again, one bit flipped: refused — or, when the
       * bit lands in a length field, the record waits for bytes that never
       * come. Either way nothing but a prefix of the true plaintext (the
       * records before the flipped one) comes out. */
      tls13_rec_t c, d;
      pair(&c, &d, suite);
      size_t at = (size_t)data[1] * 131 % len;
      sealed[at] ^= 0x04;
      long r = open_split(&d, sealed, len, cut, got, n);
      if (r != -1 && ((r == (long)n && n > 0) || (r > 0 && memcmp(got, body, (size_t)r) != 0))) abort();
      /* Outside a length field (header bytes 3-4 of a record), always refused. */
      size_t in_rec = at % (TLS13_HDR + TLS13_MAX_PLAIN + 1 + TLS13_TAG);
      if (r != -1 && in_rec != 3 && in_rec != 4) abort();
      tls13_rec_clear(&c);
      tls13_rec_clear(&d);
    }
    free(sealed);
    free(got);
  }
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);
  return 0;
}
