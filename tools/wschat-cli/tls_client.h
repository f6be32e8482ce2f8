/* tls_client — the client side of TLS for wschat-cli, without sockets.
 *
 * OpenSSL over two memory BIOs: the caller feeds the bytes the socket read
 * (tls_client_feed, which runs the handshake and hands up plaintext),
 * writes plaintext (tls_client_write), and sends what tls_client_take
 * returns. The server's certificate is verified against the system's CAs
 * or --ca FILE, and its name against the host (SNI sent); --insecure skips
 * the verification. The object owns its SSL; tls_client_free frees it.
 */
#ifndef WSCLI_TLS_CLIENT_H
#define WSCLI_TLS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define TLS_CLIENT_OUT_MAX (4 << 20) /* ciphertext waiting for the socket, at most */

typedef struct tls_client tls_client_t;
typedef void (*tls_plain_cb)(void *ud, uint8_t *data, size_t len);

/* NULL with a message in err on failure. */
tls_client_t *tls_client_new(const char *host, const char *ca_file, int insecure, char *err,
                             size_t errlen);
void tls_client_free(tls_client_t *t);
/* Ciphertext in (len 0 to start the handshake); plaintext out through cb.
 * Returns 0, or -1 with tls_client_error() set (verification failures
 * included). */
int tls_client_feed(tls_client_t *t, const uint8_t *data, size_t len, tls_plain_cb cb, void *ud);
/* Plaintext to send; only once the handshake is done. Returns 0 or -1. */
int tls_client_write(tls_client_t *t, const void *data, size_t len);
/* Ciphertext to send: *out (malloc'd, caller frees) and its length; 0 if none. */
size_t tls_client_take(tls_client_t *t, char **out);
int tls_client_ready(const tls_client_t *t);
const char *tls_client_error(const tls_client_t *t);

#endif
