/* Helpers shared by the ws/ unit tests: building client (masked) frames and
 * a deterministic random source. Header-only so each test stays one file. */
#ifndef TEST_WS_UTIL_H
#define TEST_WS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The masking key of RFC 6455 §5.7's examples. */
static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Writes a frame as a client would send it: header byte 0 is given whole
 * (FIN | RSV | opcode) so tests can set any bits; masked with test_mask
 * when `masked`. `len_override` (if not UINT64_MAX) replaces the announced
 * length, for headers that lie. Returns the bytes written. */
static inline size_t tw_frame_raw(uint8_t *out, uint8_t b0, int masked, const void *payload,
                                  size_t len, uint64_t len_override) {
  uint64_t announced = len_override != UINT64_MAX ? len_override : len;
  size_t o = 0;
  out[o++] = b0;
  uint8_t mbit = masked ? 0x80 : 0;
  if (announced < 126) {
    out[o++] = (uint8_t)(mbit | announced);
  } else if (announced <= 0xFFFF) {
    out[o++] = mbit | 126;
    out[o++] = (uint8_t)(announced >> 8);
    out[o++] = (uint8_t)announced;
  } else {
    out[o++] = mbit | 127;
    for (int i = 7; i >= 0; i--) out[o++] = (uint8_t)(announced >> (8 * i));
  }
  if (masked) { memcpy(out + o, test_mask, 4); o += 4; }
  const uint8_t *p = payload;
  for (size_t i = 0; i < len; i++) out[o + i] = masked ? (uint8_t)(p[i] ^ test_mask[i & 3]) : p[i];
  return o + len;
}

/* A masked client frame: fin, opcode, payload. */
static inline size_t tw_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len) {
  return tw_frame_raw(out, (uint8_t)((fin ? 0x80 : 0) | opcode), 1, payload, len, UINT64_MAX);
}

/* xorshift64*: reproducible "random" chunk sizes. */
static inline uint64_t tw_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *state = x;
  return x * UINT64_C(2685821657736338717);
}

#endif
