/* main/options — wschat's option table and how it is read.
 *
 * Every setting of the server is one row of the table in options.c: its
 * flag, config key and environment variable (the same name), type, bounds,
 * default and help text. base/opts reads the sources and writes --help,
 * the man page (--help-man) and the example config file (--help-config)
 * from it. Precedence, highest first: flags, environment (WSCHAT_*), the
 * config file, defaults.
 *
 * Which config file: --config FILE (or WSCHAT_CONFIG); without either, a
 * build made with -DWSCHAT_DEFAULT_CONFIG=PATH (the Debian package:
 * /etc/wschat/wschat.conf) reads that file if it exists; other builds read
 * none.
 */
#ifndef WSC_MAIN_OPTIONS_H
#define WSC_MAIN_OPTIONS_H

#include "base/config.h"
#include "base/opts.h"

extern const wsc_opts_t wschat_opts;

/* What the command line asked for besides settings. */
typedef enum {
  OPTIONS_RUN, OPTIONS_HELP, OPTIONS_HELP_MAN, OPTIONS_HELP_CONFIG, OPTIONS_VERSION,
  OPTIONS_CHECK,
} options_action_t;

typedef struct options {
  wsc_config_t config;
  char *file_buf;               /* the config file text `config` points into */
  options_action_t action;
} options_t;

/* Defaults, then the config file, the environment and argv into o.
 * Returns 0, or -1 after printing "wschat: <error>" to stderr. */
int options_load(options_t *o, int argc, char **argv);

/* Re-reads every source into a fresh options_t (as at start-up) and, if
 * valid, copies the settings marked "reloads on SIGHUP" into *live,
 * logging each change and each changed setting that needs a restart.
 * Returns 0 or -1 (error logged, *live untouched). */
int options_reload(options_t *live, int argc, char **argv);

/* Applies the process-wide settings (log level and format). */
void options_apply_process(const wsc_config_t *c);

void options_free(options_t *o);

/* "wschat 0.1.0 (commit abc1234, built with libuv 1.44.2, ...)" lines. */
void options_print_version(FILE *f);

#endif
