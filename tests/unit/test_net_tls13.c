/* net/tls + net/tls13_rec: the TLS 1.3 handover against a real OpenSSL
 * client (an in-memory SSL pair, no sockets): for each of the three suites
 * and 0, 1 or 3 session tickets, the client's first data arriving with its
 * Finished, our records read by OpenSSL and OpenSSL's read by us, KeyUpdate
 * both ways (the client's, requested and not, and our own after
 * tls13_rekey_after records), records split at every byte boundary, a
 * flipped bit -> bad_record_mac alert the client reads, close_notify both
 * ways, 1 MiB, TLS 1.2 staying on OpenSSL, and malformed records. The
 * certificate comes from the openssl command-line tool, in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/buf.h"
#include "net/tls.h"
#include "net/tls13_rec.h"

static char g_dir[64], g_cert[128], g_key[128];
static tls_alpn_t g_alpn;

static int setup_cert(void **st) {
  (void)st;
  snprintf(g_dir, sizeof g_dir, "/tmp/wschat-tls13-XXXXXX");
  if (!mkdtemp(g_dir)) return -1;
  snprintf(g_cert, sizeof g_cert, "%s/cert.pem", g_dir);
  snprintf(g_key, sizeof g_key, "%s/key.pem", g_dir);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s "
           "-days 2 -subj /CN=localhost >/dev/null 2>&1",
           g_key, g_cert);
  if (system(cmd) != 0) return -1;
  return tls_alpn_parse("h2,http/1.1", &g_alpn);
}

static int teardown_cert(void **st) {
  (void)st;
  unlink(g_cert);
  unlink(g_key);
  rmdir(g_dir);
  return 0;
}

/* --- a server connection (ours) and an OpenSSL client ------------------------------ */

typedef struct pair {
  tls_ctx_t *sctx;
  tls_t *srv;
  SSL_CTX *cctx;
  SSL *cli;
  BIO *to_cli;   /* the client reads from it */
  BIO *to_srv;   /* the client writes to it */
} pair_t;

/* What the server produced goes to the client's input. */
static void srv_output_to_client(pair_t *p) {
  wsc_buf_t *b = tls_take_output();
  if (!b) return;
  assert_int_equal(BIO_write(p->to_cli, wsc_buf_bytes(b), (int)b->len), (int)b->len);
  wsc_buf_unref(b);
}

/* Everything the client wrote so far, taken out of its BIO. */
static size_t client_output(pair_t *p, uint8_t *buf, size_t cap) {
  int n = BIO_read(p->to_srv, buf, (int)cap);
  return n > 0 ? (size_t)n : 0;
}

/* Feeds in[0..n) to the server: reads everything, appending plaintext to
 * got (if given). Returns the last tls_read result. */
static int srv_feed(pair_t *p, const uint8_t *in, size_t n, uint8_t *got, size_t *got_len, size_t got_cap) {
  tls_input(in, n);
  int r;
  for (;;) {
    uint8_t *d;
    size_t dn;
    r = tls_read(p->srv, &d, &dn);
    if (r != TLS_OK) break;
    if (got) {
      assert_true(*got_len + dn <= got_cap);
      memcpy(got + *got_len, d, dn);
      *got_len += dn;
    }
  }
  tls_input(NULL, 0);
  srv_output_to_client(p);
  return r;
}

static uint8_t g_io[1 << 21];

/* Client writes msg; the server reads it back exactly. */
static void client_to_server(pair_t *p, const char *msg) {
  size_t len = strlen(msg);
  assert_int_equal(SSL_write(p->cli, msg, (int)len), (int)len);
  size_t n = client_output(p, g_io, sizeof g_io);
  uint8_t got[256];
  size_t got_len = 0;
  assert_int_equal(srv_feed(p, g_io, n, got, &got_len, sizeof got), TLS_AGAIN);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, msg, len);
}

/* Server sends bufs; the client reads exactly their concatenation. */
static void server_to_client(pair_t *p, const char *const *msgs, int n) {
  wsc_buf_t *bufs[16];
  char want[4096];
  size_t want_len = 0;
  for (int i = 0; i < n; i++) {
    bufs[i] = wsc_buf_from(0, msgs[i], strlen(msgs[i]));
    memcpy(want + want_len, msgs[i], strlen(msgs[i]));
    want_len += strlen(msgs[i]);
  }
  assert_int_equal(tls_write(p->srv, bufs, (uint32_t)n), 0);
  for (int i = 0; i < n; i++) wsc_buf_unref(bufs[i]);
  srv_output_to_client(p);
  char got[4096];
  size_t got_len = 0;
  while (got_len < want_len) {
    int r = SSL_read(p->cli, got + got_len, (int)(sizeof got - got_len));
    assert_true(r > 0);
    got_len += (size_t)r;
  }
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got, want, want_len);
}

/* Handshake; the client's first message goes in the same input as its
 * Finished. */
static void pair_open(pair_t *p, const char *suite, int max_version, int tickets, const char *first) {
  memset(p, 0, sizeof *p);
  char err[256];
  p->sctx = tls_ctx_new(g_cert, g_key, &g_alpn, err, sizeof err);
  assert_non_null(p->sctx);
  SSL_CTX_set_num_tickets(p->sctx, (size_t)tickets);
  p->srv = tls_new(p->sctx);
  assert_non_null(p->srv);
  p->cctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(p->cctx);
  SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
  if (suite) assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suite), 1);
  if (max_version) SSL_CTX_set_max_proto_version(p->cctx, max_version);
  p->cli = SSL_new(p->cctx);
  p->to_cli = BIO_new(BIO_s_mem());
  p->to_srv = BIO_new(BIO_s_mem());
  SSL_set_bio(p->cli, p->to_cli, p->to_srv);
  SSL_set_connect_state(p->cli);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_set_alpn_protos(p->cli, alpn, sizeof alpn - 1);
  int done = 0;
  for (int round = 0; round < 10 && !done; round++) {
    int cr = SSL_do_handshake(p->cli);
    if (cr == 1 && first) assert_int_equal(SSL_write(p->cli, first, (int)strlen(first)), (int)strlen(first));
    size_t n = client_output(p, g_io, sizeof g_io);
    tls_input(g_io, n);
    int r = tls_handshake(p->srv);
    assert_true(r == TLS_OK || r == TLS_AGAIN);
    if (r == TLS_OK) {
      done = 1;
      /* The rest of the input: the client's first data. */
      uint8_t got[256];
      size_t got_len = 0;
      for (;;) {
        uint8_t *d;
        size_t dn;
        int rr = tls_read(p->srv, &d, &dn);
        if (rr != TLS_OK) {
          assert_int_equal(rr, TLS_AGAIN);
          break;
        }
        memcpy(got + got_len, d, dn);
        got_len += dn;
      }
      if (first) {
        assert_int_equal(got_len, strlen(first));
        assert_memory_equal(got, first, got_len);
      }
    }
    tls_input(NULL, 0);
    srv_output_to_client(p);
  }
  assert_true(done);
  char proto[16];
  assert_string_equal(tls_protocol(p->srv, proto, sizeof proto), "http/1.1");
}

static void pair_close(pair_t *p) {
  tls_free(p->srv);
  tls_ctx_free(p->sctx);
  SSL_free(p->cli);
  SSL_CTX_free(p->cctx);
  wsc_buf_t *b = tls_take_output();
  if (b) wsc_buf_unref(b);
  ERR_clear_error();
}

static const char *const SUITES[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                     "TLS_CHACHA20_POLY1305_SHA256"};

/* --- tests ---------------------------------------------------------------------- */

static void test_handover_suites_and_tickets(void **st) {
  (void)st;
  static const int tickets[] = {0, 1, 3};
  for (size_t s = 0; s < 3; s++) {
    for (size_t k = 0; k < 3; k++) {
      pair_t p;
      pair_open(&p, SUITES[s], 0, tickets[k], "GET / HTTP/1.1\r\n\r\n");
      assert_true(tls_handed_over(p.srv));
      assert_string_equal(tls_version(p.srv), "TLSv1.3");
      const SSL_CIPHER *c = SSL_get_current_cipher(p.cli);
      assert_string_equal(SSL_CIPHER_standard_name(c), SUITES[s]);
      /* Our first record must have the seq after the tickets, or the
       * client's tag check fails. */
      const char *msgs[] = {"one", "two", "three"};
      server_to_client(&p, msgs, 3);
      client_to_server(&p, "ping");
      server_to_client(&p, msgs, 1);
      pair_close(&p);
    }
  }
}

static void test_key_update_both_ways(void **st) {
  (void)st;
  for (size_t s = 0; s < 3; s++) {
    pair_t p;
    pair_open(&p, SUITES[s], 0, 1, NULL);
    assert_true(tls_handed_over(p.srv));
    const char *msgs[] = {"before", "update"};
    server_to_client(&p, msgs, 2);
    for (int i = 0; i < 3; i++) {
      /* The client updates its key and asks for ours. */
      assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
      client_to_server(&p, "after the client's update");
      /* Our KeyUpdate (one record: 5 + 5 + 1 + 16 bytes) went out at once. */
      assert_int_equal(BIO_ctrl_pending(p.to_cli), TLS13_HDR + 5 + 1 + TLS13_TAG);
      server_to_client(&p, msgs, 2);   /* preceded by our KeyUpdate */
      /* Not requested: only the read key moves. */
      assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
      client_to_server(&p, "again");
      assert_int_equal(BIO_ctrl_pending(p.to_cli), 0);
      server_to_client(&p, msgs, 1);
    }
    /* Our own update after tls13_rekey_after records. */
    tls13_rekey_after = 2;
    for (int i = 0; i < 7; i++) server_to_client(&p, msgs, 1);
    tls13_rekey_after = TLS13_REKEY_AFTER;
    client_to_server(&p, "still fine");
    pair_close(&p);
  }
}

static void test_split_at_every_byte(void **st) {
  (void)st;
  for (size_t s = 0; s < 3; s++) {
    pair_t p;
    pair_open(&p, SUITES[s], 0, 1, NULL);
    const char *msg = "a message split at every byte of its record, header included";
    size_t len = strlen(msg);
    size_t rec_len = TLS13_HDR + len + 1 + TLS13_TAG;
    for (size_t cut = 0; cut <= rec_len; cut++) {
      assert_int_equal(SSL_write(p.cli, msg, (int)len), (int)len);
      size_t n = client_output(&p, g_io, sizeof g_io);
      assert_int_equal(n, rec_len);
      uint8_t got[256];
      size_t got_len = 0;
      assert_int_equal(srv_feed(&p, g_io, cut, got, &got_len, sizeof got), TLS_AGAIN);
      assert_int_equal(srv_feed(&p, g_io + cut, n - cut, got, &got_len, sizeof got), TLS_AGAIN);
      assert_int_equal(got_len, len);
      assert_memory_equal(got, msg, len);
    }
    /* One byte at a time, two records. */
    assert_int_equal(SSL_write(p.cli, msg, (int)len), (int)len);
    assert_int_equal(SSL_write(p.cli, msg, (int)len), (int)len);
    size_t n = client_output(&p, g_io, sizeof g_io);
    uint8_t got[256];
    size_t got_len = 0;
    for (size_t i = 0; i < n; i++) assert_int_equal(srv_feed(&p, g_io + i, 1, got, &got_len, sizeof got), TLS_AGAIN);
    assert_int_equal(got_len, 2 * len);
    const char *msgs[] = {"ok"};
    server_to_client(&p, msgs, 1);
    pair_close(&p);
  }
}

static void test_flipped_bit_is_bad_record_mac(void **st) {
  (void)st;
  for (size_t s = 0; s < 3; s++) {
    /* A bit in the body, in the tag, and in the header's type byte. */
    static const int where[] = {TLS13_HDR + 2, -1, 0};
    for (size_t w = 0; w < 3; w++) {
      pair_t p;
      pair_open(&p, SUITES[s], 0, 1, NULL);
      client_to_server(&p, "fine");
      assert_int_equal(SSL_write(p.cli, "tampered", 8), 8);
      size_t n = client_output(&p, g_io, sizeof g_io);
      size_t at = where[w] < 0 ? n - 1 : (size_t)where[w];
      g_io[at] ^= 0x10;
      assert_int_equal(srv_feed(&p, g_io, n, NULL, NULL, 0), TLS_ERROR);
      /* The client reads our fatal alert. */
      char buf[16];
      ERR_clear_error();
      assert_true(SSL_read(p.cli, buf, sizeof buf) <= 0);
      int reason = ERR_GET_REASON(ERR_peek_error());
      assert_int_equal(reason, w == 2 ? SSL_AD_REASON_OFFSET + SSL_AD_UNEXPECTED_MESSAGE
                                      : SSL_AD_REASON_OFFSET + SSL_AD_BAD_RECORD_MAC);
      pair_close(&p);
    }
  }
}

static void test_close_notify_both_ways(void **st) {
  (void)st;
  pair_t p;
  pair_open(&p, NULL, 0, 1, NULL);
  /* Ours: the client sees a clean end. */
  tls_shutdown(p.srv);
  srv_output_to_client(&p);
  char buf[16];
  assert_int_equal(SSL_read(p.cli, buf, sizeof buf), 0);
  assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
  /* Theirs: TLS_EOF. */
  SSL_shutdown(p.cli);
  size_t n = client_output(&p, g_io, sizeof g_io);
  assert_int_equal(srv_feed(&p, g_io, n, NULL, NULL, 0), TLS_EOF);
  pair_close(&p);
}

static void test_one_mebibyte(void **st) {
  (void)st;
  for (size_t s = 0; s < 3; s++) {
    pair_t p;
    pair_open(&p, SUITES[s], 0, 1, NULL);
    size_t big = 1 << 20;
    wsc_buf_t *bufs[3] = {wsc_buf_new(0, big), wsc_buf_from(0, "tail", 4), wsc_buf_from(0, "x", 1)};
    for (size_t i = 0; i < big; i++) wsc_buf_bytes(bufs[0])[i] = (uint8_t)(i * 7 + i / 251);
    bufs[0]->len = (uint32_t)big;
    assert_int_equal(tls_write(p.srv, bufs, 3), 0);
    wsc_buf_t *out = tls_take_output();
    assert_non_null(out);
    /* As few records as fit: 65 records (64 full + 1). */
    assert_int_equal(out->len, big + 5 + 65 * (TLS13_HDR + 1 + TLS13_TAG));
    assert_int_equal(BIO_write(p.to_cli, wsc_buf_bytes(out), (int)out->len), (int)out->len);
    wsc_buf_unref(out);
    size_t got = 0;
    while (got < big + 5) {
      int r = SSL_read(p.cli, g_io + got, (int)(sizeof g_io - got));
      assert_true(r > 0);
      got += (size_t)r;
    }
    assert_int_equal(got, big + 5);
    assert_memory_equal(g_io, wsc_buf_bytes(bufs[0]), big);
    assert_memory_equal(g_io + big, "tailx", 5);
    for (int i = 0; i < 3; i++) wsc_buf_unref(bufs[i]);
    /* And 1 MiB the other way. */
    for (size_t i = 0; i < big; i++) g_io[i] = (uint8_t)(i * 13);
    uint8_t *sent = malloc(big);
    memcpy(sent, g_io, big);
    assert_int_equal(SSL_write(p.cli, sent, (int)big), (int)big);
    size_t n = client_output(&p, g_io, sizeof g_io);
    uint8_t *recv = malloc(big);
    size_t rl = 0;
    assert_int_equal(srv_feed(&p, g_io, n, recv, &rl, big), TLS_AGAIN);
    assert_int_equal(rl, big);
    assert_memory_equal(recv, sent, big);
    free(sent);
    free(recv);
    pair_close(&p);
  }
}

static void test_tls12_stays_on_openssl(void **st) {
  (void)st;
  pair_t p;
  pair_open(&p, NULL, TLS1_2_VERSION, 1, NULL);
  assert_false(tls_handed_over(p.srv));
  assert_string_equal(tls_version(p.srv), "TLSv1.2");
  const char *msgs[] = {"over", "tls1.2"};
  server_to_client(&p, msgs, 2);
  client_to_server(&p, "fine");
  pair_close(&p);
}

/* --- the record layer alone: two ends with mirrored secrets ------------------------- */

static void rec_pair(tls13_rec_t *a, tls13_rec_t *b, uint16_t suite) {
  uint8_t s1[48], s2[48];
  for (int i = 0; i < 48; i++) {
    s1[i] = (uint8_t)i;
    s2[i] = (uint8_t)(0xa0 + i);
  }
  size_t hl = tls13_suite_hash_len(suite);
  assert_int_equal(tls13_rec_init(a, suite, s2, s1, hl, 0), 0);
  assert_int_equal(tls13_rec_init(b, suite, s1, s2, hl, 0), 0);
}

static int open_all(tls13_rec_t *b, const uint8_t *in, size_t n, uint8_t *plain, size_t *plen) {
  return tls13_rec_open(b, &in, &n, plain, plen);
}

/* msg sealed as one record of inner type `type` is refused with `alert`. */
static void expect_refused(uint16_t suite, uint8_t type, const uint8_t *msg, size_t n, uint8_t alert) {
  static uint8_t out[TLS13_MAX_CIPHER * 2], plain[TLS13_MAX_CIPHER];
  size_t len, pl;
  tls13_rec_t a, b;
  rec_pair(&a, &b, suite);
  assert_int_equal(tls13_rec_seal(&a, type, msg, n, out, &len), 0);
  assert_int_equal(open_all(&b, out, len, plain, &pl), TLS13_REC_ERROR);
  assert_int_equal(b.alert, alert);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);
}

static void test_record_rules(void **st) {
  (void)st;
  static uint8_t out[TLS13_MAX_CIPHER * 2], plain[TLS13_MAX_CIPHER];
  size_t n, pl;
  tls13_rec_t a, b;
  assert_int_equal(tls13_rec_init(&a, 0x1304, out, out, 32, 0), -1);   /* CCM: not ours */
  assert_int_equal(tls13_rec_init(&a, 0x1301, out, out, 48, 0), -1);   /* wrong length */

  /* Padding is stripped; zero-length data records are skipped. */
  rec_pair(&a, &b, 0x1301);
  uint8_t padded[8] = {'h', 'i', TLS13_CT_APP, 0, 0, 0, 0, 0};
  assert_int_equal(tls13_rec_seal(&a, 0, padded, sizeof padded, out, &n), 0);   /* inner by hand */
  assert_int_equal(open_all(&b, out, n, plain, &pl), TLS13_REC_DATA);
  assert_int_equal(pl, 2);
  assert_memory_equal(plain, "hi", 2);
  uint8_t empty[1] = {TLS13_CT_APP};
  assert_int_equal(tls13_rec_seal(&a, 0, empty, sizeof empty, out, &n), 0);
  assert_int_equal(tls13_rec_seal(&a, 0, padded, sizeof padded, out + n, &pl), 0);
  n += pl;
  assert_int_equal(open_all(&b, out, n, plain, &pl), TLS13_REC_DATA);   /* the empty one skipped */
  assert_int_equal(pl, 2);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);

  /* A record whose inner plaintext is all zeros: unexpected_message. */
  uint8_t zeros[4] = {0};
  expect_refused(0x1301, 0, zeros, sizeof zeros, TLS13_ALERT_UNEXPECTED_MESSAGE);
  /* A handshake message other than KeyUpdate: unexpected_message. */
  uint8_t nst[5] = {4, 0, 0, 1, 0};
  expect_refused(0x1302, TLS13_CT_HANDSHAKE, nst, sizeof nst, TLS13_ALERT_UNEXPECTED_MESSAGE);
  /* KeyUpdate with a bad request value, a bad length, or not alone in its record. */
  uint8_t ku[5] = {24, 0, 0, 1, 2};
  expect_refused(0x1303, TLS13_CT_HANDSHAKE, ku, sizeof ku, TLS13_ALERT_ILLEGAL_PARAMETER);
  uint8_t ku_len[5] = {24, 0, 0, 2, 0};
  expect_refused(0x1301, TLS13_CT_HANDSHAKE, ku_len, sizeof ku_len, TLS13_ALERT_DECODE_ERROR);
  uint8_t ku_two[10] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0};
  expect_refused(0x1301, TLS13_CT_HANDSHAKE, ku_two, sizeof ku_two, TLS13_ALERT_UNEXPECTED_MESSAGE);
  /* An alert that is not two bytes: decode_error. */
  expect_refused(0x1301, TLS13_CT_ALERT, ku, 3, TLS13_ALERT_DECODE_ERROR);
  /* A full record whose last non-zero byte is no content type we know. */
  static uint8_t big[TLS13_MAX_PLAIN];
  memset(big, 'x', sizeof big);
  expect_refused(0x1301, 0, big, sizeof big, TLS13_ALERT_UNEXPECTED_MESSAGE);

  /* A fatal alert from the peer: error, nothing to send. */
  rec_pair(&a, &b, 0x1301);
  assert_int_equal(tls13_rec_alert(&a, TLS13_ALERT_DECODE_ERROR, out, &n), 0);
  assert_int_equal(open_all(&b, out, n, plain, &pl), TLS13_REC_ERROR);
  assert_int_equal(b.alert, TLS13_ALERT_NONE);
  assert_int_equal(b.peer_alert, TLS13_ALERT_DECODE_ERROR);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);

  /* A header announcing more than 2^14+256: record_overflow, at once. */
  rec_pair(&a, &b, 0x1301);
  uint8_t hdr[5] = {0x17, 3, 3, (uint8_t)((TLS13_MAX_CIPHER + 1) >> 8), (uint8_t)(TLS13_MAX_CIPHER + 1)};
  assert_int_equal(open_all(&b, hdr, sizeof hdr, plain, &pl), TLS13_REC_ERROR);
  assert_int_equal(b.alert, TLS13_ALERT_RECORD_OVERFLOW);
  tls13_rec_clear(&b);
  /* An outer type other than application_data: unexpected_message. */
  rec_pair(&a, &b, 0x1301);
  uint8_t ccs[6] = {0x14, 3, 3, 0, 1, 1};
  assert_int_equal(open_all(&b, ccs, sizeof ccs, plain, &pl), TLS13_REC_ERROR);
  assert_int_equal(b.alert, TLS13_ALERT_UNEXPECTED_MESSAGE);
  /* Once failed, always failed. */
  assert_int_equal(open_all(&b, ccs, 0, plain, &pl), TLS13_REC_ERROR);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);

  /* Sequence exhaustion: no record with the last nonce, nothing after. */
  rec_pair(&a, &b, 0x1301);
  a.wr.seq = UINT64_MAX;
  assert_int_equal(tls13_rec_seal(&a, TLS13_CT_HANDSHAKE, ku, sizeof ku, out, &n), -1);
  assert_true(a.broken);
  a.wr.seq = 0;
  assert_int_equal(tls13_rec_seal(&a, TLS13_CT_APP, (const uint8_t *)"x", 1, out, &n), -1);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);
  rec_pair(&a, &b, 0x1301);
  assert_int_equal(tls13_rec_seal(&a, TLS13_CT_APP, (const uint8_t *)"x", 1, out, &n), 0);
  b.rd.seq = UINT64_MAX;
  assert_int_equal(open_all(&b, out, n, plain, &pl), TLS13_REC_ERROR);
  assert_int_equal(b.alert, TLS13_ALERT_BAD_RECORD_MAC);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);

  /* Pieces that do not add up to the announced total: refused, broken. */
  tls13_sealer_t s;
  uint8_t four[4] = {1, 2, 3, 4};
  rec_pair(&a, &b, 0x1301);
  assert_int_equal(tls13_seal_begin(&s, &a, TLS13_CT_APP, 10, out), 0);
  assert_int_equal(tls13_seal_add(&s, four, 4), 0);
  assert_int_equal(tls13_seal_end(&s, &n), -1);
  assert_true(a.broken);
  tls13_rec_clear(&a);
  tls13_rec_clear(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handover_suites_and_tickets),
      cmocka_unit_test(test_key_update_both_ways),
      cmocka_unit_test(test_split_at_every_byte),
      cmocka_unit_test(test_flipped_bit_is_bad_record_mac),
      cmocka_unit_test(test_close_notify_both_ways),
      cmocka_unit_test(test_one_mebibyte),
      cmocka_unit_test(test_tls12_stays_on_openssl),
      cmocka_unit_test(test_record_rules),
  };
  return cmocka_run_group_tests(tests, setup_cert, teardown_cert);
}
