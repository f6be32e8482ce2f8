/* base/heap — see heap.h. */
#include "base/heap.h"

#include <stdlib.h>   /* defines __GLIBC__ on glibc */

#include "base/clock.h"
#include "base/log.h"
#include "base/pool.h"

int wsc_heap_should_tidy(wsc_heap_watch_t *w, int64_t now_ms, size_t used, size_t free_bytes) {
  int growing = used > w->last_used + WSC_HEAP_TIDY_MIN / 16;
  w->last_used = used;
  if (free_bytes < w->free_base) w->free_base = free_bytes;   /* holes were reused */
  if (growing || free_bytes < WSC_HEAP_TIDY_MIN) return 0;
  if (free_bytes - w->free_base >= WSC_HEAP_TIDY_MIN) return 1;
  /* Holes trimmed before may have been used and freed again (their pages
   * are back) without the free total moving: after a while, if anything
   * changed, tidy again. An idle heap (nothing changed) is left alone. */
  return now_ms - w->tidied_ms >= WSC_HEAP_TIDY_AGAIN_MS &&
         (used != w->used_at_tidy || free_bytes != w->free_at_tidy);
}

void wsc_heap_tidied(wsc_heap_watch_t *w, int64_t now_ms, size_t used, size_t free_bytes) {
  w->last_used = w->used_at_tidy = used;
  w->free_base = w->free_at_tidy = free_bytes;
  w->tidied_ms = now_ms;
  w->trims++;
}

#ifdef __GLIBC__
#include <malloc.h>

/* glibc's per-thread cache (tcache) keeps the last chunks freed of each
 * small size (WSC_HEAP_TCACHE_BINS sizes 16 bytes apart, up to
 * WSC_HEAP_TCACHE_COUNT of each) for the next malloc of that size. To
 * malloc_trim they are in use: after a storm, the last ~450 buffers it
 * freed (join replies, handshake answers, queue arrays) stay scattered
 * over the heap, each keeping its page and splitting a free stretch in
 * two (measured after 15,000 joins: ~440 chunks on ~200 pages, next to
 * half the free bytes left on resident pages). glibc has
 * no call to empty the cache, so the tidy moves it: it takes every cached
 * chunk out (malloc serves from the cache first), fills the cache with a
 * reserve of chunks made at start-up next to each other (free puts them
 * there), frees the chunks it took (the cache being full, they go back to
 * malloc's bins and coalesce with the free space around them), and takes
 * the reserve back out, leaving the cache empty. The reserve is ~240 KiB,
 * made once, on pages that stay in use. With other tcache settings (glibc
 * tunables) it does less, never harm: it only calls malloc and free. */
#define TCACHE_REQ(b) (24 + 16 * (size_t)(b))   /* the largest request of chunk size 32 + 16 b */

static void *g_reserve[WSC_HEAP_TCACHE_BINS][WSC_HEAP_TCACHE_COUNT];

void wsc_heap_start(void) {
  /* glibc gives the heap's top back to the kernel on every free() that
   * leaves more than 128 KiB free there (M_TRIM_THRESHOLD), and faults the
   * pages in again on the next malloc. A loop iteration that builds and
   * frees a burst (an HTTP/3 fan-out's packets and stream buffers) paid that
   * brk down and up every time (measured: 8.5% of the server's CPU per h3
   * delivery). Trimming is the tidy's job (below), once per burst, so free()
   * keeps up to WSC_HEAP_TOP_KEEP at the top. */
  mallopt(M_TRIM_THRESHOLD, WSC_HEAP_TOP_KEEP);
  for (size_t b = 0; b < WSC_HEAP_TCACHE_BINS; b++)
    for (size_t k = 0; k < WSC_HEAP_TCACHE_COUNT; k++)
      if (!g_reserve[b][k]) g_reserve[b][k] = malloc(TCACHE_REQ(b));
}

static void heap_empty_tcache(void) {
  void *cached[WSC_HEAP_TCACHE_COUNT];
  for (size_t b = 0; b < WSC_HEAP_TCACHE_BINS; b++) {
    size_t k, n = TCACHE_REQ(b);
    for (k = 0; k < WSC_HEAP_TCACHE_COUNT; k++) cached[k] = malloc(n);
    for (k = 0; k < WSC_HEAP_TCACHE_COUNT; k++) free(g_reserve[b][k]);
    for (k = 0; k < WSC_HEAP_TCACHE_COUNT; k++) free(cached[k]);
    for (k = 0; k < WSC_HEAP_TCACHE_COUNT; k++) g_reserve[b][k] = malloc(n);
  }
}

int wsc_heap_tidy(wsc_heap_watch_t *w) {
  struct mallinfo2 mi = mallinfo2();
  /* Calm: pools with nothing in use give their slabs back at once (the
   * queue arrays of a storm are idle once every queue has drained, which
   * may be after the burst's trim); their bytes count as freed. */
  size_t pools = 0;
  if (mi.uordblks <= w->last_used + WSC_HEAP_TIDY_MIN / 16 && (pools = wsc_pool_release_idle()) > 0)
    mi = mallinfo2();
  int64_t now = wsc_mono_ms();
  if (!wsc_heap_should_tidy(w, now, mi.uordblks, mi.fordblks) && !pools) return 0;
  heap_empty_tcache();
  malloc_trim(0);
  mi = mallinfo2();
  LOG_DEBUG("heap", "trimmed used=%zu free=%zu pool_slabs_freed=%zu", (size_t)mi.uordblks,
            (size_t)mi.fordblks, pools);
  wsc_heap_tidied(w, now, mi.uordblks, mi.fordblks);
  return 1;
}
#else
void wsc_heap_start(void) {}

int wsc_heap_tidy(wsc_heap_watch_t *w) {
  (void)w;
  return 0;
}
#endif
