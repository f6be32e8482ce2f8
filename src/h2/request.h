/* h2/request — our own parsing on HTTP/2: an HTTP/2 (or HTTP/3) header
 * block as nghttp2 hands it over, field by field, turned into the same
 * http_request_t the HTTP/1.1 front gives the routes; and response header
 * lines ("Name: value\r\n", as the routes write them) turned into HTTP/2
 * fields. Pure: no nghttp2 session, no sockets (fuzzed on its own,
 * tests/fuzz/fuzz_h2_request.c).
 *
 * Request rules (RFC 9113 §8.2-8.3, RFC 8441 §4), each failure a status
 * and a one-line reason for that stream only:
 *   400  a name with upper-case letters or not a token, a value with NUL,
 *        CR or LF, an unknown or repeated pseudo-header, a pseudo-header
 *        after a regular field, a connection-specific field (connection,
 *        keep-alive, proxy-connection, transfer-encoding, upgrade; te other
 *        than "trailers"), no :method; for CONNECT with :protocol, no
 *        :scheme, :path or :authority; for other methods no :scheme or a
 *        :path not starting with '/'
 *   431  more than HTTP_MAX_HEADERS fields, or more than HTTP_MAX_HEAD
 *        bytes of names and values
 *   501  CONNECT without :protocol (we are not a proxy)
 * :authority becomes a "host" field (when the request has no host) so the
 * Origin rule of ws/handshake compares with it as with Host.
 *
 * Ownership: h2_req_t owns a copy of every name and value (one growing
 * buffer, at most HTTP_MAX_HEAD bytes); the http_request_t filled by
 * h2_req_finish points into it and into its `hs` array, so it lives as
 * long as the h2_req_t.
 */
#ifndef WSC_H2_REQUEST_H
#define WSC_H2_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

typedef struct h2_span {
  uint32_t off, len;
} h2_span_t;

enum { H2_PSEUDO_METHOD, H2_PSEUDO_SCHEME, H2_PSEUDO_AUTHORITY, H2_PSEUDO_PATH, H2_PSEUDO_PROTOCOL,
       H2_PSEUDO_COUNT };

typedef struct h2_req {
  char *buf;                      /* names and values, each NUL-terminated */
  size_t len, cap;
  h2_span_t pseudo[H2_PSEUDO_COUNT];
  uint8_t have[H2_PSEUDO_COUNT];
  h2_span_t names[HTTP_MAX_HEADERS + 1], values[HTTP_MAX_HEADERS + 1];
  uint32_t n_headers;
  uint8_t regular_seen;           /* a regular field came: no more pseudo */
  int status;                     /* first error: its status, 0 if none */
  const char *reason;             /* its one-line reason (static) */
  ws_hs_header_t hs[HTTP_MAX_HEADERS + 1];
} h2_req_t;

void h2_req_init(h2_req_t *r);
void h2_req_free(h2_req_t *r);
/* One header field. Returns 0, or -1 once the request is bad (r->status,
 * r->reason say why; later fields are ignored). */
int h2_req_header(h2_req_t *r, const uint8_t *name, size_t name_len, const uint8_t *value,
                  size_t value_len);
/* The header block is complete: checks the pseudo-headers and fills *out
 * (http_major 2; protocol set for extended CONNECT). Returns 0, or -1 with
 * r->status and r->reason. */
int h2_req_finish(h2_req_t *r, http_request_t *out);

/* One response field, pointing into the caller's storage. */
typedef struct h2_field {
  const char *name, *value;
  size_t name_len, value_len;
} h2_field_t;

/* Splits "Name: value\r\n" lines into fields, names lower-cased into
 * `lower` (of lower_cap bytes). Connection-specific fields are dropped;
 * a line without ':' is skipped. Returns the number of fields (at most
 * cap), or -1 if `lower` is too small. */
int h2_resp_fields(const char *lines, h2_field_t *out, size_t cap, char *lower, size_t lower_cap);

#endif
