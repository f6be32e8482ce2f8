/* base/heap — gives the heap's free pages back to the kernel after a burst.
 *
 * Why: a storm of connections (presence queues, join replies, handshakes)
 * allocates and frees a lot of short-lived memory between the long-lived
 * objects. malloc keeps those freed pages resident, so after the storm the
 * process holds them as if they were in use (the bytes per idle connection
 * of docs/PERFORMANCE.md). The owner calls wsc_heap_tidy every
 * WSC_HEAP_TIDY_MS. While the heap's use is not growing (by more than
 * WSC_HEAP_TIDY_MIN / 16 since the last call: the burst is over), pools
 * with no object in use give their slabs back (base/pool: the queue arrays
 * of a storm, once every queue has drained); and when they did, or at
 * least WSC_HEAP_TIDY_MIN bytes were freed since the last tidy, it empties
 * glibc's per-thread cache of freed chunks (which malloc counts as in use:
 * scattered over a storm's heap, they keep it in pieces; heap.c) and calls
 * malloc_trim(0), which returns every free whole page inside the heap
 * (MADV_DONTNEED). Holes trimmed once and then used and freed again do
 * not move the free total, so a heap with WSC_HEAP_TIDY_MIN free whose
 * counters changed is tidied again after WSC_HEAP_TIDY_AGAIN_MS; an idle
 * one is left alone.
 *
 * Cost: reading malloc's counters walks its free lists (microseconds); a
 * trim happens about once per burst (at most every WSC_HEAP_TIDY_AGAIN_MS
 * while the heap churns), not once per call. glibc only (elsewhere it
 * does nothing; under ASan malloc is ASan's and the counters stay still).
 * Single-threaded: one watch per process, the loop thread.
 */
#ifndef WSC_BASE_HEAP_H
#define WSC_BASE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define WSC_HEAP_TIDY_MS 500                /* how often the owner calls wsc_heap_tidy */
#define WSC_HEAP_TIDY_MIN (1024 * 1024)     /* freed bytes worth a trim */
#define WSC_HEAP_TIDY_AGAIN_MS 2000         /* a changed heap with that much free: again */
#define WSC_HEAP_TOP_KEEP (4 * 1024 * 1024) /* free bytes at the heap's top free() leaves there */
#define WSC_HEAP_TCACHE_BINS 64             /* glibc's tcache: sizes cached (its default) */
#define WSC_HEAP_TCACHE_COUNT 7             /* and chunks of each size (its default) */

typedef struct wsc_heap_watch {
  size_t last_used;   /* heap bytes in use at the previous call */
  size_t free_base;   /* free heap bytes after the last tidy, lowered as holes are reused */
  size_t used_at_tidy, free_at_tidy;   /* the counters right after the last tidy */
  int64_t tidied_ms;  /* when (mono ms) */
  unsigned trims;     /* tidies done (for tests and logs) */
} wsc_heap_watch_t;

/* Call once at start-up, before the traffic: lets free() keep
 * WSC_HEAP_TOP_KEEP at the heap's top (the tidy trims instead) and makes
 * the reserve that empties malloc's per-thread cache at each tidy
 * (see heap.c). */
void wsc_heap_start(void);
/* Returns 1 when it trimmed, else 0. */
int wsc_heap_tidy(wsc_heap_watch_t *w);

/* The rule alone, on malloc's counters (bytes in use and free inside the
 * heap), for tests: 1 when a tidy is due. Updates the watch. */
int wsc_heap_should_tidy(wsc_heap_watch_t *w, int64_t now_ms, size_t used, size_t free_bytes);
/* Records a tidy done, with the counters after it. */
void wsc_heap_tidied(wsc_heap_watch_t *w, int64_t now_ms, size_t used, size_t free_bytes);

#endif
