/* net/tls — TLS for net's connections, with OpenSSL, and no socket of its own.
 *
 * net reads ciphertext into its loop-wide buffer and hands it here; the
 * plaintext comes back into a second loop-wide buffer for the handler. On
 * flush, net hands the plaintext a connection is owed this loop iteration
 * (its queue of shared, encode-once buffers) and gets back ONE buffer of
 * ciphertext: the plaintext is packed into records of up to 16 KiB, so ten
 * small messages cost one record, not ten. Encryption is per connection,
 * at write time; the broadcast buffer itself stays shared.
 *
 * The handover (TLS 1.3): OpenSSL does the handshake; when it completes,
 * the connection's record layer moves to net/tls13_rec (like kernel TLS
 * offload) and the SSL object is freed: an idle TLS 1.3 connection then
 * holds 256 bytes (struct tls) instead of OpenSSL's ~15 KB. The secrets
 * come from OpenSSL's key log callback (the public way to get them); the
 * write sequence number is the number of records (session tickets) the
 * handshake's last step wrote, the read one is 0 (OpenSSL reads one record
 * at a time, so the client's first data is still in the input). TLS 1.2
 * connections stay on OpenSSL for life, as does any TLS 1.3 one where the
 * handover's conditions do not hold.
 *
 * Memory while on OpenSSL: each connection's SSL reads from and writes to
 * a custom BIO that holds nothing (reads come from the slice being
 * processed, writes go to a loop-wide output buffer that net takes at
 * once), and SSL_MODE_RELEASE_BUFFERS frees the record buffers whenever
 * they are empty.
 *
 * Contexts: tls_ctx_new loads a certificate chain and key (checked to
 * match) into a new SSL_CTX: TLS 1.2 and 1.3, no server session cache
 * (stateless tickets only), ALPN. A reload (SIGHUP) makes a new context
 * for new connections; each SSL holds a reference to its own SSL_CTX, so
 * existing connections keep the old one until they close.
 *
 * ALPN: the server's protocols in preference order (tls_alpn_t, e.g.
 * "h2,http/1.1"); the first of them the client also offers is selected.
 * A client that offers none of them, or no ALPN at all, gets no ALPN
 * (HTTP/1.1). The connection's handler asks net_conn_protocol() which one
 * was chosen.
 */
#ifndef WSC_NET_TLS_H
#define WSC_NET_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TLS_PLAIN_BUF (16 * 1024)   /* one record's plaintext at most */
#define TLS_ALPN_MAX 64             /* wire-format ALPN list, bytes */

typedef struct ssl_ctx_st tls_ctx_t;   /* OpenSSL's SSL_CTX */
typedef struct tls tls_t;              /* a connection's TLS: see above */

/* The server's ALPN protocols, in OpenSSL's wire format (length-prefixed). */
typedef struct tls_alpn {
  uint8_t wire[TLS_ALPN_MAX];
  uint8_t len;
} tls_alpn_t;

/* Parses "h2,http/1.1" into *out. Returns 0, or -1 if malformed/too long. */
int tls_alpn_parse(const char *list, tls_alpn_t *out);

/* Loads cert (PEM chain) and key (PEM) into a new context. On failure
 * returns NULL and *err says why in one line (static or in errbuf). alpn
 * must outlive the context. */
tls_ctx_t *tls_ctx_new(const char *cert, const char *key, const tls_alpn_t *alpn,
                       char *errbuf, size_t errcap);
void tls_ctx_free(tls_ctx_t *ctx);   /* drops the caller's reference */

/* A server-side TLS for a new connection, or NULL. */
tls_t *tls_new(tls_ctx_t *ctx);
void tls_free(tls_t *t);
/* 1 once a TLS 1.3 connection's records are ours (the SSL is gone). */
int tls_handed_over(const tls_t *t);

/* Results of tls_handshake / tls_read. */
enum {
  TLS_OK = 0,        /* handshake finished / all input consumed */
  TLS_AGAIN = 1,     /* needs more input */
  TLS_EOF = 2,       /* the peer sent close_notify */
  TLS_ERROR = -1,    /* a protocol error: close the connection */
};

/* Makes in[0..n) the input of the SSL calls that follow, until the next
 * tls_input. */
void tls_input(const uint8_t *in, size_t n);
/* Continues the handshake with the input. */
int tls_handshake(tls_t *t);
/* Decrypts the next chunk of plaintext into *out (a loop-wide buffer of at
 * most 16 KiB of plaintext, valid until the next call); *n = 0 with
 * TLS_AGAIN when the input is used up. May produce output (a KeyUpdate,
 * an alert): take it before the next TLS call. */
int tls_read(tls_t *t, uint8_t **out, size_t *n);
/* Encrypts bufs[0..n) (their bytes from off, len each) as few records as
 * fit. The ciphertext goes to the output buffer (tls_take_output). */
int tls_write(tls_t *t, wsc_buf_t *const *bufs, uint32_t n);
/* Frees the SSL's record buffers unless they hold data. SSL_read that
 * finds no input (WANT_READ) has just allocated a 16 KiB read buffer,
 * which RELEASE_BUFFERS alone would keep until the next record: call this
 * when the input is used up, so an idle connection keeps none. */
void tls_release_buffers(tls_t *t);
/* Queues a close_notify alert. */
void tls_shutdown(tls_t *t);
/* What the SSL calls produced since the last take (handshake messages,
 * records, alerts): a buffer with one reference for the caller, or NULL
 * when there is nothing. */
wsc_buf_t *tls_take_output(void);

/* The protocol selected by ALPN ("h2", "http/1.1"), or NULL. */
const char *tls_protocol(const tls_t *t, char *buf, size_t cap);
/* The negotiated version ("TLSv1.3") for logs. */
const char *tls_version(const tls_t *t);
/* The last OpenSSL error as one line (for logs); clears the queue. */
const char *tls_last_error(char *buf, size_t cap);

#endif
