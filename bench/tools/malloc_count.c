/* LD_PRELOAD shim for bench/profile.sh: counts malloc/calloc/realloc/free
 * calls of the process it is loaded into. `kill -USR2 PID` writes the
 * counts so far to the file named by MALLOC_COUNT_OUT (appending one line),
 * so a profile can take the difference over a measured window.
 *
 *   cc -O2 -shared -fPIC -o malloc_count.so malloc_count.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong n_malloc, n_calloc, n_realloc, n_free;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);

/* dlsym itself may call calloc before real_calloc is known: serve that
 * from a small static arena. */
static char bootstrap[4096];
static size_t bootstrap_used;

static void *bootstrap_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (bootstrap_used + n > sizeof bootstrap) return NULL;
  void *p = bootstrap + bootstrap_used;
  bootstrap_used += n;
  return p;
}

static void on_usr2(int sig) {
  (void)sig;
  const char *path = getenv("MALLOC_COUNT_OUT");
  if (!path) return;
  char line[160];
  int n = snprintf(line, sizeof line, "malloc=%lu calloc=%lu realloc=%lu free=%lu\n",
                   atomic_load(&n_malloc), atomic_load(&n_calloc), atomic_load(&n_realloc),
                   atomic_load(&n_free));
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    if (write(fd, line, (size_t)n) < 0) { /* nothing to do */ }
    close(fd);
  }
}

__attribute__((constructor)) static void init(void) {
  real_malloc = dlsym(RTLD_NEXT, "malloc");
  real_calloc = dlsym(RTLD_NEXT, "calloc");
  real_realloc = dlsym(RTLD_NEXT, "realloc");
  real_free = dlsym(RTLD_NEXT, "free");
  signal(SIGUSR2, on_usr2);
}

void *malloc(size_t n) {
  if (!real_malloc) return bootstrap_alloc(n);
  atomic_fetch_add_explicit(&n_malloc, 1, memory_order_relaxed);
  return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
  if (!real_calloc) {
    void *p = bootstrap_alloc(a * b);
    if (p) memset(p, 0, a * b);
    return p;
  }
  atomic_fetch_add_explicit(&n_calloc, 1, memory_order_relaxed);
  return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  atomic_fetch_add_explicit(&n_realloc, 1, memory_order_relaxed);
  return real_realloc(p, n);
}

void free(void *p) {
  if (!p || ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap)) return;
  atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
  real_free(p);
}
