/* ws/utf8 — see utf8.h.
 *
 * A table-driven automaton: each byte is first mapped to one of a dozen
 * classes, then (state, class) gives the next state. The states encode
 * exactly which range the next continuation byte must fall in, which is how
 * overlong forms (E0 80.., F0 80..), surrogates (ED A0..) and code points
 * above U+10FFFF (F4 90..) are refused at the byte that makes them invalid,
 * not later. */
#include "ws/utf8.h"

#include <string.h>

enum utf8_state {
  U8_ACCEPT = 0,   /* between code points */
  U8_TAIL1,        /* one more 80..BF */
  U8_TAIL2,        /* two more 80..BF */
  U8_TAIL3,        /* three more 80..BF */
  U8_E0,           /* after E0: A0..BF (no overlong 3-byte forms) */
  U8_ED,           /* after ED: 80..9F (no surrogates D800..DFFF) */
  U8_F0,           /* after F0: 90..BF (no overlong 4-byte forms) */
  U8_F4,           /* after F4: 80..8F (nothing above U+10FFFF) */
  U8_REJECT,       /* sticky */
  U8_NSTATES
};

enum utf8_class {
  C_ASCII,   /* 00..7F */
  C_80_8F,
  C_90_9F,
  C_A0_BF,
  C_BAD,     /* C0, C1, F5..FF: never valid */
  C_LEAD2,   /* C2..DF */
  C_E0,
  C_LEAD3,   /* E1..EC, EE, EF */
  C_ED,
  C_F0,
  C_LEAD4,   /* F1..F3 */
  C_F4,
  C_NCLASSES
};

static const uint8_t byte_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 10 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 50 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 90 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* A0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* B0 */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,  /* C0 */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,  /* D0 */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,  /* E0 */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,  /* F0 */
};

#define R U8_REJECT
static const uint8_t transition[U8_NSTATES][C_NCLASSES] = {
  /*              ASCII     80-8F     90-9F     A0-BF     bad  C2-DF     E0     E1-EF*    ED     F0     F1-F3     F4 */
  [U8_ACCEPT] = { U8_ACCEPT, R,       R,        R,        R,   U8_TAIL1, U8_E0, U8_TAIL2, U8_ED, U8_F0, U8_TAIL3, U8_F4 },
  [U8_TAIL1]  = { R, U8_ACCEPT, U8_ACCEPT, U8_ACCEPT, R, R, R, R, R, R, R, R },
  [U8_TAIL2]  = { R, U8_TAIL1,  U8_TAIL1,  U8_TAIL1,  R, R, R, R, R, R, R, R },
  [U8_TAIL3]  = { R, U8_TAIL2,  U8_TAIL2,  U8_TAIL2,  R, R, R, R, R, R, R, R },
  [U8_E0]     = { R, R,         R,         U8_TAIL1,  R, R, R, R, R, R, R, R },
  [U8_ED]     = { R, U8_TAIL1,  U8_TAIL1,  R,         R, R, R, R, R, R, R, R },
  [U8_F0]     = { R, R,         U8_TAIL2,  U8_TAIL2,  R, R, R, R, R, R, R, R },
  [U8_F4]     = { R, U8_TAIL2,  R,         R,         R, R, R, R, R, R, R, R },
  [U8_REJECT] = { R, R,         R,         R,         R, R, R, R, R, R, R, R },
};
#undef R

/* Bytes examined per step of the ASCII fast path. */
#define WORD_BYTES sizeof(uint64_t)
#define HIGH_BITS UINT64_C(0x8080808080808080)

int ws_utf8_feed(ws_utf8_t *u, const uint8_t *p, size_t n) {
  uint32_t state = u->state;
  size_t i = 0;
  while (i < n) {
    if (state == U8_ACCEPT) {
      /* Skip whole words of ASCII; memcpy keeps the load alignment-safe. */
      while (n - i >= WORD_BYTES) {
        uint64_t w;
        memcpy(&w, p + i, WORD_BYTES);
        if (w & HIGH_BITS) break;
        i += WORD_BYTES;
      }
      while (i < n && p[i] < 0x80) i++;
      if (i == n) break;
    }
    state = transition[state][byte_class[p[i]]];
    i++;
    if (state == U8_REJECT) break;
  }
  u->state = state;
  return state == U8_REJECT ? -1 : 0;
}

int ws_utf8_valid(const uint8_t *p, size_t n) {
  ws_utf8_t u;
  ws_utf8_init(&u);
  return ws_utf8_feed(&u, p, n) == 0 && ws_utf8_complete(&u);
}
