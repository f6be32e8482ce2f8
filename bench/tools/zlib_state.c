/* zlib_state — how much memory one zlib stream holds, by window size.
 *
 *   cc -O2 -o zlib_state bench/tools/zlib_state.c -lz && ./zlib_state
 *
 * For permessage-deflate's choice (docs/BENCHMARKS.md): with
 * client_no_context_takeover one inflate stream per loop serves every
 * connection (0 bytes per idle connection); without it each connection
 * keeps an inflate stream, whose window zlib allocates on the first
 * message. This counts every byte zlib asks for (its zalloc hook) after
 * inflateInit2 and after inflating one 1 KiB chat-like message, per
 * windowBits, and the same for a deflate stream (memLevel 8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static size_t g_bytes;

static voidpf count_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  size_t n = (size_t)items * size;
  size_t *p = malloc(n + sizeof(size_t));
  if (!p) return NULL;
  *p = n;
  g_bytes += n;
  return p + 1;
}

static void count_free(voidpf opaque, voidpf address) {
  (void)opaque;
  size_t *p = (size_t *)address - 1;
  g_bytes -= *p;
  free(p);
}

int main(void) {
  char msg[1024];
  const char *words = "the quick brown fox jumps over the lazy dog while the room chats about lunch ";
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = words[i % strlen(words)];
  printf("windowBits inflate_after_init inflate_after_1KiB deflate_memLevel8_after_1KiB\n");
  for (int wb = 9; wb <= 15; wb++) {
    unsigned char z[2048];
    z_stream d = {.zalloc = count_alloc, .zfree = count_free};
    g_bytes = 0;
    deflateInit2(&d, 6, Z_DEFLATED, -wb, 8, Z_DEFAULT_STRATEGY);
    d.next_in = (Bytef *)msg;
    d.avail_in = sizeof msg;
    d.next_out = z;
    d.avail_out = sizeof z;
    deflate(&d, Z_SYNC_FLUSH);
    size_t zlen = sizeof z - d.avail_out;
    size_t deflate_bytes = g_bytes;
    deflateEnd(&d);

    z_stream s = {.zalloc = count_alloc, .zfree = count_free};
    g_bytes = 0;
    inflateInit2(&s, -wb);
    size_t init = g_bytes;
    unsigned char out[2048];
    s.next_in = z;
    s.avail_in = (uInt)zlen;
    s.next_out = out;
    s.avail_out = sizeof out;
    inflate(&s, Z_SYNC_FLUSH);
    printf("%d %zu %zu %zu\n", wb, init, g_bytes, deflate_bytes);
    inflateEnd(&s);
  }
  return 0;
}
