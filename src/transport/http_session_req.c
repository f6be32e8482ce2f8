/* transport/http_session_req — see http_session_req.h. */
#include "transport/http_session_req.h"

#include <errno.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "http/url.h"

#define NUM_MAX 24   /* room for any decimal uint64 and a bit */

/* A decimal integer of 1-20 digits, no sign, no spaces, at most max. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (v > max) return -1;
  *out = v;
  return 0;
}

int hsess_parse_query(const char *query, size_t len, hsess_query_t *out, const char **err) {
  memset(out, 0, sizeof *out);
  out->timeout_s = HSESS_LONGPOLL_DEFAULT_S;
  int n = url_query_get(query, len, "session", out->session, sizeof out->session);
  if (n == -EINVAL) {
    *err = "session must be a token of at most 64 characters";
    return -1;
  }
  if (n < 0) out->session[0] = '\0';
  char num[NUM_MAX];
  n = url_query_get(query, len, "ack", num, sizeof num);
  if (n == -EINVAL || (n >= 0 && parse_uint(num, INT64_MAX, &out->ack) < 0)) {
    *err = "ack must be a decimal integer >= 0";
    return -1;
  }
  n = url_query_get(query, len, "timeout", num, sizeof num);
  if (n >= 0 || n == -EINVAL) {
    uint64_t t;
    if (n == -EINVAL || parse_uint(num, UINT64_MAX, &t) < 0) {
      *err = "timeout must be a whole number of seconds >= 0";
      return -1;
    }
    out->timeout_s = t > HSESS_LONGPOLL_MAX_S ? HSESS_LONGPOLL_MAX_S : (int)t;
  }
  return 0;
}

/* An optional string field into out[cap]; 0 absent or null, 1 set, -1 bad. */
static int opt_string(json_t *root, const char *key, char *out, size_t cap) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) return -1;
  size_t n = json_string_length(v);
  if (n >= cap) return -1;
  memcpy(out, json_string_value(v), n);
  out[n] = '\0';
  return 1;
}

int hsess_parse_open(const uint8_t *body, size_t len, hsess_open_t *out, const char **err) {
  memset(out, 0, sizeof *out);
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
  if (i == len) return 0;   /* no body: a new guest session */
  json_error_t je;
  json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
  if (!root || !json_is_object(root)) {
    json_decref(root);
    *err = "the body must be empty or a JSON object {\"name\":..,\"session\":..}";
    return -1;
  }
  int rn = opt_string(root, "name", out->name, sizeof out->name);
  int rs = opt_string(root, "session", out->session, sizeof out->session);
  json_decref(root);
  if (rn < 0) {
    *err = "name must be a string of at most 512 bytes";
    return -1;
  }
  if (rs < 0) {
    *err = "session must be a string of at most 64 bytes";
    return -1;
  }
  out->has_name = rn > 0;
  out->has_session = rs > 0;
  return 0;
}

hsess_req_kind_t hsess_req_kind(const uint8_t *body, size_t len) {
  json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
  hsess_req_kind_t k = HSESS_REQ_OTHER;
  const char *t = root ? json_string_value(json_object_get(root, "type")) : NULL;
  if (t) {
    if (strcmp(t, "send") == 0) k = HSESS_REQ_SEND;
    else if (strcmp(t, "join") == 0) k = HSESS_REQ_JOIN;
    else if (strcmp(t, "history") == 0) k = HSESS_REQ_HISTORY;
    else if (strcmp(t, "typing") == 0) k = HSESS_REQ_TYPING;
  }
  json_decref(root);
  return k;
}

static int has_prefix(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0;
}

hsess_msg_type_t hsess_msg_type(const char *json, size_t len) {
  static const struct { const char *prefix; hsess_msg_type_t t; } types[] = {
      {"{\"type\":\"welcome\"", HSESS_MSG_WELCOME}, {"{\"type\":\"joined\"", HSESS_MSG_JOINED},
      {"{\"type\":\"left\"", HSESS_MSG_LEFT},       {"{\"type\":\"ack\"", HSESS_MSG_ACK},
      {"{\"type\":\"history\"", HSESS_MSG_HISTORY}, {"{\"type\":\"pong\"", HSESS_MSG_PONG},
      {"{\"type\":\"error\"", HSESS_MSG_ERROR},
  };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (has_prefix(json, len, types[i].prefix)) return types[i].t;
  return HSESS_MSG_OTHER;
}

int hsess_error_status(const char *json, size_t len) {
  static const struct { const char *code; int status; } map[] = {
      {"not_member", 403}, {"too_large", 413}, {"rate_limited", 429}, {"internal", 503}, {"unavailable", 503},
      {"name_taken", 409}, {"overflow", 409},
  };
  static const char key[] = "\"code\":\"";
  const char *end = json + len;
  for (const char *p = json; p + sizeof key - 1 <= end; p++) {
    if (memcmp(p, key, sizeof key - 1) != 0) continue;
    p += sizeof key - 1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
      size_t n = strlen(map[i].code);
      if ((size_t)(end - p) > n && memcmp(p, map[i].code, n) == 0 && p[n] == '"') return map[i].status;
    }
    break;
  }
  return 400;
}
