/* transport/http_session_req — parsing what an HTTP chat session receives:
 * the query of /http/send, /http/poll and /http/longpoll, the optional body
 * of POST /http/session, the type of a client message (so its later reply
 * can be told from events), and the type of a server message. Pure code
 * (no sockets, no allocation that outlives a call); fuzzed by
 * tests/fuzz/fuzz_http_session.c.
 *
 * Ownership: the caller owns every input and output buffer.
 */
#ifndef WSC_TRANSPORT_HTTP_SESSION_REQ_H
#define WSC_TRANSPORT_HTTP_SESSION_REQ_H

#include <stddef.h>
#include <stdint.h>

#define HSESS_TOKEN_MAX 64            /* longest session token accepted */
#define HSESS_NAME_MAX 512            /* longest name field accepted (chat checks the rule) */
#define HSESS_LONGPOLL_DEFAULT_S 25   /* /http/longpoll without timeout= */
#define HSESS_LONGPOLL_MAX_S 60       /* timeout= above this is clamped */

typedef struct hsess_query {
  char session[HSESS_TOKEN_MAX + 1];  /* "" when absent */
  uint64_t ack;                       /* 0 when absent */
  int timeout_s;                      /* HSESS_LONGPOLL_DEFAULT_S when absent */
} hsess_query_t;

/* Parses "session=S&ack=N&timeout=T" (each optional here; the endpoint
 * checks what it needs). Returns 0, or -1 with *err a one-line reason. */
int hsess_parse_query(const char *query, size_t len, hsess_query_t *out, const char **err);

typedef struct hsess_open {
  char name[HSESS_NAME_MAX + 1];      /* "" when absent */
  char session[HSESS_TOKEN_MAX + 1];  /* "" when absent */
  int has_name, has_session;
} hsess_open_t;

/* The body of POST /http/session: empty, or a JSON object whose optional
 * "name" and "session" are strings (null = absent); other fields are
 * ignored. Returns 0, or -1 with *err. */
int hsess_parse_open(const uint8_t *body, size_t len, hsess_open_t *out, const char **err);

/* What a client message will be answered with, judged before chat sees it. */
typedef enum hsess_req_kind {
  HSESS_REQ_OTHER = 0,   /* answered at once, or a malformed message (chat answers error) */
  HSESS_REQ_SEND,        /* ack after the commit */
  HSESS_REQ_JOIN,        /* joined once the replay is read */
  HSESS_REQ_HISTORY,     /* history once read */
  HSESS_REQ_TYPING,      /* no answer at all (204) */
} hsess_req_kind_t;

hsess_req_kind_t hsess_req_kind(const uint8_t *body, size_t len);

/* The type of a server message (its JSON starts {"type":"...").*/
typedef enum hsess_msg_type {
  HSESS_MSG_OTHER = 0,
  HSESS_MSG_WELCOME,
  HSESS_MSG_JOINED,
  HSESS_MSG_LEFT,
  HSESS_MSG_ACK,
  HSESS_MSG_HISTORY,
  HSESS_MSG_PONG,
  HSESS_MSG_ERROR,
} hsess_msg_type_t;

hsess_msg_type_t hsess_msg_type(const char *json, size_t len);
/* The HTTP status for an error message's code (400, 403, 409, 413, 429, 503). */
int hsess_error_status(const char *json, size_t len);

#endif
