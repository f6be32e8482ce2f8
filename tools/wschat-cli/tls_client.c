/* tls_client — see tls_client.h. */
#include "tls_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_client {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *in, *out;  /* in: from the socket; out: to the socket */
  int ready;
  char err[256];
};

static void set_err(tls_client_t *t, const char *what) {
  unsigned long e = ERR_get_error();
  long v = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
  if (v != X509_V_OK)
    snprintf(t->err, sizeof t->err, "%s: certificate: %s", what, X509_verify_cert_error_string(v));
  else if (e)
    snprintf(t->err, sizeof t->err, "%s: %s", what, ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
  else
    snprintf(t->err, sizeof t->err, "%s", what);
  ERR_clear_error();
}

tls_client_t *tls_client_new(const char *host, const char *ca_file, int insecure, char *err,
                             size_t errlen) {
  tls_client_t *t = calloc(1, sizeof *t);
  if (!t) return snprintf(err, errlen, "out of memory"), NULL;
  t->ctx = SSL_CTX_new(TLS_client_method());
  if (!t->ctx) goto fail;
  SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
  if (!insecure) {
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
      snprintf(err, errlen, "cannot load CA certificates%s%s", ca_file ? " from " : "", ca_file ? ca_file : "");
      tls_client_free(t);
      return NULL;
    }
  }
  t->ssl = SSL_new(t->ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->in || !t->out) goto fail;
  SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both now */
  SSL_set_connect_state(t->ssl);
  SSL_set_tlsext_host_name(t->ssl, host);
  if (!insecure) SSL_set1_host(t->ssl, host);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_set_alpn_protos(t->ssl, alpn, sizeof alpn - 1);
  return t;
fail:
  snprintf(err, errlen, "TLS setup failed");
  if (t->in && !t->ssl) BIO_free(t->in);
  if (t->out && !t->ssl) BIO_free(t->out);
  tls_client_free(t);
  return NULL;
}

void tls_client_free(tls_client_t *t) {
  if (!t) return;
  SSL_free(t->ssl);
  SSL_CTX_free(t->ctx);
  free(t);
}

int tls_client_feed(tls_client_t *t, const uint8_t *data, size_t len, tls_plain_cb cb, void *ud) {
  if (len && BIO_write(t->in, data, (int)len) != (int)len) return set_err(t, "TLS buffer"), -1;
  if (!t->ready) {
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
      int e = SSL_get_error(t->ssl, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
      set_err(t, "TLS handshake failed");
      return -1;
    }
    t->ready = 1;
  }
  uint8_t buf[16384];
  for (;;) {
    int n = SSL_read(t->ssl, buf, sizeof buf);
    if (n > 0) {
      cb(ud, buf, (size_t)n);
      continue;
    }
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return snprintf(t->err, sizeof t->err, "TLS closed by the server"), -1;
    set_err(t, "TLS read failed");
    return -1;
  }
}

int tls_client_write(tls_client_t *t, const void *data, size_t len) {
  if (!t->ready) return snprintf(t->err, sizeof t->err, "TLS not ready"), -1;
  if ((size_t)BIO_ctrl_pending(t->out) > TLS_CLIENT_OUT_MAX)
    return snprintf(t->err, sizeof t->err, "TLS output over its limit"), -1;
  if (len == 0) return 0;
  int n = SSL_write(t->ssl, data, (int)len);
  if (n != (int)len) return set_err(t, "TLS write failed"), -1;
  return 0;
}

size_t tls_client_take(tls_client_t *t, char **out) {
  size_t n = (size_t)BIO_ctrl_pending(t->out);
  *out = NULL;
  if (n == 0) return 0;
  char *p = malloc(n);
  if (!p) return 0;
  int got = BIO_read(t->out, p, (int)n);
  if (got <= 0) {
    free(p);
    return 0;
  }
  *out = p;
  return (size_t)got;
}

int tls_client_ready(const tls_client_t *t) { return t->ready; }
const char *tls_client_error(const tls_client_t *t) { return t->err; }
