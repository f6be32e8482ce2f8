/* base/log — see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static wsc_log_level_t g_level = WSC_LOG_INFO;
static wsc_log_format_t g_format = WSC_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void wsc_log_set_level(wsc_log_level_t level) { g_level = level; }
void wsc_log_set_format(wsc_log_format_t format) { g_format = format; }

int wsc_log_parse_level(const char *s, wsc_log_level_t *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (wsc_log_level_t)i;
      return 0;
    }
  }
  return -1;
}

int wsc_log_parse_format(const char *s, wsc_log_format_t *out) {
  if (strcmp(s, "text") == 0) return *out = WSC_LOG_TEXT, 0;
  if (strcmp(s, "json") == 0) return *out = WSC_LOG_JSON, 0;
  return -1;
}

/* --- JSON --------------------------------------------------------------------------- */

typedef struct jout {
  char *p;
  size_t cap, len; /* len < cap always; room kept for the closing brace */
} jout_t;

static void jraw(jout_t *o, const char *s, size_t n) {
  if (o->len + n + 4 > o->cap) return; /* kept: a string's closing '"', '}' and NUL */
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

static void jstr(jout_t *o, const char *s, size_t n) {
  size_t start = o->len;
  jraw(o, "\"", 1);
  if (o->len == start) return;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      jraw(o, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      jraw(o, esc, 6);
    } else {
      jraw(o, (const char *)&c, 1);
    }
  }
  o->p[o->len++] = '"'; /* jraw kept room for it */
}

static int is_key_start(const char *s) {
  if (!((*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
  while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.') s++;
  return *s == '=';
}

size_t wsc_log_json(char *out, size_t cap, const char *ts, const char *level,
                    const char *component, const char *text) {
  jout_t o = {out, cap, 0};
  if (cap < 64) return 0;
  jraw(&o, "{\"ts\":", 6);
  jstr(&o, ts, strlen(ts));
  jraw(&o, ",\"level\":", 9);
  jstr(&o, level, strlen(level));
  jraw(&o, ",\"component\":", 13);
  jstr(&o, component, strlen(component));
  /* The message: up to the first ` key=` word. */
  const char *s = text, *msg_end = text + strlen(text);
  for (const char *p = text; *p; p++)
    if ((p == text || p[-1] == ' ') && is_key_start(p)) {
      msg_end = p;
      break;
    }
  size_t ml = (size_t)(msg_end - s);
  while (ml && s[ml - 1] == ' ') ml--;
  jraw(&o, ",\"msg\":", 7);
  jstr(&o, s, ml);
  /* key=value pairs; a value is bare (to the next space) or "quoted". */
  s = msg_end;
  while (*s) {
    while (*s == ' ') s++;
    if (!*s) break;
    if (!is_key_start(s)) { /* stray word: fold into a "rest" member */
      jraw(&o, ",\"rest\":", 8);
      jstr(&o, s, strlen(s));
      break;
    }
    const char *eq = strchr(s, '=');
    jraw(&o, ",", 1);
    jstr(&o, s, (size_t)(eq - s));
    jraw(&o, ":", 1);
    const char *v = eq + 1;
    if (*v == '"') {
      const char *e = v + 1;
      while (*e && !(*e == '"' && e[-1] != '\\')) e++;
      jstr(&o, v + 1, (size_t)(e - v - 1));
      s = *e ? e + 1 : e;
    } else {
      size_t n = strcspn(v, " ");
      jstr(&o, v, n);
      s = v + n;
    }
  }
  o.p[o.len++] = '}';
  o.p[o.len] = '\0';
  return o.len;
}

void wsc_log(wsc_log_level_t level, const char *component, const char *fmt, ...) {
  if (level < g_level) return;
  char text[WSC_LOG_LINE_MAX], ts[96];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (g_format == WSC_LOG_JSON) {
    char line[2 * WSC_LOG_LINE_MAX + 128];
    wsc_log_json(line, sizeof line, ts, level_names[level], component, text);
    fprintf(stderr, "%s\n", line);
  } else {
    fprintf(stderr, "%s %s %s %s\n", ts, level_names[level], component, text);
  }
}
