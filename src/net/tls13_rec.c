/* net/tls13_rec — see tls13_rec.h.
 *
 * Record (RFC 8446 5.2): header 0x17 0x0303 len (the AEAD's additional
 * data), then AEAD(key, iv XOR seq, content || inner type || zeros) with
 * a 16-byte tag. We never pad; the peer may, and the zeros are stripped.
 */
#include "net/tls13_rec.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

uint64_t tls13_rekey_after = TLS13_REKEY_AFTER;

typedef struct suite_info {
  uint16_t id;
  const char *cipher;
  const char *md;
  uint8_t key_len;
  uint8_t hash_len;
} suite_info_t;

static const suite_info_t SUITES[] = {
    {0x1301, "AES-128-GCM", "SHA256", 16, 32},
    {0x1302, "AES-256-GCM", "SHA384", 32, 48},
    {0x1303, "ChaCha20-Poly1305", "SHA256", 32, 32},
};
#define N_SUITES (sizeof SUITES / sizeof SUITES[0])

/* Fetched once (explicit fetches: an implicit one per init costs a
 * provider lookup each time). One AEAD context for the process. */
static EVP_CIPHER *g_cipher[N_SUITES];
static EVP_KDF *g_kdf;
static EVP_CIPHER_CTX *g_ctx;

static const suite_info_t *suite_of(uint16_t id, const EVP_CIPHER **cipher) {
  for (size_t i = 0; i < N_SUITES; i++) {
    if (SUITES[i].id != id) continue;
    if (cipher) {
      if (!g_cipher[i]) g_cipher[i] = EVP_CIPHER_fetch(NULL, SUITES[i].cipher, NULL);
      if (!g_cipher[i]) return NULL;
      *cipher = g_cipher[i];
    }
    return &SUITES[i];
  }
  return NULL;
}

static EVP_CIPHER_CTX *aead_ctx(void) {
  if (!g_ctx) g_ctx = EVP_CIPHER_CTX_new();
  return g_ctx;
}

/* Keys the one context for a record. The cipher is passed only when it
 * changes: with a cipher, OpenSSL 3.0 resets the context and allocates a
 * new provider context; with key and iv alone it just re-keys. */
static const EVP_CIPHER *g_ctx_cipher;

/* The tag through the parameter API: EVP_CIPHER_CTX_ctrl's AEAD tag
 * calls cost OpenSSL 3.0 a few hundred ns more per record. */
static int aead_tag(EVP_CIPHER_CTX *c, uint8_t *tag, int get) {
  OSSL_PARAM p[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, TLS13_TAG),
      OSSL_PARAM_construct_end(),
  };
  return (get ? EVP_CIPHER_CTX_get_params(c, p) : EVP_CIPHER_CTX_set_params(c, p)) == 1 ? 0 : -1;
}

static int aead_init(EVP_CIPHER_CTX *c, const EVP_CIPHER *cipher, const uint8_t *key, const uint8_t *nonce, int enc) {
  const EVP_CIPHER *set = cipher == g_ctx_cipher ? NULL : cipher;
  g_ctx_cipher = NULL;   /* unknown until this init succeeds */
  if (EVP_CipherInit_ex(c, set, NULL, key, nonce, enc) != 1) return -1;
  g_ctx_cipher = cipher;
  return 0;
}

size_t tls13_suite_hash_len(uint16_t suite) {
  const suite_info_t *si = suite_of(suite, NULL);
  return si ? si->hash_len : 0;
}

/* --- keys ------------------------------------------------------------------------- */

int tls13_expand_label(uint16_t suite, const uint8_t *secret, const char *label, uint8_t *out, size_t out_len) {
  const suite_info_t *si = suite_of(suite, NULL);
  size_t ll = strlen(label);
  if (!si || ll > 255 - 6 || out_len > 0xffff) return -1;
  /* HkdfLabel: uint16 length, opaque label<7..255> = "tls13 " + label,
   * opaque context<0..255> = "". */
  uint8_t info[2 + 1 + 255 + 1];
  size_t n = 0;
  info[n++] = (uint8_t)(out_len >> 8);
  info[n++] = (uint8_t)out_len;
  info[n++] = (uint8_t)(6 + ll);
  memcpy(info + n, "tls13 ", 6);
  n += 6;
  memcpy(info + n, label, ll);
  n += ll;
  info[n++] = 0;
  if (!g_kdf) g_kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  if (!g_kdf) return -1;
  EVP_KDF_CTX *k = EVP_KDF_CTX_new(g_kdf);
  if (!k) return -1;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)si->md, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, si->hash_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_end(),
  };
  int rc = EVP_KDF_derive(k, out, out_len, params) == 1 ? 0 : -1;
  EVP_KDF_CTX_free(k);
  return rc;
}

/* A direction under `secret`: its key and iv, seq 0. */
static int dir_set(const tls13_rec_t *r, tls13_dir_t *d, const uint8_t *secret) {
  const suite_info_t *si = suite_of(r->suite, NULL);
  if (!si) return -1;
  if (secret != d->secret) memcpy(d->secret, secret, si->hash_len);
  d->seq = 0;
  if (tls13_expand_label(r->suite, d->secret, "key", d->key, si->key_len) != 0) return -1;
  return tls13_expand_label(r->suite, d->secret, "iv", d->iv, TLS13_IV);
}

/* KeyUpdate (RFC 8446 7.2): secret_N+1 = HKDF-Expand-Label(secret_N,
 * "traffic upd", "", Hash.length). */
static int dir_next(const tls13_rec_t *r, tls13_dir_t *d) {
  const suite_info_t *si = suite_of(r->suite, NULL);
  uint8_t next[TLS13_SECRET_MAX];
  if (!si || tls13_expand_label(r->suite, d->secret, "traffic upd", next, si->hash_len) != 0) return -1;
  memcpy(d->secret, next, si->hash_len);
  OPENSSL_cleanse(next, sizeof next);
  return dir_set(r, d, d->secret);
}

static void make_nonce(const tls13_dir_t *d, uint8_t nonce[TLS13_IV]) {
  memcpy(nonce, d->iv, TLS13_IV);
  for (int i = 0; i < 8; i++) nonce[TLS13_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

int tls13_rec_init(tls13_rec_t *r, uint16_t suite, const uint8_t *rd_secret,
                   const uint8_t *wr_secret, size_t secret_len, uint64_t wr_seq) {
  memset(r, 0, sizeof *r);
  const suite_info_t *si = suite_of(suite, NULL);
  if (!si || secret_len != si->hash_len) return -1;
  r->suite = suite;
  if (dir_set(r, &r->rd, rd_secret) != 0 || dir_set(r, &r->wr, wr_secret) != 0) {
    tls13_rec_clear(r);
    return -1;
  }
  r->wr.seq = wr_seq;
  return 0;
}

void tls13_rec_clear(tls13_rec_t *r) {
  free(r->part);
  OPENSSL_cleanse(r, sizeof *r);
}

/* --- open ------------------------------------------------------------------------- */

static int fail(tls13_rec_t *r, uint8_t alert) {
  r->alert = alert;
  return TLS13_REC_ERROR;
}

static size_t hdr_body_len(const tls13_rec_t *r) { return (size_t)r->hdr[3] << 8 | r->hdr[4]; }

/* Decrypts body[0..len) (ciphertext || tag) into plain. */
static int decrypt(const tls13_rec_t *r, const uint8_t *body, size_t len, uint8_t *plain, size_t *n) {
  const EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *c = aead_ctx();
  if (!c || !suite_of(r->suite, &cipher)) return -1;
  uint8_t nonce[TLS13_IV];
  make_nonce(&r->rd, nonce);
  size_t clen = len - TLS13_TAG;
  int outl = 0, fl = 0;
  if (aead_init(c, cipher, r->rd.key, nonce, 0) != 0) return -1;
  if (EVP_CipherUpdate(c, NULL, &outl, r->hdr, TLS13_HDR) != 1) return -1;
  if (EVP_CipherUpdate(c, plain, &outl, body, (int)clen) != 1) return -1;
  uint8_t tag[TLS13_TAG];
  memcpy(tag, body + clen, TLS13_TAG);
  if (aead_tag(c, tag, 0) != 0) return -1;
  if (EVP_CipherFinal_ex(c, plain + outl, &fl) != 1) return -1;
  if ((size_t)outl + (size_t)fl != clen) return -1;
  *n = clen;
  return 0;
}

/* One post-handshake handshake message: only KeyUpdate, alone in its
 * record (RFC 8446 5.1: messages before a key change end on a record
 * boundary; we also refuse one split over records, which nobody sends). */
static int on_handshake(tls13_rec_t *r, const uint8_t *m, size_t n) {
  if (n < 4 || m[0] != 24) return fail(r, TLS13_ALERT_UNEXPECTED_MESSAGE);
  if (m[1] != 0 || m[2] != 0 || m[3] != 1) return fail(r, TLS13_ALERT_DECODE_ERROR);
  if (n != 5) return fail(r, TLS13_ALERT_UNEXPECTED_MESSAGE);
  if (m[4] > 1) return fail(r, TLS13_ALERT_ILLEGAL_PARAMETER);
  if (dir_next(r, &r->rd) != 0) return fail(r, TLS13_ALERT_INTERNAL_ERROR);
  return m[4] == 1 ? TLS13_REC_UPDATE : TLS13_REC_NEED;
}

int tls13_rec_open(tls13_rec_t *r, const uint8_t **in, size_t *inlen, uint8_t *plain, size_t *plen) {
  *plen = 0;
  if (r->alert) return TLS13_REC_ERROR;
  for (;;) {
    if (r->hdr_len < TLS13_HDR) {
      size_t take = TLS13_HDR - r->hdr_len;
      if (take > *inlen) take = *inlen;
      memcpy(r->hdr + r->hdr_len, *in, take);
      r->hdr_len = (uint8_t)(r->hdr_len + take);
      *in += take;
      *inlen -= take;
      if (r->hdr_len < TLS13_HDR) return TLS13_REC_NEED;
      if (r->hdr[0] != TLS13_CT_APP) return fail(r, TLS13_ALERT_UNEXPECTED_MESSAGE);
      if (r->hdr[1] != 3 || r->hdr[2] != 3) return fail(r, TLS13_ALERT_DECODE_ERROR);
      size_t len = hdr_body_len(r);
      if (len > TLS13_MAX_CIPHER) return fail(r, TLS13_ALERT_RECORD_OVERFLOW);
      if (len < TLS13_TAG + 1) return fail(r, TLS13_ALERT_DECODE_ERROR);
    }
    size_t len = hdr_body_len(r);
    const uint8_t *body;
    if (!r->part && *inlen >= len) {
      body = *in;   /* whole in the input: decrypted from there */
      *in += len;
      *inlen -= len;
    } else {
      if (!r->part) {
        if (*inlen == 0) return TLS13_REC_NEED;
        r->part = malloc(len);
        if (!r->part) return fail(r, TLS13_ALERT_INTERNAL_ERROR);
        r->part_len = 0;
      }
      size_t take = len - r->part_len;
      if (take > *inlen) take = *inlen;
      memcpy(r->part + r->part_len, *in, take);
      r->part_len += (uint32_t)take;
      *in += take;
      *inlen -= take;
      if (r->part_len < len) return TLS13_REC_NEED;
      body = r->part;
    }
    size_t n = 0;
    int ok = r->rd.seq != UINT64_MAX && decrypt(r, body, len, plain, &n) == 0;
    free(r->part);
    r->part = NULL;
    r->part_len = 0;
    r->hdr_len = 0;
    if (!ok) return fail(r, TLS13_ALERT_BAD_RECORD_MAC);
    r->rd.seq++;
    while (n > 0 && plain[n - 1] == 0) n--;   /* padding */
    if (n == 0) return fail(r, TLS13_ALERT_UNEXPECTED_MESSAGE);
    uint8_t type = plain[--n];
    if (n > TLS13_MAX_PLAIN) return fail(r, TLS13_ALERT_RECORD_OVERFLOW);
    if (type == TLS13_CT_APP) {
      if (n == 0) continue;
      *plen = n;
      return TLS13_REC_DATA;
    }
    if (type == TLS13_CT_ALERT) {
      if (n != 2) return fail(r, TLS13_ALERT_DECODE_ERROR);
      if (plain[1] == TLS13_ALERT_CLOSE_NOTIFY) return TLS13_REC_CLOSE;
      r->peer_alert = plain[1];
      return fail(r, TLS13_ALERT_NONE);
    }
    if (type != TLS13_CT_HANDSHAKE) return fail(r, TLS13_ALERT_UNEXPECTED_MESSAGE);
    int rc = on_handshake(r, plain, n);
    if (rc != TLS13_REC_NEED) return rc;
  }
}

/* --- seal ------------------------------------------------------------------------- */

size_t tls13_rec_sealed_max(size_t plain) {
  size_t recs = (plain + TLS13_MAX_PLAIN - 1) / TLS13_MAX_PLAIN;
  size_t per = TLS13_HDR + 1 + TLS13_TAG;
  return plain + recs * per + (per + 5);   /* + a KeyUpdate of our own */
}

static int seal_fail(tls13_sealer_t *s) {
  s->err = 1;
  s->r->broken = 1;
  return -1;
}

/* Header and additional data of the next record. */
static int rec_start(tls13_sealer_t *s) {
  tls13_rec_t *r = s->r;
  const EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *c = aead_ctx();
  if (!c || !suite_of(r->suite, &cipher) || r->wr.seq == UINT64_MAX) return seal_fail(s);
  size_t rl = s->left < TLS13_MAX_PLAIN ? s->left : TLS13_MAX_PLAIN;
  size_t body = rl + 1 + TLS13_TAG;
  uint8_t *h = s->out + s->len;
  h[0] = TLS13_CT_APP;
  h[1] = 3;
  h[2] = 3;
  h[3] = (uint8_t)(body >> 8);
  h[4] = (uint8_t)body;
  uint8_t nonce[TLS13_IV];
  make_nonce(&r->wr, nonce);
  int outl;
  /* Keyed at the batch's first record, only the nonce after that: nothing
   * else uses the one context between begin and end, so it can never carry
   * another connection's key into this batch. */
  if (aead_init(c, cipher, s->keyed ? NULL : r->wr.key, nonce, 1) != 0) return seal_fail(s);
  s->keyed = 1;
  if (EVP_CipherUpdate(c, NULL, &outl, h, TLS13_HDR) != 1) return seal_fail(s);
  s->len += TLS13_HDR;
  s->in_rec = rl;
  return 0;
}

static int encrypt_piece(tls13_sealer_t *s, const uint8_t *p, size_t n) {
  int outl = 0;
  if (EVP_CipherUpdate(aead_ctx(), s->out + s->len, &outl, p, (int)n) != 1 || (size_t)outl != n)
    return seal_fail(s);
  s->len += n;
  return 0;
}

static int rec_finish(tls13_sealer_t *s) {
  EVP_CIPHER_CTX *c = aead_ctx();
  uint8_t type = s->type;
  int outl = 0;
  if (encrypt_piece(s, &type, 1) != 0) return -1;
  if (EVP_CipherFinal_ex(c, s->out + s->len, &outl) != 1 || outl != 0) return seal_fail(s);
  if (aead_tag(c, s->out + s->len, 1) != 0) return seal_fail(s);
  s->len += TLS13_TAG;
  s->r->wr.seq++;   /* this nonce is spent */
  return 0;
}

int tls13_seal_begin(tls13_sealer_t *s, tls13_rec_t *r, uint8_t type, size_t total, uint8_t *out) {
  memset(s, 0, sizeof *s);
  s->r = r;
  s->out = out;
  s->type = type;
  s->left = total;
  if (r->broken) return seal_fail(s);
  if (type == TLS13_CT_APP && total && r->wr.seq >= tls13_rekey_after) {
    size_t n;
    if (tls13_rec_key_update(r, 0, out, &n) != 0) return seal_fail(s);
    s->len = n;
  }
  return 0;
}

int tls13_seal_add(tls13_sealer_t *s, const uint8_t *p, size_t n) {
  if (s->err || n > s->left) return seal_fail(s);
  while (n) {
    if (s->in_rec == 0 && rec_start(s) != 0) return -1;
    size_t take = n < s->in_rec ? n : s->in_rec;
    if (encrypt_piece(s, p, take) != 0) return -1;
    p += take;
    n -= take;
    s->in_rec -= take;
    s->left -= take;
    if (s->in_rec == 0 && rec_finish(s) != 0) return -1;
  }
  return 0;
}

int tls13_seal_end(tls13_sealer_t *s, size_t *outlen) {
  *outlen = 0;
  if (s->err || s->left || s->in_rec) return seal_fail(s);
  *outlen = s->len;
  return 0;
}

int tls13_rec_seal(tls13_rec_t *r, uint8_t type, const uint8_t *p, size_t n, uint8_t *out, size_t *outlen) {
  tls13_sealer_t s;
  if (tls13_seal_begin(&s, r, type, n, out) != 0) return -1;
  if (n && tls13_seal_add(&s, p, n) != 0) return -1;
  return tls13_seal_end(&s, outlen);
}

int tls13_rec_key_update(tls13_rec_t *r, int request, uint8_t *out, size_t *outlen) {
  const uint8_t msg[5] = {24, 0, 0, 1, (uint8_t)(request ? 1 : 0)};
  if (tls13_rec_seal(r, TLS13_CT_HANDSHAKE, msg, sizeof msg, out, outlen) != 0) return -1;
  if (dir_next(r, &r->wr) != 0) {
    r->broken = 1;
    return -1;
  }
  return 0;
}

int tls13_rec_alert(tls13_rec_t *r, uint8_t desc, uint8_t *out, size_t *outlen) {
  const uint8_t msg[2] = {(uint8_t)(desc == TLS13_ALERT_CLOSE_NOTIFY ? 1 : 2), desc};
  return tls13_rec_seal(r, TLS13_CT_ALERT, msg, sizeof msg, out, outlen);
}
