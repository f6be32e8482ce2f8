/* ws/deflate — permessage-deflate (RFC 7692): the offer parser, the
 * response, and compression of whole messages with zlib. Pure: bytes in,
 * bytes out; no sockets, no libuv.
 *
 * What wschat negotiates, always:
 *   - server_no_context_takeover: every message we send is compressed on
 *     its own, so one compressed frame can go to every recipient of a
 *     broadcast (msg/outbuf builds it once) and the server keeps no
 *     compression state per connection;
 *   - client_no_context_takeover: every message a client sends is
 *     compressed on its own, so one inflate stream per loop serves every
 *     connection and an idle connection holds no zlib state (the memory
 *     per connection of each choice is in docs/BENCHMARKS.md);
 *   - server_max_window_bits=N when the client asks for it. We compress
 *     with a 32 KiB window, so a client with a smaller window N gets the
 *     compressed form only of messages no longer than 2^N bytes (their
 *     back-references cannot reach further) and the plain frame otherwise
 *     (uncompressed messages are always allowed: RSV1 clear).
 *   - client_max_window_bits in an offer only tells us the client accepts
 *     the parameter; we inflate any window up to 15, so we need not
 *     limit it.
 * Offers are checked as RFC 7692 §7 says: an unknown parameter, a
 * duplicate, a missing or out-of-range window value (8..15, digits without
 * a leading zero; quoted-string values allowed) makes that offer declined,
 * and the next offer is tried. A header that is not an extension list at
 * all declines everything. Declining is never a failed handshake: the
 * connection simply goes on without compression.
 *
 * Inflating: a compressed message is inflated whole, when its last frame
 * has arrived, by one loop-wide stream, in bounded steps that stop one byte
 * past the endpoint's message limit: a small bomb never grows past the
 * limit (-> 1009). Output up to WS_INFLATE_SCRATCH bytes lands in a
 * loop-wide buffer; only a bigger message allocates (and that is freed by
 * ws_inflate_release).
 *
 * Compressing: ws_deflate_frame builds a complete server frame (RSV1 set)
 * with one loop-wide deflate stream, reset per message.
 */
#ifndef WSC_WS_DEFLATE_H
#define WSC_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define WS_PMD_NAME "permessage-deflate"
#define WS_PMD_MAX_WINDOW 15
#define WS_PMD_MIN_WINDOW 8
#define WS_INFLATE_SCRATCH (64 * 1024)   /* loop-wide inflate output */
#define WS_DEFLATE_LEVEL 3   /* 1 KiB chat text: 5 % larger than level 6, about half the time */
#define WS_DEFLATE_MEMLEVEL 8

/* The outcome of negotiation for one connection. */
typedef struct ws_pmd {
  uint8_t enabled;
  uint8_t server_window;       /* our window limit as the client asked; 15 if it did not */
  uint8_t server_window_asked; /* 1: echo server_max_window_bits in the response */
} ws_pmd_t;

/* Looks for the first acceptable permessage-deflate offer in one
 * Sec-WebSocket-Extensions header value. Returns 1 and fills *out when
 * found, 0 otherwise (declined, absent or malformed). */
int ws_pmd_parse_offers(const char *value, size_t len, ws_pmd_t *out);
/* The response header value for an accepted offer ("permessage-deflate;
 * server_no_context_takeover; ..."); returns its length, 0 if cap is too
 * small (64 bytes always suffice). */
size_t ws_pmd_response(const ws_pmd_t *pmd, char *out, size_t cap);
/* 1 if a compressed message of `len` payload bytes may go to a client with
 * this negotiation (see server_max_window_bits above). */
static inline int ws_pmd_fits(const ws_pmd_t *pmd, size_t len) {
  return pmd->enabled && (pmd->server_window >= WS_PMD_MAX_WINDOW || len <= ((size_t)1 << pmd->server_window));
}

enum {
  WS_INFLATE_OK = 0,
  WS_INFLATE_TOO_BIG = -1,   /* the message inflates past the limit: 1009 */
  WS_INFLATE_BAD = -2,       /* not a valid deflate stream: 1007 */
  WS_INFLATE_NOMEM = -3,     /* 1011 */
};

/* Inflates one whole message (its payload, without the 00 00 ff ff tail
 * that RFC 7692 §7.2.1 strips). On WS_INFLATE_OK, *out and *out_len hold the
 * message until ws_inflate_release (or the next ws_inflate). */
int ws_inflate(const uint8_t *in, size_t n, size_t limit, const uint8_t **out, size_t *out_len);
/* Frees a big message's buffer (a no-op for the loop-wide one). */
void ws_inflate_release(void);

/* A complete server frame (FIN, RSV1, opcode) carrying payload[0..len)
 * compressed; `head` spare bytes before it. NULL on failure. */
wsc_buf_t *ws_deflate_frame(int opcode, const uint8_t *payload, size_t len);

/* Frees the loop-wide zlib streams (at exit; for leak checkers). */
void ws_deflate_cleanup(void);

#endif
