/* base/heap — see heap.h. */
#include "base/heap.h"

#include <stdlib.h>   /* defines __GLIBC__ on glibc */

#include "base/log.h"
#include "base/pool.h"

int wsc_heap_should_tidy(wsc_heap_watch_t *w, size_t used, size_t free_bytes) {
  int growing = used > w->last_used + WSC_HEAP_TIDY_MIN / 16;
  w->last_used = used;
  if (free_bytes < w->free_base) w->free_base = free_bytes;   /* holes were reused */
  return !growing && free_bytes - w->free_base >= WSC_HEAP_TIDY_MIN;
}

void wsc_heap_tidied(wsc_heap_watch_t *w, size_t used, size_t free_bytes) {
  w->last_used = used;
  w->free_base = free_bytes;
  w->trims++;
}

#ifdef __GLIBC__
#include <malloc.h>

int wsc_heap_tidy(wsc_heap_watch_t *w) {
  struct mallinfo2 mi = mallinfo2();
  if (!wsc_heap_should_tidy(w, mi.uordblks, mi.fordblks)) return 0;
  size_t pools = wsc_pool_release_idle();
  malloc_trim(0);
  mi = mallinfo2();
  LOG_DEBUG("heap", "trimmed used=%zu free=%zu pool_slabs_freed=%zu", (size_t)mi.uordblks,
            (size_t)mi.fordblks, pools);
  wsc_heap_tidied(w, mi.uordblks, mi.fordblks);
  return 1;
}
#else
int wsc_heap_tidy(wsc_heap_watch_t *w) {
  (void)w;
  return 0;
}
#endif
