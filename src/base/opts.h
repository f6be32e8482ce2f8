/* base/opts — one table of options, read from every source and written to
 * every document, so the command line, the environment, the config file,
 * `--help` and the man page cannot drift apart.
 *
 * A program describes each option once (wsc_opt_t: name, kind, where it
 * lands in the program's config struct, bounds, default text, help text).
 * From that table this module
 *   - scans argv (`--name VALUE`, `--name=VALUE`, `--flag`, `--`),
 *   - reads the environment (PREFIX + NAME upper-cased, '-' -> '_'),
 *   - reads a config file (`name = value` lines, '#' comments),
 *   - writes `--help` and a roff man page.
 * The option's name is its flag, its config key and (up to the prefix) its
 * environment variable. The caller decides the order of the sources; the
 * last one applied wins, and a list option (repeatable flag) is replaced,
 * not extended, by a later source.
 *
 * Ownership: strings in the target struct point into argv, the environment
 * or a file buffer that wsc_opts_load_file hands to the caller (free it
 * with free() once nothing points into it any more).
 */
#ifndef WSC_BASE_OPTS_H
#define WSC_BASE_OPTS_H

#include <stddef.h>
#include <stdio.h>

#define WSC_OPTS_MAX 128            /* options in one table */
#define WSC_OPTS_FILE_MAX (1 << 20) /* largest config file read */
#define WSC_OPTS_LINE_MAX 4096      /* longest config file line */

typedef enum {
  WSC_OPT_BOOL,   /* int: 1 / 0; flag without value; file/env: true|false|yes|no|on|off|1|0 */
  WSC_OPT_NBOOL,  /* as BOOL, stored inverted: --no-deflate true sets the int to 0 */
  WSC_OPT_STR,    /* const char * */
  WSC_OPT_INT,    /* int in [min, max] */
  WSC_OPT_SIZE,   /* size_t in [min, max]; suffix k/m/g (KiB, MiB, GiB) allowed */
  WSC_OPT_SECS,   /* int milliseconds from whole seconds in [min, max] */
  WSC_OPT_DOUBLE, /* double in [min, max] */
  WSC_OPT_LIST,   /* const char *[max] + int count at count_offset; repeatable, or comma-separated */
  WSC_OPT_FUNC,   /* apply(target, value) parses and stores; returns 0 or -1 */
  WSC_OPT_ACTION, /* flag only, handled by the program (--help, --version) */
} wsc_opt_kind_t;

enum {
  WSC_OPT_NOENV = 1,  /* no environment variable */
  WSC_OPT_NOFILE = 2, /* not a config file key (command line, maybe env) */
  WSC_OPT_RELOAD = 4, /* takes effect on reload (SIGHUP) without a restart */
  WSC_OPT_HIDDEN = 8, /* not in --help or the man page */
};

typedef struct wsc_opt {
  const char *name;   /* flag without "--"; config key; env suffix */
  const char *arg;    /* value name in docs ("N", "PATH"); NULL for BOOL and ACTION */
  wsc_opt_kind_t kind;
  size_t offset;      /* field in the target struct */
  size_t count_offset;/* LIST: the int counting entries */
  double min, max;    /* numbers: bounds; LIST: max entries */
  int (*apply)(void *target, const char *value); /* FUNC */
  const char *accepts;/* FUNC: what a valid value looks like (for errors) */
  const char *def;    /* default as shown in docs; NULL: none */
  const char *help;   /* one sentence, no trailing period needed */
  unsigned flags;
} wsc_opt_t;

typedef struct wsc_opts_section {
  const char *title;  /* man page section title, e.g. "CONFIGURATION FILE" */
  const char *text;   /* paragraphs separated by blank lines */
} wsc_opts_section_t;

typedef struct wsc_opts {
  const char *prog;        /* "wschat" */
  const char *env_prefix;  /* "WSCHAT_"; NULL: no environment */
  int has_file;            /* options are also config file keys */
  const char *summary;     /* one line for NAME and the top of --help */
  const char *synopsis;    /* after the program name: "[options]" */
  const char *description; /* paragraphs separated by blank lines */
  const char *precedence;  /* one paragraph, shown in --help and the man page */
  const wsc_opt_t *opts;
  size_t n_opts;
  const wsc_opts_section_t *sections; /* after OPTIONS in the man page */
  size_t n_sections;
  const char *version;     /* shown in the man page footer */
} wsc_opts_t;

/* One option given on the command line, in order. */
typedef struct wsc_opt_arg {
  const wsc_opt_t *opt;
  const char *value;       /* NULL for BOOL flags and ACTIONs */
} wsc_opt_arg_t;

/* Scans argv[1..]: fills out[0..*n) (at most cap) and *positional with the
 * index of the one non-option argument allowed (argc if none; a second is
 * an error). Returns 0, or -1 with a
 * message in err ("unknown option --x", "--port needs a value"). */
int wsc_opts_scan(const wsc_opts_t *t, int argc, char **argv, wsc_opt_arg_t *out, size_t cap,
                  size_t *n, int *positional, char *err, size_t errlen);

/* The first option named `name` in args[0..n), or NULL. */
const wsc_opt_arg_t *wsc_opts_find(const wsc_opt_arg_t *args, size_t n, const char *name);

/* Applies scanned command-line options (not ACTIONs) to target. */
int wsc_opts_apply_args(const wsc_opts_t *t, void *target, const wsc_opt_arg_t *args, size_t n,
                        char *err, size_t errlen);

/* Applies every set PREFIX* variable naming an option. */
int wsc_opts_load_env(const wsc_opts_t *t, void *target, char *err, size_t errlen);

/* Reads `path` and applies its keys. On success *keep is the buffer the
 * stored strings point into (caller frees). Errors name the file and line:
 * "FILE:LINE: unknown key 'x'". */
int wsc_opts_load_file(const wsc_opts_t *t, void *target, const char *path, char **keep,
                       char *err, size_t errlen);

/* Applies one value to one option; err gets "bad value 'x' for port (an
 * integer from 0 to 65535)". */
int wsc_opts_apply(const wsc_opt_t *o, void *target, const char *value, char *err, size_t errlen);

/* Copies option o's field from src to dst (both target structs). */
void wsc_opts_copy(const wsc_opt_t *o, void *dst, const void *src);
/* 1 if option o's field differs between a and b. */
int wsc_opts_differ(const wsc_opt_t *o, const void *a, const void *b);

/* Prints every setting of target as `key = value` lines (FUNC settings
 * through show(), which may be NULL to skip them). */
void wsc_opts_dump(const wsc_opts_t *t, const void *target, FILE *f,
                   const char *(*show)(const wsc_opt_t *o, const void *target));

/* The environment variable of o ("WSCHAT_MAX_TEXT") into buf; "" if none. */
const char *wsc_opts_env_name(const wsc_opts_t *t, const wsc_opt_t *o, char *buf, size_t len);

void wsc_opts_help(const wsc_opts_t *t, FILE *f);
void wsc_opts_man(const wsc_opts_t *t, FILE *f);
/* An example config file: every key commented out at its default. */
void wsc_opts_example(const wsc_opts_t *t, FILE *f);

#endif
