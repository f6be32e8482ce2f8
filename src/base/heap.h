/* base/heap — gives the heap's free pages back to the kernel after a burst.
 *
 * Why: a storm of connections (presence queues, join replies, handshakes)
 * allocates and frees a lot of short-lived memory between the long-lived
 * objects. malloc keeps those freed pages resident, so after the storm the
 * process holds them as if they were in use (the bytes per idle connection
 * of docs/PERFORMANCE.md). The owner calls wsc_heap_tidy every
 * WSC_HEAP_TIDY_MS; when the heap's use has stopped growing (by more than
 * WSC_HEAP_TIDY_MIN / 16 since the last call: the burst is over) and at least WSC_HEAP_TIDY_MIN bytes were freed since the last
 * tidy, it frees idle pools' slabs (base/pool) and calls malloc_trim(0),
 * which returns every free whole page inside the heap (MADV_DONTNEED).
 *
 * Cost: reading malloc's counters walks its free lists (microseconds); a
 * trim happens once per burst, not once per call. glibc only (elsewhere it
 * does nothing; under ASan malloc is ASan's and the counters stay still).
 * Single-threaded: one watch per process, the loop thread.
 */
#ifndef WSC_BASE_HEAP_H
#define WSC_BASE_HEAP_H

#include <stddef.h>

#define WSC_HEAP_TIDY_MS 500                /* how often the owner calls wsc_heap_tidy */
#define WSC_HEAP_TIDY_MIN (1024 * 1024)     /* freed bytes worth a trim */

typedef struct wsc_heap_watch {
  size_t last_used;   /* heap bytes in use at the previous call */
  size_t free_base;   /* free heap bytes right after the last tidy */
  unsigned trims;     /* tidies done (for tests and logs) */
} wsc_heap_watch_t;

/* Returns 1 when it trimmed, else 0. */
int wsc_heap_tidy(wsc_heap_watch_t *w);

/* The rule alone, on malloc's counters (bytes in use and free inside the
 * heap), for tests: 1 when a tidy is due. Updates the watch. */
int wsc_heap_should_tidy(wsc_heap_watch_t *w, size_t used, size_t free_bytes);
/* Records a tidy done, with the counters after it. */
void wsc_heap_tidied(wsc_heap_watch_t *w, size_t used, size_t free_bytes);

#endif
