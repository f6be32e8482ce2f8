/* ws/deflate — see deflate.h. */
#include "ws/deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws/frame.h"

#define B0_RSV1 0x40
/* RFC 7692 §7.2.1: a sync flush ends with an empty stored block, whose
 * four bytes the sender strips and the receiver appends. */
static const uint8_t k_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* --- the offer -------------------------------------------------------------------- */

typedef struct cursor { const char *p, *end; } cursor_t;

static int is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(cursor_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

/* A token: [p, p+n). Returns n (0: none). */
static size_t token(cursor_t *c, const char **start) {
  *start = c->p;
  while (c->p < c->end && is_tchar(*c->p)) c->p++;
  return (size_t)(c->p - *start);
}

static int ieq(const char *p, size_t n, const char *lit) {
  if (strlen(lit) != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char a = p[i], b = lit[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (a != b) return 0;
  }
  return 1;
}

#define VALUE_MAX 16   /* longer values are never valid here */

/* A parameter value: a token or a quoted-string (unescaped into val).
 * Returns 0, or -1 on a syntax error. *vlen > VALUE_MAX means "too long". */
static int param_value(cursor_t *c, char *val, size_t *vlen) {
  *vlen = 0;
  if (c->p < c->end && *c->p == '"') {
    c->p++;
    for (;;) {
      if (c->p >= c->end) return -1;
      char ch = *c->p++;
      if (ch == '"') break;
      if (ch == '\\') {
        if (c->p >= c->end) return -1;
        ch = *c->p++;
      }
      if (*vlen < VALUE_MAX) val[*vlen] = ch;
      (*vlen)++;
    }
    return 0;
  }
  const char *t;
  size_t n = token(c, &t);
  if (n == 0) return -1;
  memcpy(val, t, n < VALUE_MAX ? n : VALUE_MAX);
  *vlen = n;
  return 0;
}

/* 8..15 as 1*DIGIT without a leading zero; else -1. */
static int window_bits(const char *v, size_t n) {
  if (n == 0 || n > 2 || v[0] == '0') return -1;
  int x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (v[i] - '0');
  }
  return x >= WS_PMD_MIN_WINDOW && x <= WS_PMD_MAX_WINDOW ? x : -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* Applies one parameter of a permessage-deflate offer. Returns 0 if it is
 * acceptable, -1 if the offer must be declined. */
static int offer_param(ws_pmd_t *o, unsigned *seen, const char *name, size_t nlen, int has_value,
                       const char *val, size_t vlen) {
  unsigned bit;
  if (ieq(name, nlen, "server_no_context_takeover")) bit = P_SNCT;
  else if (ieq(name, nlen, "client_no_context_takeover")) bit = P_CNCT;
  else if (ieq(name, nlen, "server_max_window_bits")) bit = P_SMWB;
  else if (ieq(name, nlen, "client_max_window_bits")) bit = P_CMWB;
  else return -1;                         /* unknown parameter */
  if (*seen & bit) return -1;             /* duplicate */
  *seen |= bit;
  if (bit == P_SNCT || bit == P_CNCT) return has_value ? -1 : 0;
  if (bit == P_CMWB && !has_value) return 0;
  int w = has_value && vlen <= VALUE_MAX ? window_bits(val, vlen) : -1;
  if (w < 0) return -1;
  if (bit == P_SMWB) {
    o->server_window = (uint8_t)w;
    o->server_window_asked = 1;
  }
  return 0;
}

int ws_pmd_parse_offers(const char *value, size_t len, ws_pmd_t *out) {
  cursor_t c = {value, value + len};
  memset(out, 0, sizeof *out);
  int found = 0;
  ws_pmd_t best = {0};
  for (;;) {
    skip_ows(&c);
    if (c.p < c.end && *c.p == ',') {   /* empty list elements are allowed */
      c.p++;
      continue;
    }
    if (c.p >= c.end) break;
    const char *name;
    size_t nlen = token(&c, &name);
    if (nlen == 0) return 0;             /* not an extension list */
    int is_pmd = ieq(name, nlen, WS_PMD_NAME);
    ws_pmd_t o = {.enabled = 1, .server_window = WS_PMD_MAX_WINDOW};
    unsigned seen = 0;
    int ok = is_pmd;
    skip_ows(&c);
    while (c.p < c.end && *c.p == ';') {
      c.p++;
      skip_ows(&c);
      const char *pname;
      size_t plen = token(&c, &pname);
      if (plen == 0) return 0;
      skip_ows(&c);
      char val[VALUE_MAX];
      size_t vlen = 0;
      int has_value = 0;
      if (c.p < c.end && *c.p == '=') {
        c.p++;
        skip_ows(&c);
        if (param_value(&c, val, &vlen) != 0) return 0;
        has_value = 1;
        skip_ows(&c);
      }
      if (ok && offer_param(&o, &seen, pname, plen, has_value, val, vlen) != 0) ok = 0;
    }
    if (c.p < c.end && *c.p != ',') return 0;   /* junk after an extension */
    if (ok && !found) {
      best = o;
      found = 1;
    }
  }
  if (found) *out = best;
  return found;
}

size_t ws_pmd_response(const ws_pmd_t *pmd, char *out, size_t cap) {
  int n;
  if (pmd->server_window_asked)
    n = snprintf(out, cap, "%s; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=%u",
                 WS_PMD_NAME, (unsigned)pmd->server_window);
  else
    n = snprintf(out, cap, "%s; server_no_context_takeover; client_no_context_takeover", WS_PMD_NAME);
  return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}

/* --- inflate ---------------------------------------------------------------------- */

static z_stream g_inf;
static int g_inf_ready;
static uint8_t g_inf_scratch[WS_INFLATE_SCRATCH];
static uint8_t *g_inf_big;   /* a message past the scratch buffer */

void ws_inflate_release(void) {
  free(g_inf_big);
  g_inf_big = NULL;
}

/* Moves the output to a bigger buffer: from the scratch buffer to the heap,
 * then doubling, never past limit + 1 (one byte past tells "too big"). */
static int grow_out(uint8_t **buf, size_t *cap, size_t used, size_t limit) {
  size_t ncap = *cap * 2;
  if (ncap > limit + 1) ncap = limit + 1;
  uint8_t *nb = (*buf == g_inf_scratch) ? malloc(ncap) : realloc(*buf, ncap);
  if (!nb) return -1;
  if (*buf == g_inf_scratch) memcpy(nb, g_inf_scratch, used);
  *buf = nb;
  *cap = ncap;
  g_inf_big = nb;
  return 0;
}

int ws_inflate(const uint8_t *in, size_t n, size_t limit, const uint8_t **out, size_t *out_len) {
  ws_inflate_release();
  if (!g_inf_ready) {
    if (inflateInit2(&g_inf, -WS_PMD_MAX_WINDOW) != Z_OK) return WS_INFLATE_NOMEM;
    g_inf_ready = 1;
  } else if (inflateReset(&g_inf) != Z_OK) {
    return WS_INFLATE_BAD;
  }
  uint8_t *buf = g_inf_scratch;
  size_t cap = sizeof g_inf_scratch, used = 0;
  int tail_fed = 0;
  g_inf.next_in = (Bytef *)in;
  g_inf.avail_in = (uInt)n;
  int rc = WS_INFLATE_OK;
  for (;;) {
    if (g_inf.avail_in == 0) {
      if (tail_fed) break;
      g_inf.next_in = (Bytef *)k_tail;
      g_inf.avail_in = sizeof k_tail;
      tail_fed = 1;
    }
    if (used > limit) { rc = WS_INFLATE_TOO_BIG; break; }
    if (used == cap && grow_out(&buf, &cap, used, limit) != 0) { rc = WS_INFLATE_NOMEM; break; }
    /* Never more than one byte past the limit in one step. */
    size_t room = cap - used;
    if (room > limit + 1 - used) room = limit + 1 - used;
    g_inf.next_out = buf + used;
    g_inf.avail_out = (uInt)room;
    int r = inflate(&g_inf, Z_SYNC_FLUSH);
    used += room - g_inf.avail_out;
    if (r == Z_STREAM_END) break;          /* a final block: the rest is ignored */
    if (r == Z_OK) continue;
    if (r == Z_BUF_ERROR) {
      /* No progress: out of room (grow or too big) or out of input. */
      if (g_inf.avail_out == 0 || g_inf.avail_in == 0) continue;
      rc = WS_INFLATE_BAD;
      break;
    }
    rc = r == Z_MEM_ERROR ? WS_INFLATE_NOMEM : WS_INFLATE_BAD;
    break;
  }
  if (rc == WS_INFLATE_OK && used > limit) rc = WS_INFLATE_TOO_BIG;
  if (rc != WS_INFLATE_OK) {
    ws_inflate_release();
    return rc;
  }
  *out = buf;
  *out_len = used;
  return WS_INFLATE_OK;
}

/* --- deflate ---------------------------------------------------------------------- */

static z_stream g_def;
static int g_def_ready;

wsc_buf_t *ws_deflate_frame(int opcode, const uint8_t *payload, size_t len) {
  if (!g_def_ready) {
    if (deflateInit2(&g_def, WS_DEFLATE_LEVEL, Z_DEFLATED, -WS_PMD_MAX_WINDOW, WS_DEFLATE_MEMLEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
      return NULL;
    g_def_ready = 1;
  } else if (deflateReset(&g_def) != Z_OK) {
    return NULL;
  }
  /* deflateBound covers Z_FINISH; a sync flush adds at most an empty
   * stored block and a few bits. */
  size_t cap = deflateBound(&g_def, (uLong)len) + 16;
  wsc_buf_t *b = wsc_buf_new(WS_MAX_SERVER_HEADER, cap);
  if (!b) return NULL;
  g_def.next_in = (Bytef *)payload;
  g_def.avail_in = (uInt)len;
  g_def.next_out = wsc_buf_bytes(b);
  g_def.avail_out = (uInt)cap;
  int r = deflate(&g_def, Z_SYNC_FLUSH);
  if ((r != Z_OK && r != Z_BUF_ERROR) || g_def.avail_in != 0 || g_def.avail_out == 0) {
    wsc_buf_unref(b);
    return NULL;
  }
  size_t n = cap - g_def.avail_out;
  if (n >= sizeof k_tail && memcmp(wsc_buf_bytes(b) + n - sizeof k_tail, k_tail, sizeof k_tail) == 0)
    n -= sizeof k_tail;
  b->len = (uint32_t)n;
  size_t hlen = ws_frame_header_size(n);
  uint8_t *h = wsc_buf_prepend(b, hlen);
  ws_frame_write_header(h, 1, opcode, n);
  h[0] |= B0_RSV1;
  return b;
}

void ws_deflate_cleanup(void) {
  ws_inflate_release();
  if (g_inf_ready) inflateEnd(&g_inf);
  if (g_def_ready) deflateEnd(&g_def);
  g_inf_ready = g_def_ready = 0;
}
