/* ws/session — see session.h.
 *
 * The frame parser calls back here for every header, payload chunk and frame
 * end; this file adds what RFC 6455 says above single frames. Data payload
 * takes one of two paths:
 *   - direct: the last frame of a message whose bytes all sit in the current
 *     input chunk, with nothing held from earlier, is delivered straight from
 *     the caller's buffer (no allocation, no copy) — the common case;
 *   - assembled: anything else is appended to s->msg, which grows
 *     geometrically but never past max_message (nor past the final size, when
 *     the last frame's length is known).
 * Text is validated as each chunk arrives, so each byte is checked once and
 * an invalid byte fails the session at once, whatever the path.
 */
#include "ws/session.h"

#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"
#include "ws/deflate.h"

/* First size of the assembly buffer; it doubles from there. */
#define MSG_MIN_CAP 1024
/* Room for a status code in front of a close reason. */
#define CLOSE_CODE_BYTES 2
#define CLOSE_REASON_MAX (WS_MAX_CONTROL_PAYLOAD - CLOSE_CODE_BYTES)

static const uint8_t no_bytes[1];   /* what an empty message points to */

static int is_control(int opcode) { return (opcode & 0x8) != 0; }

int ws_close_code_valid(unsigned code) {
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1011) return 1;
  return code >= 3000 && code <= 4999;
}

size_t ws_build_frame(uint8_t *out, int opcode, const uint8_t *payload, size_t len) {
  size_t hdr = ws_frame_write_header(out, 1, opcode, len);
  if (len) memcpy(out + hdr, payload, len);
  return hdr + len;
}

/* --- output ------------------------------------------------------------------ */

static void write_control(ws_session_t *s, int opcode, const uint8_t *payload, size_t len) {
  uint8_t frame[WS_MAX_SERVER_HEADER + WS_MAX_CONTROL_PAYLOAD];
  s->cb->on_write(s->ud, frame, ws_build_frame(frame, opcode, payload, len));
}

/* Longest prefix of reason that fits a close frame and ends on a UTF-8
 * code point boundary (a continuation byte never starts the cut-off part). */
static size_t reason_fit(const char *reason) {
  size_t len = strlen(reason);
  if (len <= CLOSE_REASON_MAX) return len;
  size_t cut = CLOSE_REASON_MAX;
  while (cut > 0 && ((uint8_t)reason[cut] & 0xC0) == 0x80) cut--;
  return cut;
}

/* Writes our close frame; code 0 (or one never sent on the wire) means an
 * empty close. */
static void send_close(ws_session_t *s, unsigned code, const char *reason) {
  uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
  size_t len = 0;
  if (code != 0 && code != WS_CLOSE_NO_STATUS && code != WS_CLOSE_ABNORMAL) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    len = CLOSE_CODE_BYTES;
    if (reason) {
      size_t rlen = reason_fit(reason);
      memcpy(payload + len, reason, rlen);
      len += rlen;
    }
  }
  write_control(s, WS_OP_CLOSE, payload, len);
}

/* --- state changes --------------------------------------------------------------- */

static inline size_t held_len(const ws_held_t *h) { return h ? h->len : 0; }
static inline const uint8_t *held_data(const ws_held_t *h) { return h ? h->data : no_bytes; }

static void free_message(ws_session_t *s) {
  free(s->msg);
  s->msg = NULL;
  s->msg_opcode = 0;
  s->msg_compressed = 0;
}

static void free_control(ws_session_t *s) {
  free(s->ctl);
  s->ctl = NULL;
}

/* Ends the session: buffers go first, so an owner that calls
 * ws_session_free from on_closed is harmless. Always returns 1 ("stop"). */
static int finish(ws_session_t *s, int code) {
  if (s->state == WS_SESSION_CLOSED) return 1;
  free_message(s);
  free_control(s);
  s->state = WS_SESSION_CLOSED;
  s->cb->on_closed(s->ud, code);
  return 1;
}

/* Fails the connection (RFC 6455 §7.1.7): our close with the code, unless
 * one was already sent, then the end. Returns 1 ("stop") for the parser. */
static int fail(ws_session_t *s, int code, const char *reason) {
  if (s->state == WS_SESSION_OPEN) send_close(s, (unsigned)code, reason);
  return finish(s, code);
}

/* --- data frames ---------------------------------------------------------------- */

static int check_data_header(ws_session_t *s, int opcode, uint64_t len, int rsv1) {
  if (opcode == WS_OP_CONT) {
    if (!s->msg_opcode) return fail(s, WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message");
    /* RFC 7692 §6.1: RSV1 on the first frame of a message only. */
    if (rsv1) return fail(s, WS_CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation frame");
  } else {
    if (s->msg_opcode) return fail(s, WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented message");
    s->msg_opcode = (uint8_t)opcode;
    s->msg_compressed = (uint8_t)(rsv1 != 0);
    ws_utf8_init(&s->utf8);
  }
  /* msg_len <= max_message always holds, so this cannot wrap. */
  if (len > s->cb->max_message - held_len(s->msg)) return fail(s, WS_CLOSE_TOO_BIG, "message too big");
  return 0;
}

/* Hands a whole message up, then drops the assembly buffer. The opcode is
 * cleared before the call so a ws_session_close from inside on_message does
 * not free the bytes being delivered. */
/* A compressed message, whole: inflate (bounded by max_message), check
 * text, hand it up. */
static int deliver_compressed(ws_session_t *s, const uint8_t *data, size_t len) {
  const uint8_t *out;
  size_t out_len;
  int rc = ws_inflate(data, len, s->cb->max_message, &out, &out_len);
  if (rc == WS_INFLATE_TOO_BIG) return fail(s, WS_CLOSE_TOO_BIG, "message too big (inflated)");
  if (rc == WS_INFLATE_NOMEM) return fail(s, WS_CLOSE_INTERNAL, "out of memory");
  if (rc != WS_INFLATE_OK) return fail(s, WS_CLOSE_INVALID_DATA, "invalid permessage-deflate data");
  int opcode = s->msg_opcode;
  wsc_metrics.ws_inflated++;
  if (opcode == WS_OP_TEXT && !ws_utf8_valid(out, out_len)) {
    ws_inflate_release();
    return fail(s, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
  }
  s->msg_opcode = 0;
  s->msg_compressed = 0;
  s->cb->on_message(s->ud, opcode, out_len ? out : no_bytes, out_len);
  ws_inflate_release();
  free_message(s);
  return s->state == WS_SESSION_CLOSED;
}

static int deliver(ws_session_t *s, const uint8_t *data, size_t len) {
  if (s->msg_compressed) return deliver_compressed(s, data, len);
  if (s->msg_opcode == WS_OP_TEXT && !ws_utf8_complete(&s->utf8))
    return fail(s, WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
  int opcode = s->msg_opcode;
  s->msg_opcode = 0;
  s->cb->on_message(s->ud, opcode, len ? data : no_bytes, len);
  free_message(s);
  return s->state == WS_SESSION_CLOSED;
}

/* Grows the assembly buffer to hold `need` bytes: doubling, but never past
 * max_message, nor past the message's final size when it is known (last
 * frame: what is held plus what the frame still announces). */
static int grow(ws_session_t *s, size_t need) {
  size_t cap = s->msg ? s->msg->cap : MSG_MIN_CAP;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  size_t limit = s->cb->max_message;
  if (s->parser.fin && need + s->parser.remaining < limit) limit = need + (size_t)s->parser.remaining;
  if (cap > limit) cap = limit;
  if (cap > SIZE_MAX - sizeof(ws_held_t)) return -1;
  ws_held_t *msg = realloc(s->msg, sizeof *msg + cap);
  if (!msg) return -1;
  if (!s->msg) msg->len = 0;
  s->msg = msg;
  s->msg->cap = cap;
  return 0;
}

static int append(ws_session_t *s, const uint8_t *p, size_t n) {
  size_t need = held_len(s->msg) + n;   /* <= max_message: checked at the header */
  if ((!s->msg || need > s->msg->cap) && grow(s, need) != 0) return fail(s, WS_CLOSE_INTERNAL, "out of memory");
  if (n) memcpy(s->msg->data + s->msg->len, p, n);
  s->msg->len = need;
  return 0;
}

static int data_payload(ws_session_t *s, const uint8_t *p, size_t n) {
  if (s->msg_opcode == WS_OP_TEXT && !s->msg_compressed && ws_utf8_feed(&s->utf8, p, n) != 0)
    return fail(s, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
  int whole_frame_here = s->parser.remaining == 0;   /* see ws/frame.h */
  if (s->parser.fin && whole_frame_here && held_len(s->msg) == 0) {
    s->frame_done = 1;
    return deliver(s, p, n);
  }
  return append(s, p, n);
}

/* --- control frames ----------------------------------------------------------------- */

static int handle_close(ws_session_t *s, const uint8_t *p, size_t n) {
  unsigned code = n >= CLOSE_CODE_BYTES ? (unsigned)(p[0] << 8 | p[1]) : WS_CLOSE_NO_STATUS;
  if (s->state == WS_SESSION_CLOSE_SENT) return finish(s, (int)code);   /* handshake done */
  if (n == 1) return fail(s, WS_CLOSE_PROTOCOL_ERROR, "close payload of 1 byte");
  if (n >= CLOSE_CODE_BYTES && !ws_close_code_valid(code))
    return fail(s, WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
  if (n > CLOSE_CODE_BYTES && !ws_utf8_valid(p + CLOSE_CODE_BYTES, n - CLOSE_CODE_BYTES))
    return fail(s, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
  /* Echo the peer's code; an empty close is answered with 1000. */
  send_close(s, n == 0 ? WS_CLOSE_NORMAL : code, NULL);
  return finish(s, (int)code);
}

static int control_frame(ws_session_t *s, const uint8_t *p, size_t n) {
  switch (s->frame_opcode) {
  case WS_OP_PING:
    if (s->state == WS_SESSION_OPEN) write_control(s, WS_OP_PONG, p, n);
    return 0;
  case WS_OP_PONG:
    if (s->cb->on_pong) s->cb->on_pong(s->ud);
    return s->state == WS_SESSION_CLOSED;
  default:
    return handle_close(s, p, n);
  }
}

/* Control payload: handled in place when it is all in this chunk, else
 * gathered in a buffer of the frame's exact size (at most 125 bytes). */
static int control_payload(ws_session_t *s, const uint8_t *p, size_t n) {
  size_t left = (size_t)s->parser.remaining;
  if (!s->ctl && left == 0) {
    s->frame_done = 1;
    return control_frame(s, p, n);
  }
  if (!s->ctl) {
    if (!(s->ctl = malloc(sizeof *s->ctl + n + left))) return fail(s, WS_CLOSE_INTERNAL, "out of memory");
    s->ctl->len = 0;
    s->ctl->cap = n + left;
  }
  if (n) memcpy(s->ctl->data + s->ctl->len, p, n);
  s->ctl->len += n;
  return 0;
}

/* --- frame parser callbacks ------------------------------------------------------------ */

static int on_header(void *ud, int fin, int opcode, uint64_t len) {
  ws_session_t *s = ud;
  s->frame_opcode = (uint8_t)opcode;
  s->frame_done = 0;
  if (s->state == WS_SESSION_CLOSED) return 1;
  if (is_control(opcode) || s->state != WS_SESSION_OPEN) return 0;
  /* The parser refuses RSV1 unless deflate was negotiated, and always on
   * control frames. */
  return check_data_header(s, opcode, len, s->parser.hdr[0] & 0x40);
}

static int on_payload(void *ud, const uint8_t *p, size_t n) {
  ws_session_t *s = ud;
  if (s->state == WS_SESSION_CLOSED) return 1;
  if (is_control(s->frame_opcode)) return control_payload(s, p, n);
  if (s->state != WS_SESSION_OPEN) return 0;   /* closing: data is discarded */
  return data_payload(s, p, n);
}

static int on_frame_end(void *ud) {
  ws_session_t *s = ud;
  if (s->state == WS_SESSION_CLOSED) return 1;
  if (is_control(s->frame_opcode)) {
    int stop = s->frame_done ? 0 : control_frame(s, held_data(s->ctl), held_len(s->ctl));
    free_control(s);
    return stop || s->state == WS_SESSION_CLOSED;
  }
  if (s->state != WS_SESSION_OPEN || s->frame_done || !s->parser.fin) return 0;
  return deliver(s, held_data(s->msg), held_len(s->msg));
}

static void on_error(void *ud, int close_code, const char *reason) {
  fail(ud, close_code, reason);
}

static const ws_frame_cb_t frame_callbacks = {
  .on_header = on_header,
  .on_payload = on_payload,
  .on_frame_end = on_frame_end,
  .on_error = on_error,
};

/* --- public ----------------------------------------------------------------------------- */

void ws_session_init(ws_session_t *s, const ws_session_cb_t *cb, void *ud) {
  memset(s, 0, sizeof *s);
  ws_frame_parser_init(&s->parser, 1);
  s->cb = cb;
  s->ud = ud;
  s->state = WS_SESSION_OPEN;
}

void ws_session_enable_deflate(ws_session_t *s) {
  s->deflate = 1;
  s->parser.allow_rsv1 = 1;
}

int ws_session_feed(ws_session_t *s, uint8_t *data, size_t len) {
  if (s->state == WS_SESSION_CLOSED) return -1;
  ws_frame_parse(&s->parser, &frame_callbacks, s, data, len);
  return s->state == WS_SESSION_OPEN ? 0 : -1;
}

void ws_session_close(ws_session_t *s, uint16_t code, const char *reason) {
  if (s->state != WS_SESSION_OPEN) return;
  send_close(s, code, reason);
  s->state = WS_SESSION_CLOSE_SENT;
  /* A message in progress will never be delivered now. (During on_message
   * msg_opcode is already 0, so the bytes being delivered stay valid.) */
  if (s->msg_opcode) free_message(s);
}

void ws_session_free(ws_session_t *s) {
  free_message(s);
  free_control(s);
}
