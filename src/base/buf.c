/* base/buf — see buf.h. */
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

wsc_buf_t *wsc_buf_new(size_t head, size_t cap) {
  if (head + cap > UINT32_MAX) return NULL;
  wsc_buf_t *b = malloc(sizeof *b + head + cap);
  if (!b) return NULL;
  b->refs = 1;
  b->cap = (uint32_t)(head + cap);
  b->off = (uint32_t)head;
  b->len = 0;
  b->hdr = 0;
  b->alt = NULL;
  return b;
}

wsc_buf_t *wsc_buf_from(size_t head, const void *data, size_t len) {
  wsc_buf_t *b = wsc_buf_new(head, len);
  if (!b) return NULL;
  if (len) memcpy(b->data + head, data, len);
  b->len = (uint32_t)len;
  return b;
}

void wsc_buf_unref(wsc_buf_t *b) {
  if (b && --b->refs == 0) {
    wsc_buf_unref(b->alt);
    free(b);
  }
}

uint8_t *wsc_buf_prepend(wsc_buf_t *b, size_t n) {
  if (n > b->off) return NULL;
  b->off -= (uint32_t)n;
  b->len += (uint32_t)n;
  b->hdr += (uint32_t)n;
  return b->data + b->off;
}
