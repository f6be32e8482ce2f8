/* net/tls13_rec — the TLS 1.3 record layer (RFC 8446 section 5), our own,
 * for connections whose handshake OpenSSL has finished.
 *
 * Why: an OpenSSL 3.0 SSL object costs ~15 KB per connection after the
 * handshake even with its record buffers released; an idle chat connection
 * needs only its traffic keys. So, like kernel TLS offload, net/tls lets
 * OpenSSL do the handshake, takes the two application traffic secrets,
 * frees the SSL and does the records here: a tls13_rec_t is 232 bytes.
 *
 * What it does: AEAD records with the three suites we enable
 * (TLS_AES_128_GCM_SHA256 0x1301, TLS_AES_256_GCM_SHA384 0x1302,
 * TLS_CHACHA20_POLY1305_SHA256 0x1303); keys and ivs from the secrets with
 * HKDF-Expand-Label (RFC 8446 7.1, 7.3); nonce = iv XOR sequence number
 * (5.3); KeyUpdate both ways (4.6.3): the peer's updates its read key, and
 * when the peer asks (update_requested) the caller sends ours; we update
 * our write key ourselves after TLS13_REKEY_AFTER records (5.5). Alerts:
 * close_notify is a clean end, any other alert ends the connection.
 * Anything else after the handshake (another handshake message, a record
 * over 2^14+256 bytes, a bad tag, an outer type other than
 * application_data, sequence exhaustion) is a fatal error whose alert the
 * caller seals with tls13_rec_alert and sends before closing.
 *
 * Sequence numbers (nonce safety): each direction's seq is the number of
 * records sealed/opened under its current key; it only grows, by exactly
 * one per record, and returns to 0 only with a new key. A failed seal
 * marks the record layer broken: nothing is sealed after it.
 *
 * Memory: per connection only keys, ivs, secrets (for KeyUpdate), seqs and
 * the suite, plus a partial-record buffer allocated only while a record is
 * incomplete (at most TLS13_MAX_CIPHER bytes) and freed when it completes.
 * The AEAD context is one per process (the event loop thread), keyed with
 * the connection's key once per seal batch (then only the nonce changes
 * per record) and for each record opened: a seal (begin .. end) must not
 * be interleaved with any other seal or open.
 *
 * Ownership: the caller owns the tls13_rec_t (embedded anywhere) and
 * calls tls13_rec_clear when done. Output goes to caller buffers sized
 * with tls13_rec_sealed_max.
 */
#ifndef WSC_NET_TLS13_REC_H
#define WSC_NET_TLS13_REC_H

#include <stddef.h>
#include <stdint.h>

#define TLS13_HDR 5                        /* record header bytes */
#define TLS13_TAG 16                       /* AEAD tag bytes, all three suites */
#define TLS13_MAX_PLAIN 16384              /* 2^14: record content, bytes */
#define TLS13_MAX_CIPHER (16384 + 256)     /* 2^14+256: record body, bytes */
#define TLS13_SECRET_MAX 48                /* SHA-384 */
#define TLS13_KEY_MAX 32
#define TLS13_IV 12
/* Records per write key before we update it ourselves: RFC 8446 5.5 puts
 * AES-GCM's limit at 2^24.5 full records; we stay well under. */
#define TLS13_REKEY_AFTER (1ull << 23)

/* Content types (inner, RFC 8446 5.1). */
enum { TLS13_CT_ALERT = 21, TLS13_CT_HANDSHAKE = 22, TLS13_CT_APP = 23 };
/* Alert descriptions we send (RFC 8446 6). */
enum {
  TLS13_ALERT_CLOSE_NOTIFY = 0,
  TLS13_ALERT_UNEXPECTED_MESSAGE = 10,
  TLS13_ALERT_BAD_RECORD_MAC = 20,
  TLS13_ALERT_RECORD_OVERFLOW = 22,
  TLS13_ALERT_ILLEGAL_PARAMETER = 47,
  TLS13_ALERT_DECODE_ERROR = 50,
  TLS13_ALERT_INTERNAL_ERROR = 80,
  TLS13_ALERT_NONE = 255,   /* the peer ended with an alert: send none */
};

typedef struct tls13_dir {
  uint64_t seq;                       /* records under the current key */
  uint8_t secret[TLS13_SECRET_MAX];   /* current traffic secret */
  uint8_t key[TLS13_KEY_MAX];
  uint8_t iv[TLS13_IV];
} tls13_dir_t;

typedef struct tls13_rec {
  tls13_dir_t rd, wr;
  uint8_t *part;        /* the incomplete record's body, or NULL */
  uint32_t part_len;    /* bytes of it received */
  uint16_t suite;       /* 0x1301, 0x1302, 0x1303 */
  uint8_t hdr[TLS13_HDR];
  uint8_t hdr_len;      /* header bytes of the next record received */
  uint8_t alert;        /* after TLS13_REC_ERROR: what to send */
  uint8_t peer_alert;   /* after TLS13_REC_ERROR with ALERT_NONE: what came */
  uint8_t broken;       /* a seal failed: never seal again */
} tls13_rec_t;

/* Results of tls13_rec_open. */
enum {
  TLS13_REC_NEED = 0,        /* input used up (a partial record is kept) */
  TLS13_REC_DATA = 1,        /* application data in plain[0..*plen) */
  TLS13_REC_CLOSE = 2,       /* close_notify */
  TLS13_REC_UPDATE = 3,      /* the peer asked for our KeyUpdate: send
                                tls13_rec_key_update before any other seal */
  TLS13_REC_ERROR = -1,      /* fatal: r->alert says what to send */
};

/* Sets up both directions from the application traffic secrets (both of
 * the suite's hash length). wr_seq: records the handshake already sent
 * under the write secret (session tickets). Returns 0, or -1 for a suite
 * we do not do or a wrong secret length. */
int tls13_rec_init(tls13_rec_t *r, uint16_t suite, const uint8_t *rd_secret,
                   const uint8_t *wr_secret, size_t secret_len, uint64_t wr_seq);
/* Frees the partial record and wipes the keys. */
void tls13_rec_clear(tls13_rec_t *r);
/* The suite's hash length (32 / 48), or 0 if not one of ours. */
size_t tls13_suite_hash_len(uint16_t suite);

/* Reads records from *in (advancing it); a record split over calls is
 * buffered. plain must hold TLS13_MAX_CIPHER bytes. Zero-length
 * application records are skipped. */
int tls13_rec_open(tls13_rec_t *r, const uint8_t **in, size_t *inlen, uint8_t *plain, size_t *plen);

/* Most ciphertext bytes sealing `plain` bytes can produce (records, plus a
 * KeyUpdate of our own). */
size_t tls13_rec_sealed_max(size_t plain);

/* Sealing `total` bytes of one content type given in pieces: records of
 * TLS13_MAX_PLAIN bytes, as few as fit, written to out (which must hold
 * tls13_rec_sealed_max(total) bytes). */
typedef struct tls13_sealer {
  tls13_rec_t *r;
  uint8_t *out;         /* output start */
  size_t len;           /* output bytes written */
  size_t left;          /* plaintext bytes still to come */
  size_t in_rec;        /* plaintext bytes still to come in this record */
  uint8_t type;
  uint8_t keyed;        /* the AEAD context holds r's write key */
  int err;
} tls13_sealer_t;

int tls13_seal_begin(tls13_sealer_t *s, tls13_rec_t *r, uint8_t type, size_t total, uint8_t *out);
int tls13_seal_add(tls13_sealer_t *s, const uint8_t *p, size_t n);
/* Returns 0 and *outlen, or -1 (then r is broken) if the pieces did not add
 * up to total or the cipher failed. */
int tls13_seal_end(tls13_sealer_t *s, size_t *outlen);
/* One piece: begin + add + end. */
int tls13_rec_seal(tls13_rec_t *r, uint8_t type, const uint8_t *p, size_t n, uint8_t *out, size_t *outlen);

/* Seals a KeyUpdate (request_update = request) under the current write
 * key, then moves to the next write key. out: tls13_rec_sealed_max(5). */
int tls13_rec_key_update(tls13_rec_t *r, int request, uint8_t *out, size_t *outlen);
/* Seals an alert (close_notify is a warning, others fatal). out:
 * tls13_rec_sealed_max(2). */
int tls13_rec_alert(tls13_rec_t *r, uint8_t desc, uint8_t *out, size_t *outlen);

/* HKDF-Expand-Label(secret, label, "", out_len) with the suite's hash
 * (exposed for the unit test's RFC 8448 vectors). Returns 0 or -1. */
int tls13_expand_label(uint16_t suite, const uint8_t *secret, const char *label, uint8_t *out, size_t out_len);

/* Tests may lower the write-key update threshold (default TLS13_REKEY_AFTER). */
extern uint64_t tls13_rekey_after;

#endif
