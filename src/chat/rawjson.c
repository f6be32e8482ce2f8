/* chat/rawjson — see rawjson.h. */
#include "chat/rawjson.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t skip_ws(const char *t, size_t n, size_t i) {
  while (i < n && is_ws(t[i])) i++;
  return i;
}

/* i is at a '"': the index just past the closing quote (n if unterminated). */
static size_t skip_string(const char *t, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (t[i] == '\\') i++;
    else if (t[i] == '"') return i + 1;
  }
  return n;
}

/* i is at a value: the index just past it. Containers are skipped by
 * counting brackets outside strings (no recursion: depth is unbounded). */
static size_t skip_value(const char *t, size_t n, size_t i) {
  if (i >= n) return n;
  if (t[i] == '"') return skip_string(t, n, i);
  if (t[i] != '{' && t[i] != '[') {
    while (i < n && !is_ws(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']') i++;
    return i;
  }
  size_t depth = 0;
  while (i < n) {
    char c = t[i];
    if (c == '"') { i = skip_string(t, n, i); continue; }
    if (c == '{' || c == '[') depth++;
    else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
    i++;
  }
  return n;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* 1 when the JSON string text t[i..end) (quotes excluded) decodes to the
 * ASCII key. Only ASCII escapes can match an ASCII key. */
static int key_is(const char *t, size_t i, size_t end, const char *key) {
  for (; i < end; key++) {
    unsigned c = (unsigned char)t[i++];
    if (c == '\\') {
      if (i >= end) return 0;
      char e = t[i++];
      if (e == 'u') {
        if (end - i < 4) return 0;
        c = 0;
        for (int k = 0; k < 4; k++) {
          int h = hexval(t[i++]);
          if (h < 0) return 0;
          c = c * 16 + (unsigned)h;
        }
      } else {
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : (unsigned char)e;
      }
    }
    if (!*key || c != (unsigned char)*key) return 0;
  }
  return *key == '\0';
}

int rawjson_member(const char *t, size_t n, const char *key, size_t *start, size_t *vlen) {
  size_t i = skip_ws(t, n, 0);
  if (i >= n || t[i] != '{') return -1;
  i = skip_ws(t, n, i + 1);
  while (i < n && t[i] == '"') {
    size_t kend = skip_string(t, n, i);
    if (kend >= n) return -1;
    int match = key_is(t, i + 1, kend - 1, key);
    i = skip_ws(t, n, kend);
    if (i >= n || t[i] != ':') return -1;
    size_t vs = skip_ws(t, n, i + 1);
    size_t ve = skip_value(t, n, vs);
    if (match) {
      if (ve <= vs) return -1;
      *start = vs;
      *vlen = ve - vs;
      return 0;
    }
    i = skip_ws(t, n, ve);
    if (i >= n || t[i] != ',') return -1;
    i = skip_ws(t, n, i + 1);
  }
  return -1;
}

/* The saturated replacement for the number text t[0..n), or NULL when it
 * is in range (or not a number jansson would read). */
static const char *saturated(const char *t, size_t n) {
  char *tmp = malloc(n + 1);   /* strtoll/strtod need a terminator */
  if (!tmp) return NULL;
  memcpy(tmp, t, n);
  tmp[n] = '\0';
  int neg = t[0] == '-';
  const char *rep = NULL;
  errno = 0;
  if (!memchr(t, '.', n) && !memchr(t, 'e', n) && !memchr(t, 'E', n)) {
    (void)strtoll(tmp, NULL, 10);
    if (errno == ERANGE) rep = neg ? "-9223372036854775808" : "9223372036854775807";
  } else {
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(d)) rep = neg ? "-1e308" : "1e308";
  }
  free(tmp);
  return rep;
}

char *rawjson_saturate(const char *t, size_t n, size_t *out_len) {
  /* A replacement is never longer than what it replaces: an int64
   * overflow has at least 19 digits (and its sign), a double overflow is at
   * least "1e309"; the slack is only a safety margin. */
  char *out = malloc(n + 32);
  if (!out) return NULL;
  size_t o = 0, i = 0;
  while (i < n) {
    char c = t[i];
    if (c == '"') {
      size_t e = skip_string(t, n, i);
      memcpy(out + o, t + i, e - i);
      o += e - i;
      i = e;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t e = i + 1;
      while (e < n && ((t[e] >= '0' && t[e] <= '9') || t[e] == '.' || t[e] == 'e' || t[e] == 'E' ||
                       t[e] == '+' || t[e] == '-'))
        e++;
      const char *rep = saturated(t + i, e - i);
      if (rep) {
        memcpy(out + o, rep, strlen(rep));
        o += strlen(rep);
      } else {
        memcpy(out + o, t + i, e - i);
        o += e - i;
      }
      i = e;
    } else {
      out[o++] = c;
      i++;
    }
  }
  out[o] = '\0';
  *out_len = o;
  return out;
}
