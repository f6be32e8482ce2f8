/* msg/outbuf — see outbuf.h. */
#include "msg/outbuf.h"

#include <string.h>

#include "base/metrics.h"

#include "ws/frame.h"

wsc_buf_t *outbuf_new(size_t cap) { return wsc_buf_new(WS_MAX_SERVER_HEADER, cap); }

wsc_buf_t *outbuf_text(const char *json, size_t len) {
  wsc_buf_t *b = wsc_buf_from(WS_MAX_SERVER_HEADER, json, len);
  if (b) outbuf_seal(b);
  return b;
}

void outbuf_seal(wsc_buf_t *b) {
  size_t n = ws_frame_header_size(b->len);
  uint8_t *h = wsc_buf_prepend(b, n);
  ws_frame_write_header(h, 1, WS_OP_TEXT, b->len - n);
}

/* A compressed form that did not shrink is kept all the same (so it is
 * tried once per message) and just not used. */
wsc_buf_t *outbuf_wire(wsc_buf_t *b, const ws_pmd_t *pmd, size_t min) {
  /* Only one sealed text frame (not a replay: several frames, hdr 0). */
  if (!pmd->enabled || b->hdr == 0 || wsc_buf_bytes(b)[0] != (0x80 | WS_OP_TEXT)) return b;
  size_t payload = b->len - b->hdr;
  if (payload < min || !ws_pmd_fits(pmd, payload)) return b;
  if (!b->alt) {
    b->alt = ws_deflate_frame(WS_OP_TEXT, wsc_buf_bytes(b) + b->hdr, payload);
    if (!b->alt) return b;
    wsc_metrics.ws_deflate_built++;
  }
  return b->alt->len < b->len ? b->alt : b;
}

wsc_buf_t *outbuf_concat(wsc_buf_t *const *parts, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (parts[i]) total += parts[i]->len;
  wsc_buf_t *b = wsc_buf_new(0, total);
  if (!b) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!parts[i]) continue;
    memcpy(b->data + b->len, wsc_buf_bytes(parts[i]), parts[i]->len);
    b->len += parts[i]->len;
  }
  return b;
}
