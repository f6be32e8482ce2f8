/* base/buf — see buf.h. */
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

#include "base/pool.h"

/* Small buffers (an echo, a typing or presence event, an ack) come from a
 * pool of their own: a busy loop makes and frees thousands of them per
 * iteration, more than malloc's per-thread cache holds. Buffers are made
 * and freed on the loop thread only (the pool is single-threaded). */
#define BUF_SMALL 128
static wsc_pool_t g_small = WSC_POOL_INIT_SIZE(BUF_SMALL);

wsc_buf_t *wsc_buf_new(size_t head, size_t cap) {
  if (head + cap > UINT32_MAX) return NULL;
  size_t bytes = sizeof(wsc_buf_t) + head + cap;
  wsc_buf_t *b = bytes <= BUF_SMALL ? wsc_pool_alloc(&g_small) : malloc(bytes);
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
    if (sizeof(wsc_buf_t) + b->cap <= BUF_SMALL) wsc_pool_free(&g_small, b);
    else free(b);
  }
}

uint8_t *wsc_buf_prepend(wsc_buf_t *b, size_t n) {
  if (n > b->off) return NULL;
  b->off -= (uint32_t)n;
  b->len += (uint32_t)n;
  b->hdr += (uint32_t)n;
  return b->data + b->off;
}
