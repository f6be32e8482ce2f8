/* base/pool — see pool.h. */
#include "base/pool.h"

#include <stdlib.h>
#include <string.h>

#define SLAB_HEADER 16 /* the link to the previous slab, keeping 16-byte alignment */

static wsc_pool_t *g_pools;   /* every pool that made a slab (static objects) */

void *wsc_pool_alloc(wsc_pool_t *p) {
  void *obj = p->free_list;
  if (obj) {
    memcpy(&p->free_list, obj, sizeof(void *));
  } else {
    if (!p->slab || p->used + p->size > p->cap) {
      size_t cap = SLAB_HEADER + (WSC_POOL_SLAB_BYTES < p->size ? p->size : WSC_POOL_SLAB_BYTES);
      /* Each slab starts with a pointer to the one before, so every slab
       * stays reachable from the pool (and leak checkers agree). */
      char *slab = malloc(cap);
      if (!slab) return NULL;
      memcpy(slab, &p->slab, sizeof(void *));
      p->slab = slab;
      p->used = SLAB_HEADER;
      p->cap = cap;
      if (!p->listed) {
        p->listed = 1;
        p->next_pool = g_pools;
        g_pools = p;
      }
    }
    obj = p->slab + p->used;
    p->used += p->size;
  }
  p->live++;
  memset(obj, 0, p->size);
  return obj;
}

void wsc_pool_free(wsc_pool_t *p, void *obj) {
  if (!obj) return;
  memcpy(obj, &p->free_list, sizeof(void *));
  p->free_list = obj;
  p->live--;
}

size_t wsc_pool_release_idle(void) {
  size_t bytes = 0;
  for (wsc_pool_t *p = g_pools; p; p = p->next_pool) {
    if (p->live || !p->slab) continue;
    /* The newest slab is p->cap bytes; older ones were full-size slabs. */
    size_t cap = p->cap;
    char *slab = p->slab;
    while (slab) {
      char *prev;
      memcpy(&prev, slab, sizeof prev);
      free(slab);
      bytes += cap;
      cap = SLAB_HEADER + (WSC_POOL_SLAB_BYTES < p->size ? p->size : WSC_POOL_SLAB_BYTES);
      slab = prev;
    }
    p->slab = NULL;
    p->free_list = NULL;
    p->used = p->cap = 0;
  }
  return bytes;
}
