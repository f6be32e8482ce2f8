/* chat/names — see names.h. */
#include "chat/names.h"

#include <stdint.h>

#include "chat/chat.h"

/* Length of the UTF-8 sequence at p[0..n) and its code point, or 0 when
 * it is not a valid (shortest-form, non-surrogate, <= U+10FFFF) sequence. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp) {
  unsigned char b = p[0];
  size_t need;
  uint32_t v, min;
  if (b < 0x80) { *cp = b; return 1; }
  if (b >= 0xC2 && b <= 0xDF) { need = 2; v = b & 0x1F; min = 0x80; }
  else if (b >= 0xE0 && b <= 0xEF) { need = 3; v = b & 0x0F; min = 0x800; }
  else if (b >= 0xF0 && b <= 0xF4) { need = 4; v = b & 0x07; min = 0x10000; }
  else return 0;
  if (n < need) return 0;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return need;
}

static int is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

int chat_name_check(const char *name, size_t len, size_t *start, size_t *out_len) {
  const unsigned char *p = (const unsigned char *)name;
  size_t s = 0, e = len;
  while (s < e && p[s] == ' ') s++;
  while (e > s && p[e - 1] == ' ') e--;
  if (s == e) return -1;
  size_t cps = 0;
  for (size_t i = s; i < e;) {
    uint32_t cp;
    size_t k = utf8_decode(p + i, e - i, &cp);
    if (!k || is_control(cp) || ++cps > CHAT_NAME_MAX_CP) return -1;
    i += k;
  }
  if (e - s >= CHAT_GUEST_PREFIX_LEN &&
      chat_name_eq(name + s, CHAT_GUEST_PREFIX_LEN, CHAT_GUEST_PREFIX, CHAT_GUEST_PREFIX_LEN))
    return -1;
  *start = s;
  *out_len = e - s;
  return 0;
}

int chat_name_eq(const char *a, size_t alen, const char *b, size_t blen) {
  if (alen != blen) return 0;
  for (size_t i = 0; i < alen; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

void chat_hex(char *out, const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

size_t chat_guest_name(char *out, const unsigned char *rnd, int digits) {
  char hex[CHAT_GUEST_MAX_DIGITS + 2];
  size_t bytes = ((size_t)digits + 1) / 2;
  chat_hex(hex, rnd, bytes);
  size_t n = 0;
  for (; n < CHAT_GUEST_PREFIX_LEN; n++) out[n] = CHAT_GUEST_PREFIX[n];
  for (int i = 0; i < digits; i++) out[n++] = hex[i];
  out[n] = '\0';
  return n;
}

int chat_room_check(const char *room, size_t len) {
  if (len < 1 || len > CHAT_ROOM_MAX) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)room[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    if (!ok) return 0;
  }
  return 1;
}

int chat_room_name_valid(const char *room, size_t len) { return room && chat_room_check(room, len); }

int chat_name_is_guest(const char *name, size_t len) {
  return len >= CHAT_GUEST_PREFIX_LEN && chat_name_eq(name, CHAT_GUEST_PREFIX_LEN, CHAT_GUEST_PREFIX, CHAT_GUEST_PREFIX_LEN);
}
