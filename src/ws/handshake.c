/* ws/handshake — see handshake.h.
 *
 * Header values are (pointer, length) slices of the request, never
 * NUL-terminated, so everything here works on slices: find a header by name,
 * split a comma-separated list into trimmed tokens, compare without case.
 */
#include "ws/handshake.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_VERSION "13"
#define KEY_BYTES 16                 /* a Sec-WebSocket-Key decodes to this */
#define KEY_B64_LEN 24               /* ... which base64 spells in 24 chars */
#define SHA1_BYTES 20
#define ACCEPT_LEN 28                /* base64 of the SHA-1 */

typedef struct slice { const char *p; size_t n; } slice_t;

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int slice_ieq(slice_t a, const char *b) {
  size_t n = strlen(b);
  if (a.n != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower(a.p[i]) != lower(b[i])) return 0;
  return 1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static slice_t trim(slice_t s) {
  while (s.n && is_ows(s.p[0])) { s.p++; s.n--; }
  while (s.n && is_ows(s.p[s.n - 1])) s.n--;
  return s;
}

/* Number of headers with this name; *first gets the first one's value. */
static int find_header(const ws_hs_request_t *req, const char *name, slice_t *first) {
  int count = 0;
  for (size_t i = 0; i < req->n_headers; i++) {
    const ws_hs_header_t *h = &req->headers[i];
    if (!slice_ieq((slice_t){h->name, h->name_len}, name)) continue;
    if (count++ == 0 && first) *first = trim((slice_t){h->value, h->value_len});
  }
  return count;
}

/* 1 if any header called `name` lists `token` in its comma-separated value.
 * Case-insensitive when icase, exact otherwise (subprotocol names). */
static int header_has_token(const ws_hs_request_t *req, const char *name, const char *token, int icase) {
  size_t tlen = strlen(token);
  for (size_t i = 0; i < req->n_headers; i++) {
    const ws_hs_header_t *h = &req->headers[i];
    if (!slice_ieq((slice_t){h->name, h->name_len}, name)) continue;
    const char *p = h->value, *end = h->value + h->value_len;
    for (;;) {
      const char *comma = memchr(p, ',', (size_t)(end - p));
      const char *stop = comma ? comma : end;
      slice_t t = trim((slice_t){p, (size_t)(stop - p)});
      if (icase ? slice_ieq(t, token) : (t.n == tlen && memcmp(t.p, token, tlen) == 0)) return 1;
      if (!comma) break;
      p = comma + 1;
    }
  }
  return 0;
}

static int is_b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* A key is base64 of exactly 16 bytes: 22 alphabet characters then "==". */
static int key_is_valid(slice_t key) {
  if (key.n != KEY_B64_LEN || key.p[22] != '=' || key.p[23] != '=') return 0;
  for (size_t i = 0; i < KEY_B64_LEN - 2; i++)
    if (!is_b64_char(key.p[i])) return 0;
  unsigned char raw[KEY_B64_LEN / 4 * 3];
  /* EVP_DecodeBlock counts the padding as bytes: 16 bytes decode to 18. */
  return EVP_DecodeBlock(raw, (const unsigned char *)key.p, KEY_B64_LEN) == KEY_BYTES + 2;
}

int ws_accept_key(const char *key, size_t key_len, char out[29]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char digest[SHA1_BYTES];
  unsigned int dlen = 0;
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
           EVP_DigestUpdate(ctx, key, key_len) &&
           EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID)) &&
           EVP_DigestFinal_ex(ctx, digest, &dlen) && dlen == SHA1_BYTES;
  EVP_MD_CTX_free(ctx);
  if (!ok) return -1;
  return EVP_EncodeBlock((unsigned char *)out, digest, SHA1_BYTES) == ACCEPT_LEN ? 0 : -1;
}

/* --- Origin ----------------------------------------------------------------- */

/* Default port of an origin's scheme, or NULL if unknown. */
static const char *default_port(slice_t scheme) {
  if (slice_ieq(scheme, "http") || slice_ieq(scheme, "ws")) return "80";
  if (slice_ieq(scheme, "https") || slice_ieq(scheme, "wss")) return "443";
  return NULL;
}

/* Same host[:port] as the Host header: compared without case; an origin
 * without a port also matches a Host naming its scheme's default port. */
static int origin_matches_host(slice_t origin, slice_t host) {
  const char *sep = NULL;
  for (size_t i = 0; i + 2 < origin.n; i++)
    if (origin.p[i] == ':' && origin.p[i + 1] == '/' && origin.p[i + 2] == '/') { sep = origin.p + i; break; }
  if (!sep) return 0;   /* "null" and other opaque origins never match */
  slice_t scheme = {origin.p, (size_t)(sep - origin.p)};
  slice_t authority = {sep + 3, origin.n - (size_t)(sep + 3 - origin.p)};
  if (authority.n && authority.p[authority.n - 1] == '/') authority.n--;
  if (authority.n == 0) return 0;
  if (authority.n == host.n) {
    for (size_t i = 0; i < host.n; i++)
      if (lower(authority.p[i]) != lower(host.p[i])) return 0;
    return 1;
  }
  /* "https://a.example" against "a.example:443". */
  const char *port = default_port(scheme);
  if (!port || memchr(authority.p, ':', authority.n) || authority.p[0] == '[') return 0;
  size_t plen = strlen(port);
  if (host.n != authority.n + 1 + plen || host.p[authority.n] != ':') return 0;
  if (memcmp(host.p + authority.n + 1, port, plen) != 0) return 0;
  for (size_t i = 0; i < authority.n; i++)
    if (lower(authority.p[i]) != lower(host.p[i])) return 0;
  return 1;
}

static int origin_allowed(slice_t origin, slice_t host, const ws_hs_policy_t *policy) {
  if (origin_matches_host(origin, host)) return 1;
  for (int i = 0; policy && i < policy->n_allowed_origins; i++) {
    const char *allowed = policy->allowed_origins[i];
    if (strcmp(allowed, "*") == 0 || slice_ieq(origin, allowed)) return 1;
  }
  return 0;
}

/* --- the check ------------------------------------------------------------------ */

static int reject(ws_hs_result_t *out, int status, const char *reason) {
  out->status = status;
  out->reason = reason;
  return -1;
}

/* permessage-deflate: offers are in order across every
 * Sec-WebSocket-Extensions header. */
static void negotiate_pmd(const ws_hs_request_t *req, const ws_hs_policy_t *policy, ws_hs_result_t *out) {
  for (size_t i = 0; policy && policy->deflate && i < req->n_headers && !out->pmd.enabled; i++) {
    const ws_hs_header_t *h = &req->headers[i];
    if (slice_ieq((slice_t){h->name, h->name_len}, "Sec-WebSocket-Extensions"))
      ws_pmd_parse_offers(h->value, h->value_len, &out->pmd);
  }
}

int ws_handshake_check(const ws_hs_request_t *req, const ws_hs_policy_t *policy, ws_hs_result_t *out) {
  memset(out, 0, sizeof *out);
  slice_t host = {0}, key = {0}, version = {0}, origin = {0};

  if (!req->method || strcmp(req->method, "GET") != 0)
    return reject(out, 400, "WebSocket handshake must be a GET");
  if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1))
    return reject(out, 400, "WebSocket handshake needs HTTP/1.1");
  if (find_header(req, "Host", &host) != 1 || host.n == 0)
    return reject(out, 400, "missing Host header");
  if (!header_has_token(req, "Upgrade", "websocket", 1))
    return reject(out, 400, "Upgrade header must include websocket");
  if (!header_has_token(req, "Connection", "upgrade", 1))
    return reject(out, 400, "Connection header must include Upgrade");
  if (find_header(req, "Sec-WebSocket-Key", &key) != 1 || !key_is_valid(key))
    return reject(out, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
  if (find_header(req, "Sec-WebSocket-Version", &version) != 1 || !slice_ieq(version, WS_VERSION))
    return reject(out, 426, "unsupported Sec-WebSocket-Version (need 13)");
  if (find_header(req, "Origin", &origin) > 0 && !origin_allowed(origin, host, policy))
    return reject(out, 403, "origin not allowed");

  if (ws_accept_key(key.p, key.n, out->accept) != 0)
    return reject(out, 500, "cannot compute Sec-WebSocket-Accept");
  if (header_has_token(req, "Sec-WebSocket-Protocol", WS_SUBPROTOCOL, 0)) out->subprotocol = WS_SUBPROTOCOL;
  negotiate_pmd(req, policy, out);
  out->status = 101;
  out->reason = "Switching Protocols";
  return 0;
}

size_t ws_handshake_response(const ws_hs_result_t *res, char *out, size_t cap) {
  char ext[128] = "";
  if (res->pmd.enabled && ws_pmd_response(&res->pmd, ext, sizeof ext) == 0) return 0;
  int n = snprintf(out, cap,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n"
                   "%s%s%s"
                   "%s%s%s"
                   "\r\n",
                   res->accept,
                   res->subprotocol ? "Sec-WebSocket-Protocol: " : "",
                   res->subprotocol ? res->subprotocol : "",
                   res->subprotocol ? "\r\n" : "",
                   ext[0] ? "Sec-WebSocket-Extensions: " : "", ext, ext[0] ? "\r\n" : "");
  return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

/* --- extended CONNECT (RFC 8441 over HTTP/2, RFC 9220 over HTTP/3) ------------- */

int ws_handshake_check_connect(const ws_hs_request_t *req, const char *protocol,
                               const ws_hs_policy_t *policy, ws_hs_result_t *out) {
  memset(out, 0, sizeof *out);
  slice_t host = {0}, version = {0}, origin = {0};
  if (!req->method || strcmp(req->method, "CONNECT") != 0)
    return reject(out, 400, "a WebSocket over HTTP/2 is opened with extended CONNECT");
  if (!protocol) return reject(out, 400, "CONNECT needs :protocol websocket");
  if (!slice_ieq((slice_t){protocol, strlen(protocol)}, "websocket"))
    return reject(out, 400, ":protocol must be websocket");
  if (find_header(req, "Host", &host) != 1 || host.n == 0)
    return reject(out, 400, "missing :authority");
  if (find_header(req, "Sec-WebSocket-Version", &version) != 1 || !slice_ieq(version, WS_VERSION))
    return reject(out, 426, "unsupported Sec-WebSocket-Version (need 13)");
  if (find_header(req, "Origin", &origin) > 0 && !origin_allowed(origin, host, policy))
    return reject(out, 403, "origin not allowed");
  if (header_has_token(req, "Sec-WebSocket-Protocol", WS_SUBPROTOCOL, 0)) out->subprotocol = WS_SUBPROTOCOL;
  negotiate_pmd(req, policy, out);
  out->status = 200;
  out->reason = "OK";
  return 0;
}
