/* h3/h3 — HTTP/3 over QUIC (RFC 9114, RFC 9000) on Debian 12's ngtcp2 0.12
 * (with its GnuTLS crypto helper) and nghttp3 0.8, driven from the libuv
 * loop: one UDP socket, one uv_timer per QUIC connection (armed from
 * ngtcp2_conn_get_expiry), and one uv_check that flushes every connection
 * with something to send once per loop iteration, so what a connection is
 * owed in one iteration leaves in as few packets as fit (sendmmsg).
 *
 * ngtcp2 and nghttp3 are pre-1.0 and their APIs change between releases:
 * NOTHING outside src/h3/ includes their headers. This header is the whole
 * interface: requests come up as h3_request_t, answers go down through
 * h3_respond / h3_error, and a stream opened with extended CONNECT
 * (RFC 9220; SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 is sent) becomes a
 * WebSocket carrier (net/carrier.h) like an HTTP/2 stream or a TCP
 * connection after the 101. Moving to ngtcp2/nghttp3 1.x touches only this folder.
 *
 * QUIC behaviour: connection IDs, migration, key update, stateless reset
 * tokens and the anti-amplification limit (3x before the address is
 * validated) as ngtcp2 provides them; we add: a bounded number of
 * connections (past H3 max connections a new client gets CONNECTION_CLOSE
 * with CONNECTION_REFUSED and no state is kept), a bounded number of
 * streams per connection (the transport parameter, enforced by ngtcp2), an
 * idle timeout, stateless resets for short-header packets of unknown
 * connections (rate limited), Retry (address validation by token) once more
 * than H3_RETRY_ABOVE handshakes are in progress, and a send-queue limit
 * per stream (config->send_queue_limit): a stream over it is refused more
 * bytes and its owner cuts it off, while the connection's other streams go
 * on. The receive window of a stream is extended only as its owner
 * consumes (pause stops it), so a stalled reader back-pressures its own
 * stream only.
 *
 * Ownership: the server owns every connection and stream. A stream handed
 * to the application is valid during the request callback, and as a
 * WebSocket carrier until its on_close.
 */
#ifndef WSC_H3_H3_H
#define WSC_H3_H3_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/config.h"
#include "net/carrier.h"
#include "ws/handshake.h"

#define H3_MAX_CONNECTIONS 4096     /* QUIC connections at most (then CONNECTION_REFUSED) */
#define H3_MAX_STREAMS_BIDI 100     /* concurrent request streams per connection */
#define H3_IDLE_TIMEOUT_MS 30000    /* QUIC max_idle_timeout */
#define H3_RETRY_ABOVE 64           /* handshakes in progress before we ask for Retry */
#define H3_HANDSHAKE_TIMEOUT_MS 10000
#define H3_CLOSE_GRACE_MS 5000      /* a WebSocket stream's FIN may take this long, then reset */
#define H3_MAX_HEAD (8 * 1024)      /* a request's header section (431 past it) */
#define H3_MAX_HEADERS 64

typedef struct h3_server h3_server_t;
typedef struct h3_stream h3_stream_t;

typedef struct h3_request {
  const char *method;            /* :method */
  const char *protocol;          /* :protocol (extended CONNECT) or NULL */
  const char *scheme;            /* :scheme or NULL */
  const char *authority;         /* :authority or NULL */
  const char *path;              /* :path up to '?' (not decoded) */
  size_t path_len;
  const char *query;             /* after '?', "" if none */
  size_t query_len;
  const ws_hs_header_t *headers; /* regular fields, lower-case names */
  size_t n_headers;
} h3_request_t;

typedef void (*h3_request_fn)(void *app, h3_stream_t *s, const h3_request_t *req);

typedef struct h3_options {
  const char *host;              /* bind address */
  int port;                      /* UDP port */
  const char *cert_file, *key_file; /* PEM */
  int max_connections;           /* 0: H3_MAX_CONNECTIONS */
  int idle_timeout_ms;           /* QUIC max_idle_timeout; 0: H3_IDLE_TIMEOUT_MS */
  int retry_above;               /* Retry once this many handshakes are in progress
                                    (0: always; -1: H3_RETRY_ABOVE) */
  h3_request_fn on_request;
  void *app;
} h3_options_t;

/* Loads the certificate, binds the UDP socket and starts serving. Returns
 * 0 or a negative error (*err gets a message). */
int h3_server_start(h3_server_t **out, uv_loop_t *loop, const wsc_config_t *config,
                    const h3_options_t *opt, const char **err);
/* Stops taking connections, asks tunnels to close (on_shutdown), sends
 * GOAWAY; done is called once every connection is gone or at timeout_ms. */
void h3_server_shutdown(h3_server_t *srv, int timeout_ms, void (*done)(void *), void *ud);
/* Frees everything (after shutdown, or instead of it). */
void h3_server_free(h3_server_t *srv);
size_t h3_server_connections(const h3_server_t *srv);

/* --- answering a request (inside on_request) ------------------------------------ */

/* A response: extra_headers are "Name: value\r\n" lines or NULL; body may be
 * NULL (HEAD). The body is copied. */
int h3_respond(h3_stream_t *s, int status, const char *content_type, const char *extra_headers,
               const void *body, size_t len);
/* status + one-line text/plain body "message\n". */
int h3_error(h3_stream_t *s, int status, const char *message);
/* Turns s into a WebSocket carrier (net/carrier.h): the :status 200 (with
 * sec-websocket-protocol: subprotocol when not NULL) goes out when the
 * WebSocket attaches; its frames travel in DATA frames; a WebSocket close
 * ends the stream (FIN), a reset stream or a lost connection ends the
 * WebSocket (on_close). */
wsc_carrier_t h3_stream_websocket(h3_stream_t *s, const char *subprotocol);
extern const wsc_carrier_ops_t h3_carrier_ops;

#endif
