/* base/pool — see pool.h. */
#include "base/pool.h"

#include <stdlib.h>
#include <string.h>

#define SLAB_HEADER 16 /* the link to the previous slab, keeping 16-byte alignment */

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
