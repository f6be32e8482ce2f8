/* Fuzz target: the JSON protocol parser (chat/proto: jansson plus the
 * field checks and error precedence) and the raw-JSON helpers it uses
 * (chat/rawjson: a member's exact text, out-of-range numbers capped).
 * Checks what the parser promises: a result in range, an error code for
 * CHAT_PARSE_ERROR, string fields inside the limits, and a capped copy that
 * is never longer than needed to parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/proto.h"
#include "chat/rawjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  chat_limits_t lim = {.max_text = 4096, .history_max_limit = 200, .history_default = 50};
  chat_req_t req;
  chat_parse_result_t r = chat_req_parse(text, size, &lim, &req);
  if (r != CHAT_PARSE_OK && r != CHAT_PARSE_NOT_PROTOCOL && r != CHAT_PARSE_ERROR) abort();
  if (r == CHAT_PARSE_ERROR && req.err == CHAT_OK) abort();
  if (r == CHAT_PARSE_OK) {
    if (req.text.p && req.text.len > lim.max_text) abort();
    if (req.limit < 0 || req.limit > lim.history_max_limit) abort();
    if (req.has_since && req.since < 0) abort();
  }
  chat_req_free(&req);

  size_t start, vlen;
  if (rawjson_member(text, size, "ref", &start, &vlen) == 0 && start + vlen > size) abort();
  size_t out_len = 0;
  char *capped = rawjson_saturate(text, size, &out_len);
  free(capped);
  return 0;
}
