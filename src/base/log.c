/* base/log — see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static wsc_log_level_t g_level = WSC_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void wsc_log_set_level(wsc_log_level_t level) { g_level = level; }

int wsc_log_parse_level(const char *s, wsc_log_level_t *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (wsc_log_level_t)i;
      return 0;
    }
  }
  return -1;
}

void wsc_log(wsc_log_level_t level, const char *component, const char *fmt, ...) {
  if (level < g_level) return;
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], component);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", line);
}
