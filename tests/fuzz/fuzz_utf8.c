/* Fuzz target: ws/utf8. Three verdicts on the same bytes must agree:
 *   - ws_utf8_valid on the whole buffer,
 *   - ws_utf8_feed in pieces cut at points derived from the input,
 *   - a plain, obviously-correct reference decoder written here.
 * The incremental feed must also fail exactly at the first bad byte the
 * reference finds (fed one byte at a time). Any disagreement aborts. */
#include <stdint.h>
#include <stdlib.h>

#include "ws/utf8.h"

/* Reference: returns the index of the first byte that makes p[0..n) not a
 * prefix of valid UTF-8, or -1 if it is one; *complete says whether it ends
 * on a code point boundary. */
static long reference_first_bad(const uint8_t *p, size_t n, int *complete) {
  size_t i = 0;
  *complete = 1;
  while (i < n) {
    uint8_t b = p[i];
    size_t need;
    uint32_t cp, min;
    if (b < 0x80) { i++; continue; }
    if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { need = 2; cp = b & 0x0F; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 3; cp = b & 0x07; min = 0x10000; }
    else return (long)i;
    for (size_t k = 1; k <= need; k++) {
      if (i + k >= n) { *complete = 0; return -1; }
      uint8_t c = p[i + k];
      if ((c & 0xC0) != 0x80) return (long)(i + k);
      cp = cp << 6 | (c & 0x3F);
      /* The earliest a sequence can be known bad is after its 2nd byte:
       * check the partial value's range there. */
      if (k == 1) {
        uint32_t lo = cp << (6 * (need - 1));
        uint32_t hi = lo | ((1u << (6 * (need - 1))) - 1);
        if (hi < min || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF)) return (long)(i + k);
      }
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) abort();   /* caught above */
    i += need + 1;
  }
  return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int complete;
  long bad = reference_first_bad(data, size, &complete);
  int ref_valid = bad < 0 && complete;

  if (ws_utf8_valid(data, size) != ref_valid) abort();

  /* Pieces: lengths from the bytes themselves, so the fuzzer steers them. */
  ws_utf8_t u;
  ws_utf8_init(&u);
  size_t off = 0;
  int rc = 0;
  uint32_t seed = size ? data[0] : 0;
  while (off < size) {
    seed = seed * 1103515245u + 12345u;
    size_t piece = 1 + (seed >> 16) % 17;
    if (piece > size - off) piece = size - off;
    rc = ws_utf8_feed(&u, data + off, piece);
    off += piece;
    if (rc != 0) break;
  }
  if ((rc == 0) != (bad < 0)) abort();
  if (rc == 0 && ws_utf8_complete(&u) != complete) abort();

  /* Byte at a time: fails exactly at the reference's first bad byte. */
  ws_utf8_init(&u);
  long at = -1;
  for (size_t i = 0; i < size; i++)
    if (ws_utf8_feed(&u, data + i, 1) != 0) { at = (long)i; break; }
  if (at != bad) abort();
  return 0;
}
