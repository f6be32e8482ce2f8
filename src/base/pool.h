/* base/pool — fixed-size object pools for what every connection keeps.
 *
 * Why: a connection's long-lived objects (net_conn, ws_conn, chat client
 * and session) are allocated while its handshake's short-lived buffers come
 * and go. From malloc they end up interleaved with the holes those buffers
 * leave, and the heap grows by half again what is in use. A pool keeps
 * objects of one size packed in slabs, with a free list: no per-object
 * malloc header, no interleaving.
 *
 * Slabs are mapped outside malloc's heap (see pool.c) and kept once made (reused by later connections), so a pool holds
 * the high-water mark of its objects while any of them is in use; a pool
 * with none in use gives all its slabs back in wsc_pool_release_idle (the
 * queue arrays of a presence storm, say, once every queue has drained).
 * Single-threaded (the loop thread); pools are static objects (the first
 * slab links the pool into a list of every pool, for release_idle).
 */
#ifndef WSC_BASE_POOL_H
#define WSC_BASE_POOL_H

#include <stddef.h>

#define WSC_POOL_SLAB_BYTES (64 * 1024)

typedef struct wsc_pool {
  size_t size;        /* object size, rounded up to a pointer's alignment */
  void *free_list;    /* freed objects, linked through their first word */
  char *slab;         /* current slab: objects after `used` never handed out */
  size_t used, cap;   /* bytes of the current slab handed out / in it */
  size_t live;        /* objects handed out and not freed */
  struct wsc_pool *next_pool;  /* the list of pools that made a slab */
  int listed;
} wsc_pool_t;

#define WSC_POOL_INIT_SIZE(bytes) {.size = ((bytes) + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *)}
#define WSC_POOL_INIT(type) WSC_POOL_INIT_SIZE(sizeof(type))

/* A zeroed object, or NULL when out of memory. */
void *wsc_pool_alloc(wsc_pool_t *p);
/* Returns an object to its pool (NULL is ignored). */
void wsc_pool_free(wsc_pool_t *p, void *obj);
/* Frees the slabs of every pool that has no object in use; returns the
 * bytes given back to the kernel. */
size_t wsc_pool_release_idle(void);

/* Size classes: blocks of 16 << k bytes up to WSC_POOL_CLASS_MAX, each
 * class a pool, for long-lived objects whose size varies (a room and its
 * name, a room's member array as it grows). Bigger requests are malloc'd.
 * The caller gives the request's size back to free (the class is found
 * from it); an object that grows takes a new block and frees the old. */
#define WSC_POOL_CLASS_MIN 16
#define WSC_POOL_CLASS_MAX 4096
/* The bytes a request of n gets (its class; n itself above the classes):
 * a growing array sizes itself to it. */
size_t wsc_pool_fit(size_t n);
/* A zeroed block of wsc_pool_fit(n) bytes, or NULL. */
void *wsc_pool_get(size_t n);
/* Frees a block from wsc_pool_get(n) (NULL is ignored). */
void wsc_pool_put(void *obj, size_t n);

#endif
