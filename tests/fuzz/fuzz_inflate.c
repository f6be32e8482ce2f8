/* Fuzz target: the permessage-deflate inflate path (ws/deflate and the
 * RSV1 rules of ws/session).
 *
 * Input: byte 0 picks the message limit (small, so the 1009 path is hit
 * often); the rest is used three ways:
 *   1. as compressed bytes for ws_inflate: it returns OK with at most
 *      `limit` bytes, or an error, and never anything past the limit;
 *   2. as plaintext: ws_deflate_frame's frame (RSV1, FIN, a right length)
 *      inflates back to exactly the input when it fits the limit;
 *   3. as a client byte stream fed to a session with deflate negotiated:
 *      every delivered message is within the limit and text is UTF-8;
 *      on_closed at most once. Any breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/deflate.h"
#include "ws/session.h"

typedef struct run {
  ws_session_t s;
  int closed;
} run_t;

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len) {
  run_t *r = ud;
  if (r->closed || len > r->s.cb->max_message) abort();
  if (opcode == WS_OP_TEXT && !ws_utf8_valid(data, len)) abort();
}
static void on_write(void *ud, const uint8_t *data, size_t len) { (void)ud; (void)data; (void)len; }
static void on_closed(void *ud, int code) {
  run_t *r = ud;
  (void)code;
  if (r->closed) abort();
  r->closed = 1;
}
static const ws_session_cb_t cbs = {on_message, on_write, NULL, on_closed, 0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t limit = 1 + (size_t)data[0] * 64;   /* 1..16321 */
  data++;
  size--;

  /* 1. arbitrary compressed bytes */
  const uint8_t *out;
  size_t out_len;
  int rc = ws_inflate(data, size, limit, &out, &out_len);
  if (rc == WS_INFLATE_OK && out_len > limit) abort();
  if (rc == WS_INFLATE_OK) ws_inflate_release();

  /* 2. round trip */
  wsc_buf_t *f = ws_deflate_frame(WS_OP_BINARY, data, size);
  if (!f) abort();
  const uint8_t *p = wsc_buf_bytes(f);
  if (p[0] != (0x80 | 0x40 | WS_OP_BINARY)) abort();
  size_t hlen = p[1] < 126 ? 2 : p[1] == 126 ? 4 : 10;
  if (f->len < hlen || ws_frame_header_size(f->len - hlen) != hlen) abort();
  rc = ws_inflate(p + hlen, f->len - hlen, limit, &out, &out_len);
  if (size <= limit) {
    if (rc != WS_INFLATE_OK || out_len != size || (size && memcmp(out, data, size) != 0)) abort();
  } else if (rc != WS_INFLATE_TOO_BIG) {
    abort();
  }
  ws_inflate_release();
  wsc_buf_unref(f);

  /* 3. a session with deflate */
  run_t r;
  memset(&r, 0, sizeof r);
  ws_session_cb_t cb = cbs;
  cb.max_message = limit;
  ws_session_init(&r.s, &cb, &r);
  ws_session_enable_deflate(&r.s);
  uint8_t *copy = malloc(size ? size : 1);
  if (size) memcpy(copy, data, size);
  ws_session_feed(&r.s, copy, size);
  free(copy);
  ws_session_free(&r.s);
  return 0;
}
