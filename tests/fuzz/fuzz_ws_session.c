/* Fuzz target: ws/session (and ws/frame, ws/utf8 under it) on arbitrary
 * client bytes.
 *
 * Input layout: byte 0 picks max_message (small, so the 1009 path is hit)
 * and whether on_message starts a close; byte 1 seeds the split points; the
 * rest is the byte stream from the client. The stream is fed twice — whole,
 * and cut at a few points derived from byte 1 — and the two runs must
 * report exactly the same events (the parser's split invariance). Each run
 * also checks the session's own promises: on_closed at most once, nothing
 * written after our close frame, the assembly buffer never past
 * max_message, every written frame well-formed. Any breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/session.h"

#define MAX_SPLITS 4

typedef struct run {
  ws_session_t s;
  uint64_t digest;        /* FNV-1a over every event and its bytes */
  int closed;
  int close_written;      /* our close frame went out */
  int close_on_message;
} run_t;

static void mix(run_t *r, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) r->digest = (r->digest ^ b[i]) * UINT64_C(1099511628211);
}

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len) {
  run_t *r = ud;
  if (r->closed || r->close_written || len > r->s.cb->max_message) abort();
  if (opcode == WS_OP_TEXT && !ws_utf8_valid(data, len)) abort();
  mix(r, "M", 1);
  mix(r, &opcode, sizeof opcode);
  mix(r, &len, sizeof len);
  mix(r, data, len);
  if (r->close_on_message) ws_session_close(&r->s, WS_CLOSE_POLICY, "fuzz");
}

/* Every write is one whole server frame: FIN set, unmasked, a control
 * opcode, a consistent short length. */
static void on_write(void *ud, const uint8_t *data, size_t len) {
  run_t *r = ud;
  if (r->closed || r->close_written) abort();
  if (len < 2 || (data[0] & 0xF0) != 0x80 || (data[1] & 0x80) || (size_t)(data[1] & 0x7F) + 2 != len) abort();
  int op = data[0] & 0x0F;
  if (op != WS_OP_PONG && op != WS_OP_CLOSE) abort();
  if (op == WS_OP_CLOSE) {
    r->close_written = 1;
    if (len == 3) abort();
    if (len > 4 && !ws_utf8_valid(data + 4, len - 4)) abort();
  }
  mix(r, "W", 1);
  mix(r, data, len);
}

static void on_pong(void *ud) { mix(ud, "P", 1); }

static void on_closed(void *ud, int code) {
  run_t *r = ud;
  if (r->closed) abort();
  r->closed = 1;
  mix(r, "C", 1);
  mix(r, &code, sizeof code);
}

static const ws_session_cb_t cbs = {on_message, on_write, on_pong, on_closed, 0};

static uint64_t run_stream(const uint8_t *data, size_t n, size_t max_message, int close_on_message,
                           const size_t *cuts, int n_cuts) {
  run_t r;
  memset(&r, 0, sizeof r);
  r.digest = UINT64_C(14695981039346656037);
  r.close_on_message = close_on_message;
  ws_session_cb_t cb = cbs;
  cb.max_message = max_message;
  ws_session_init(&r.s, &cb, &r);
  uint8_t *copy = malloc(n ? n : 1);   /* the session unmasks in place */
  if (n) memcpy(copy, data, n);
  size_t start = 0;
  for (int i = 0; i <= n_cuts; i++) {
    size_t end = i < n_cuts ? cuts[i] : n;
    ws_session_feed(&r.s, copy + start, end - start);
    if (r.s.msg && r.s.msg->cap > max_message) abort();
    if (r.s.state != WS_SESSION_OPEN && ws_session_can_send(&r.s)) abort();
    start = end;
  }
  free(copy);
  ws_session_free(&r.s);
  return r.digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max_message = 16 + (size_t)(data[0] & 0x7F) * 8;   /* 16..1032 */
  int close_on_message = data[0] >> 7;
  uint32_t seed = data[1] * 2654435761u + 1;
  data += 2;
  size -= 2;

  size_t cuts[MAX_SPLITS];
  int n_cuts = 0;
  if (size > 0) {
    for (int i = 0; i < MAX_SPLITS; i++) {
      seed = seed * 1103515245u + 12345u;
      cuts[n_cuts++] = (seed >> 8) % (size + 1);
    }
    /* sort ascending: cut points in order */
    for (int i = 1; i < n_cuts; i++)
      for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t t = cuts[j]; cuts[j] = cuts[j - 1]; cuts[j - 1] = t;
      }
  }
  uint64_t whole = run_stream(data, size, max_message, close_on_message, NULL, 0);
  uint64_t split = run_stream(data, size, max_message, close_on_message, cuts, n_cuts);
  if (whole != split) abort();
  return 0;
}
