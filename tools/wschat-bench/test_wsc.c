/* Unit test for wsc.c (the bench's WebSocket client codec): the RFC 6455
 * handshake example, masking at any offset, and the parser giving the same
 * messages whether fed whole, byte by byte, or in odd-sized chunks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsc.h"

static int failures;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                     \
    }                                                                 \
  } while (0)

typedef struct {
  char log[4096];
  size_t len;
  int messages, controls;
} sink;

static void on_msg(void *ud, int op, uint8_t *d, size_t n, uint64_t total) {
  sink *s = ud;
  if (s->len >= sizeof s->log - 64) return;
  s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, "M%d:%llu:%.*s|", op,
                             (unsigned long long)total, (int)(n > 16 ? 16 : n), (const char *)d);
  s->messages++;
}
static void on_ctl(void *ud, int op, uint8_t *d, size_t n) {
  sink *s = ud;
  if (s->len >= sizeof s->log - 200) return;
  s->len += (size_t)snprintf(s->log + s->len, sizeof s->log - s->len, "C%d:%.*s|", op, (int)n, (const char *)d);
  s->controls++;
}
static const wsc_cb cb = {on_msg, on_ctl};

/* a server frame (unmasked unless mask != 0) */
static size_t put_frame(uint8_t *out, int fin, int op, const char *p, size_t n, uint32_t mask) {
  size_t h = 0;
  out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
  uint8_t mbit = mask ? 0x80 : 0;
  if (n < 126) out[h++] = (uint8_t)(mbit | n);
  else if (n <= 0xffff) { out[h++] = mbit | 126; out[h++] = (uint8_t)(n >> 8); out[h++] = (uint8_t)n; }
  else { out[h++] = mbit | 127; for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)((uint64_t)n >> (8 * i)); }
  if (mask) { memcpy(out + h, &mask, 4); h += 4; }
  memcpy(out + h, p, n);
  if (mask) wsc_mask(out + h, n, mask, 0);
  return h + n;
}

static void feed_in_chunks(const uint8_t *stream, size_t n, size_t chunk, sink *s, size_t keep) {
  wsc_parser p;
  wsc_parser_init(&p, keep);
  memset(s, 0, sizeof *s);
  uint8_t *copy = malloc(n);
  memcpy(copy, stream, n);
  for (size_t i = 0; i < n; i += chunk) {
    size_t k = n - i < chunk ? n - i : chunk;
    CHECK(wsc_feed(&p, copy + i, k, &cb, s) == 0);
  }
  free(copy);
  wsc_parser_free(&p);
}

int main(void) {
  /* RFC 6455 §1.3 example */
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
  CHECK(wsc_handshake_response(ok, strlen(ok), key) == (long)strlen(ok) - 4);
  CHECK(wsc_handshake_response(ok, 40, key) == 0);
  const char *bad = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
  CHECK(wsc_handshake_response(bad, strlen(bad), key) == -2);
  const char *notup = "HTTP/1.1 404 Not Found\r\n\r\n";
  CHECK(wsc_handshake_response(notup, strlen(notup), key) == -1);

  /* masking: any split point gives the same bytes as one pass */
  uint8_t a[100], b[100];
  for (int i = 0; i < 100; i++) a[i] = b[i] = (uint8_t)i;
  wsc_mask(a, 100, 0x12345678u, 0);
  for (size_t cut = 0; cut <= 100; cut += 7) {
    memcpy(b, a, 100);
    wsc_mask(b, cut, 0x12345678u, 0);
    wsc_mask(b + cut, 100 - cut, 0x12345678u, cut);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= b[i] == (uint8_t)i;
    CHECK(same);
  }

  /* header of a client frame */
  uint8_t h[14];
  CHECK(wsc_frame_header(h, WSC_TEXT, 5, 1) == 6 && h[0] == 0x81 && h[1] == 0x85);
  CHECK(wsc_frame_header(h, WSC_TEXT, 300, 1) == 8 && h[1] == (0x80 | 126) && h[2] == 1 && h[3] == 44);
  CHECK(wsc_frame_header(h, WSC_TEXT, 70000, 1) == 14 && h[1] == (0x80 | 127));

  /* a stream: small, fragmented with a ping in between, 16-bit, 64-bit length, masked */
  static uint8_t stream[200000];
  size_t n = 0;
  n += put_frame(stream + n, 1, WSC_TEXT, "hello", 5, 0);
  n += put_frame(stream + n, 0, WSC_TEXT, "frag", 4, 0);
  n += put_frame(stream + n, 1, WSC_PING, "pp", 2, 0);
  n += put_frame(stream + n, 1, WSC_CONT, "mented", 6, 0);
  char big[300];
  memset(big, 'x', sizeof big);
  n += put_frame(stream + n, 1, WSC_TEXT, big, sizeof big, 0);
  static char huge[70000];
  memset(huge, 'y', sizeof huge);
  n += put_frame(stream + n, 1, WSC_BINARY, huge, sizeof huge, 0);
  n += put_frame(stream + n, 1, WSC_TEXT, "masked!", 7, 0xa1b2c3d4u);
  n += put_frame(stream + n, 1, WSC_TEXT, "", 0, 0);

  sink whole, s;
  feed_in_chunks(stream, n, n, &whole, 1 << 20);
  CHECK(whole.messages == 6 && whole.controls == 1);
  CHECK(strstr(whole.log, "M1:5:hello|") == whole.log);
  CHECK(strstr(whole.log, "C9:pp|M1:10:fragmented|") != NULL);
  CHECK(strstr(whole.log, "M1:7:masked!|M1:0:|") != NULL);
  size_t chunks[] = {1, 2, 3, 5, 13, 126, 4096};
  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
    feed_in_chunks(stream, n, chunks[i], &s, 1 << 20);
    CHECK(s.len == whole.len && memcmp(s.log, whole.log, s.len) == 0);
  }
  /* keep_max: an oversized message is reported with its real length */
  feed_in_chunks(stream, n, 1000, &s, 1024);
  CHECK(strstr(s.log, "M2:70000:") != NULL);

  /* protocol errors: reserved bits, fragmented control frame, stray continuation */
  uint8_t e1[] = {0xC1, 0x00}, e2[] = {0x09, 0x00}, e3[] = {0x80, 0x00};
  wsc_parser p;
  wsc_parser_init(&p, 1024);
  CHECK(wsc_feed(&p, e1, 2, &cb, &s) < 0);
  wsc_parser_init(&p, 1024);
  CHECK(wsc_feed(&p, e2, 2, &cb, &s) < 0);
  wsc_parser_init(&p, 1024);
  CHECK(wsc_feed(&p, e3, 2, &cb, &s) < 0);
  wsc_parser_free(&p);

  if (failures) {
    fprintf(stderr, "test_wsc: %d failures\n", failures);
    return 1;
  }
  printf("test_wsc: ok\n");
  return 0;
}
