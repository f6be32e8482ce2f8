/* base/pool — see pool.h. */
#include "base/pool.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define POOL_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_LSAN 1
#endif
#endif
#ifdef POOL_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define SLAB_HEADER 16 /* the link to the previous slab, keeping 16-byte alignment */

/* A slab's bytes, header included: WSC_POOL_SLAB_BYTES, or one object and
 * the header for bigger objects, in whole pages. */
static size_t slab_bytes(const wsc_pool_t *p) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t n = SLAB_HEADER + p->size > WSC_POOL_SLAB_BYTES ? SLAB_HEADER + p->size : WSC_POOL_SLAB_BYTES;
  return (n + page - 1) / page * page;
}

/* Slabs are mapped, not malloc'd: they live outside malloc's heap, so
 * they are not islands between the short-lived buffers malloc_trim must
 * give back (base/heap), and a slab's pages are only made resident as its
 * objects are handed out. Under ASan the slab is a root region for the
 * leak checker (it scans malloc'd blocks, not mappings). */
static char *slab_map(size_t bytes) {
  void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
#ifdef POOL_LSAN
  __lsan_register_root_region(m, bytes);
#endif
  return m;
}

static void slab_unmap(char *slab, size_t bytes) {
#ifdef POOL_LSAN
  __lsan_unregister_root_region(slab, bytes);
#endif
  munmap(slab, bytes);
}

static wsc_pool_t *g_pools;   /* every pool that made a slab (static objects) */

void *wsc_pool_alloc(wsc_pool_t *p) {
  void *obj = p->free_list;
  if (obj) {
    memcpy(&p->free_list, obj, sizeof(void *));
  } else {
    if (!p->slab || p->used + p->size > p->cap) {
      size_t cap = slab_bytes(p);
      /* Each slab starts with a pointer to the one before: every slab
       * stays reachable from the pool. */
      char *slab = slab_map(cap);
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
    size_t cap = slab_bytes(p);
    char *slab = p->slab;
    while (slab) {
      char *prev;
      memcpy(&prev, slab, sizeof prev);
      slab_unmap(slab, cap);
      bytes += cap;
      slab = prev;
    }
    p->slab = NULL;
    p->free_list = NULL;
    p->used = p->cap = 0;
  }
  return bytes;
}

/* ---- size classes --------------------------------------------------------- */

#define N_CLASSES 9   /* 16 .. 4096 */
_Static_assert(WSC_POOL_CLASS_MIN << (N_CLASSES - 1) == WSC_POOL_CLASS_MAX, "classes");

static wsc_pool_t g_classes[N_CLASSES] = {
    WSC_POOL_INIT_SIZE(16),  WSC_POOL_INIT_SIZE(32),   WSC_POOL_INIT_SIZE(64),
    WSC_POOL_INIT_SIZE(128), WSC_POOL_INIT_SIZE(256),  WSC_POOL_INIT_SIZE(512),
    WSC_POOL_INIT_SIZE(1024), WSC_POOL_INIT_SIZE(2048), WSC_POOL_INIT_SIZE(4096),
};

static int class_of(size_t n) {
  int k = 0;
  while (k < N_CLASSES && (size_t)WSC_POOL_CLASS_MIN << k < n) k++;
  return k;   /* N_CLASSES: above the classes */
}

size_t wsc_pool_fit(size_t n) {
  int k = class_of(n);
  return k < N_CLASSES ? (size_t)WSC_POOL_CLASS_MIN << k : n;
}

void *wsc_pool_get(size_t n) {
  int k = class_of(n);
  return k < N_CLASSES ? wsc_pool_alloc(&g_classes[k]) : calloc(1, n);
}

void wsc_pool_put(void *obj, size_t n) {
  int k = class_of(n);
  if (k < N_CLASSES) wsc_pool_free(&g_classes[k], obj);
  else free(obj);
}
