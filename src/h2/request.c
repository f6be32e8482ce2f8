/* h2/request — see request.h. */
#include "h2/request.h"

#include <stdlib.h>
#include <string.h>

static const char *const pseudo_names[H2_PSEUDO_COUNT] = {":method", ":scheme", ":authority", ":path",
                                                          ":protocol"};

void h2_req_init(h2_req_t *r) { memset(r, 0, sizeof *r); }

void h2_req_free(h2_req_t *r) {
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
}

static int fail(h2_req_t *r, int status, const char *reason) {
  if (!r->status) {
    r->status = status;
    r->reason = reason;
  }
  return -1;
}

/* Copies bytes plus a NUL into the buffer; the span gets their place. */
static int store(h2_req_t *r, const uint8_t *p, size_t n, h2_span_t *sp) {
  if (r->len + n + 1 > HTTP_MAX_HEAD) return fail(r, 431, "request header fields must fit in 8 KiB");
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 512;
    while (cap < r->len + n + 1) cap *= 2;
    if (cap > HTTP_MAX_HEAD) cap = HTTP_MAX_HEAD;
    char *grown = realloc(r->buf, cap);
    if (!grown) return fail(r, 500, "out of memory");
    r->buf = grown;
    r->cap = cap;
  }
  if (n) memcpy(r->buf + r->len, p, n);
  r->buf[r->len + n] = '\0';
  sp->off = (uint32_t)r->len;
  sp->len = (uint32_t)n;
  r->len += n + 1;
  return 0;
}

/* RFC 9110 tchar, lower-case only (RFC 9113 §8.2.1). */
static int is_lower_tchar(uint8_t c) {
  if (c >= 'a' && c <= 'z') return 1;
  if (c >= '0' && c <= '9') return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int name_is(const uint8_t *name, size_t len, const char *s) {
  size_t n = strlen(s);
  return len == n && memcmp(name, s, n) == 0;
}

static int connection_specific(const uint8_t *name, size_t len, const uint8_t *value, size_t vlen) {
  if (name_is(name, len, "connection") || name_is(name, len, "keep-alive") ||
      name_is(name, len, "proxy-connection") || name_is(name, len, "transfer-encoding") ||
      name_is(name, len, "upgrade"))
    return 1;
  return name_is(name, len, "te") && !(vlen == 8 && memcmp(value, "trailers", 8) == 0);
}

int h2_req_header(h2_req_t *r, const uint8_t *name, size_t name_len, const uint8_t *value,
                  size_t value_len) {
  if (r->status) return -1;
  if (name_len == 0) return fail(r, 400, "empty header field name");
  for (size_t i = 0; i < value_len; i++)
    if (value[i] == 0 || value[i] == '\r' || value[i] == '\n')
      return fail(r, 400, "header field value with NUL, CR or LF");
  if (name[0] == ':') {
    if (r->regular_seen) return fail(r, 400, "pseudo-header field after a regular field");
    for (int i = 0; i < H2_PSEUDO_COUNT; i++) {
      if (!name_is(name, name_len, pseudo_names[i])) continue;
      if (r->have[i]) return fail(r, 400, "repeated pseudo-header field");
      r->have[i] = 1;
      return store(r, value, value_len, &r->pseudo[i]);
    }
    return fail(r, 400, "unknown pseudo-header field");
  }
  for (size_t i = 0; i < name_len; i++)
    if (!is_lower_tchar(name[i])) return fail(r, 400, "header field name not a lower-case token");
  if (connection_specific(name, name_len, value, value_len))
    return fail(r, 400, "connection-specific header field in HTTP/2");
  r->regular_seen = 1;
  if (r->n_headers == HTTP_MAX_HEADERS) return fail(r, 431, "too many header fields");
  uint32_t i = r->n_headers;
  if (store(r, name, name_len, &r->names[i]) || store(r, value, value_len, &r->values[i])) return -1;
  r->n_headers++;
  return 0;
}

static const char *at(const h2_req_t *r, h2_span_t sp) { return r->buf + sp.off; }

static int has_host(const h2_req_t *r) {
  for (uint32_t i = 0; i < r->n_headers; i++)
    if (r->names[i].len == 4 && memcmp(at(r, r->names[i]), "host", 4) == 0) return 1;
  return 0;
}

int h2_req_finish(h2_req_t *r, http_request_t *out) {
  memset(out, 0, sizeof *out);
  if (r->status) return -1;
  if (!r->have[H2_PSEUDO_METHOD] || r->pseudo[H2_PSEUDO_METHOD].len == 0)
    return fail(r, 400, "missing :method");
  const char *method = at(r, r->pseudo[H2_PSEUDO_METHOD]);
  int connect = strcmp(method, "CONNECT") == 0;
  if (r->have[H2_PSEUDO_PROTOCOL] && !connect) return fail(r, 400, ":protocol is only for CONNECT");
  if (connect && !r->have[H2_PSEUDO_PROTOCOL])
    return fail(r, 501, "CONNECT without :protocol (proxying) is not supported");
  if (!r->have[H2_PSEUDO_SCHEME] || r->pseudo[H2_PSEUDO_SCHEME].len == 0)
    return fail(r, 400, "missing :scheme");
  if (!r->have[H2_PSEUDO_PATH] || r->pseudo[H2_PSEUDO_PATH].len == 0)
    return fail(r, 400, "missing :path");
  if (connect && (!r->have[H2_PSEUDO_AUTHORITY] || r->pseudo[H2_PSEUDO_AUTHORITY].len == 0))
    return fail(r, 400, "missing :authority");
  const char *path = at(r, r->pseudo[H2_PSEUDO_PATH]);
  size_t path_len = r->pseudo[H2_PSEUDO_PATH].len;
  if (path[0] != '/') return fail(r, 400, ":path must start with '/'");
  /* The headers as the routes and ws/handshake want them; :authority as
   * host unless a host field came too. */
  size_t n = 0;
  for (uint32_t i = 0; i < r->n_headers; i++)
    r->hs[n++] = (ws_hs_header_t){at(r, r->names[i]), r->names[i].len, at(r, r->values[i]),
                                  r->values[i].len};
  if (r->have[H2_PSEUDO_AUTHORITY] && r->pseudo[H2_PSEUDO_AUTHORITY].len && !has_host(r))
    r->hs[n++] = (ws_hs_header_t){"host", 4, at(r, r->pseudo[H2_PSEUDO_AUTHORITY]),
                                  r->pseudo[H2_PSEUDO_AUTHORITY].len};
  out->method = method;
  out->http_major = 2;
  out->http_minor = 0;
  const char *q = memchr(path, '?', path_len);
  out->path = path;
  out->path_len = q ? (size_t)(q - path) : path_len;
  out->query = q ? q + 1 : "";
  out->query_len = q ? path_len - (size_t)(q + 1 - path) : 0;
  out->headers = r->hs;
  out->n_headers = n;
  out->keep_alive = 1;
  out->protocol = r->have[H2_PSEUDO_PROTOCOL] ? at(r, r->pseudo[H2_PSEUDO_PROTOCOL]) : NULL;
  return 0;
}

int h2_resp_fields(const char *lines, h2_field_t *out, size_t cap, char *lower, size_t lower_cap) {
  size_t n = 0, used = 0;
  const char *p = lines;
  while (p && *p && n < cap) {
    const char *eol = strstr(p, "\r\n");
    size_t line_len = eol ? (size_t)(eol - p) : strlen(p);
    const char *colon = memchr(p, ':', line_len);
    if (colon && colon > p) {
      size_t nlen = (size_t)(colon - p);
      const char *v = colon + 1;
      const char *vend = p + line_len;
      while (v < vend && (*v == ' ' || *v == '\t')) v++;
      while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
      if (used + nlen > lower_cap) return -1;
      char *lname = lower + used;
      for (size_t i = 0; i < nlen; i++) {
        char c = p[i];
        lname[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
      }
      if (!connection_specific((const uint8_t *)lname, nlen, (const uint8_t *)v, (size_t)(vend - v))) {
        out[n++] = (h2_field_t){lname, v, nlen, (size_t)(vend - v)};
        used += nlen;
      }
    }
    p = eol ? eol + 2 : NULL;
  }
  return (int)n;
}
