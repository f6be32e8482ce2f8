/* secure — wss:// and permessage-deflate for wschat-bench's connections.
 *
 * TLS: one client SSL per connection over two memory BIOs (the bench is
 * not what is measured; simplicity wins). bench.c feeds what it reads
 * (secure_tls_feed), runs the handshake, reads plaintext, and before each
 * write turns its queued plaintext into records (secure_tls_seal: all of a
 * flush's plaintext in one SSL_write, so the client, like the server,
 * sends few records). Certificates are not verified: the benchmark talks
 * to a server on loopback with a self-signed certificate.
 *
 * Deflate: --deflate offers "permessage-deflate; client_max_window_bits";
 * when the 101 accepts it, RSV1 messages are inflated (a fresh stream per
 * message: the server never takes context over) before the checks.
 * Messages are sent uncompressed (always allowed).
 *
 * Bytes on the wire: every byte read from a socket during the measured
 * phase is counted, so the report can say bytes per delivery.
 */
#ifndef WSB_SECURE_H
#define WSB_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct secure_tls secure_tls;

/* Options (set from the command line). */
extern bool secure_opt_tls, secure_opt_deflate;

secure_tls *secure_tls_new(void);
void secure_tls_free(secure_tls *t);
/* Ciphertext read from the socket. */
int secure_tls_feed(secure_tls *t, const uint8_t *d, size_t n);
/* 1 done, 0 needs more input, -1 failed. */
int secure_tls_handshake(secure_tls *t);
bool secure_tls_established(const secure_tls *t);
/* Next plaintext: > 0 bytes into out, 0 none for now, -1 error or close. */
long secure_tls_read(secure_tls *t, uint8_t *out, size_t cap);
/* Encrypts plain[0..n) (once established). Returns 0 or -1. */
int secure_tls_write(secure_tls *t, const uint8_t *plain, size_t n);
/* Ciphertext waiting to be written. */
size_t secure_tls_pending(const secure_tls *t);
/* Moves up to cap bytes of it into out; returns the count. */
size_t secure_tls_drain(secure_tls *t, uint8_t *out, size_t cap);

/* The extension header line for the upgrade request ("" without --deflate). */
const char *secure_request_header(void);
/* 1 if the 101 response (its header block) accepted permessage-deflate. */
bool secure_response_accepts_deflate(const char *resp, size_t len);
/* Inflates one compressed message; *out valid until the next call. 0 or -1. */
int secure_inflate(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len);

/* --chat-text: fill the message padding with chat-like words. */
extern bool secure_opt_chat_text;
void secure_chat_text(uint8_t *pad, size_t n);

/* Wire accounting and the report line. */
void secure_count_in(size_t n, bool measuring);
void secure_report(uint64_t deliveries_measured);

#endif
