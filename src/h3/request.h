/* h3/request — an HTTP/3 request's header section as it arrives, turned
 * into an h3_request_t; and the "Name: value\r\n" lines of a response
 * turned into lower-case HTTP/3 fields. Pure code (no ngtcp2, nghttp3 or
 * sockets), so it is fuzzed on its own (tests/fuzz/fuzz_h3_request.c).
 *
 * Limits: H3_MAX_HEAD bytes of names and values, H3_MAX_HEADERS fields;
 * past them, or a field with a NUL byte, the request is refused (431 / 400)
 * by the caller. Pseudo-header fields are mapped by the caller's token
 * (H3_PSEUDO_*), the rest are kept for the handler; :path is split at '?'.
 *
 * Ownership: h3_head_t owns its buffer (h3_head_free); the request built by
 * h3_head_request points into it and into the caller's fields array.
 */
#ifndef WSC_H3_REQUEST_H
#define WSC_H3_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "h3/h3.h"

enum { H3_PSEUDO_METHOD, H3_PSEUDO_PROTOCOL, H3_PSEUDO_SCHEME, H3_PSEUDO_AUTHORITY, H3_PSEUDO_PATH,
       H3_PSEUDO_COUNT };
enum { H3_HEAD_OK = 0, H3_HEAD_TOO_BIG = -1, H3_HEAD_BAD = -2 };

typedef struct h3_head {
  char *buf;                     /* "name\0value\0" pairs; NULL until the first field */
  size_t len;
  int n_fields;
  int state;                     /* H3_HEAD_OK, or the first fault */
  int pseudo[H3_PSEUDO_COUNT];   /* value offsets in buf, -1 if absent */
} h3_head_t;

void h3_head_init(h3_head_t *h);
void h3_head_free(h3_head_t *h);
/* Adds a field; which is an H3_PSEUDO_* or -1 for a regular field. */
void h3_head_add(h3_head_t *h, int which, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);
/* Builds the request (fields: room for H3_MAX_HEADERS). Returns h->state. */
int h3_head_request(const h3_head_t *h, h3_request_t *req, ws_hs_header_t *fields);

typedef struct h3_field {
  const char *name, *value;      /* name lower-cased into names[] */
  size_t name_len, value_len;
} h3_field_t;

#define H3_MAX_EXTRA_FIELDS 16
#define H3_FIELD_NAME_MAX 64
/* Parses "Name: value\r\n" lines (stops at the first malformed one).
 * Returns the number of fields written to out. */
size_t h3_header_lines(const char *lines, h3_field_t *out, char names[][H3_FIELD_NAME_MAX]);

#endif
