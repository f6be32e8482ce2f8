/* ws/session — one WebSocket connection's protocol state after the
 * handshake: message assembly, the RFC 6455 rules above single frames, and
 * the closing handshake. Pure: bytes in (ws_session_feed), events and bytes
 * out (callbacks). No sockets, no libuv, no clock.
 *
 * Rules it enforces (each failure sends a close frame with the code and a
 * reason, then reports on_closed so the owner closes TCP):
 *   - 1002: continuation without a message in progress, a new data frame
 *     inside a fragmented message, bad close payload (1 byte, or a code
 *     outside 1000–1003, 1007–1011, 3000–4999), plus the frame rules of
 *     ws/frame.
 *   - 1007: invalid UTF-8 in a text message (checked incrementally, as each
 *     byte arrives, across fragments) or in a close reason.
 *   - 1009: a message larger than max_message. The check counts every byte
 *     held for the message so far plus the announced length of the new
 *     frame, before that frame's payload is read or anything allocated.
 *   - permessage-deflate (ws_session_enable_deflate, ws/deflate.h): RSV1
 *     marks a compressed message on its first frame only; RSV1 on a
 *     continuation or control frame, or without deflate negotiated, is
 *     1002. A compressed message is inflated whole when its last frame
 *     arrives (in bounded steps: past max_message it is 1009, and nothing
 *     is inflated beyond that); bad deflate data is 1007. UTF-8 is checked
 *     on the inflated text.
 * Control frames may arrive between the fragments of a message. A ping is
 * answered with a pong carrying the same payload; pongs are reported
 * (on_pong) and otherwise ignored. A close is answered with a close (echoing
 * the code; an empty close is answered with 1000) and then on_closed.
 * Nothing is written after the session's own close frame: after
 * ws_session_close the session keeps parsing, discards data, answers no
 * ping, and ends (on_closed) when the peer's close arrives.
 *
 * Data path: a message that is one frame wholly inside the chunk given to
 * ws_session_feed is delivered straight from that chunk (no copy); only
 * messages spanning chunks or fragments are assembled in a buffer.
 *
 * Ownership: the session owns its assembly buffer (allocated only while a
 * message is in progress, freed when it is delivered) and its control-frame
 * buffer (allocated only while a control frame is being read). The data
 * passed to callbacks is valid only during the call.
 *
 * Callbacks run inside ws_session_feed / ws_session_close. They may call
 * ws_session_close (e.g. from on_message), but must not free the session
 * struct; ws_session_free is harmless from on_closed (buffers are already
 * released by then).
 */
#ifndef WSC_WS_SESSION_H
#define WSC_WS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "ws/frame.h"
#include "ws/utf8.h"

typedef struct ws_session_cb {
  /* A whole data message (text already validated as UTF-8). */
  void (*on_message)(void *ud, int opcode, const uint8_t *data, size_t len);
  /* Bytes for the peer (pong and close frames), to be sent in order with
   * the owner's own frames. Copy them. */
  void (*on_write)(void *ud, const uint8_t *data, size_t len);
  /* A pong arrived (heartbeat bookkeeping). May be NULL. */
  void (*on_pong)(void *ud);
  /* The session is over: the owner flushes what was written and closes the
   * TCP connection. `code` is the close code that ended it (sent, or
   * received), for logs and metrics. Called once. */
  void (*on_closed)(void *ud, int code);
  /* The largest message (1009 past it): a limit of every session that
   * shares this table. */
  size_t max_message;
} ws_session_cb_t;

/* A buffer a session holds only while a message or control frame is in
 * progress, with its length and capacity in it (an idle session keeps
 * just the NULL pointer). */
typedef struct ws_held {
  size_t len, cap;
  uint8_t data[];
} ws_held_t;

enum ws_session_state {
  WS_SESSION_OPEN = 0,
  WS_SESSION_CLOSE_SENT,      /* we sent close, waiting for the peer's */
  WS_SESSION_CLOSED,          /* finished (on_closed was called) */
};

/* 72 bytes: what every open WebSocket keeps (the callbacks and the limit
 * are one table shared by many sessions; the flags are bits). */
typedef struct ws_session {
  ws_frame_parser_t parser;
  const ws_session_cb_t *cb;
  void *ud;
  ws_held_t *msg;             /* assembly buffer, NULL while idle */
  ws_held_t *ctl;             /* control payload being read, NULL while idle */
  ws_utf8_t utf8;             /* validator of the text message in progress */
  unsigned state : 2;         /* enum ws_session_state */
  unsigned msg_opcode : 4;    /* opcode of the message in progress, 0 if none */
  unsigned frame_opcode : 4;  /* opcode of the frame being read */
  unsigned frame_done : 1;    /* current frame already handled in place */
  unsigned deflate : 1;       /* permessage-deflate negotiated */
  unsigned msg_compressed : 1;  /* the message in progress had RSV1 */
} ws_session_t;

/* cb (with its max_message) must outlive the session. */
void ws_session_init(ws_session_t *s, const ws_session_cb_t *cb, void *ud);
/* permessage-deflate was negotiated: RSV1 now marks compressed messages. */
void ws_session_enable_deflate(ws_session_t *s);
/* Feeds received bytes (may be modified in place: unmasking). Returns 0
 * while the session is open, -1 once it is closing or closed. While closing
 * (our close sent) input is still parsed, looking for the peer's close;
 * once closed, input is dropped. */
int ws_session_feed(ws_session_t *s, uint8_t *data, size_t len);
/* Starts the closing handshake from our side: writes a close frame with
 * code and reason (reason truncated to fit 125 bytes on a UTF-8 boundary).
 * No-op when already closing. The session then waits for the peer's close;
 * the owner applies a timeout and closes TCP itself if it never comes. */
void ws_session_close(ws_session_t *s, uint16_t code, const char *reason);
/* 1 while data frames may still be sent (no close sent yet). */
static inline int ws_session_can_send(const ws_session_t *s) { return s->state == WS_SESSION_OPEN; }
/* Builds a complete server frame into out (cap >= WS_MAX_SERVER_HEADER+len);
 * returns its size. */
size_t ws_build_frame(uint8_t *out, int opcode, const uint8_t *payload, size_t len);
/* 1 if a peer may send this close code: 1000-1003, 1007-1011, 3000-4999. */
int ws_close_code_valid(unsigned code);
/* Frees the buffers; the struct itself belongs to the caller. */
void ws_session_free(ws_session_t *s);

#endif
