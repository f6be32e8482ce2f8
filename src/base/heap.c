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
  malloc_trim(0);
  mi = mallinfo2();
  LOG_DEBUG("heap", "trimmed used=%zu free=%zu pool_slabs_freed=%zu", (size_t)mi.uordblks,
            (size_t)mi.fordblks, pools);
  wsc_heap_tidied(w, now, mi.uordblks, mi.fordblks);
  return 1;
}
#else
int wsc_heap_tidy(wsc_heap_watch_t *w) {
  (void)w;
  return 0;
}
#endif
