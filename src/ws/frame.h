/* ws/frame — RFC 6455 §5.2 framing: the incremental frame parser and the
 * server-side frame writer.
 *
 * The parser is an explicit state machine fed arbitrary chunks (one byte at
 * a time gives the same events as the whole buffer at once). It checks the
 * frame-level rules (reserved bits, reserved opcodes, control frames
 * fragmented or > 125 bytes, mask bit required on client frames, 64-bit
 * length with the top bit set) as soon as the header is complete, before any
 * payload is delivered, and unmasks payload a word at a time. It holds no
 * payload: payload bytes are handed up as they arrive (ws/session assembles
 * messages). It allocates nothing.
 */
#ifndef WSC_WS_FRAME_H
#define WSC_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 §7.4.1) and the application ones wschat uses. */
enum ws_close_code {
  WS_CLOSE_NORMAL = 1000,
  WS_CLOSE_GOING_AWAY = 1001,
  WS_CLOSE_PROTOCOL_ERROR = 1002,
  WS_CLOSE_UNSUPPORTED = 1003,
  WS_CLOSE_NO_STATUS = 1005,      /* never sent on the wire */
  WS_CLOSE_ABNORMAL = 1006,       /* never sent on the wire */
  WS_CLOSE_INVALID_DATA = 1007,
  WS_CLOSE_POLICY = 1008,
  WS_CLOSE_TOO_BIG = 1009,
  WS_CLOSE_INTERNAL = 1011,
  WS_CLOSE_TRY_AGAIN = 1013,
  WS_CLOSE_REPLACED = 4001,       /* wschat: session taken over */
};

/* Largest header of an unmasked (server) frame: 2 + 8 length bytes. */
#define WS_MAX_SERVER_HEADER 10
/* Largest control-frame payload (RFC 6455 §5.5). */
#define WS_MAX_CONTROL_PAYLOAD 125

/* Header size of a server frame carrying `payload_len` bytes. */
size_t ws_frame_header_size(uint64_t payload_len);
/* Writes a server frame header (FIN as given, no mask) into out, which has
 * room for WS_MAX_SERVER_HEADER bytes; returns the bytes written. */
size_t ws_frame_write_header(uint8_t *out, int fin, int opcode, uint64_t payload_len);

/* --- the parser ------------------------------------------------------------ */

typedef struct ws_frame_cb {
  /* A frame header was parsed and passed the frame-level checks.
   * Return 0 to go on, non-zero to stop (the parser then stays failed).
   * ws/session uses this to check message-level rules and size limits
   * before any payload arrives. */
  int (*on_header)(void *ud, int fin, int opcode, uint64_t payload_len);
  /* Unmasked payload bytes of the current frame, in order; a frame's
   * payload may come in several calls (or none, for an empty frame).
   * During the call, parser->remaining already excludes these n bytes, so
   * remaining == 0 means this chunk ends the frame. Return 0 to go on,
   * non-zero to stop. */
  int (*on_payload)(void *ud, const uint8_t *p, size_t n);
  /* The current frame is complete. Return 0 to go on, non-zero to stop. */
  int (*on_frame_end)(void *ud);
  /* A frame-level rule was broken: close code (1002) and a short reason.
   * Frame-level rules are checked in the order the header arrives: the
   * first two bytes (RSV, opcode, control FIN/length, mask bit), then the
   * 64-bit length's top bit. */
  void (*on_error)(void *ud, int close_code, const char *reason);
} ws_frame_cb_t;

/* 32 bytes (every open WebSocket has one): the flags are bits. */
typedef struct ws_frame_parser {
  uint64_t remaining;      /* payload bytes left in the current frame */
  uint8_t state;
  uint8_t hdr_have;        /* header bytes collected so far */
  uint8_t hdr[14];         /* the header as it arrives (max 2 + 8 + 4) */
  uint8_t opcode;
  uint8_t mask[4];
  uint8_t mask_pos;        /* rotation of the mask for the next payload byte */
  unsigned fin : 1, masked : 1;
  unsigned allow_rsv1 : 1;     /* set when an extension owns RSV1 */
  unsigned require_mask : 1;   /* 1 for a server parsing client frames (unmasked
                                  ones are refused); 0 accepts both */
} ws_frame_parser_t;

void ws_frame_parser_init(ws_frame_parser_t *p, int require_mask);
/* Feeds bytes, which it may unmask in place (hence not const). Returns the
 * number of bytes consumed: n unless a callback stopped it or an error was
 * reported, in which case parsing is over for good. */
size_t ws_frame_parse(ws_frame_parser_t *p, const ws_frame_cb_t *cb, void *ud,
                      uint8_t *data, size_t n);
/* 1 once a callback stopped the parser or an error was reported. */
int ws_frame_parser_failed(const ws_frame_parser_t *p);

/* XORs p[0..n) with mask starting at rotation *pos (advanced); a word at a time. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint8_t *pos);

#endif
