/* http/url — see url.h. */
#include "http/url.h"

#include <errno.h>
#include <string.h>

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int url_decode(const char *in, size_t len, char *out, size_t cap, int plus_is_space) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = in[i];
    if (ch == '%') {
      if (len - i < 3) return -EINVAL;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return -EINVAL;
      ch = (char)(hi * 16 + lo);
      if (ch == '\0') return -EINVAL;
      i += 2;
    } else if (ch == '+' && plus_is_space) {
      ch = ' ';
    }
    if (o + 1 >= cap) return -EINVAL;
    out[o++] = ch;
  }
  if (cap == 0) return -EINVAL;
  out[o] = '\0';
  return (int)o;
}

int url_query_get(const char *query, size_t len, const char *key, char *out, size_t cap) {
  size_t klen = strlen(key);
  size_t i = 0;
  int found = -ENOENT;
  while (i < len) {
    size_t end = i;
    while (end < len && query[end] != '&') end++;
    const char *eq = memchr(query + i, '=', end - i);
    size_t name_len = eq ? (size_t)(eq - (query + i)) : end - i;
    if (name_len == klen && memcmp(query + i, key, klen) == 0) {
      if (found != -ENOENT) return -EINVAL;   /* given twice: which one was meant? */
      const char *v = eq ? eq + 1 : query + end;
      found = url_decode(v, (size_t)(query + end - v), out, cap, 1);
      if (found < 0) return -EINVAL;
    }
    i = end + 1;
  }
  return found;
}
