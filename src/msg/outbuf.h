/* msg/outbuf — a server message encoded once for every transport.
 *
 * chat/ writes a message's JSON into an outbuf and seals it; sealing
 * prepends the WebSocket text-frame header in the buffer's headroom. The
 * same reference-counted buffer is then queued to every recipient: a
 * WebSocket client sends the whole frame, an HTTP polling client only the
 * JSON (buf->hdr tells where it starts). Nothing is re-encoded per
 * recipient.
 */
#ifndef WSC_MSG_OUTBUF_H
#define WSC_MSG_OUTBUF_H

#include <stddef.h>

#include "base/buf.h"

/* New unsealed buffer with room for `cap` payload bytes after the header
 * headroom; the caller writes the payload at wsc_buf_bytes(b) and sets len. */
wsc_buf_t *outbuf_new(size_t cap);
/* New sealed text message holding a copy of json[0..len). */
wsc_buf_t *outbuf_text(const char *json, size_t len);
/* Prepends the text-frame header for the current len. Call once. */
void outbuf_seal(wsc_buf_t *b);

/* Several sealed messages as one buffer of consecutive frames, sent as a
 * unit (a join's replay). NULL parts are skipped; NULL on allocation
 * failure. Its JSON accessors are not meaningful (hdr is 0). */
wsc_buf_t *outbuf_concat(wsc_buf_t *const *parts, size_t n);

/* The JSON payload of a sealed buffer. */
static inline const char *outbuf_json(const wsc_buf_t *b) { return (const char *)b->data + b->off + b->hdr; }
static inline size_t outbuf_json_len(const wsc_buf_t *b) { return b->len - b->hdr; }

#endif
