/* msg/outbuf — a server message encoded once for every transport.
 *
 * chat/ writes a message's JSON into an outbuf and seals it; sealing
 * prepends the WebSocket text-frame header in the buffer's headroom. The
 * same reference-counted buffer is then queued to every recipient: a
 * WebSocket client sends the whole frame, an HTTP polling client only the
 * JSON (buf->hdr tells where it starts). Nothing is re-encoded per
 * recipient.
 *
 * Compression (permessage-deflate): outbuf_wire gives a recipient that
 * negotiated it the compressed frame of the same message instead. It is
 * built the first time any recipient needs it, kept in the buffer (alt),
 * and shared by every later one: a broadcast is compressed once, however
 * many members negotiated deflate. Messages shorter than the threshold,
 * or that do not shrink, go out plain.
 */
#ifndef WSC_MSG_OUTBUF_H
#define WSC_MSG_OUTBUF_H

#include <stddef.h>

#include "base/buf.h"
#include "ws/deflate.h"

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

/* The buffer to queue for a recipient with negotiation `pmd`: b itself, or
 * b's compressed frame when b is one sealed text frame of at least `min`
 * payload bytes that compresses smaller and fits the recipient's window.
 * No reference is taken. */
wsc_buf_t *outbuf_wire(wsc_buf_t *b, const ws_pmd_t *pmd, size_t min);

/* The JSON payload of a sealed buffer. */
static inline const char *outbuf_json(const wsc_buf_t *b) { return (const char *)b->data + b->off + b->hdr; }
static inline size_t outbuf_json_len(const wsc_buf_t *b) { return b->len - b->hdr; }

#endif
