/* Fuzz target: our own parsing on HTTP/2 — the header-field mapping of
 * h2/request (pseudo-headers, field rules, limits, :authority as host,
 * :path split) and the extended CONNECT decision of ws/handshake
 * (ws_handshake_check_connect), plus the response-header-line splitter.
 *
 * Input: a list of fields, each [name length: 1 byte][name][value length:
 * 2 bytes, big-endian][value]; a truncated last field is dropped. The
 * whole input is also given to h2_resp_fields as text.
 *
 * Checks what the modules promise: a refused request has a status among
 * 400/431/500/501 and a reason; an accepted one has a method, a path that
 * starts with '/', spans inside the buffer, at most HTTP_MAX_HEADERS + 1
 * headers, http_major 2; CONNECT's decision is 200/400/403/426, and a
 * 200 only with :protocol websocket. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h2/request.h"
#include "ws/handshake.h"

static void check_request(h2_req_t *r) {
  http_request_t req;
  if (h2_req_finish(r, &req) != 0) {
    if (r->status != 400 && r->status != 431 && r->status != 500 && r->status != 501) abort();
    if (!r->reason || !r->reason[0]) abort();
    return;
  }
  if (!req.method || !req.method[0] || req.http_major != 2) abort();
  if (req.path_len == 0 || req.path[0] != '/') abort();
  if (memchr(req.path, '?', req.path_len)) abort();
  if (req.query_len && strlen(req.query) < req.query_len) abort();
  if (req.n_headers > HTTP_MAX_HEADERS + 1) abort();
  for (size_t i = 0; i < req.n_headers; i++) {
    const ws_hs_header_t *h = &req.headers[i];
    if (h->name_len == 0 || h->name[0] == ':') abort();
    if (memchr(h->value, '\r', h->value_len) || memchr(h->value, '\n', h->value_len)) abort();
  }
  if (strcmp(req.method, "CONNECT") != 0) {
    if (req.protocol) abort();
    return;
  }
  static const char *const origins[] = {"https://allowed.example"};
  ws_hs_policy_t policy = {.allowed_origins = origins, .n_allowed_origins = 1};
  ws_hs_request_t hs = {req.method, req.http_major, req.http_minor, req.headers, req.n_headers};
  ws_hs_result_t res;
  int rc = ws_handshake_check_connect(&hs, req.protocol, &policy, &res);
  if (rc == 0) {
    if (res.status != 200 || !req.protocol || strcasecmp(req.protocol, "websocket") != 0) abort();
  } else if (res.status != 400 && res.status != 403 && res.status != 426) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  h2_req_t *r = malloc(sizeof *r);
  if (!r) return 0;
  h2_req_init(r);
  size_t i = 0;
  while (i < size) {
    size_t nlen = data[i++];
    if (i + nlen + 2 > size) break;
    const uint8_t *name = data + i;
    i += nlen;
    size_t vlen = (size_t)data[i] << 8 | data[i + 1];
    i += 2;
    if (i + vlen > size) break;
    int rc = h2_req_header(r, name, nlen, data + i, vlen);
    if (rc != 0 && !r->status) abort();
    i += vlen;
  }
  check_request(r);
  h2_req_free(r);
  free(r);

  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  h2_field_t fields[16];
  char lower[256];
  int n = h2_resp_fields(text, fields, 16, lower, sizeof lower);
  if (n > 16) abort();
  for (int k = 0; k < n; k++)
    for (size_t j = 0; j < fields[k].name_len; j++)
      if (fields[k].name[j] >= 'A' && fields[k].name[j] <= 'Z') abort();
  free(text);
  return 0;
}
