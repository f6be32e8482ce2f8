/* base/buf — reference-counted byte buffers.
 *
 * A broadcast is encoded once into one wsc_buf and every recipient's send
 * queue holds a reference to it, so fan-out never copies or re-encodes per
 * recipient (docs/ARCHITECTURE.md, "One message, end to end").
 *
 * Ownership: wsc_buf_new returns a buffer with one reference, owned by the
 * caller. Whoever stores the pointer takes a reference (wsc_buf_ref) and
 * drops it with wsc_buf_unref; the last unref frees. Single-threaded: all
 * refcounting happens on the event loop thread.
 *
 * Headroom: a buffer may be created with `head` spare bytes before its
 * payload so a lower layer can prepend a header in place (a WebSocket frame
 * header is at most WS_MAX_SERVER_HEADER = 10 bytes) without copying. Once a
 * header is prepended (wsc_buf_prepend), `hdr` records its size: the bytes
 * [off, off+len) are the whole frame, [off+hdr, off+len) the payload alone
 * (what an HTTP polling transport sends).
 *
 * Second wire form: `alt` may hold another buffer with the same message in
 * another form (msg/outbuf: the permessage-deflate frame), built at most
 * once and shared like the first; the buffer owns that reference and drops
 * it when freed.
 */
#ifndef WSC_BASE_BUF_H
#define WSC_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsc_buf {
  uint32_t refs;
  uint32_t cap;   /* bytes available in data[] */
  uint32_t off;   /* start of the valid bytes */
  uint32_t len;   /* number of valid bytes from off */
  uint32_t hdr;   /* bytes of prepended header at off (0 if none) */
  struct wsc_buf *alt;   /* the message's second wire form, or NULL */
  uint8_t data[];
} wsc_buf_t;

/* New buffer with room for `head` header bytes plus `cap` payload bytes;
 * off = head, len = 0. Returns NULL on allocation failure. */
wsc_buf_t *wsc_buf_new(size_t head, size_t cap);
/* New buffer holding a copy of data[0..len), with `head` bytes of headroom. */
wsc_buf_t *wsc_buf_from(size_t head, const void *data, size_t len);

static inline wsc_buf_t *wsc_buf_ref(wsc_buf_t *b) { b->refs++; return b; }
void wsc_buf_unref(wsc_buf_t *b);

static inline uint8_t *wsc_buf_bytes(wsc_buf_t *b) { return b->data + b->off; }

/* Moves the start back by n bytes (n <= off), adds n to hdr and returns the
 * new start, where the caller writes its header. NULL if n > off. */
uint8_t *wsc_buf_prepend(wsc_buf_t *b, size_t n);

#endif
