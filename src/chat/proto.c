/* chat/proto — see proto.h. */
#include "chat/proto.h"

#include <stdlib.h>
#include <string.h>

#include "chat/names.h"
#include "chat/rawjson.h"

/* NUL is allowed in strings: "a\u0000b" is JSON (a name or room holding
 * it is then refused by its own rule). A duplicate key makes a message
 * ambiguous: refused (docs/PROTOCOL.md). */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

static const char *const err_codes[] = {
    [CHAT_OK] = "ok",
    [CHAT_ERR_BAD_REQUEST] = "bad_request",
    [CHAT_ERR_UNKNOWN_TYPE] = "unknown_type",
    [CHAT_ERR_NOT_MEMBER] = "not_member",
    [CHAT_ERR_BAD_ROOM] = "bad_room",
    [CHAT_ERR_BAD_NAME] = "bad_name",
    [CHAT_ERR_NAME_TAKEN] = "name_taken",
    [CHAT_ERR_TOO_LARGE] = "too_large",
    [CHAT_ERR_RATE_LIMITED] = "rate_limited",
    [CHAT_ERR_NO_SUCH_USER] = "no_such_user",
    [CHAT_ERR_TOO_MANY_ROOMS] = "too_many_rooms",
    [CHAT_ERR_INTERNAL] = "internal",
    [CHAT_ERR_UNAVAILABLE] = "unavailable",
};

const char *chat_err_code(chat_err_t e) {
  return (e >= 0 && (size_t)e < sizeof err_codes / sizeof *err_codes) ? err_codes[e] : "internal";
}

static const struct {
  const char *name;
  chat_req_type_t type;
} req_types[] = {
    {"hello", CHAT_REQ_HELLO}, {"join", CHAT_REQ_JOIN},   {"leave", CHAT_REQ_LEAVE},
    {"send", CHAT_REQ_SEND},   {"typing", CHAT_REQ_TYPING}, {"dm", CHAT_REQ_DM},
    {"history", CHAT_REQ_HISTORY}, {"ping", CHAT_REQ_PING},
};

static chat_req_type_t lookup_type(const char *s, size_t len) {
  for (size_t i = 0; i < sizeof req_types / sizeof *req_types; i++)
    if (strlen(req_types[i].name) == len && memcmp(req_types[i].name, s, len) == 0)
      return req_types[i].type;
  return CHAT_REQ_NONE;
}

static chat_parse_result_t fail(chat_req_t *req, chat_err_t e, const char *msg) {
  req->err = e;
  req->errmsg = msg;
  return CHAT_PARSE_ERROR;
}

/* Optional field: absent and JSON null are the same. */
static json_t *opt(json_t *root, const char *key) {
  json_t *v = json_object_get(root, key);
  return (v && json_is_null(v)) ? NULL : v;
}

/* A required string field; 0 or -1 (missing or not a string). */
static int req_str(json_t *root, const char *key, chat_str_t *out) {
  json_t *v = json_object_get(root, key);
  if (!v || !json_is_string(v)) return -1;
  out->p = json_string_value(v);
  out->len = json_string_length(v);
  return 0;
}

/* An optional integer >= min; 1 present, 0 absent, -1 wrong. */
static int opt_int(json_t *root, const char *key, json_int_t min, int64_t *out) {
  json_t *v = opt(root, key);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < min) return -1;
  *out = json_integer_value(v);
  return 1;
}

chat_err_t chat_text_check(size_t len, size_t max_text) {
  if (len == 0) return CHAT_ERR_BAD_REQUEST;
  if (len > max_text) return CHAT_ERR_TOO_LARGE;
  return CHAT_OK;
}

/* Step 3: shape of each type's fields. */
static chat_parse_result_t check_shape(chat_req_t *req, const chat_limits_t *lim) {
  json_t *root = req->root;
  switch (req->type) {
    case CHAT_REQ_HELLO:
      if (req_str(root, "name", &req->name) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "name (a string) is required");
      break;
    case CHAT_REQ_JOIN: {
      if (req_str(root, "room", &req->room) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "room (a string) is required");
      int r = opt_int(root, "since", 0, &req->since);
      if (r < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "since must be an integer >= 0");
      req->has_since = r;
      json_t *ep = opt(root, "epoch");
      if (ep && !json_is_string(ep)) return fail(req, CHAT_ERR_BAD_REQUEST, "epoch must be a string");
      if (ep) {
        req->epoch.p = json_string_value(ep);
        req->epoch.len = json_string_length(ep);
      }
      break;
    }
    case CHAT_REQ_LEAVE:
    case CHAT_REQ_TYPING:
      if (req_str(root, "room", &req->room) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "room (a string) is required");
      break;
    case CHAT_REQ_SEND:
      if (req_str(root, "room", &req->room) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "room (a string) is required");
      if (req_str(root, "text", &req->text) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "text (a string) is required");
      if (req->text.len == 0) return fail(req, CHAT_ERR_BAD_REQUEST, "text is empty");
      break;
    case CHAT_REQ_DM:
      if (req_str(root, "to", &req->to) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "to (a string) is required");
      if (req_str(root, "text", &req->text) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "text (a string) is required");
      if (req->text.len == 0) return fail(req, CHAT_ERR_BAD_REQUEST, "text is empty");
      break;
    case CHAT_REQ_HISTORY: {
      if (req_str(root, "room", &req->room) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "room (a string) is required");
      int r = opt_int(root, "before", 0, &req->before);
      if (r < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "before must be an integer >= 0");
      req->has_before = r;
      int64_t limit = lim->history_default;
      if (opt_int(root, "limit", 1, &limit) < 0) return fail(req, CHAT_ERR_BAD_REQUEST, "limit must be an integer >= 1");
      req->limit = (int)(limit > lim->history_max_limit ? lim->history_max_limit : limit);
      break;
    }
    case CHAT_REQ_PING:
    case CHAT_REQ_NONE:
      break;
  }
  return CHAT_PARSE_OK;
}

/* Step 4: the syntax of the fields that have one. */
static chat_parse_result_t check_fields(chat_req_t *req, const chat_limits_t *lim) {
  if (req->room.p && !chat_room_check(req->room.p, req->room.len))
    return fail(req, CHAT_ERR_BAD_ROOM, "room names are 1-64 of A-Z a-z 0-9 . _ -");
  if (req->type == CHAT_REQ_HELLO) {
    size_t s, n;
    if (chat_name_check(req->name.p, req->name.len, &s, &n) < 0)
      return fail(req, CHAT_ERR_BAD_NAME,
                  "names are 1-32 characters without control characters and not starting with guest-");
    req->name.p += s;
    req->name.len = n;
  }
  if (req->text.p && chat_text_check(req->text.len, lim->max_text) == CHAT_ERR_TOO_LARGE)
    return fail(req, CHAT_ERR_TOO_LARGE, "text is longer than the server allows");
  return CHAT_PARSE_OK;
}

/* json_loadb, retried on a copy with saturated numbers when a number is
 * out of range (chat/rawjson.h); *err tells why a failure failed. */
static json_t *load(const char *text, size_t len, size_t flags, json_error_t *err) {
  json_t *root = json_loadb(text, len, flags, err);
  if (root || json_error_code(err) != json_error_numeric_overflow) return root;
  size_t n;
  char *sat = rawjson_saturate(text, len, &n);
  if (!sat) return NULL;
  root = json_loadb(sat, n, flags, err);
  free(sat);
  return root;
}

static int is_typed_object(const json_t *root) {
  return root && json_is_object(root) && json_is_string(json_object_get(root, "type"));
}

/* The ref to echo: the text the client wrote for it, in a jansson string
 * (a number is not re-formatted). NULL when there is none. */
static json_t *ref_text(const char *text, size_t len) {
  size_t start, n;
  if (rawjson_member(text, len, "ref", &start, &n) < 0) return NULL;
  return json_stringn(text + start, n);
}

chat_parse_result_t chat_req_parse(const char *text, size_t len, const chat_limits_t *lim,
                                   chat_req_t *req) {
  memset(req, 0, sizeof *req);
  req->err = CHAT_ERR_BAD_REQUEST;
  req->errmsg = "a message is a JSON object with a string type";
  json_error_t jerr;
  req->root = load(text, len, LOAD_FLAGS, &jerr);
  if (!req->root && json_error_code(&jerr) == json_error_duplicate_key) {
    /* Still a protocol message (on /ws/{room} not plain text), but one
     * whose fields, ref included, cannot be trusted. */
    req->root = load(text, len, JSON_ALLOW_NUL, &jerr);
    if (!is_typed_object(req->root)) return CHAT_PARSE_NOT_PROTOCOL;
    return fail(req, CHAT_ERR_BAD_REQUEST, "a key appears twice");
  }
  if (!is_typed_object(req->root)) return CHAT_PARSE_NOT_PROTOCOL;
  json_t *type = json_object_get(req->root, "type");

  /* ref first, so that even unknown_type can echo it. */
  json_t *ref = opt(req->root, "ref");
  int ref_ok = !ref || json_is_string(ref) || json_is_number(ref);
  if (ref_ok && ref) req->ref = ref_text(text, len);

  req->type = lookup_type(json_string_value(type), json_string_length(type));
  if (req->type == CHAT_REQ_NONE) return fail(req, CHAT_ERR_UNKNOWN_TYPE, "unknown message type");
  if (!ref_ok) return fail(req, CHAT_ERR_BAD_REQUEST, "ref must be a string or a number");
  chat_parse_result_t r = check_shape(req, lim);
  if (r != CHAT_PARSE_OK) return r;
  r = check_fields(req, lim);
  if (r != CHAT_PARSE_OK) return r;
  req->err = CHAT_OK;
  req->errmsg = NULL;
  return CHAT_PARSE_OK;
}

void chat_req_free(chat_req_t *req) {
  if (req->root) json_decref(req->root);
  if (req->ref) json_decref(req->ref);
  req->root = NULL;
  req->ref = NULL;
}

int chat_parse_since(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  int64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    int d = *s - '0';
    /* Beyond int64 is still an integer >= 0, later than any id: saturate
     * (the same as in JSON, chat/rawjson.h). */
    v = v > (INT64_MAX - d) / 10 ? INT64_MAX : v * 10 + d;
  }
  *out = v;
  return 0;
}
