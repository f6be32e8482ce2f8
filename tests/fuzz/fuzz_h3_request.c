/* fuzz_h3_request — our own part of the HTTP/3 request path (h3/request):
 * a header section of arbitrary fields (pseudo or not, any bytes, any
 * length, repeated) turned into a request, and response header lines
 * parsed into HTTP/3 fields. QPACK and framing are nghttp3's (fuzzed
 * upstream); what we build from their output is fuzzed here.
 *
 * Input: records [which: 1 byte, 0-4 pseudo, else regular][name length: 1]
 * [value length: 2, big endian][name][value]...; the whole input, as text,
 * is also parsed as "Name: value\r\n" lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h3/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  h3_head_t h;
  h3_head_init(&h);
  size_t i = 0;
  while (i + 4 <= size) {
    int which = data[i] < H3_PSEUDO_COUNT ? data[i] : -1;
    size_t nl = data[i + 1], vl = (size_t)data[i + 2] << 8 | data[i + 3];
    i += 4;
    if (nl > size - i) nl = size - i;
    const uint8_t *name = data + i;
    i += nl;
    if (vl > size - i) vl = size - i;
    h3_head_add(&h, which, name, nl, data + i, vl);
    i += vl;
  }
  ws_hs_header_t fields[H3_MAX_HEADERS];
  h3_request_t req;
  if (h3_head_request(&h, &req, fields) == H3_HEAD_OK) {
    size_t sum = strlen(req.method) + req.path_len + req.query_len + strlen(req.query);
    if (req.protocol) sum += strlen(req.protocol);
    if (req.authority) sum += strlen(req.authority);
    if (req.path_len > strlen(req.path)) abort();
    for (size_t k = 0; k < req.n_headers; k++) {
      if (strlen(fields[k].name) != fields[k].name_len || strlen(fields[k].value) != fields[k].value_len) abort();
      sum += fields[k].name_len;
    }
    (void)sum;
  }
  h3_head_free(&h);

  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  char names[H3_MAX_EXTRA_FIELDS][H3_FIELD_NAME_MAX];
  h3_field_t out[H3_MAX_EXTRA_FIELDS];
  size_t n = h3_header_lines(text, out, names);
  for (size_t k = 0; k < n; k++) {
    if (out[k].value < text || out[k].value + out[k].value_len > text + size) abort();
    for (size_t j = 0; j < out[k].name_len; j++)
      if (out[k].name[j] >= 'A' && out[k].name[j] <= 'Z') abort();
  }
  free(text);
  return 0;
}
