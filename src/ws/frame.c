/* ws/frame — see frame.h.
 *
 * Parser states, in the order a frame goes through them:
 *   HEAD      the first two bytes (FIN, RSV, opcode, MASK, 7-bit length);
 *             every rule that can be checked from them is checked here, so a
 *             bad frame is refused before its length or mask is even read
 *   EXT_LEN   the 16- or 64-bit extended length, if any
 *   MASK_KEY  the 4-byte masking key, if the frame is masked
 *   PAYLOAD   payload bytes, unmasked in place and handed up as they come
 *   FAILED    sticky: an error was reported or a callback said stop
 * Header bytes are collected in p->hdr so a header split across any number
 * of chunks is decoded exactly as if it had arrived whole.
 */
#include "ws/frame.h"

#include <string.h>

enum frame_state { FP_HEAD = 0, FP_EXT_LEN, FP_MASK_KEY, FP_PAYLOAD, FP_FAILED };

#define BASE_HEADER 2
#define MASK_KEY_BYTES 4
#define LEN7_EXT16 126          /* 7-bit length value announcing a 16-bit length */
#define LEN7_EXT64 127          /* ... and a 64-bit one */
#define LEN64_TOP_BIT (UINT64_C(1) << 63)

#define B0_FIN 0x80
#define B0_RSV1 0x40
#define B0_RSV_ALL 0x70
#define B0_OPCODE 0x0F
#define B1_MASK 0x80
#define B1_LEN7 0x7F
#define OP_CONTROL_BIT 0x8

/* --- the writer ------------------------------------------------------------- */

size_t ws_frame_header_size(uint64_t payload_len) {
  if (payload_len < LEN7_EXT16) return BASE_HEADER;
  if (payload_len <= UINT16_MAX) return BASE_HEADER + 2;
  return BASE_HEADER + 8;
}

size_t ws_frame_write_header(uint8_t *out, int fin, int opcode, uint64_t payload_len) {
  out[0] = (uint8_t)((fin ? B0_FIN : 0) | (opcode & B0_OPCODE));
  size_t size = ws_frame_header_size(payload_len);
  if (size == BASE_HEADER) {
    out[1] = (uint8_t)payload_len;
  } else if (size == BASE_HEADER + 2) {
    out[1] = LEN7_EXT16;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
  } else {
    out[1] = LEN7_EXT64;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
  }
  return size;
}

/* --- unmasking ---------------------------------------------------------------- */

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint8_t *pos) {
  unsigned rot = *pos & 3u;
  /* An 8-byte key holding the mask starting at the current rotation: since 8
   * is a multiple of 4, it stays correct for every following word. */
  uint8_t key8[8];
  for (unsigned i = 0; i < sizeof key8; i++) key8[i] = mask[(rot + i) & 3u];
  uint64_t key;
  memcpy(&key, key8, sizeof key);

  size_t i = 0;
  for (; n - i >= sizeof key; i += sizeof key) {
    uint64_t w;
    memcpy(&w, p + i, sizeof w);   /* memcpy: p need not be aligned */
    w ^= key;
    memcpy(p + i, &w, sizeof w);
  }
  for (; i < n; i++) p[i] ^= key8[i & 7u];
  *pos = (uint8_t)((rot + n) & 3u);
}

/* --- the parser ----------------------------------------------------------------- */

void ws_frame_parser_init(ws_frame_parser_t *p, int require_mask) {
  memset(p, 0, sizeof *p);
  p->state = FP_HEAD;
  p->require_mask = require_mask ? 1 : 0;
}

int ws_frame_parser_failed(const ws_frame_parser_t *p) { return p->state == FP_FAILED; }

static int is_control(int opcode) { return (opcode & OP_CONTROL_BIT) != 0; }

static int is_known_opcode(int opcode) {
  switch (opcode) {
  case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY:
  case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
    return 1;
  default:
    return 0;
  }
}

static void fail(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud, const char *reason) {
  p->state = FP_FAILED;
  if (cb->on_error) cb->on_error(ud, WS_CLOSE_PROTOCOL_ERROR, reason);
}

/* Bytes of extended length announced by the 7-bit length. */
static unsigned ext_len_bytes(const ws_frame_parser_t *p) {
  unsigned len7 = p->hdr[1] & B1_LEN7;
  return len7 == LEN7_EXT64 ? 8 : len7 == LEN7_EXT16 ? 2 : 0;
}

/* Copies header bytes until hdr_have reaches `upto`; 1 once it has. */
static int collect(ws_frame_parser_t *p, const uint8_t *data, size_t n, size_t *i, unsigned upto) {
  size_t want = upto - p->hdr_have;
  size_t take = n - *i < want ? n - *i : want;
  memcpy(p->hdr + p->hdr_have, data + *i, take);
  p->hdr_have = (uint8_t)(p->hdr_have + take);
  *i += take;
  return p->hdr_have == upto;
}

/* Every check that needs only the first two bytes. Returns 0 or -1 (failed). */
static int check_base_header(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud) {
  uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
  p->fin = (b0 & B0_FIN) ? 1 : 0;
  p->opcode = b0 & B0_OPCODE;
  p->masked = (b1 & B1_MASK) ? 1 : 0;
  uint8_t rsv_allowed = (p->allow_rsv1 && !is_control(p->opcode)) ? B0_RSV1 : 0;

  if (b0 & B0_RSV_ALL & ~rsv_allowed) { fail(p, cb, ud, "reserved bits set"); return -1; }
  if (!is_known_opcode(p->opcode)) { fail(p, cb, ud, "reserved opcode"); return -1; }
  if (is_control(p->opcode) && !p->fin) { fail(p, cb, ud, "fragmented control frame"); return -1; }
  if (is_control(p->opcode) && (b1 & B1_LEN7) > WS_MAX_CONTROL_PAYLOAD) {
    fail(p, cb, ud, "control frame over 125 bytes");
    return -1;
  }
  if (p->require_mask && !p->masked) { fail(p, cb, ud, "unmasked client frame"); return -1; }
  return 0;
}

static uint64_t decode_length(const ws_frame_parser_t *p) {
  unsigned ext = ext_len_bytes(p);
  if (ext == 0) return p->hdr[1] & B1_LEN7;
  uint64_t len = 0;
  for (unsigned i = 0; i < ext; i++) len = (len << 8) | p->hdr[BASE_HEADER + i];
  return len;
}

/* The frame is over: report it and get ready for the next header. */
static int end_frame(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud) {
  p->state = FP_HEAD;
  p->hdr_have = 0;
  if (cb->on_frame_end && cb->on_frame_end(ud) != 0) { p->state = FP_FAILED; return -1; }
  return 0;
}

/* Header complete: hand it up, then expect payload (or end an empty frame). */
static int begin_payload(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud) {
  uint64_t len = decode_length(p);
  if (p->masked) memcpy(p->mask, p->hdr + BASE_HEADER + ext_len_bytes(p), MASK_KEY_BYTES);
  p->mask_pos = 0;
  p->remaining = len;
  p->state = FP_PAYLOAD;
  if (cb->on_header && cb->on_header(ud, p->fin, p->opcode, len) != 0) {
    p->state = FP_FAILED;
    return -1;
  }
  return len == 0 ? end_frame(p, cb, ud) : 0;
}

/* After the length (or straight after the base header): mask key or payload. */
static int after_length(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud) {
  if (p->masked) { p->state = FP_MASK_KEY; return 0; }
  return begin_payload(p, cb, ud);
}

/* Delivers as much payload as data holds. Returns -1 if stopped. */
static int read_payload(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud,
                        uint8_t *data, size_t avail) {
  size_t take = p->remaining < avail ? (size_t)p->remaining : avail;
  if (p->masked) ws_unmask(data, take, p->mask, &p->mask_pos);
  /* remaining is lowered first: during on_payload it counts what is still
   * to come after this chunk (ws/session relies on it, see frame.h). */
  p->remaining -= take;
  if (cb->on_payload && cb->on_payload(ud, data, take) != 0) { p->state = FP_FAILED; return -1; }
  return p->remaining == 0 ? end_frame(p, cb, ud) : 0;
}

size_t ws_frame_parse(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud,
                      uint8_t *data, size_t n) {
  size_t i = 0;
  for (;;) {
    switch (p->state) {
    case FP_HEAD:
      if (!collect(p, data, n, &i, BASE_HEADER)) return i;
      if (check_base_header(p, cb, ud) != 0) return i;
      if (ext_len_bytes(p) > 0) { p->state = FP_EXT_LEN; break; }
      if (after_length(p, cb, ud) != 0) return i;
      break;
    case FP_EXT_LEN:
      if (!collect(p, data, n, &i, BASE_HEADER + ext_len_bytes(p))) return i;
      if (decode_length(p) & LEN64_TOP_BIT) { fail(p, cb, ud, "64-bit length with the top bit set"); return i; }
      if (after_length(p, cb, ud) != 0) return i;
      break;
    case FP_MASK_KEY:
      if (!collect(p, data, n, &i, BASE_HEADER + ext_len_bytes(p) + MASK_KEY_BYTES)) return i;
      if (begin_payload(p, cb, ud) != 0) return i;
      break;
    case FP_PAYLOAD: {
      if (i == n) return i;
      size_t before = i;
      size_t take = p->remaining < n - i ? (size_t)p->remaining : n - i;
      i += take;
      if (read_payload(p, cb, ud, data + before, take) != 0) return i;
      break;
    }
    default:
      return i;   /* FP_FAILED: parsing is over for good */
    }
  }
}
