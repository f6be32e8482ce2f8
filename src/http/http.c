/* http/http — see http.h. */
#include "http/http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"

/* Where the request's pieces sit in the head buffer (offsets, since the
 * buffer may move as it grows; the head is at most HTTP_MAX_HEAD bytes, so
 * 16 bits do: a held long poll keeps this struct, so it is kept small). */
typedef struct span {
  uint16_t off, len;
} span_t;
_Static_assert(HTTP_MAX_HEAD <= UINT16_MAX, "spans are 16-bit");

enum last_cb { CB_NONE, CB_FIELD, CB_VALUE };

typedef struct http_conn {
  http_parser parser;
  const http_app_t *app;
  char *head;                    /* URL and header bytes, copied */
  size_t head_len, head_cap;
  span_t url;
  span_t names[HTTP_MAX_HEADERS], values[HTTP_MAX_HEADERS];
  uint32_t n_headers;
  uint8_t last_cb;
  uint8_t complete;              /* a whole request is parsed, not yet served */
  int error_status;              /* set by a callback that hit a limit */
  const char *error_msg;         /* its one-line text (static), or NULL */
  uint8_t *body;
  size_t body_len;
  int64_t started;               /* when the current request began (mono ms) */
  uint8_t keep_alive;            /* of the request being served or held */
  uint8_t held;                  /* http_hold: the request waits for http_answer */
  void (*held_gone)(void *ud);   /* the holder's, while held */
  void *held_ud;
  uint8_t fresh;                 /* nothing parsed yet on this connection */
  uint8_t preface_matched;       /* bytes of the HTTP/2 preface seen so far */
} http_conn_t;

static const net_handler_t http_net_handler;

/* --- accumulating the request -------------------------------------------------- */

static int head_append(http_conn_t *h, const char *at, size_t len, span_t *sp) {
  if (h->head_len + len > HTTP_MAX_HEAD) {
    h->error_status = 431;
    return -1;
  }
  if (h->head_len + len > h->head_cap) {
    size_t cap = h->head_cap ? h->head_cap : 512;
    while (cap < h->head_len + len) cap *= 2;
    if (cap > HTTP_MAX_HEAD) cap = HTTP_MAX_HEAD;
    char *grown = realloc(h->head, cap);
    if (!grown) {
      h->error_status = 500;
      return -1;
    }
    h->head = grown;
    h->head_cap = cap;
  }
  if (sp->len == 0) sp->off = (uint16_t)h->head_len;
  memcpy(h->head + h->head_len, at, len);
  h->head_len += len;
  sp->len = (uint16_t)(sp->len + len);
  return 0;
}

static int on_message_begin(http_parser *p) {
  /* `started` is NOT reset here: the deadline runs from the accept (or the
   * end of the previous request) for the whole request, so a client that
   * trickles a byte every few seconds is cut at handshake_timeout_ms like
   * one that sends nothing. */
  (void)p;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  http_conn_t *h = p->data;
  return head_append(h, at, len, &h->url);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  http_conn_t *h = p->data;
  if (h->last_cb != CB_FIELD) {
    if (h->n_headers == HTTP_MAX_HEADERS) {
      h->error_status = 431;
      h->error_msg = "too many header fields (at most 64)";
      return -1;
    }
    h->names[h->n_headers] = (span_t){0, 0};
    h->values[h->n_headers] = (span_t){0, 0};
    h->n_headers++;
    h->last_cb = CB_FIELD;
  }
  return head_append(h, at, len, &h->names[h->n_headers - 1]);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  http_conn_t *h = p->data;
  h->last_cb = CB_VALUE;
  return head_append(h, at, len, &h->values[h->n_headers - 1]);
}

static int on_headers_complete(http_parser *p) {
  http_conn_t *h = p->data;
  /* GET, HEAD and upgrades carry no body: a chunked or non-empty one would
   * be read as the next request or as WebSocket frames (smuggling). */
  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
  if (has_body && (p->method == HTTP_GET || p->method == HTTP_HEAD || p->upgrade)) {
    h->error_status = 400;
    h->error_msg = "GET, HEAD and upgrade requests carry no body (Transfer-Encoding or Content-Length)";
    return -1;
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > h->app->config->max_body) {
    h->error_status = 413;
    return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  http_conn_t *h = p->data;
  if (h->body_len + len > h->app->config->max_body) {
    h->error_status = 413;
    return -1;
  }
  uint8_t *grown = realloc(h->body, h->body_len + len);
  if (!grown) {
    h->error_status = 500;
    return -1;
  }
  memcpy(grown + h->body_len, at, len);
  h->body = grown;
  h->body_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_conn_t *h = p->data;
  h->complete = 1;
  http_parser_pause(p, 1);   /* serve it before parsing what follows */
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void request_reset(http_conn_t *h) {
  free(h->head);
  free(h->body);
  h->head = NULL;
  h->body = NULL;
  h->head_len = h->head_cap = h->body_len = 0;
  h->url = (span_t){0, 0};
  h->n_headers = 0;
  h->last_cb = CB_NONE;
  h->complete = 0;
  h->started = wsc_mono_ms();
}

/* --- serving --------------------------------------------------------------------- */

static int split_url(http_conn_t *h, http_request_t *req) {
  struct http_parser_url u;
  http_parser_url_init(&u);
  const char *url = h->head + h->url.off;
  if (h->url.len == 0 || http_parser_parse_url(url, h->url.len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH)))
    return -1;
  req->path = url + u.field_data[UF_PATH].off;
  req->path_len = u.field_data[UF_PATH].len;
  if (u.field_set & (1 << UF_QUERY)) {
    req->query = url + u.field_data[UF_QUERY].off;
    req->query_len = u.field_data[UF_QUERY].len;
  } else {
    req->query = "";
    req->query_len = 0;
  }
  return 0;
}

/* The held request is given up: the holder forgets it (on_gone). */
static void held_release(http_conn_t *h) {
  if (!h->held) return;
  void (*gone)(void *) = h->held_gone;
  void *ud = h->held_ud;
  h->held = 0;
  h->held_gone = NULL;
  h->held_ud = NULL;
  if (gone) gone(ud);
}

/* A request arrived behind a held one: not supported (the answers would
 * have to wait in order); the connection ends. */
static void held_break(net_conn_t *c, http_conn_t *h) {
  held_release(h);
  http_error(c, 400, "no request may follow a held one before it is answered", NULL);
}

/* Serves the parsed request. Returns 1 if the connection was taken over or
 * is closing (stop parsing), 0 to go on with the next request. */
static int serve(net_conn_t *c, http_conn_t *h, uint8_t *rest, size_t rest_len) {
  ws_hs_header_t headers[HTTP_MAX_HEADERS];
  http_request_t req;
  memset(&req, 0, sizeof req);
  for (uint32_t i = 0; i < h->n_headers; i++) {
    headers[i] = (ws_hs_header_t){h->head + h->names[i].off, h->names[i].len,
                                  h->head + h->values[i].off, h->values[i].len};
  }
  req.method = http_method_str((enum http_method)h->parser.method);
  req.http_major = h->parser.http_major;
  req.http_minor = h->parser.http_minor;
  req.headers = headers;
  req.n_headers = h->n_headers;
  req.body = h->body;
  req.body_len = h->body_len;
  req.keep_alive = http_should_keep_alive(&h->parser);
  req.upgrade = h->parser.upgrade;
  h->keep_alive = (uint8_t)(req.keep_alive && !req.upgrade);
  wsc_metrics.http_requests++;
  if (split_url(h, &req) != 0) {
    http_error(c, 400, "malformed request target", NULL);
    return 1;
  }
  if ((req.http_major > 1 || (req.http_major == 1 && req.http_minor >= 1)) &&
      !http_header(&req, "Host", NULL)) {
    http_error(c, 400, "missing Host header (required by HTTP/1.1)", NULL);
    return 1;
  }
  const http_app_t *app = h->app;
  app->handler(app->app, c, &req, rest, rest_len);
  /* The handler may have taken the connection (another handler is
   * installed; comparing conn->ud would not do: the new state may live at
   * the address just freed) or be closing it. */
  if (c->handler != &http_net_handler || net_conn_is_closing(c)) return 1;
  if (h->held) {
    /* Held: nothing of the request is needed any more. */
    request_reset(h);
    if (rest_len) held_break(c, h);
    return 1;
  }
  if (!req.keep_alive || req.upgrade) { /* an upgrade we declined ends the stream */
    net_conn_close(c);
    return 1;
  }
  return 0;
}

static void fail(net_conn_t *c, http_conn_t *h) {
  int status = h->error_status;
  if (!status) status = 400;
  const char *msg = h->error_msg ? h->error_msg
                  : status == 431 ? "request line and headers must fit in 8 KiB"
                  : status == 413 ? "request body too large"
                  : status == 500 ? "out of memory"
                  : http_errno_description(HTTP_PARSER_ERRNO(&h->parser));
  http_error(c, status, msg, NULL);
}

static void http_parse(net_conn_t *c, http_conn_t *h, uint8_t *data, size_t len);

/* h2c with prior knowledge: the connection's first bytes are the HTTP/2
 * preface. Returns 1 when `data` was consumed (matched so far, or handed
 * to HTTP/2), 0 to parse it as HTTP/1.1. The preface may come in pieces;
 * what matched is the constant, so nothing is kept but a count. */
static int h2_preface(net_conn_t *c, http_conn_t *h, uint8_t *data, size_t len) {
  static const char preface[] = HTTP2_PREFACE;
  if (!h->fresh || !h->app->on_h2_preface) return 0;
  size_t k = h->preface_matched;
  size_t n = len < HTTP2_PREFACE_LEN - k ? len : HTTP2_PREFACE_LEN - k;
  if (memcmp(data, preface + k, n) != 0) {
    h->fresh = 0;
    if (k) { /* not HTTP/2 after all: parse what matched, then the rest */
      uint8_t head[HTTP2_PREFACE_LEN];
      memcpy(head, HTTP2_PREFACE, k);
      http_parse(c, h, head, k);
      if (c->handler != &http_net_handler || net_conn_is_closing(c)) return 1;
    }
    return 0;
  }
  h->preface_matched = (uint8_t)(k + n);
  if (h->preface_matched < HTTP2_PREFACE_LEN) return 1;
  const http_app_t *app = h->app;
  uint8_t *whole = data;
  uint8_t *joined = NULL;
  if (k) { /* the preface came in pieces: hand over one contiguous copy */
    joined = malloc(HTTP2_PREFACE_LEN + len - n);
    if (!joined) {
      net_conn_abort(c);
      return 1;
    }
    memcpy(joined, HTTP2_PREFACE, HTTP2_PREFACE_LEN);
    memcpy(joined + HTTP2_PREFACE_LEN, data + n, len - n);
    whole = joined;
    len = HTTP2_PREFACE_LEN + len - n;
  }
  http_conn_take(c);
  app->on_h2_preface(app->app, c, whole, len);
  free(joined);
  return 1;
}

static void http_on_data(net_conn_t *c, uint8_t *data, size_t len) {
  http_conn_t *h = c->ud;
  if (h->held) {
    held_break(c, h);
    return;
  }
  if (h2_preface(c, h, data, len)) return;
  h->fresh = 0;
  http_parse(c, h, data, len);
}

static void http_parse(net_conn_t *c, http_conn_t *h, uint8_t *data, size_t len) {
  while (len > 0) {
    size_t n = http_parser_execute(&h->parser, &parser_settings, (const char *)data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
    if (h->complete) {
      /* Paused after a whole request: serve it, then parse on. An upgrade
       * request's trailing bytes belong to the new protocol. */
      http_parser_pause(&h->parser, 0);
      uint8_t *rest = data + n;
      size_t rest_len = len - n;
      if (serve(c, h, rest, rest_len)) return;
      if (c->queued > h->app->config->send_queue_limit) {
        /* Pipelining requests faster than it reads the responses: stop
         * here rather than queue responses without bound. */
        LOG_INFO("http", "closing a pipelining client over the send queue limit queued=%zu", c->queued);
        net_conn_close(c);
        return;
      }
      request_reset(h);
      data = rest;
      len = rest_len;
      continue;
    }
    if (err != HPE_OK) {
      fail(c, h);
      return;
    }
    if (h->parser.upgrade) return; /* upgrade without completion: wait */
    data += n;
    len -= n;
    if (n == 0) return;
  }
}

static void http_on_tick(net_conn_t *c, int64_t now) {
  http_conn_t *h = c->ud;
  if (h->held) return;   /* a long poll: its holder has its own deadline */
  if (now - h->started > h->app->config->handshake_timeout_ms) {
    if (h->head_len || h->body_len) {
      wsc_metrics.cutoffs[WSC_CUTOFF_HANDSHAKE_TIMEOUT]++;
      http_error(c, 408, "request not received in time", NULL);
    }
    else net_conn_close(c); /* idle keep-alive connection */
  }
}

static void http_on_shutdown(net_conn_t *c) {
  http_conn_t *h = c->ud;
  if (!h->held) return;
  held_release(h);
  http_error(c, 503, "server shutting down", NULL);
}

static void http_on_close(net_conn_t *c) {
  http_conn_t *h = c->ud;
  if (!h) return;
  held_release(h);
  free(h->head);
  free(h->body);
  free(h);
}

static const net_handler_t http_net_handler = {
    .on_data = http_on_data,
    .on_tick = http_on_tick,
    .on_shutdown = http_on_shutdown,
    .on_close = http_on_close,
};

void http_conn_attach(net_conn_t *c, const http_app_t *app) {
  http_conn_t *h = calloc(1, sizeof *h);
  if (!h) {
    net_conn_abort(c);
    return;
  }
  http_parser_init(&h->parser, HTTP_REQUEST);
  h->parser.data = h;
  h->app = app;
  h->started = wsc_mono_ms();
  h->fresh = 1;
  c->handler = &http_net_handler;
  c->ud = h;
}

void http_conn_take(net_conn_t *c) {
  http_on_close(c);
  c->ud = NULL;
  c->handler = NULL;
}

/* --- responses ------------------------------------------------------------------ */

const char *http_status_text(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

const char *http_header(const http_request_t *req, const char *name, size_t *len) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->n_headers; i++) {
    const ws_hs_header_t *hd = &req->headers[i];
    if (hd->name_len == nlen && strncasecmp(hd->name, name, nlen) == 0) {
      if (len) *len = hd->value_len;
      return hd->value;
    }
  }
  return NULL;
}

/* The status line and headers into head[cap]; its length, or -1. */
static int format_head(net_conn_t *c, char *head, size_t cap, int status, const char *content_type,
                       const char *extra_headers, size_t body_len, int keep_alive) {
  /* HTTPS responses advertise HTTP/3 when it is on (RFC 7838 Alt-Svc). */
  char alt[64] = "";
  const wsc_config_t *cfg = net_conn_server(c)->config;
  if (net_conn_is_tls(c) && cfg->h3_port)
    snprintf(alt, sizeof alt, "Alt-Svc: h3=\":%d\"; ma=86400\r\n", cfg->h3_port);
  int n = snprintf(head, cap,
                   "HTTP/1.1 %d %s\r\n"
                   "Server: wschat\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "X-Content-Type-Options: nosniff\r\n"
                   "%s"
                   "%s"
                   "%s"
                   "\r\n",
                   status, http_status_text(status), content_type, body_len, alt,
                   keep_alive ? "" : "Connection: close\r\n", extra_headers ? extra_headers : "");
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

void http_respond(net_conn_t *c, int status, const char *content_type, const char *extra_headers,
                  const void *body, size_t body_len, int keep_alive) {
  char head[1024];
  int n = format_head(c, head, sizeof head, status, content_type, extra_headers, body_len, keep_alive);
  if (n < 0) {
    net_conn_abort(c);
    return;
  }
  wsc_buf_t *b = wsc_buf_new(0, (size_t)n + (body ? body_len : 0));
  if (!b) {
    net_conn_abort(c);
    return;
  }
  memcpy(b->data, head, (size_t)n);
  if (body && body_len) memcpy(b->data + n, body, body_len);
  b->len = (uint32_t)((size_t)n + (body ? body_len : 0));
  net_conn_send_force(c, b);
  wsc_buf_unref(b);
  if (!keep_alive) net_conn_close(c);
}

static void http1_respond(void *target, int status, const char *content_type,
                          const char *extra_headers, const void *body, size_t body_len, int keep_alive) {
  http_respond(target, status, content_type, extra_headers, body, body_len, keep_alive);
}

const http_reply_ops_t http1_reply_ops = {.respond = http1_respond};

void http_reply_error(http_reply_t r, int status, const char *message, const char *extra_headers) {
  char body[512];
  int n = snprintf(body, sizeof body, "%s\n", message);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof body) n = sizeof body - 1;
  LOG_DEBUG("http", "error status=%d message=\"%s\"", status, message);
  r.ops->respond(r.target, status, "text/plain; charset=utf-8", extra_headers, body, (size_t)n, 0);
}

void http_error(net_conn_t *c, int status, const char *message, const char *extra_headers) {
  http_reply_error(http1_reply(c), status, message, extra_headers);
}

void http_hold(net_conn_t *c, void (*on_gone)(void *ud), void *ud) {
  http_conn_t *h = c->ud;
  h->held = 1;
  h->held_gone = on_gone;
  h->held_ud = ud;
}

int http_is_held(const net_conn_t *c) {
  const http_conn_t *h = c->handler == &http_net_handler ? c->ud : NULL;
  return h && h->held;
}

void http_answer(net_conn_t *c, int status, const char *content_type, const char *extra_headers,
                 wsc_buf_t *body) {
  http_conn_t *h = c->ud;
  int was_held = h->held;
  h->held = 0;
  h->held_gone = NULL;
  h->held_ud = NULL;
  char head[1024];
  size_t body_len = body ? body->len : 0;
  int n = format_head(c, head, sizeof head, status, content_type, extra_headers, body_len, h->keep_alive);
  if (n < 0 || net_conn_send_copy(c, head, (size_t)n) != 0) {
    net_conn_abort(c);
    return;
  }
  if (body && body_len) net_conn_send_force(c, body);
  if (!h->keep_alive) {
    net_conn_close(c);
    return;
  }
  if (was_held) h->started = wsc_mono_ms();   /* idle keep-alive from now */
}
