/* Fuzz target: what an HTTP chat session parses (transport/http_session_req):
 * the query of /http/send, /http/poll and /http/longpoll, the body of
 * POST /http/session, a client message's kind, and a server message's type
 * and error status. The input is split at the first NUL byte into a query
 * and a body. Checks what the parser promises: NUL-terminated outputs
 * inside their buffers, timeout within 0..HSESS_LONGPOLL_MAX_S, an ack that
 * fits int64, an error text on failure, a status from the known set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/http_session_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t qlen = nul ? (size_t)(nul - data) : size;
  const uint8_t *body = nul ? nul + 1 : data;
  size_t blen = nul ? size - qlen - 1 : size;

  hsess_query_t q;
  const char *err = NULL;
  if (hsess_parse_query((const char *)data, qlen, &q, &err) == 0) {
    if (strlen(q.session) > HSESS_TOKEN_MAX) abort();
    if (q.timeout_s < 0 || q.timeout_s > HSESS_LONGPOLL_MAX_S) abort();
    if (q.ack > (uint64_t)INT64_MAX) abort();
  } else if (!err || !*err) {
    abort();
  }

  hsess_open_t o;
  err = NULL;
  if (hsess_parse_open(body, blen, &o, &err) == 0) {
    if (strlen(o.name) > HSESS_NAME_MAX || strlen(o.session) > HSESS_TOKEN_MAX) abort();
    if (!o.has_name && o.name[0]) abort();
    if (!o.has_session && o.session[0]) abort();
  } else if (!err || !*err) {
    abort();
  }

  hsess_req_kind_t k = hsess_req_kind(body, blen);
  if (k < HSESS_REQ_OTHER || k > HSESS_REQ_TYPING) abort();
  hsess_msg_type_t t = hsess_msg_type((const char *)body, blen);
  if (t < HSESS_MSG_OTHER || t > HSESS_MSG_ERROR) abort();
  int st = hsess_error_status((const char *)body, blen);
  if (st != 400 && st != 403 && st != 409 && st != 413 && st != 429 && st != 503) abort();
  return 0;
}
