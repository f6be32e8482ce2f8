/* wsc — the client side of RFC 6455 for wschat-bench: pure code, no I/O.
 *
 *  - the opening handshake: request text, Sec-WebSocket-Key, and the check
 *    of the server's 101 response (status and Sec-WebSocket-Accept);
 *  - the frame writer: client frames are always masked (§5.3); the caller
 *    picks a fresh random mask for every frame and masks in place, a word at
 *    a time;
 *  - the incremental frame parser: fed arbitrary chunks, it hands up whole
 *    messages. A message that lies whole in the chunk is handed up in place
 *    (zero copy); only one that spans chunks or frames is assembled, in a
 *    per-connection buffer that grows (rarely) and is then reused, so the
 *    steady state allocates nothing. Bytes beyond `keep_max` are counted but
 *    not kept (the caller only needs the head of oversized chatter).
 */
#ifndef WSB_WSC_H
#define WSB_WSC_H

#include <stddef.h>
#include <stdint.h>

enum { WSC_CONT = 0, WSC_TEXT = 1, WSC_BINARY = 2, WSC_CLOSE = 8, WSC_PING = 9, WSC_PONG = 10 };

#define WSC_MAX_CLIENT_HEADER 14
#define WSC_KEY_LEN 24 /* base64 of 16 bytes */

/* --- handshake ------------------------------------------------------------ */

/* key: 16 random bytes; out: WSC_KEY_LEN + 1 bytes, NUL-terminated. */
void wsc_make_key(const uint8_t rnd[16], char out[WSC_KEY_LEN + 1]);
/* Writes the GET request into out; returns its length, or 0 if cap is too small. */
size_t wsc_handshake_request(char *out, size_t cap, const char *host, const char *path,
                             const char *key);
/* Checks a response. Returns the length of the header block (through the
 * blank line) when it is complete and valid, 0 when more bytes are needed,
 * and a negative value when it is invalid (-1 not 101, -2 bad or missing
 * Sec-WebSocket-Accept, -3 too long). */
long wsc_handshake_response(const char *buf, size_t len, const char *key);

/* --- frames ----------------------------------------------------------------- */

/* Writes a masked, FIN header for a payload of len bytes; returns its size. */
size_t wsc_frame_header(uint8_t *out, int opcode, uint64_t len, uint32_t mask);
/* XORs data with the 4-byte mask (as laid out in the header), starting at
 * mask byte `offset % 4`. */
void wsc_mask(uint8_t *data, size_t len, uint32_t mask, size_t offset);

/* --- parser ------------------------------------------------------------------- */

typedef struct wsc_cb {
  /* A complete data message (TEXT or BINARY). data holds min(total, keep_max)
   * bytes; total is the message's real length. */
  void (*on_message)(void *ud, int opcode, uint8_t *data, size_t len, uint64_t total);
  /* A control frame (CLOSE, PING, PONG), its whole payload (<= 125 bytes). */
  void (*on_control)(void *ud, int opcode, uint8_t *data, size_t len);
} wsc_cb;

typedef struct wsc_parser {
  uint8_t hdr[14];
  uint8_t hdr_len, hdr_need;
  uint8_t in_payload;
  uint8_t opcode, fin, masked;
  uint8_t msg_opcode;      /* data opcode of the message being assembled, 0 if none */
  uint8_t ctrl_len;
  uint8_t allow_rsv1;      /* permessage-deflate negotiated */
  uint8_t msg_rsv1;        /* the last data message started with RSV1 */
  uint32_t mask;
  uint64_t len, got;       /* current frame */
  uint64_t msg_total;      /* bytes of the current message so far */
  uint8_t ctrl[125];
  /* assembly buffer: grows on demand, kept for reuse */
  uint8_t *buf;
  size_t buf_len, buf_cap, keep_max;
} wsc_parser;

void wsc_parser_init(wsc_parser *p, size_t keep_max);
void wsc_parser_free(wsc_parser *p);
/* Feeds a chunk; data may be modified (unmasked in place). Returns 0, or a
 * negative value on a protocol error (-1) or allocation failure (-2). */
int wsc_feed(wsc_parser *p, uint8_t *data, size_t n, const wsc_cb *cb, void *ud);

#endif
