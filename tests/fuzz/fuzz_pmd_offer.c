/* Fuzz target: the permessage-deflate offer parser (ws/deflate).
 *
 * The input is one Sec-WebSocket-Extensions value. Whatever it is, the
 * parser must not read past it, and an accepted offer must be sane: a
 * window of 8..15, a response that fits, and that response, read back as
 * an offer, accepted with the same parameters (it only uses parameters a
 * client may offer). Any breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
  char *v = malloc(size ? size : 1);
  if (!v) return 0;
  if (size) memcpy(v, data, size);
  ws_pmd_t pmd;
  int found = ws_pmd_parse_offers(v, size, &pmd);
  free(v);
  if (!found) {
    if (pmd.enabled) abort();
    return 0;
  }
  if (!pmd.enabled || pmd.server_window < WS_PMD_MIN_WINDOW || pmd.server_window > WS_PMD_MAX_WINDOW) abort();
  if (!pmd.server_window_asked && pmd.server_window != WS_PMD_MAX_WINDOW) abort();
  char resp[128];
  size_t n = ws_pmd_response(&pmd, resp, sizeof resp);
  if (n == 0) abort();
  ws_pmd_t again;
  if (!ws_pmd_parse_offers(resp, n, &again)) abort();
  if (again.server_window != pmd.server_window || again.server_window_asked != pmd.server_window_asked) abort();
  return 0;
}
