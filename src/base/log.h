/* base/log — one line per event: `LEVEL component message key=value ...`.
 *
 * Lines go to stderr with a UTC timestamp. The level threshold and the
 * format are global, set at start-up and on reload (--log-level,
 * --log-format). In the JSON format (--log-format json) each line is one
 * object: {"ts":..., "level":..., "component":..., "msg":..., key: value...};
 * the message is the text before the first `key=value` word, and each
 * `key=value` (value bare or "quoted") becomes a string member.
 */
#ifndef WSC_BASE_LOG_H
#define WSC_BASE_LOG_H

#include <stddef.h>

typedef enum { WSC_LOG_DEBUG, WSC_LOG_INFO, WSC_LOG_WARN, WSC_LOG_ERROR } wsc_log_level_t;
typedef enum { WSC_LOG_TEXT, WSC_LOG_JSON } wsc_log_format_t;

#define WSC_LOG_LINE_MAX 1024 /* a longer message is cut */

void wsc_log_set_level(wsc_log_level_t level);
void wsc_log_set_format(wsc_log_format_t format);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int wsc_log_parse_level(const char *s, wsc_log_level_t *out);
/* Parses "text", "json"; returns 0 or -1. */
int wsc_log_parse_format(const char *s, wsc_log_format_t *out);
void wsc_log(wsc_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Formats one event as a JSON object (no newline) into out; returns its
 * length (cut to fit, still valid JSON). */
size_t wsc_log_json(char *out, size_t cap, const char *ts, const char *level,
                    const char *component, const char *text);

#define LOG_DEBUG(comp, ...) wsc_log(WSC_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...)  wsc_log(WSC_LOG_INFO, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...)  wsc_log(WSC_LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERROR(comp, ...) wsc_log(WSC_LOG_ERROR, comp, __VA_ARGS__)

#endif
