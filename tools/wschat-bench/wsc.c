#include "wsc.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void wsc_make_key(const uint8_t rnd[16], char out[WSC_KEY_LEN + 1]) {
  EVP_EncodeBlock((unsigned char *)out, rnd, 16);
  out[WSC_KEY_LEN] = '\0';
}

size_t wsc_handshake_request(char *out, size_t cap, const char *host, const char *path,
                             const char *key) {
  int n = snprintf(out, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n",
                   path, host, key);
  if (n < 0 || (size_t)n >= cap) return 0;
  return (size_t)n;
}

#define WSC_MAX_RESPONSE 8192

long wsc_handshake_response(const char *buf, size_t len, const char *key) {
  const char *end = NULL;
  for (size_t i = 3; i < len; i++) {
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
      end = buf + i + 1;
      break;
    }
  }
  if (!end) return len > WSC_MAX_RESPONSE ? -3 : 0;
  if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) return -1;

  char concat[WSC_KEY_LEN + sizeof WS_GUID];
  memcpy(concat, key, WSC_KEY_LEN);
  memcpy(concat + WSC_KEY_LEN, WS_GUID, sizeof WS_GUID - 1);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)concat, WSC_KEY_LEN + sizeof WS_GUID - 1, digest);
  char expect[32];
  EVP_EncodeBlock((unsigned char *)expect, digest, SHA_DIGEST_LENGTH); /* 28 chars */

  static const char name[] = "sec-websocket-accept:";
  const char *line = memchr(buf, '\n', (size_t)(end - buf));
  while (line && line + 1 < end) {
    line++;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) break;
    size_t ll = (size_t)(eol - line);
    if (ll > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
      const char *v = line + sizeof name - 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      const char *ve = eol;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      if ((size_t)(ve - v) == 28 && memcmp(v, expect, 28) == 0) return (long)(end - buf);
      return -2;
    }
    line = eol;
  }
  return -2;
}

size_t wsc_frame_header(uint8_t *out, int opcode, uint64_t len, uint32_t mask) {
  size_t n;
  out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
  if (len < 126) {
    out[1] = (uint8_t)(0x80 | len);
    n = 2;
  } else if (len <= 0xffff) {
    out[1] = 0x80 | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    n = 4;
  } else {
    out[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  memcpy(out + n, &mask, 4);
  return n + 4;
}

void wsc_mask(uint8_t *data, size_t len, uint32_t mask, size_t offset) {
  uint8_t m[4];
  memcpy(m, &mask, 4);
  size_t i = 0;
  /* bring the mask into phase, then a word at a time */
  offset &= 3;
  if (offset) {
    uint8_t r[4];
    for (int k = 0; k < 4; k++) r[k] = m[(offset + (size_t)k) & 3];
    memcpy(m, r, 4);
    memcpy(&mask, m, 4);
  }
  uint64_t m64 = (uint64_t)mask | ((uint64_t)mask << 32);
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, data + i, 8);
    w ^= m64;
    memcpy(data + i, &w, 8);
  }
  for (; i < len; i++) data[i] ^= m[i & 3];
}

void wsc_parser_init(wsc_parser *p, size_t keep_max) {
  memset(p, 0, sizeof *p);
  p->hdr_need = 2;
  p->keep_max = keep_max;
}

void wsc_parser_free(wsc_parser *p) {
  free(p->buf);
  p->buf = NULL;
  p->buf_cap = p->buf_len = 0;
}

static int buf_append(wsc_parser *p, const uint8_t *d, size_t n) {
  if (n == 0 || p->buf_len >= p->keep_max) return 0;
  if (n > p->keep_max - p->buf_len) n = p->keep_max - p->buf_len;
  if (p->buf_len + n > p->buf_cap) {
    size_t cap = p->buf_cap ? p->buf_cap : 512;
    while (cap < p->buf_len + n) cap *= 2;
    if (cap > p->keep_max) cap = p->keep_max;
    uint8_t *nb = realloc(p->buf, cap);
    if (!nb) return -2;
    p->buf = nb;
    p->buf_cap = cap;
  }
  memcpy(p->buf + p->buf_len, d, n);
  p->buf_len += n;
  return 0;
}

static int header_done(wsc_parser *p) {
  const uint8_t *h = p->hdr;
  if (h[0] & (p->allow_rsv1 ? 0x30 : 0x70)) return -1; /* RSV bits: only RSV1, with deflate */
  if ((h[0] & 0x40) && (h[0] & 0x0f) != WSC_TEXT && (h[0] & 0x0f) != WSC_BINARY) return -1;
  p->fin = h[0] >> 7;
  p->opcode = h[0] & 0x0f;
  p->masked = h[1] >> 7;
  uint64_t len = h[1] & 0x7f;
  size_t off = 2;
  if (len == 126) {
    len = ((uint64_t)h[2] << 8) | h[3];
    off = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
    off = 10;
  }
  if (p->masked) memcpy(&p->mask, h + off, 4);
  p->len = len;
  p->got = 0;
  if (p->opcode >= 8) {
    if (!p->fin || len > 125) return -1;
    p->ctrl_len = 0;
  } else if (p->opcode == WSC_CONT) {
    if (!p->msg_opcode) return -1;
  } else if (p->opcode == WSC_TEXT || p->opcode == WSC_BINARY) {
    if (p->msg_opcode) return -1;
    p->msg_opcode = p->opcode;
    p->msg_rsv1 = (h[0] & 0x40) != 0;
    p->msg_total = 0;
    p->buf_len = 0;
  } else {
    return -1;
  }
  return 0;
}

static void frame_done(wsc_parser *p, const wsc_cb *cb, void *ud) {
  if (p->opcode >= 8) {
    cb->on_control(ud, p->opcode, p->ctrl, p->ctrl_len);
  } else if (p->fin) {
    int op = p->msg_opcode;
    p->msg_opcode = 0;
    cb->on_message(ud, op, p->buf, p->buf_len, p->msg_total);
    p->buf_len = 0;
  }
  p->in_payload = 0;
  p->hdr_len = 0;
  p->hdr_need = 2;
}

int wsc_feed(wsc_parser *p, uint8_t *data, size_t n, const wsc_cb *cb, void *ud) {
  size_t i = 0;
  while (i < n) {
    if (!p->in_payload) {
      while (p->hdr_len < p->hdr_need && i < n) p->hdr[p->hdr_len++] = data[i++];
      if (p->hdr_len < p->hdr_need) return 0;
      if (p->hdr_len == 2) {
        uint8_t l7 = p->hdr[1] & 0x7f;
        size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((p->hdr[1] & 0x80) ? 4 : 0);
        if (need > 2) {
          p->hdr_need = (uint8_t)need;
          continue;
        }
      }
      if (header_done(p) < 0) return -1;
      p->in_payload = 1;
      /* fast path: a whole unfragmented data message inside this chunk */
      if (p->opcode < 8 && p->fin && p->opcode != WSC_CONT && n - i >= p->len) {
        uint8_t *d = data + i;
        size_t len = (size_t)p->len;
        if (p->masked) wsc_mask(d, len, p->mask, 0);
        i += len;
        p->msg_opcode = 0;
        p->in_payload = 0;
        p->hdr_len = 0;
        p->hdr_need = 2;
        cb->on_message(ud, p->opcode, d, len, len);
        continue;
      }
      if (p->len == 0) {
        frame_done(p, cb, ud);
        continue;
      }
    }
    size_t avail = n - i;
    if ((uint64_t)avail > p->len - p->got) avail = (size_t)(p->len - p->got);
    uint8_t *d = data + i;
    if (p->masked) wsc_mask(d, avail, p->mask, (size_t)(p->got & 3));
    if (p->opcode >= 8) {
      memcpy(p->ctrl + p->ctrl_len, d, avail);
      p->ctrl_len = (uint8_t)(p->ctrl_len + avail);
    } else {
      if (buf_append(p, d, avail) < 0) return -2;
      p->msg_total += avail;
    }
    p->got += avail;
    i += avail;
    if (p->got == p->len) frame_done(p, cb, ud);
  }
  return 0;
}
