/* chat/proto — parsing and validating client messages of protocol v1
 * (docs/PROTOCOL.md). Pure code over jansson: no server state, so every
 * rule up to (not including) membership is decided and unit-tested here.
 *
 * Error precedence (docs/PROTOCOL.md, "Errors"):
 *   1. not JSON, not an object, no string `type`        -> bad_request
 *      (CHAT_PARSE_NOT_PROTOCOL: on /ws/{room} such a frame is plain text)
 *   2. unknown `type`                                    -> unknown_type
 *   3. shape: a required field missing or of the wrong type, `ref` not a
 *      string/number, `since`/`before` not an integer >= 0, `limit` not an
 *      integer >= 1, empty `text`                         -> bad_request
 *   4. field checks: `room` syntax -> bad_room, `name` -> bad_name,
 *      `text` over max_text -> too_large
 *   (5. membership, 6. rate limit and the rest: the server)
 * A JSON null in an optional field is the same as the field being absent.
 * JSON details (docs/PROTOCOL.md): a duplicate key is bad_request (no ref
 * echoed); NUL is allowed in strings; a number out of int64/double range
 * is saturated (chat/rawjson.h); nesting deeper than jansson's 2,048
 * levels or a NUL in a key is "not JSON" (step 1).
 *
 * Ownership: chat_req_t owns the parsed JSON (`root`) and `ref`; every
 * other pointer in it points into that tree. chat_req_free releases both.
 */
#ifndef WSC_CHAT_PROTO_H
#define WSC_CHAT_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum chat_req_type {
  CHAT_REQ_NONE = 0,
  CHAT_REQ_HELLO,
  CHAT_REQ_JOIN,
  CHAT_REQ_LEAVE,
  CHAT_REQ_SEND,
  CHAT_REQ_TYPING,
  CHAT_REQ_DM,
  CHAT_REQ_HISTORY,
  CHAT_REQ_PING,
} chat_req_type_t;

/* Error codes of protocol v1 (the wire strings: chat_err_code). */
typedef enum chat_err {
  CHAT_OK = 0,
  CHAT_ERR_BAD_REQUEST,
  CHAT_ERR_UNKNOWN_TYPE,
  CHAT_ERR_NOT_MEMBER,
  CHAT_ERR_BAD_ROOM,
  CHAT_ERR_BAD_NAME,
  CHAT_ERR_NAME_TAKEN,
  CHAT_ERR_TOO_LARGE,
  CHAT_ERR_RATE_LIMITED,
  CHAT_ERR_NO_SUCH_USER,
  CHAT_ERR_TOO_MANY_ROOMS,  /* a join past CHAT_ROOMS_PER_CLIENT_MAX */
  CHAT_ERR_INTERNAL,        /* the store failed; the message was not stored */
  CHAT_ERR_UNAVAILABLE,     /* the shared store (Redis) is unreachable; retry later */
} chat_err_t;

const char *chat_err_code(chat_err_t e);

typedef enum chat_parse_result {
  CHAT_PARSE_OK = 0,
  CHAT_PARSE_NOT_PROTOCOL,  /* step 1 failed: bad_request, or plain text on /ws/{room} */
  CHAT_PARSE_ERROR,         /* steps 2-4 failed: req->err, req->errmsg, req->ref */
} chat_parse_result_t;

typedef struct chat_limits {
  size_t max_text;          /* bytes of `text` (config max_text) */
  int history_max_limit;    /* clamp of history.limit */
  int history_default;      /* history.limit when absent */
} chat_limits_t;

typedef struct chat_str {
  const char *p;            /* NULL when absent */
  size_t len;
} chat_str_t;

typedef struct chat_req {
  json_t *root;
  chat_req_type_t type;
  json_t *ref;              /* the ref's JSON text as the client wrote it (a
                               jansson string, owned; encoders echo it raw),
                               or NULL: none, or not a string or number */
  chat_str_t room;          /* join leave send typing history */
  chat_str_t name;          /* hello: trimmed */
  chat_str_t text;          /* send dm */
  chat_str_t to;            /* dm */
  chat_str_t epoch;         /* join, optional */
  int has_since;
  int64_t since;            /* join */
  int64_t before;           /* history: 0 when absent (from the newest) */
  int has_before;
  int limit;                /* history: defaulted and clamped */
  chat_err_t err;
  const char *errmsg;       /* static text */
} chat_req_t;

/* Parses one text frame. Always initialises *req; call chat_req_free
 * after, whatever the result. */
chat_parse_result_t chat_req_parse(const char *text, size_t len, const chat_limits_t *lim,
                                   chat_req_t *req);
void chat_req_free(chat_req_t *req);

/* Text length rule shared by `send`, `dm` and plain text on /ws/{room}:
 * CHAT_OK, CHAT_ERR_BAD_REQUEST (empty) or CHAT_ERR_TOO_LARGE. */
chat_err_t chat_text_check(size_t len, size_t max_text);

/* Parses a decimal `since` from a URL: digits only (beyond int64:
 * INT64_MAX, like a JSON since). 0 or -1. */
int chat_parse_since(const char *s, int64_t *out);

#endif
