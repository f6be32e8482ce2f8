/* base/log — one line per event: `LEVEL component message key=value ...`.
 *
 * Lines go to stderr with a UTC timestamp. The level threshold is global,
 * set once at start-up (--log-level / WSCHAT_LOG_LEVEL).
 */
#ifndef WSC_BASE_LOG_H
#define WSC_BASE_LOG_H

typedef enum { WSC_LOG_DEBUG, WSC_LOG_INFO, WSC_LOG_WARN, WSC_LOG_ERROR } wsc_log_level_t;

void wsc_log_set_level(wsc_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns 0 or -1. */
int wsc_log_parse_level(const char *s, wsc_log_level_t *out);
void wsc_log(wsc_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(comp, ...) wsc_log(WSC_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...)  wsc_log(WSC_LOG_INFO, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...)  wsc_log(WSC_LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERROR(comp, ...) wsc_log(WSC_LOG_ERROR, comp, __VA_ARGS__)

#endif
