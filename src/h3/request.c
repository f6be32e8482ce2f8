/* h3/request — see request.h. */
#include "h3/request.h"

#include <stdlib.h>
#include <string.h>

void h3_head_init(h3_head_t *h) {
  memset(h, 0, sizeof *h);
  for (int i = 0; i < H3_PSEUDO_COUNT; i++) h->pseudo[i] = -1;
}

void h3_head_free(h3_head_t *h) {
  free(h->buf);
  h->buf = NULL;
}

void h3_head_add(h3_head_t *h, int which, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl) {
  if (h->state != H3_HEAD_OK) return;
  if (nl > H3_MAX_HEAD || vl > H3_MAX_HEAD || h->len + nl + vl + 2 > H3_MAX_HEAD ||
      h->n_fields >= H3_MAX_HEADERS) {
    h->state = H3_HEAD_TOO_BIG;
    return;
  }
  /* Names and values are kept NUL-terminated: a NUL inside is refused. */
  if ((nl && memchr(name, 0, nl)) || (vl && memchr(value, 0, vl))) {
    h->state = H3_HEAD_BAD;
    return;
  }
  if (!h->buf && !(h->buf = malloc(H3_MAX_HEAD))) {
    h->state = H3_HEAD_TOO_BIG;
    return;
  }
  char *p = h->buf + h->len;
  if (nl) memcpy(p, name, nl);
  p[nl] = 0;
  if (vl) memcpy(p + nl + 1, value, vl);
  p[nl + 1 + vl] = 0;
  if (which >= 0 && which < H3_PSEUDO_COUNT) {
    if (h->pseudo[which] >= 0) h->state = H3_HEAD_BAD; /* a pseudo-header twice */
    h->pseudo[which] = (int)(h->len + nl + 1);
  }
  h->len += nl + vl + 2;
  h->n_fields++;
}

int h3_head_request(const h3_head_t *h, h3_request_t *req, ws_hs_header_t *fields) {
  memset(req, 0, sizeof *req);
  if (h->state != H3_HEAD_OK) return h->state;
  size_t nf = 0;
  const char *p = h->buf, *end = h->buf ? h->buf + h->len : NULL;
  while (p && p < end) {
    const char *name = p, *val = p + strlen(p) + 1;
    p = val + strlen(val) + 1;
    if (name[0] == ':' || nf == H3_MAX_HEADERS) continue;
    fields[nf++] = (ws_hs_header_t){name, strlen(name), val, strlen(val)};
  }
  const int *ps = h->pseudo;
  req->method = ps[H3_PSEUDO_METHOD] >= 0 ? h->buf + ps[H3_PSEUDO_METHOD] : "";
  req->protocol = ps[H3_PSEUDO_PROTOCOL] >= 0 ? h->buf + ps[H3_PSEUDO_PROTOCOL] : NULL;
  req->scheme = ps[H3_PSEUDO_SCHEME] >= 0 ? h->buf + ps[H3_PSEUDO_SCHEME] : NULL;
  req->authority = ps[H3_PSEUDO_AUTHORITY] >= 0 ? h->buf + ps[H3_PSEUDO_AUTHORITY] : NULL;
  const char *path = ps[H3_PSEUDO_PATH] >= 0 ? h->buf + ps[H3_PSEUDO_PATH] : "";
  const char *q = strchr(path, '?');
  req->path = path;
  req->path_len = q ? (size_t)(q - path) : strlen(path);
  req->query = q ? q + 1 : "";
  req->query_len = strlen(req->query);
  req->headers = fields;
  req->n_headers = nf;
  return H3_HEAD_OK;
}

size_t h3_header_lines(const char *lines, h3_field_t *out, char names[][H3_FIELD_NAME_MAX]) {
  size_t n = 0;
  const char *p = lines;
  while (p && *p && n < H3_MAX_EXTRA_FIELDS) {
    const char *colon = strchr(p, ':'), *eol = strstr(p, "\r\n");
    if (!colon || !eol || colon > eol || colon == p) break;
    size_t nl = (size_t)(colon - p);
    if (nl >= H3_FIELD_NAME_MAX) break;
    for (size_t i = 0; i < nl; i++) names[n][i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
    names[n][nl] = 0;
    const char *v = colon + 1;
    while (v < eol && *v == ' ') v++;
    out[n] = (h3_field_t){names[n], v, nl, (size_t)(eol - v)};
    n++;
    p = eol + 2;
  }
  return n;
}
