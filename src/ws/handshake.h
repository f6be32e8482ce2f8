/* ws/handshake — the RFC 6455 §4.2 opening handshake, server side.
 *
 * Given a parsed HTTP request (ws_hs_request_t: http/ fills it; this module
 * knows nothing of sockets or of http-parser), decide: 101 with the
 * Sec-WebSocket-Accept value and the chosen subprotocol, or an HTTP error
 * status with a one-line reason:
 *   400  not GET, not HTTP/1.1 or later, no Host, Upgrade lacks the token
 *        "websocket", Connection lacks the token "upgrade" (both are
 *        case-insensitive comma-separated token lists), Sec-WebSocket-Key
 *        missing or not base64 of exactly 16 bytes
 *   426  Sec-WebSocket-Version missing or not 13 (the response then carries
 *        Sec-WebSocket-Version: 13)
 *   403  an Origin header that matches neither the Host (same scheme-less
 *        host[:port]) nor an allowed origin; "*" allows all. Requests with no
 *        Origin (non-browser clients) are not checked.
 * (500 only if OpenSSL itself fails.) Checks run in the order above: a
 * request with several faults gets the first status listed.
 * Subprotocol: "wschat.v1" is selected when the client offers it (exact,
 * case-sensitive token match). Extensions: permessage-deflate when the
 * policy allows it and the client offers it acceptably (ws/deflate.h: the
 * first acceptable offer, in header order; a malformed or unacceptable
 * offer is declined, never refused); no other extension.
 * SHA-1 and base64 come from OpenSSL.
 */
#ifndef WSC_WS_HANDSHAKE_H
#define WSC_WS_HANDSHAKE_H

#include <stddef.h>

#include "ws/deflate.h"

#define WS_SUBPROTOCOL "wschat.v1"

typedef struct ws_hs_header {
  const char *name;  size_t name_len;
  const char *value; size_t value_len;
} ws_hs_header_t;

typedef struct ws_hs_request {
  const char *method;           /* "GET" ... NUL-terminated */
  int http_major, http_minor;
  const ws_hs_header_t *headers;
  size_t n_headers;
} ws_hs_request_t;

typedef struct ws_hs_policy {
  const char *const *allowed_origins;  /* full origins, e.g. "https://a.example" or "*" */
  int n_allowed_origins;
  int deflate;                         /* negotiate permessage-deflate */
} ws_hs_policy_t;

typedef struct ws_hs_result {
  int status;                   /* 101 (200 for CONNECT), 400, 403 or 426 (500: OpenSSL failed) */
  const char *reason;           /* one line for the error body; static */
  char accept[29];              /* Sec-WebSocket-Accept, NUL-terminated (on 101) */
  const char *subprotocol;      /* WS_SUBPROTOCOL or NULL */
  ws_pmd_t pmd;                 /* permessage-deflate, if pmd.enabled */
} ws_hs_result_t;

/* Checks the request; fills *out. Returns 0 when status is 101, -1 otherwise. */
int ws_handshake_check(const ws_hs_request_t *req, const ws_hs_policy_t *policy, ws_hs_result_t *out);
/* The same decision for a WebSocket opened with extended CONNECT (RFC 8441
 * on HTTP/2, RFC 9220 on HTTP/3): req->method "CONNECT", `protocol` the
 * :protocol pseudo-header (NULL if absent), the :authority given as a
 * "host" header. 400 when :protocol is missing or not "websocket" or there
 * is no authority, 426 for a Sec-WebSocket-Version other than 13, 403 for
 * an Origin the policy refuses (the same rule as above, against the
 * authority). No key, no accept value: success is status 200, with the
 * chosen subprotocol and permessage-deflate negotiated as above (the
 * answer's sec-websocket-extensions is ws_pmd_response of out->pmd).
 * Returns 0 on 200, -1 otherwise. */
int ws_handshake_check_connect(const ws_hs_request_t *req, const char *protocol,
                               const ws_hs_policy_t *policy, ws_hs_result_t *out);
/* Computes base64(SHA-1(key + GUID)) into out[29]. Returns 0 or -1. */
int ws_accept_key(const char *key, size_t key_len, char out[29]);
/* Writes the complete "101 Switching Protocols" response into out; returns
 * its length, or 0 if cap is too small (384 bytes always suffice). */
size_t ws_handshake_response(const ws_hs_result_t *res, char *out, size_t cap);

#endif
