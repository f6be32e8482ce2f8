/* http_poll — see http_poll.h. */
#include "http_poll.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { REQ_SESSION, REQ_SEND, REQ_POLL };

typedef struct req {
  http_poll_t *p;
  int kind;
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_write_t w;
  char *out;
  size_t out_len;
  char *in;
  size_t in_len, in_cap;
  int done;               /* answered or failed: no more callbacks */
  struct req *prev, *next;
} req_t;

typedef struct queued {
  char *body;
  size_t len;
} queued_t;

struct http_poll {
  uv_loop_t *loop;
  http_poll_cb cb;
  void *ud;
  char host[256], port[8];
  struct sockaddr_storage addr;
  char session[128];
  long long ack;          /* last event seq handed up */
  int open;               /* the session exists */
  int lost, freed;
  req_t *reqs;            /* in flight (or closing) */
  int sending;            /* a send is in flight */
  queued_t queue[HTTP_POLL_QUEUE_MAX];
  int q_head, q_len;
};

static void maybe_release(http_poll_t *p) {
  if (p->freed && !p->reqs) {
    for (int i = 0; i < p->q_len; i++) free(p->queue[(p->q_head + i) % HTTP_POLL_QUEUE_MAX].body);
    free(p);
  }
}

static void on_req_closed(uv_handle_t *h) {
  req_t *r = h->data;
  http_poll_t *p = r->p;
  if (r->prev) r->prev->next = r->next;
  else p->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  free(r->out);
  free(r->in);
  free(r);
  maybe_release(p);
}

static void req_end(req_t *r) {
  r->done = 1;
  if (!uv_is_closing((uv_handle_t *)&r->tcp)) uv_close((uv_handle_t *)&r->tcp, on_req_closed);
}

static void lose(http_poll_t *p, const char *why) {
  if (p->lost || p->freed) return;
  p->lost = 1;
  p->cb.on_lost(p->ud, why);
}

static void start(http_poll_t *p, int kind, const char *method, const char *target, const char *body,
                  size_t body_len);

static void send_next(http_poll_t *p) {
  if (p->sending || !p->open || p->lost || p->freed || !p->q_len) return;
  queued_t q = p->queue[p->q_head];
  p->q_head = (p->q_head + 1) % HTTP_POLL_QUEUE_MAX;
  p->q_len--;
  char target[256];
  snprintf(target, sizeof target, "/http/send?session=%s", p->session);
  p->sending = 1;
  start(p, REQ_SEND, "POST", target, q.body, q.len);
  free(q.body);
}

static void poll_next(http_poll_t *p) {
  if (!p->open || p->lost || p->freed) return;
  char target[256];
  snprintf(target, sizeof target, "/http/longpoll?session=%s&ack=%lld&timeout=%d", p->session, p->ack,
           HTTP_POLL_TIMEOUT_S);
  start(p, REQ_POLL, "GET", target, NULL, 0);
}

/* A whole response: status and body. */
static void on_response(req_t *r, int status, const char *body, size_t len) {
  http_poll_t *p = r->p;
  if (p->lost || p->freed) return;
  if (status == 404) { lose(p, "the server forgot the session (404)"); return; }
  int json = len && (body[0] == '{' || body[0] == '[');
  if (!json && status != 204 && status != 200) {
    char why[200];
    snprintf(why, sizeof why, "HTTP %d %.*s", status, (int)(len > 120 ? 120 : len), body);
    char *nl = strpbrk(why, "\r\n");
    if (nl) *nl = '\0';
    { lose(p, why); return; }
  }
  switch (r->kind) {
    case REQ_SESSION: {
      json_t *o = json_loadb(body, len, 0, NULL);
      const char *s = json_string_value(json_object_get(o, "session"));
      if (status != 200 || !s) {
        json_decref(o);
        { lose(p, "no session in the answer to POST /http/session"); return; }
      }
      snprintf(p->session, sizeof p->session, "%s", s);
      json_decref(o);
      p->open = 1;
      p->cb.on_object(p->ud, body, len);
      if (p->freed || p->lost) return;
      poll_next(p);
      send_next(p);
      return;
    }
    case REQ_SEND:
      p->sending = 0;
      if (json) p->cb.on_object(p->ud, body, len);
      send_next(p);
      return;
    case REQ_POLL: {
      json_t *arr = json_loadb(body, len, 0, NULL);
      if (!json_is_array(arr)) {
        json_decref(arr);
        { lose(p, "a long poll answer that is not a JSON array"); return; }
      }
      size_t i;
      json_t *ev;
      json_array_foreach(arr, i, ev) {
        json_t *seq = json_object_get(ev, "seq");
        if (json_is_integer(seq)) p->ack = json_integer_value(seq);
        char *text = json_dumps(ev, JSON_COMPACT);
        if (text) {
          p->cb.on_object(p->ud, text, strlen(text));
          free(text);
        }
        if (p->freed || p->lost) break;
      }
      json_decref(arr);
      poll_next(p);
      return;
    }
    default: return;
  }
}

static void parse_and_answer(req_t *r) {
  char *hdr_end = r->in ? strstr(r->in, "\r\n\r\n") : NULL;
  int status = 0;
  if (!hdr_end || sscanf(r->in, "HTTP/1.%*d %d", &status) != 1) {
    if (r->kind == REQ_SEND) r->p->sending = 0;
    { lose(r->p, "connection lost"); return; }
  }
  const char *body = hdr_end + 4;
  size_t len = r->in_len - (size_t)(body - r->in);
  on_response(r, status, body, len);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  req_t *r = h->data;
  if (r->in_cap - r->in_len < 16384) {
    size_t cap = r->in_cap ? r->in_cap * 2 : 65536;
    char *n = cap <= HTTP_POLL_RESPONSE_MAX + 1 ? realloc(r->in, cap) : NULL;
    if (!n) {
      buf->base = NULL;
      buf->len = 0;
      return;
    }
    r->in = n;
    r->in_cap = cap;
  }
  buf->base = r->in + r->in_len;
  buf->len = r->in_cap - r->in_len - 1; /* room for a NUL */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  req_t *r = s->data;
  if (r->done) return;
  if (n > 0) {
    r->in_len += (size_t)n;
    r->in[r->in_len] = '\0';
    return;
  }
  if (n == 0) return;
  req_end(r);
  if (n == UV_EOF) parse_and_answer(r);
  else {
    if (r->kind == REQ_SEND) r->p->sending = 0;
    lose(r->p, n == UV_ENOBUFS ? "response too large" : uv_strerror((int)n));
  }
}

static void on_written(uv_write_t *w, int status) {
  req_t *r = w->data;
  if (status < 0 && !r->done) {
    req_end(r);
    lose(r->p, uv_strerror(status));
  }
}

static void on_connected(uv_connect_t *c, int status) {
  req_t *r = c->data;
  if (r->done) return;
  if (status < 0) {
    req_end(r);
    if (r->kind == REQ_SEND) r->p->sending = 0;
    lose(r->p, uv_strerror(status));
    return;
  }
  uv_read_start((uv_stream_t *)&r->tcp, alloc_cb, on_read);
  uv_buf_t b = uv_buf_init(r->out, (unsigned)r->out_len);
  r->w.data = r;
  if (uv_write(&r->w, (uv_stream_t *)&r->tcp, &b, 1, on_written) < 0) {
    req_end(r);
    lose(r->p, "write failed");
  }
}

static void start(http_poll_t *p, int kind, const char *method, const char *target, const char *body,
                  size_t body_len) {
  req_t *r = calloc(1, sizeof *r);
  char head[1024];
  int hl = snprintf(head, sizeof head,
                    "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    method, target, p->host, p->port, body_len);
  if (!r || hl <= 0 || (size_t)hl >= sizeof head || !(r->out = malloc((size_t)hl + body_len))) {
    free(r);
    { lose(p, "out of memory"); return; }
  }
  memcpy(r->out, head, (size_t)hl);
  if (body_len) memcpy(r->out + hl, body, body_len);
  r->out_len = (size_t)hl + body_len;
  r->p = p;
  r->kind = kind;
  r->next = p->reqs;
  if (p->reqs) p->reqs->prev = r;
  p->reqs = r;
  uv_tcp_init(p->loop, &r->tcp);
  r->tcp.data = r;
  r->conn.data = r;
  if (uv_tcp_connect(&r->conn, &r->tcp, (struct sockaddr *)&p->addr, on_connected) < 0) {
    req_end(r);
    lose(p, "cannot connect");
  }
}

http_poll_t *http_poll_open(uv_loop_t *loop, const char *host, const char *port, const char *name,
                            const char *session, const http_poll_cb *cb, void *ud) {
  http_poll_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->loop = loop;
  p->cb = *cb;
  p->ud = ud;
  snprintf(p->host, sizeof p->host, "%s", host);
  snprintf(p->port, sizeof p->port, "%s", port);
  uv_getaddrinfo_t gai;
  struct addrinfo hints = {0};
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(loop, &gai, NULL, host, port, &hints) < 0 || !gai.addrinfo) {
    free(p);
    return NULL;
  }
  memcpy(&p->addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
  uv_freeaddrinfo(gai.addrinfo);
  json_t *b = json_object();
  if (name) json_object_set_new(b, "name", json_string(name));
  if (session && *session) json_object_set_new(b, "session", json_string(session));
  char *text = json_dumps(b, JSON_COMPACT);
  json_decref(b);
  start(p, REQ_SESSION, "POST", "/http/session", text ? text : "{}", text ? strlen(text) : 2);
  free(text);
  return p;
}

int http_poll_send(http_poll_t *p, const char *json, size_t len) {
  if (p->lost || p->freed || p->q_len == HTTP_POLL_QUEUE_MAX) return -1;
  char *copy = malloc(len);
  if (!copy) return -1;
  memcpy(copy, json, len);
  p->queue[(p->q_head + p->q_len) % HTTP_POLL_QUEUE_MAX] = (queued_t){copy, len};
  p->q_len++;
  send_next(p);
  return 0;
}

void http_poll_free(http_poll_t *p) {
  if (!p) return;
  p->freed = 1;
  for (req_t *r = p->reqs; r; r = r->next) req_end(r);
  maybe_release(p);
}
