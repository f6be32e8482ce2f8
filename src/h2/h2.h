/* h2/h2 — HTTP/2 on nghttp2 (libnghttp2-dev: the framing, HPACK and flow
 * control library only), server side, over a net connection: h2c with
 * prior knowledge on the plain port (http/ hands over a connection whose
 * first bytes are the preface) and `h2` chosen by ALPN on the TLS port.
 *
 * Requests: each stream's header block is mapped by h2/request (our own
 * rules; nghttp2's HTTP messaging checks are off so every rule is ours and
 * fuzzed) into the http_request_t the HTTP/1.1 front produces, and handed
 * to the application's handler with the stream. The handler answers
 * through h2_stream_reply (the same http_reply_t the routes use for
 * HTTP/1.1), or, for an extended CONNECT (RFC 8441; SETTINGS_ENABLE_CONNECT_
 * PROTOCOL = 1 is sent), turns the stream into a WebSocket carrier
 * (h2_stream_websocket, net/carrier.h): :status 200 goes out when the
 * WebSocket attaches, its frames travel in DATA frames, a WebSocket close
 * ends the stream (END_STREAM), a reset stream (RST_STREAM) or a lost
 * connection ends the WebSocket (on_close).
 *
 * Output, zero-copy: each stream keeps a queue of references to the
 * buffers it was given (the broadcast's one frame, shared); DATA frames
 * are cut from it with nghttp2's NO_COPY data source, so the payload bytes
 * go to net by reference (only a DATA frame that must split a buffer, for
 * a window or the 16 KiB frame limit, copies that piece). Everything a
 * connection owes is sent once per loop iteration (a uv_check that runs
 * before net's cork), and never more than H2_WRITE_CAP bytes are queued on
 * the TCP connection: the rest waits in the streams until net drains.
 *
 * Flow control and fairness: a stream's queue counts what its peer's
 * window has not let out yet; past config->send_queue_limit the WebSocket
 * is cut off (1013) like on HTTP/1.1, without touching its siblings. On
 * the receiving side, the connection window is returned at once (one
 * stream's back-pressure never blocks the others) and a stream's window is
 * held back while its WebSocket is in back-pressure.
 *
 * Limits: H2_MAX_STREAMS concurrent streams (SETTINGS), header block as on
 * HTTP/1.1 (HTTP_MAX_HEAD, HTTP_MAX_HEADERS: 431), request body
 * config->max_body (413), a request not complete within
 * config->handshake_timeout_ms is reset, a connection without streams for
 * H2_IDLE_MS gets GOAWAY and is closed.
 *
 * Ownership: main owns the h2_server_t (free it after every connection has
 * closed). The h2 connection state hangs on conn->ud from h2_conn_attach
 * until the connection closes. A stream belongs to its connection; the
 * handler may use it only during the call, except as a WebSocket carrier
 * (until its on_close).
 */
#ifndef WSC_H2_H2_H
#define WSC_H2_H2_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/config.h"
#include "http/http.h"
#include "net/carrier.h"
#include "net/net.h"

#define H2_MAX_STREAMS 256            /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define H2_CONN_WINDOW (1 << 20)      /* our connection-level receive window */
#define H2_WRITE_CAP (256 * 1024)     /* bytes queued on TCP before streams wait */
#define H2_IDLE_MS 60000              /* a connection without streams */

typedef struct h2_server h2_server_t;
typedef struct h2_stream h2_stream_t;

/* A complete request on stream s (headers, and body unless CONNECT). */
typedef void (*h2_request_fn)(void *app, h2_stream_t *s, const http_request_t *req);

/* One per loop (started after net_server_start). NULL when out of memory. */
h2_server_t *h2_server_new(uv_loop_t *loop, const wsc_config_t *config, h2_request_fn handler,
                           void *app);
/* Closes its handle; call once every connection has closed. */
void h2_server_free(h2_server_t *srv);

/* Makes `c` an HTTP/2 connection and feeds it `data` (the bytes read so
 * far, starting with the client preface; may be empty). */
void h2_conn_attach(h2_server_t *srv, net_conn_t *c, uint8_t *data, size_t len);

/* Where a plain response to s goes. */
http_reply_t h2_stream_reply(h2_stream_t *s);
/* Keeps the request open past the handler (a long poll): it is answered
 * later with h2_stream_answer; gone(ud) is called instead if the stream
 * closes first (reset, connection lost), after which s must not be used. */
void h2_stream_hold(h2_stream_t *s, void (*gone)(void *ud), void *ud);
/* Answers s (held or not): body queued by reference (NULL: empty). */
void h2_stream_answer(h2_stream_t *s, int status, const char *content_type, const char *extra_headers,
                      wsc_buf_t *body);
/* Turns s into a WebSocket carrier; the :status 200 (with
 * sec-websocket-protocol: subprotocol and sec-websocket-extensions:
 * extensions when not NULL) is sent when the WebSocket attaches; both
 * strings must live until then. */
wsc_carrier_t h2_stream_websocket(h2_stream_t *s, const char *subprotocol, const char *extensions);

extern const wsc_carrier_ops_t h2_carrier_ops;

#endif
