/* secure — see secure.h. */
#include "secure.h"

#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define INFLATE_MAX (1u << 20)

bool secure_opt_tls, secure_opt_deflate;

struct secure_tls {
  SSL *ssl;
  BIO *rbio, *wbio;
  bool established;
};

static SSL_CTX *g_ctx;
static uint64_t g_wire_in, g_wire_in_measured;

secure_tls *secure_tls_new(void) {
  if (!g_ctx) {
    g_ctx = SSL_CTX_new(TLS_client_method());
    if (!g_ctx) return NULL;
    SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(g_ctx, SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(g_ctx, alpn, sizeof alpn - 1);
  }
  secure_tls *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ssl = SSL_new(g_ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    SSL_free(t->ssl);
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    free(t);
    return NULL;
  }
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_connect_state(t->ssl);
  SSL_set_tlsext_host_name(t->ssl, "localhost");
  return t;
}

void secure_tls_free(secure_tls *t) {
  if (!t) return;
  SSL_free(t->ssl);
  free(t);
}

int secure_tls_feed(secure_tls *t, const uint8_t *d, size_t n) {
  return BIO_write(t->rbio, d, (int)n) == (int)n ? 0 : -1;
}

int secure_tls_handshake(secure_tls *t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->established = true;
    return 1;
  }
  int e = SSL_get_error(t->ssl, r);
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

bool secure_tls_established(const secure_tls *t) { return t->established; }

long secure_tls_read(secure_tls *t, uint8_t *out, size_t cap) {
  ERR_clear_error();
  int r = SSL_read(t->ssl, out, (int)cap);
  if (r > 0) return r;
  int e = SSL_get_error(t->ssl, r);
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

int secure_tls_write(secure_tls *t, const uint8_t *plain, size_t n) {
  ERR_clear_error();
  return SSL_write(t->ssl, plain, (int)n) == (int)n ? 0 : -1;
}

size_t secure_tls_pending(const secure_tls *t) { return BIO_ctrl_pending(t->wbio); }

size_t secure_tls_drain(secure_tls *t, uint8_t *out, size_t cap) {
  int r = BIO_read(t->wbio, out, (int)cap);
  return r > 0 ? (size_t)r : 0;
}

const char *secure_request_header(void) {
  return secure_opt_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "";
}

bool secure_response_accepts_deflate(const char *resp, size_t len) {
  static const char name[] = "sec-websocket-extensions:";
  for (size_t i = 0; i + sizeof name - 1 <= len; i++) {
    if ((i == 0 || resp[i - 1] == '\n') && strncasecmp(resp + i, name, sizeof name - 1) == 0) {
      const char *end = memchr(resp + i, '\n', len - i);
      size_t n = end ? (size_t)(end - (resp + i)) : len - i;
      for (size_t j = 0; j + 18 <= n; j++)
        if (strncasecmp(resp + i + j, "permessage-deflate", 18) == 0) return true;
    }
  }
  return false;
}

int secure_inflate(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len) {
  static z_stream zs;
  static bool ready;
  static uint8_t buf[INFLATE_MAX];
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  if (!ready) {
    if (inflateInit2(&zs, -15) != Z_OK) return -1;
    ready = true;
  } else if (inflateReset(&zs) != Z_OK) {
    return -1;
  }
  zs.next_out = buf;
  zs.avail_out = sizeof buf;
  zs.next_in = (Bytef *)in;
  zs.avail_in = (uInt)n;
  int r = inflate(&zs, Z_SYNC_FLUSH);
  if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) return -1;
  if (r != Z_STREAM_END) {
    zs.next_in = (Bytef *)tail;
    zs.avail_in = sizeof tail;
    r = inflate(&zs, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) return -1;
  }
  *out = buf;
  *out_len = sizeof buf - zs.avail_out;
  return 0;
}

void secure_count_in(size_t n, bool measuring) {
  g_wire_in += n;
  if (measuring) g_wire_in_measured += n;
}

void secure_report(uint64_t deliveries_measured) {
  printf("WIRE tls=%d deflate=%d wire_in_bytes=%" PRIu64 " wire_in_bytes_measured=%" PRIu64
         " wire_in_bytes_per_delivery=%.1f\n",
         secure_opt_tls, secure_opt_deflate, g_wire_in, g_wire_in_measured,
         deliveries_measured ? (double)g_wire_in_measured / (double)deliveries_measured : 0.0);
}

bool secure_opt_chat_text;

/* Chat-like filler: words drawn from a small vocabulary with a fixed seed,
 * spaces and a few punctuation marks; no JSON-special characters. It
 * compresses about as well as real chat text, unlike a repeated alphabet. */
void secure_chat_text(uint8_t *pad, size_t n) {
  static const char *const words[] = {
      "the", "a", "to", "and", "you", "I", "it", "is", "that", "of", "in", "we", "for", "this", "on",
      "have", "be", "are", "not", "with", "just", "so", "what", "can", "do", "but", "was", "me", "my",
      "at", "if", "all", "know", "think", "will", "yes", "no", "ok", "lol", "thanks", "please", "good",
      "time", "today", "tomorrow", "meeting", "deploy", "server", "room", "message", "chat", "build",
      "test", "release", "branch", "merge", "review", "coffee", "lunch", "later", "now", "again",
      "maybe", "sure", "great", "nice", "problem", "issue", "fixed", "broken", "works", "network",
      "latency", "users", "moment", "anyone", "here", "there", "again?", "really?", "done.", "right,",
      "wait,", "hmm", "about", "from", "should", "would", "could", "because", "after", "before",
      "weekend", "monday", "friday", "ticket", "log", "error", "version", "update", "link", "doc"};
  uint32_t x = 12345;
  size_t i = 0;
  while (i < n) {
    x = x * 1103515245u + 12345u;
    const char *w = words[(x >> 16) % (sizeof words / sizeof words[0])];
    for (const char *p = w; *p && i < n; p++) pad[i++] = (uint8_t)*p;
    if (i < n) pad[i++] = ' ';
  }
}
