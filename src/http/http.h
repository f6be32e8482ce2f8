/* http/http — HTTP/1.1 requests and responses on a net connection, parsed
 * with http-parser (libhttp-parser-dev).
 *
 * A new connection starts here (http_conn_attach). Request bytes are
 * copied into a per-request buffer limited to HTTP_MAX_HEAD bytes for the
 * request line plus headers (past it: 431), and the body to
 * config->max_body (past it, or a larger Content-Length: 413). Each complete
 * request goes to the application's handler, which answers with
 * http_respond / http_error, or takes the connection over for an upgrade
 * (http_conn_take). Keep-alive and pipelined requests are served in order;
 * a request that does not arrive whole within config->handshake_timeout_ms
 * of the accept (or of the previous response) gets 408 and the connection
 * is closed: one deadline for the whole request, so trickling bytes does not
 * extend it. GET, HEAD and upgrade requests with a body (chunked or
 * Content-Length > 0) get 400. Every error is a status with a one-line
 * text/plain body.
 *
 * Holding (long polling): a handler may keep a request open instead of
 * answering it (http_hold). Once the handler returns, the request's head
 * and body buffers are freed, the request timeout no longer applies, and no
 * further request is parsed; the holder answers later with http_answer.
 * Bytes that arrive while a request is held (pipelining behind a long
 * poll) end the connection with 400. If the connection closes first (the
 * client went away, the server shuts down) the holder's on_gone is called
 * at once, and it must forget the connection.
 *
 * Ownership: the http state hangs on conn->ud from attach until the
 * connection closes or http_conn_take hands the connection to another
 * handler. The request passed to the handler, and everything it points to,
 * is valid only during the call.
 */
#ifndef WSC_HTTP_HTTP_H
#define WSC_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "ws/handshake.h"

#define HTTP_MAX_HEAD (8 * 1024)   /* request line + headers */
#define HTTP_MAX_HEADERS 64

typedef struct http_request {
  const char *method;            /* "GET", "POST", ... */
  int http_major, http_minor;
  const char *path;              /* raw path, not decoded, no query */
  size_t path_len;
  const char *query;             /* after '?', not decoded; "" if none */
  size_t query_len;
  const ws_hs_header_t *headers; /* as the handshake wants them */
  size_t n_headers;
  const uint8_t *body;
  size_t body_len;
  int keep_alive;
  int upgrade;                   /* Connection: upgrade was asked for */
  const char *protocol;          /* HTTP/2+: extended CONNECT's :protocol, else NULL */
} http_request_t;

/* The application's request handler. `rest` holds bytes received after the
 * request (only meaningful for an upgrade: the first WebSocket frames). */
typedef void (*http_handler_fn)(void *app, net_conn_t *c, const http_request_t *req,
                                uint8_t *rest, size_t rest_len);

typedef struct http_app {
  http_handler_fn handler;
  void *app;
  const wsc_config_t *config;
  /* Optional: a connection whose first bytes are the HTTP/2 connection
   * preface (h2c with prior knowledge) is handed here, HTTP state already
   * detached; data starts with the whole 24-byte preface. */
  void (*on_h2_preface)(void *app, net_conn_t *c, uint8_t *data, size_t len);
} http_app_t;

#define HTTP2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define HTTP2_PREFACE_LEN 24

/* Where a response goes: an HTTP/1.1 connection (http1_reply_ops, target
 * the net_conn_t) or an HTTP/2 stream (h2/). The routes answer through it
 * and so serve both the same way. keep_alive 0 closes an HTTP/1.1
 * connection; an HTTP/2 stream always ends with its response. */
typedef struct http_reply_ops {
  void (*respond)(void *target, int status, const char *content_type, const char *extra_headers,
                  const void *body, size_t body_len, int keep_alive);
} http_reply_ops_t;

typedef struct http_reply {
  const http_reply_ops_t *ops;
  void *target;
} http_reply_t;

extern const http_reply_ops_t http1_reply_ops;
static inline http_reply_t http1_reply(net_conn_t *c) { return (http_reply_t){&http1_reply_ops, c}; }
/* An error through any reply: status, a text/plain one-line body
 * "message\n", and (HTTP/1.1) close. */
void http_reply_error(http_reply_t r, int status, const char *message, const char *extra_headers);

/* Makes `c` an HTTP connection served by `app` (the net accept callback). */
void http_conn_attach(net_conn_t *c, const http_app_t *app);
/* Detaches the HTTP state from `c` (the caller installs its own handler
 * and conn->ud right after). Only from inside the request handler. */
void http_conn_take(net_conn_t *c);

/* Value of a header (case-insensitive name), or NULL; *len gets its length. */
const char *http_header(const http_request_t *req, const char *name, size_t *len);

/* Sends a response. extra_headers: complete "Name: value\r\n" lines or NULL.
 * body may be NULL for HEAD. keep_alive 0 closes after sending. */
void http_respond(net_conn_t *c, int status, const char *content_type, const char *extra_headers,
                  const void *body, size_t body_len, int keep_alive);
/* An error: status, a text/plain one-line body "message\n", then close. */
void http_error(net_conn_t *c, int status, const char *message, const char *extra_headers);

const char *http_status_text(int status);

/* Keeps the current request open (call from inside the request handler,
 * without answering). on_gone(ud) runs if the connection closes before
 * http_answer. */
void http_hold(net_conn_t *c, void (*on_gone)(void *ud), void *ud);
/* Answers the current request (from inside the handler) or the held one
 * (later): status, content type, optional extra header lines, and a body
 * queued by reference (NULL: empty). Keep-alive as the request asked. */
void http_answer(net_conn_t *c, int status, const char *content_type, const char *extra_headers,
                 wsc_buf_t *body);
/* 1 while c is an HTTP connection holding a request. */
int http_is_held(const net_conn_t *c);

#endif
