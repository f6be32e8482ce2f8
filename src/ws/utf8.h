/* ws/utf8 — incremental UTF-8 validation (RFC 3629, as RFC 6455 §8.1 needs).
 *
 * The validator is a small state machine fed any number of chunks; it
 * reports an invalid byte as soon as that byte arrives, so a text message
 * split over fragments and frames fails at the first bad byte, not at its
 * end. ASCII runs take a word-at-a-time fast path. Pure code, no allocation.
 */
#ifndef WSC_WS_UTF8_H
#define WSC_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef struct ws_utf8 {
  uint32_t state;   /* 0: between code points (accept) */
} ws_utf8_t;

static inline void ws_utf8_init(ws_utf8_t *u) { u->state = 0; }
/* Feeds bytes. Returns 0 while the input is a valid prefix, -1 once it
 * cannot be (the state then stays rejected). */
int ws_utf8_feed(ws_utf8_t *u, const uint8_t *p, size_t n);
/* 1 when the bytes fed so far end on a code point boundary. */
static inline int ws_utf8_complete(const ws_utf8_t *u) { return u->state == 0; }
/* Whole-buffer check: 1 if p[0..n) is valid, complete UTF-8. */
int ws_utf8_valid(const uint8_t *p, size_t n);

#endif
