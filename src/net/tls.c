/* net/tls — see tls.h.
 *
 * The BIO: one per SSL, holding nothing. Reads take bytes from the input
 * slice set by tls_input (the ciphertext net just read); when it is used
 * up, the read asks to be retried and SSL returns WANT_READ having kept
 * any partial record in its own (released-when-empty) buffer. Writes
 * append to g_out, a buffer that net takes with tls_take_output right
 * after the call that filled it. Everything runs on the loop thread.
 */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls13_rec.h"

/* Records per flush are packed from this much plaintext each. */
#define TLS_RECORD_PLAIN 16384
/* Ciphertext bytes per record beyond the plaintext (header, tag, type,
 * padding), rounded up; only used to size the output buffer up front. */
#define TLS_RECORD_OVERHEAD 64
#define TLS_OUT_MIN 4096
#define TLS_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

static const uint8_t *g_in;
static size_t g_in_len;
static wsc_buf_t *g_out;
static uint8_t g_plain[TLS13_MAX_CIPHER];   /* >= TLS_PLAIN_BUF */
static uint8_t g_stage[TLS_RECORD_PLAIN];
static BIO_METHOD *g_bio_method;

#define HAVE_RD 1   /* CLIENT_TRAFFIC_SECRET_0 captured */
#define HAVE_WR 2   /* SERVER_TRAFFIC_SECRET_0 captured */

struct tls {
  SSL *ssl;              /* the handshake; TLS 1.2 for life; NULL once handed over */
  const uint8_t *alpn;   /* the selected protocol: an entry of the server's list */
  uint8_t have;          /* HAVE_RD | HAVE_WR */
  uint8_t secret_len;
  tls13_rec_t rec;       /* TLS 1.3 records after the handover; before it,
                            the keylog callback parks the secrets here */
};

static void keylog(const SSL *ssl, const char *line);

/* --- the BIO -------------------------------------------------------------------- */

static int out_reserve(size_t more) {
  size_t need = (g_out ? g_out->len : 0) + more;
  if (g_out && need <= g_out->cap) return 0;
  size_t cap = g_out ? g_out->cap : 0;
  if (cap < TLS_OUT_MIN) cap = TLS_OUT_MIN;
  while (cap < need) cap *= 2;
  wsc_buf_t *b = wsc_buf_new(0, cap);
  if (!b) return -1;
  if (g_out) {
    memcpy(b->data, g_out->data, g_out->len);
    b->len = g_out->len;
    wsc_buf_unref(g_out);
  }
  g_out = b;
  return 0;
}

static int bio_write(BIO *b, const char *data, int len) {
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (out_reserve((size_t)len) != 0) return -1;
  memcpy(g_out->data + g_out->len, data, (size_t)len);
  g_out->len += (uint32_t)len;
  return len;
}

static int bio_read(BIO *b, char *data, int len) {
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (g_in_len == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = (size_t)len < g_in_len ? (size_t)len : g_in_len;
  memcpy(data, g_in, n);
  g_in += n;
  g_in_len -= n;
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return (long)g_in_len;
    case BIO_CTRL_WPENDING: return 0;
    default: return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method(void) {
  if (!g_bio_method) {
    g_bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wschat-net");
    if (!g_bio_method) return NULL;
    BIO_meth_set_write(g_bio_method, bio_write);
    BIO_meth_set_read(g_bio_method, bio_read);
    BIO_meth_set_ctrl(g_bio_method, bio_ctrl);
    BIO_meth_set_create(g_bio_method, bio_create);
  }
  return g_bio_method;
}

/* --- contexts ------------------------------------------------------------------- */

int tls_alpn_parse(const char *list, tls_alpn_t *out) {
  memset(out, 0, sizeof *out);
  const char *p = list;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (n == 0 || n > 255 || out->len + 1 + n > TLS_ALPN_MAX) return -1;
    out->wire[out->len++] = (uint8_t)n;
    memcpy(out->wire + out->len, p, n);
    out->len = (uint8_t)(out->len + n);
    p += n + (comma ? 1 : 0);
    if (comma && !*p) return -1;
  }
  return out->len ? 0 : -1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  const tls_alpn_t *alpn = arg;
  unsigned char *sel = NULL;
  unsigned char sel_len = 0;
  /* Server preference order: the first of ours the client offers. */
  if (SSL_select_next_proto(&sel, &sel_len, alpn->wire, alpn->len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  *outlen = sel_len;
  /* Remembered as our own list's entry: it outlives the SSL. */
  struct tls *t = SSL_get_app_data(ssl);
  for (size_t i = 0; t && i < alpn->len; i += 1u + alpn->wire[i])
    if (alpn->wire[i] == sel_len && memcmp(alpn->wire + i + 1, sel, sel_len) == 0) t->alpn = alpn->wire + i;
  return SSL_TLSEXT_ERR_OK;
}

static const char *g_err;

const char *tls_last_error(char *buf, size_t cap) {
  unsigned long e = ERR_get_error();
  if (!e && g_err) snprintf(buf, cap, "tls1.3 record: %s", g_err);
  else if (!e) snprintf(buf, cap, "unknown error");
  else ERR_error_string_n(e, buf, cap);
  ERR_clear_error();
  return buf;
}

static tls_ctx_t *fail(SSL_CTX *ctx, const char *what, const char *path, char *errbuf, size_t errcap) {
  char ossl[200];
  tls_last_error(ossl, sizeof ossl);
  snprintf(errbuf, errcap, "%s %s: %s", what, path, ossl);
  SSL_CTX_free(ctx);
  return NULL;
}

tls_ctx_t *tls_ctx_new(const char *cert, const char *key, const tls_alpn_t *alpn,
                       char *errbuf, size_t errcap) {
  ERR_clear_error();
  if (!bio_method()) return fail(NULL, "cannot create BIO method", "", errbuf, errcap);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return fail(NULL, "cannot create TLS context", "", errbuf, errcap);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* AES-128-GCM first (OpenSSL's default puts AES-256 first): as strong as
   * anyone needs here, and cheaper per record on every delivery. */
  SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES);
  /* No per-session state on the server: resumption by stateless ticket only. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
    return fail(ctx, "cannot load TLS certificate", cert, errbuf, errcap);
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
      return fail(ctx, "TLS key does not match the certificate, key", key, errbuf, errcap);
    return fail(ctx, "cannot load TLS key", key, errbuf, errcap);
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail(ctx, "TLS key does not match the certificate, key", key, errbuf, errcap);
  SSL_CTX_set_keylog_callback(ctx, keylog);
  if (alpn && alpn->len) SSL_CTX_set_alpn_select_cb(ctx, alpn_select, (void *)alpn);
  return ctx;
}

void tls_ctx_free(tls_ctx_t *ctx) { SSL_CTX_free(ctx); }

/* --- connections ------------------------------------------------------------------ */

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* OpenSSL's key log: "LABEL <client random> <secret>" in hex. We keep the
 * two application traffic secrets (the only public way to have them). */
static void keylog(const SSL *ssl, const char *line) {
  tls_t *t = SSL_get_app_data(ssl);
  static const char crts[] = "CLIENT_TRAFFIC_SECRET_0 ", srts[] = "SERVER_TRAFFIC_SECRET_0 ";
  if (!t) return;
  tls13_dir_t *d;
  uint8_t bit;
  if (strncmp(line, crts, sizeof crts - 1) == 0) {
    d = &t->rec.rd;
    bit = HAVE_RD;
  } else if (strncmp(line, srts, sizeof srts - 1) == 0) {
    d = &t->rec.wr;
    bit = HAVE_WR;
  } else {
    return;
  }
  const char *hex = strchr(line + sizeof crts - 1, ' ');
  if (!hex) return;
  hex++;
  size_t hl = strlen(hex);
  if (hl == 0 || hl % 2 || hl / 2 > TLS13_SECRET_MAX) return;
  if (t->secret_len && t->secret_len != hl / 2) return;
  for (size_t i = 0; i < hl / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return;
    d->secret[i] = (uint8_t)(hi << 4 | lo);
  }
  t->secret_len = (uint8_t)(hl / 2);
  t->have |= bit;
}

tls_t *tls_new(tls_ctx_t *ctx) {
  tls_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ssl = SSL_new(ctx);
  BIO *bio = t->ssl ? BIO_new(g_bio_method) : NULL;
  if (!bio) {
    SSL_free(t->ssl);
    free(t);
    return NULL;
  }
  SSL_set_bio(t->ssl, bio, bio);   /* one BIO both ways: SSL takes one reference */
  SSL_set_app_data(t->ssl, t);
  SSL_set_accept_state(t->ssl);
  return t;
}

void tls_free(tls_t *t) {
  if (!t) return;
  SSL_free(t->ssl);
  tls13_rec_clear(&t->rec);
  free(t);
}

int tls_handed_over(const tls_t *t) { return t->ssl == NULL; }

void tls_input(const uint8_t *in, size_t n) {
  g_in = in;
  g_in_len = n;
}

static int result(SSL *ssl, int r) {
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN: return TLS_EOF;
    default: return TLS_ERROR;
  }
}

/* The handover (TLS 1.3 only): the records become ours and the SSL goes.
 * Write seq: the records this last handshake step wrote (after reading
 * the client's Finished, a server writes only session tickets, under the
 * application key). Read seq 0: without read-ahead OpenSSL reads one
 * record at a time, so whatever follows the client's Finished is still in
 * the input, unread. When anything is not as expected the connection
 * simply stays on OpenSSL. */
static void handover(tls_t *t, size_t out_from) {
  SSL *ssl = t->ssl;
  const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
  if (SSL_version(ssl) != TLS1_3_VERSION || t->have != (HAVE_RD | HAVE_WR) || !cipher ||
      SSL_pending(ssl) || SSL_has_pending(ssl))
    return;
  uint16_t suite = SSL_CIPHER_get_protocol_id(cipher);
  size_t hl = tls13_suite_hash_len(suite);
  if (!hl || hl != t->secret_len) return;
  uint64_t sent = 0;
  size_t end = g_out ? g_out->len : 0, o = out_from;
  while (o < end) {
    const uint8_t *h = g_out->data + o;
    if (end - o < TLS13_HDR || h[0] != TLS13_CT_APP) return;
    o += TLS13_HDR + ((size_t)h[3] << 8 | h[4]);
    sent++;
  }
  if (o != end) return;
  uint8_t rd[TLS13_SECRET_MAX], wr[TLS13_SECRET_MAX];
  memcpy(rd, t->rec.rd.secret, hl);
  memcpy(wr, t->rec.wr.secret, hl);
  int rc = tls13_rec_init(&t->rec, suite, rd, wr, hl, sent);
  OPENSSL_cleanse(rd, sizeof rd);
  OPENSSL_cleanse(wr, sizeof wr);
  if (rc != 0) return;
  SSL_free(ssl);
  t->ssl = NULL;
}

int tls_handshake(tls_t *t) {
  ERR_clear_error();
  g_err = NULL;
  if (!t->ssl) return TLS_OK;
  size_t out_from = g_out ? g_out->len : 0;
  int r = SSL_do_handshake(t->ssl);
  if (r != 1) return result(t->ssl, r);
  handover(t, out_from);
  return TLS_OK;
}

static const char *alert_name(uint8_t a) {
  switch (a) {
    case TLS13_ALERT_UNEXPECTED_MESSAGE: return "unexpected_message";
    case TLS13_ALERT_BAD_RECORD_MAC: return "bad_record_mac";
    case TLS13_ALERT_RECORD_OVERFLOW: return "record_overflow";
    case TLS13_ALERT_ILLEGAL_PARAMETER: return "illegal_parameter";
    case TLS13_ALERT_DECODE_ERROR: return "decode_error";
    default: return "internal_error";
  }
}

/* Seals a fatal alert (or a close_notify) or a KeyUpdate into the output. */
static int rec_emit(tls_t *t, int what) {
  if (out_reserve(tls13_rec_sealed_max(5)) != 0) return -1;
  size_t n = 0;
  int rc = what < 0 ? tls13_rec_key_update(&t->rec, 0, g_out->data + g_out->len, &n)
                    : tls13_rec_alert(&t->rec, (uint8_t)what, g_out->data + g_out->len, &n);
  if (rc != 0) return -1;
  g_out->len += (uint32_t)n;
  return 0;
}

static int rec_read(tls_t *t, size_t *n) {
  for (;;) {
    switch (tls13_rec_open(&t->rec, &g_in, &g_in_len, g_plain, n)) {
      case TLS13_REC_DATA: return TLS_OK;
      case TLS13_REC_NEED: return TLS_AGAIN;
      case TLS13_REC_CLOSE: return TLS_EOF;
      case TLS13_REC_UPDATE:
        /* Ours goes out under the old key, before any more data. */
        if (rec_emit(t, -1) != 0) {
          g_err = "cannot send KeyUpdate";
          return TLS_ERROR;
        }
        continue;
      default:
        if (t->rec.alert == TLS13_ALERT_NONE) {
          g_err = "peer sent a fatal alert";
        } else {
          g_err = alert_name(t->rec.alert);
          rec_emit(t, t->rec.alert);   /* best effort */
        }
        return TLS_ERROR;
    }
  }
}

int tls_read(tls_t *t, uint8_t **out, size_t *n) {
  ERR_clear_error();
  g_err = NULL;
  *out = g_plain;
  *n = 0;
  if (!t->ssl) return rec_read(t, n);
  int r = SSL_read(t->ssl, g_plain, TLS_PLAIN_BUF);
  if (r > 0) {
    *n = (size_t)r;
    return TLS_OK;
  }
  return result(t->ssl, r);
}

/* SSL_write never stops half-way here: the BIO takes everything. */
static int write_all(SSL *ssl, const uint8_t *p, size_t n) {
  ERR_clear_error();
  return SSL_write(ssl, p, (int)n) == (int)n ? 0 : -1;
}

/* After the handover: every buffer is encrypted straight into the output,
 * records of 16 KiB packed across buffers. */
static int rec_write(tls_t *t, wsc_buf_t *const *bufs, uint32_t n, size_t total) {
  if (total == 0) return 0;
  if (out_reserve(tls13_rec_sealed_max(total)) != 0) return -1;
  tls13_sealer_t s;
  if (tls13_seal_begin(&s, &t->rec, TLS13_CT_APP, total, g_out->data + g_out->len) != 0) return -1;
  for (uint32_t i = 0; i < n; i++)
    if (bufs[i]->len && tls13_seal_add(&s, wsc_buf_bytes(bufs[i]), bufs[i]->len) != 0) return -1;
  size_t len;
  if (tls13_seal_end(&s, &len) != 0) return -1;
  g_out->len += (uint32_t)len;
  return 0;
}

int tls_write(tls_t *t, wsc_buf_t *const *bufs, uint32_t n) {
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) total += bufs[i]->len;
  if (!t->ssl) return rec_write(t, bufs, n, total);
  if (out_reserve(total + (total / TLS_RECORD_PLAIN + 1) * TLS_RECORD_OVERHEAD) != 0) return -1;
  SSL *ssl = t->ssl;
  size_t staged = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *p = wsc_buf_bytes(bufs[i]);
    size_t len = bufs[i]->len;
    /* A big buffer with nothing staged goes straight in (SSL cuts it into
     * full records); small ones are packed together. */
    if (staged == 0 && len >= TLS_RECORD_PLAIN) {
      size_t whole = len - len % TLS_RECORD_PLAIN;
      if (write_all(ssl, p, whole) != 0) return -1;
      p += whole;
      len -= whole;
    }
    while (len) {
      size_t take = TLS_RECORD_PLAIN - staged;
      if (take > len) take = len;
      memcpy(g_stage + staged, p, take);
      staged += take;
      p += take;
      len -= take;
      if (staged == TLS_RECORD_PLAIN) {
        if (write_all(ssl, g_stage, staged) != 0) return -1;
        staged = 0;
      }
    }
  }
  if (staged && write_all(ssl, g_stage, staged) != 0) return -1;
  return 0;
}

void tls_release_buffers(tls_t *t) {
  if (t->ssl) SSL_free_buffers(t->ssl);
}

void tls_shutdown(tls_t *t) {
  ERR_clear_error();
  if (!t->ssl) {
    if (!t->rec.broken) rec_emit(t, TLS13_ALERT_CLOSE_NOTIFY);
    return;
  }
  if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
}

wsc_buf_t *tls_take_output(void) {
  wsc_buf_t *b = g_out;
  g_out = NULL;
  if (b && b->len == 0) {
    wsc_buf_unref(b);
    return NULL;
  }
  return b;
}

const char *tls_protocol(const tls_t *t, char *buf, size_t cap) {
  if (!t->alpn || t->alpn[0] == 0 || t->alpn[0] >= cap) return NULL;
  memcpy(buf, t->alpn + 1, t->alpn[0]);
  buf[t->alpn[0]] = '\0';
  return buf;
}

const char *tls_version(const tls_t *t) { return t->ssl ? SSL_get_version(t->ssl) : "TLSv1.3"; }
