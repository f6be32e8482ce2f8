/* chat/rawjson — the two things about a client frame that jansson does not
 * keep, found in the frame's own text:
 *
 *  - the raw text of a top-level member's value, so a `ref` is echoed
 *    exactly as the client wrote it (18446744073709551616, 1.50, -0 and
 *    1e2 would not survive a round trip through int64 or double);
 *  - a copy of the frame with out-of-range numbers saturated, so a frame
 *    jansson refuses only for a number it cannot hold (an integer beyond
 *    int64, a real beyond double) is still parsed: an integer keeps its
 *    sign and meaning (`since` beyond any id, `limit` clamped, a negative
 *    one still negative), a real stays a non-integer.
 *
 * Pure code over bytes; nothing here allocates except rawjson_saturate.
 * Both expect text that jansson has accepted (or rejected only for a
 * number's range) but stay within bounds on any input.
 */
#ifndef WSC_CHAT_RAWJSON_H
#define WSC_CHAT_RAWJSON_H

#include <stddef.h>

/* Finds the member `key` of the top-level object in text[0..len): on
 * success sets *start and *vlen to its value's text and returns 0; -1 if
 * the text is not an object or has no such member. Keys are compared after
 * decoding their escapes ("r\u0065f" is "ref"); the first match wins. */
int rawjson_member(const char *text, size_t len, const char *key, size_t *start, size_t *vlen);

/* A malloc'd copy of text[0..len) (NUL-terminated; *out_len set) in which
 * every integer outside int64 is replaced by INT64_MAX or INT64_MIN and
 * every real outside double by 1e308 or -1e308. NULL when out of memory. */
char *rawjson_saturate(const char *text, size_t len, size_t *out_len);

#endif
