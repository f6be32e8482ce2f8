/* base/opts — see opts.h. */
#include "base/opts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(target, o, type) ((type *)((char *)(target) + (o)->offset))

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static const wsc_opt_t *find_opt(const wsc_opts_t *t, const char *name, size_t len) {
  for (size_t i = 0; i < t->n_opts; i++)
    if (strlen(t->opts[i].name) == len && memcmp(t->opts[i].name, name, len) == 0)
      return &t->opts[i];
  return NULL;
}

static int takes_value(const wsc_opt_t *o) {
  return o->kind != WSC_OPT_BOOL && o->kind != WSC_OPT_NBOOL && o->kind != WSC_OPT_ACTION;
}

/* --- values ------------------------------------------------------------------------- */

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

/* A number in [min, max]; `suffix` allows k/m/g multipliers (1024-based). */
static int parse_number(const char *s, double min, double max, int integer, int suffix,
                        double *out) {
  if (!*s || isspace((unsigned char)*s)) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v)) return -1;
  if (suffix && *end && !end[1]) {
    switch (*end) {
      case 'k': case 'K': v *= 1024.0; end++; break;
      case 'm': case 'M': v *= 1024.0 * 1024; end++; break;
      case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
      default: break;
    }
  }
  if (*end || v < min || v > max) return -1;
  if (integer && v != floor(v)) return -1;
  *out = v;
  return 0;
}

static const char *describe(const wsc_opt_t *o, char *buf, size_t len) {
  switch (o->kind) {
    case WSC_OPT_BOOL: case WSC_OPT_NBOOL: return "true or false";
    case WSC_OPT_INT: snprintf(buf, len, "an integer from %.0f to %.0f", o->min, o->max); return buf;
    case WSC_OPT_SIZE:
      snprintf(buf, len, "a byte count from %.0f to %.0f, suffix k, m or g allowed", o->min, o->max);
      return buf;
    case WSC_OPT_SECS: snprintf(buf, len, "whole seconds from %.0f to %.0f", o->min, o->max); return buf;
    case WSC_OPT_DOUBLE: snprintf(buf, len, "a number from %g to %g", o->min, o->max); return buf;
    case WSC_OPT_LIST: snprintf(buf, len, "one value each, at most %.0f", o->max); return buf;
    case WSC_OPT_FUNC: return o->accepts ? o->accepts : "a valid value";
    case WSC_OPT_STR: return "a non-empty string";
    default: return "no value";
  }
}

int wsc_opts_apply(const wsc_opt_t *o, void *target, const char *value, char *err, size_t errlen) {
  double v;
  int b;
  char what[128];
  if (!value) value = "";
  switch (o->kind) {
    case WSC_OPT_BOOL: case WSC_OPT_NBOOL:
      if (parse_bool(value, &b)) break;
      *FIELD(target, o, int) = o->kind == WSC_OPT_NBOOL ? !b : b;
      return 0;
    case WSC_OPT_STR:
      if (!*value) break;
      *FIELD(target, o, const char *) = value;
      return 0;
    case WSC_OPT_INT:
      if (parse_number(value, o->min, o->max, 1, 0, &v)) break;
      *FIELD(target, o, int) = (int)v;
      return 0;
    case WSC_OPT_SIZE:
      if (parse_number(value, o->min, o->max, 1, 1, &v)) break;
      *FIELD(target, o, size_t) = (size_t)v;
      return 0;
    case WSC_OPT_SECS:
      if (parse_number(value, o->min, o->max, 1, 0, &v)) break;
      *FIELD(target, o, int) = (int)(v * 1000);
      return 0;
    case WSC_OPT_DOUBLE:
      if (parse_number(value, o->min, o->max, 0, 0, &v)) break;
      *FIELD(target, o, double) = v;
      return 0;
    case WSC_OPT_LIST: {
      /* Appends (apply_from clears the list when a new source starts it).
       * One value each: repeat the flag; only a config file line, whose
       * buffer is ours to split, may list several separated by commas. */
      const char **arr = FIELD(target, o, const char *);
      int *count = (int *)((char *)target + o->count_offset);
      if (!*value || strchr(value, ',') || *count >= (int)o->max) break;
      arr[(*count)++] = value;
      return 0;
    }
    case WSC_OPT_FUNC:
      if (o->apply(target, value)) break;
      return 0;
    case WSC_OPT_ACTION:
      return 0;
  }
  return fail(err, errlen, "bad value '%s' for %s (%s)", value, o->name,
              describe(o, what, sizeof what));
}

void wsc_opts_copy(const wsc_opt_t *o, void *dst, const void *src) {
  size_t size = 0;
  switch (o->kind) {
    case WSC_OPT_BOOL: case WSC_OPT_NBOOL: case WSC_OPT_INT: case WSC_OPT_SECS: size = sizeof(int); break;
    case WSC_OPT_STR: size = sizeof(const char *); break;
    case WSC_OPT_SIZE: size = sizeof(size_t); break;
    case WSC_OPT_DOUBLE: size = sizeof(double); break;
    case WSC_OPT_LIST:
      size = (size_t)o->max * sizeof(const char *);
      memcpy((char *)dst + o->count_offset, (const char *)src + o->count_offset, sizeof(int));
      break;
    default: return; /* FUNC fields are the program's to copy */
  }
  memcpy((char *)dst + o->offset, (const char *)src + o->offset, size);
}

int wsc_opts_differ(const wsc_opt_t *o, const void *a, const void *b) {
  switch (o->kind) {
    case WSC_OPT_STR: {
      const char *x = *FIELD(a, o, const char *), *y = *FIELD(b, o, const char *);
      return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
    }
    case WSC_OPT_LIST: {
      int na = *(const int *)((const char *)a + o->count_offset);
      int nb = *(const int *)((const char *)b + o->count_offset);
      if (na != nb) return 1;
      for (int i = 0; i < na; i++)
        if (strcmp(FIELD(a, o, const char *)[i], FIELD(b, o, const char *)[i]) != 0) return 1;
      return 0;
    }
    case WSC_OPT_DOUBLE: return *FIELD(a, o, double) != *FIELD(b, o, double);
    case WSC_OPT_SIZE: return *FIELD(a, o, size_t) != *FIELD(b, o, size_t);
    case WSC_OPT_BOOL: case WSC_OPT_NBOOL: case WSC_OPT_INT: case WSC_OPT_SECS:
      return *FIELD(a, o, int) != *FIELD(b, o, int);
    default: return 0;
  }
}

void wsc_opts_dump(const wsc_opts_t *t, const void *target, FILE *f,
                   const char *(*show)(const wsc_opt_t *o, const void *target)) {
  for (size_t i = 0; i < t->n_opts; i++) {
    const wsc_opt_t *o = &t->opts[i];
    if ((o->flags & WSC_OPT_NOFILE) || o->kind == WSC_OPT_ACTION) continue;
    switch (o->kind) {
      case WSC_OPT_BOOL: case WSC_OPT_NBOOL:
        fprintf(f, "%s = %s\n", o->name, !*FIELD(target, o, int) == (o->kind == WSC_OPT_NBOOL) ? "true" : "false");
        break;
      case WSC_OPT_STR: {
        const char *v = *FIELD(target, o, const char *);
        fprintf(f, "%s = %s\n", o->name, v ? v : "");
        break;
      }
      case WSC_OPT_INT: fprintf(f, "%s = %d\n", o->name, *FIELD(target, o, int)); break;
      case WSC_OPT_SIZE: fprintf(f, "%s = %zu\n", o->name, *FIELD(target, o, size_t)); break;
      case WSC_OPT_SECS: fprintf(f, "%s = %d\n", o->name, *FIELD(target, o, int) / 1000); break;
      case WSC_OPT_DOUBLE: fprintf(f, "%s = %g\n", o->name, *FIELD(target, o, double)); break;
      case WSC_OPT_LIST: {
        int n = *(const int *)((const char *)target + o->count_offset);
        fprintf(f, "%s =", o->name);
        for (int k = 0; k < n; k++) fprintf(f, "%s %s", k ? "," : "", FIELD(target, o, const char *)[k]);
        fputc('\n', f);
        break;
      }
      case WSC_OPT_FUNC:
        if (show) fprintf(f, "%s = %s\n", o->name, show(o, target));
        break;
      default: break;
    }
  }
}

/* One source (a file, the environment, the command line) replaces a list
 * set by an earlier one instead of adding to it. */
typedef struct source {
  unsigned char started[WSC_OPTS_MAX];
} source_t;

static int apply_from(const wsc_opts_t *t, source_t *src, const wsc_opt_t *o, void *target,
                      const char *value, char *err, size_t errlen) {
  size_t i = (size_t)(o - t->opts);
  if (o->kind == WSC_OPT_LIST && i < WSC_OPTS_MAX && !src->started[i]) {
    *(int *)((char *)target + o->count_offset) = 0;
    src->started[i] = 1;
  }
  return wsc_opts_apply(o, target, value, err, errlen);
}

/* --- the command line ----------------------------------------------------------------- */

int wsc_opts_scan(const wsc_opts_t *t, int argc, char **argv, wsc_opt_arg_t *out, size_t cap,
                  size_t *n, int *positional, char *err, size_t errlen) {
  *n = 0;
  *positional = argc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      if (i + 2 < argc || (i + 1 < argc && *positional != argc))
        return fail(err, errlen, "unexpected argument: %s", argv[argc - 1]);
      if (i + 1 < argc) *positional = i + 1;
      return 0;
    }
    if (strcmp(a, "-h") == 0) a = "--help";
    if (a[0] != '-' || a[1] != '-' || !a[2]) {
      if (a[0] == '-' && a[1]) return fail(err, errlen, "unknown option %s", a);
      if (*positional != argc) return fail(err, errlen, "unexpected argument: %s", a);
      *positional = i; /* one positional argument, the program's */
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const wsc_opt_t *o = find_opt(t, name, len);
    if (!o) return fail(err, errlen, "unknown option --%.*s (see --help)", (int)len, name);
    const char *value = NULL;
    if (takes_value(o)) {
      if (eq) value = eq + 1;
      else if (i + 1 < argc) value = argv[++i];
      else return fail(err, errlen, "--%s needs a value (%s)", o->name, o->arg ? o->arg : "");
    } else if (eq) {
      if (o->kind != WSC_OPT_BOOL && o->kind != WSC_OPT_NBOOL)
        return fail(err, errlen, "--%s takes no value", o->name);
      value = eq + 1; /* --fsync=false */
    }
    if (*n == cap) return fail(err, errlen, "too many options");
    out[*n].opt = o;
    out[*n].value = value;
    (*n)++;
  }
  return 0;
}

const wsc_opt_arg_t *wsc_opts_find(const wsc_opt_arg_t *args, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(args[i].opt->name, name) == 0) return &args[i];
  return NULL;
}

int wsc_opts_apply_args(const wsc_opts_t *t, void *target, const wsc_opt_arg_t *args, size_t n,
                        char *err, size_t errlen) {
  source_t src = {{0}};
  char e[256];
  for (size_t i = 0; i < n; i++) {
    const wsc_opt_t *o = args[i].opt;
    if (o->kind == WSC_OPT_ACTION) continue;
    const char *v = args[i].value;
    if ((o->kind == WSC_OPT_BOOL || o->kind == WSC_OPT_NBOOL) && !v) v = "true";
    if (apply_from(t, &src, o, target, v, e, sizeof e))
      return fail(err, errlen, "--%s: %s", o->name, e);
  }
  return 0;
}

/* --- the environment -------------------------------------------------------------------- */

const char *wsc_opts_env_name(const wsc_opts_t *t, const wsc_opt_t *o, char *buf, size_t len) {
  if (!t->env_prefix || (o->flags & WSC_OPT_NOENV) || o->kind == WSC_OPT_ACTION || len == 0) {
    if (len) buf[0] = '\0';
    return buf;
  }
  size_t p = (size_t)snprintf(buf, len, "%s", t->env_prefix);
  for (const char *s = o->name; *s && p + 1 < len; s++)
    buf[p++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
  buf[p < len ? p : len - 1] = '\0';
  return buf;
}

int wsc_opts_load_env(const wsc_opts_t *t, void *target, char *err, size_t errlen) {
  source_t src = {{0}};
  char name[128], e[256];
  for (size_t i = 0; i < t->n_opts; i++) {
    const wsc_opt_t *o = &t->opts[i];
    if (!*wsc_opts_env_name(t, o, name, sizeof name)) continue;
    const char *v = getenv(name);
    if (!v || !*v) continue;
    if (apply_from(t, &src, o, target, v, e, sizeof e))
      return fail(err, errlen, "environment %s: %s", name, e);
  }
  return 0;
}

/* --- the config file ------------------------------------------------------------------- */

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
  return s;
}

int wsc_opts_load_file(const wsc_opts_t *t, void *target, const char *path, char **keep,
                       char *err, size_t errlen) {
  *keep = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
  char *buf = malloc(WSC_OPTS_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    return fail(err, errlen, "%s: out of memory", path);
  }
  size_t len = fread(buf, 1, WSC_OPTS_FILE_MAX + 1, f);
  int rerr = ferror(f);
  fclose(f);
  if (rerr) {
    free(buf);
    return fail(err, errlen, "%s: read error", path);
  }
  if (len > WSC_OPTS_FILE_MAX) {
    free(buf);
    return fail(err, errlen, "%s: larger than %d bytes", path, WSC_OPTS_FILE_MAX);
  }
  buf[len] = '\0';
  if (memchr(buf, '\0', len)) {
    free(buf);
    return fail(err, errlen, "%s: not a text file (NUL byte)", path);
  }
  source_t src = {{0}};
  unsigned char seen[WSC_OPTS_MAX] = {0};
  char e[256];
  int lineno = 0;
  for (char *line = buf, *next; line && *line; line = next) {
    lineno++;
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    if (strlen(line) > WSC_OPTS_LINE_MAX) {
      fail(err, errlen, "%s:%d: line longer than %d bytes", path, lineno, WSC_OPTS_LINE_MAX);
      goto bad;
    }
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      fail(err, errlen, "%s:%d: expected 'key = value', got '%s'", path, lineno, s);
      goto bad;
    }
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    /* A value may be quoted to keep '#' or surrounding spaces; otherwise a
     * '#' after whitespace starts a comment. */
    if (value[0] == '"') {
      char *close = strchr(value + 1, '"');
      char *rest = close ? trim(close + 1) : NULL;
      if (!close || (*rest && *rest != '#')) {
        fail(err, errlen, "%s:%d: %s in value of %s", path, lineno,
             close ? "text after the closing quote" : "unterminated quote", key);
        goto bad;
      }
      *close = '\0';
      value++;
    } else {
      for (char *h = value; (h = strchr(h, '#')); h++)
        if (h > value && (h[-1] == ' ' || h[-1] == '\t')) {
          *h = '\0';
          value = trim(value);
          break;
        }
    }
    const wsc_opt_t *o = find_opt(t, key, strlen(key));
    if (!o || (o->flags & WSC_OPT_NOFILE) || o->kind == WSC_OPT_ACTION) {
      fail(err, errlen, "%s:%d: unknown key '%s'%s", path, lineno, key,
           o ? " (command line only)" : "");
      goto bad;
    }
    size_t idx = (size_t)(o - t->opts);
    if (o->kind != WSC_OPT_LIST && idx < WSC_OPTS_MAX && seen[idx]) {
      fail(err, errlen, "%s:%d: %s set twice", path, lineno, key);
      goto bad;
    }
    if (idx < WSC_OPTS_MAX) seen[idx] = 1;
    if (o->kind == WSC_OPT_LIST && strchr(value, ',')) {
      /* The buffer is ours: split "a, b, c" in place. */
      for (char *item = value, *comma; item; item = comma) {
        comma = strchr(item, ',');
        if (comma) *comma++ = '\0';
        if (apply_from(t, &src, o, target, trim(item), e, sizeof e)) {
          fail(err, errlen, "%s:%d: %s", path, lineno, e);
          goto bad;
        }
      }
      continue;
    }
    if (apply_from(t, &src, o, target, value, e, sizeof e)) {
      fail(err, errlen, "%s:%d: %s", path, lineno, e);
      goto bad;
    }
  }
  *keep = buf;
  return 0;
bad:
  free(buf);
  return -1;
}

/* --- documents --------------------------------------------------------------------------- */

static void flag_text(const wsc_opt_t *o, char *buf, size_t len) {
  if (o->arg) snprintf(buf, len, "--%s %s", o->name, o->arg);
  else snprintf(buf, len, "--%s", o->name);
}

/* Prints text wrapped at `width`, each line indented by `indent`. */
static void wrap(FILE *f, const char *text, int indent, int first_col, int width) {
  int col = first_col;
  const char *s = text;
  while (*s) {
    while (*s == ' ') s++;
    if (!*s) break;
    if (*s == '\n') { s++; continue; }
    size_t w = strcspn(s, " \n");
    if (col > indent && col + 1 + (int)w > width) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', f);
      col++;
    } else if (col < indent) {
      fprintf(f, "%*s", indent - col, "");
      col = indent;
    }
    fwrite(s, 1, w, f);
    col += (int)w;
    s += w;
  }
  fputc('\n', f);
}

static void paragraphs(FILE *f, const char *text, int indent) {
  const char *p = text;
  while (p && *p) {
    const char *end = strstr(p, "\n\n");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *para = strndup(p, n);
    if (!para) return;
    wrap(f, para, indent, 0, 79);
    free(para);
    p = end ? end + 2 : NULL;
    if (p && *p) fputc('\n', f);
  }
}

static void where_text(const wsc_opts_t *t, const wsc_opt_t *o, char *buf, size_t len) {
  char env[128];
  size_t p = 0;
  buf[0] = '\0';
#define ADD(...) do { if (p < len) p += (size_t)snprintf(buf + p, len - p, __VA_ARGS__); } while (0)
  if (o->def) ADD("default %s", o->def);
  if (*wsc_opts_env_name(t, o, env, sizeof env)) ADD("%senv %s", p ? "; " : "", env);
  if (t->has_file && !(o->flags & WSC_OPT_NOFILE) && o->kind != WSC_OPT_ACTION)
    ADD("%skey %s", p ? "; " : "", o->name);
  if (o->flags & WSC_OPT_RELOAD) ADD("%sreloads on SIGHUP", p ? "; " : "");
#undef ADD
}

void wsc_opts_help(const wsc_opts_t *t, FILE *f) {
  char flag[96], where[384];
  fprintf(f, "usage: %s %s\n%s\n\n", t->prog, t->synopsis, t->summary);
  if (t->precedence) {
    paragraphs(f, t->precedence, 0);
    fputc('\n', f);
  }
  for (size_t i = 0; i < t->n_opts; i++) {
    const wsc_opt_t *o = &t->opts[i];
    if (o->flags & WSC_OPT_HIDDEN) continue;
    flag_text(o, flag, sizeof flag);
    int col = fprintf(f, "  %s", flag);
    if (col < 30) {
      fprintf(f, "%*s", 30 - col, "");
      col = 30;
    }
    wrap(f, o->help, 30, col, 100);
    where_text(t, o, where, sizeof where);
    if (*where) {
      fprintf(f, "%*s(", 30, "");
      char w2[400];
      snprintf(w2, sizeof w2, "%s)", where);
      wrap(f, w2, 31, 31, 100);
    }
  }
}

/* roff: escape backslashes and dashes; a line must not start with . or '. */
static void roff(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\') fputs("\\e", f);
    else if (*s == '-') fputs("\\-", f);
    else if (*s == '\n') {
      fputc('\n', f);
      if (s[1] == '.' || s[1] == '\'') fputs("\\&", f);
    } else fputc(*s, f);
  }
}

static void roff_line(FILE *f, const char *s) {
  if (*s == '.' || *s == '\'') fputs("\\&", f);
  roff(f, s);
  fputc('\n', f);
}

/* Paragraphs; a paragraph whose lines all start with two spaces is shown
 * as is (.nf), e.g. a config file example. */
static void roff_paragraphs(FILE *f, const char *text) {
  const char *p = text;
  while (p && *p) {
    const char *end = strstr(p, "\n\n");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *para = strndup(p, n);
    if (!para) return;
    if (para[0] == ' ' && para[1] == ' ') {
      fputs(".PP\n.nf\n", f);
      for (char *line = para, *nl; line; line = nl) {
        nl = strchr(line, '\n');
        if (nl) *nl++ = '\0';
        roff_line(f, line + (line[0] == ' ' && line[1] == ' ' ? 2 : 0));
      }
      fputs(".fi\n", f);
    } else {
      fputs(".PP\n", f);
      roff_line(f, para);
    }
    free(para);
    p = end ? end + 2 : NULL;
  }
}

void wsc_opts_man(const wsc_opts_t *t, FILE *f) {
  char upper[64], where[384];
  size_t i;
  for (i = 0; t->prog[i] && i + 1 < sizeof upper; i++)
    upper[i] = (char)toupper((unsigned char)t->prog[i]);
  upper[i] = '\0';
  fprintf(f, ".\\\" Generated by `%s --help-man` from its option table; do not edit.\n", t->prog);
  fprintf(f, ".TH ");
  roff(f, upper);
  fprintf(f, " 1 \"\" \"");
  roff(f, t->prog);
  fprintf(f, " ");
  roff(f, t->version ? t->version : "");
  fprintf(f, "\" \"User Commands\"\n.SH NAME\n");
  roff(f, t->prog);
  fprintf(f, " \\- ");
  roff_line(f, t->summary);
  fprintf(f, ".SH SYNOPSIS\n.B ");
  roff(f, t->prog);
  fputc('\n', f);
  roff_line(f, t->synopsis);
  if (t->description) {
    fprintf(f, ".SH DESCRIPTION\n");
    roff_paragraphs(f, t->description);
  }
  fprintf(f, ".SH OPTIONS\n");
  if (t->precedence) roff_paragraphs(f, t->precedence);
  for (i = 0; i < t->n_opts; i++) {
    const wsc_opt_t *o = &t->opts[i];
    if (o->flags & WSC_OPT_HIDDEN) continue;
    fprintf(f, ".TP\n\\fB");
    fputs("\\-\\-", f);
    roff(f, o->name);
    fprintf(f, "\\fR");
    if (o->arg) {
      fprintf(f, " \\fI");
      roff(f, o->arg);
      fprintf(f, "\\fR");
    }
    fputc('\n', f);
    roff_line(f, o->help);
    where_text(t, o, where, sizeof where);
    if (*where) {
      fprintf(f, ".br\n(");
      roff(f, where);
      fprintf(f, ")\n");
    }
  }
  for (i = 0; i < t->n_sections; i++) {
    fprintf(f, ".SH ");
    roff_line(f, t->sections[i].title);
    roff_paragraphs(f, t->sections[i].text);
  }
}

void wsc_opts_example(const wsc_opts_t *t, FILE *f) {
  char where[384];
  fprintf(f,
          "# %s configuration file: `key = value`, one a line; '#' starts a comment.\n"
          "# Generated by `%s --help-config` from the same table as --help and the man\n"
          "# page. Every key is a command-line flag without its dashes; lines left\n"
          "# commented out keep the default shown.\n",
          t->prog, t->prog);
  if (t->precedence) {
    fprintf(f, "#\n");
    /* the precedence paragraph, as comment lines */
    const char *p = t->precedence;
    char line[80];
    size_t col = 0;
    while (*p) {
      while (*p == ' ' || *p == '\n') p++;
      size_t w = strcspn(p, " \n");
      if (!w) break;
      if (col && col + 1 + w > 74) {
        line[col] = '\0';
        fprintf(f, "# %s\n", line);
        col = 0;
      }
      if (col) line[col++] = ' ';
      if (w > sizeof line - col - 1) w = sizeof line - col - 1;
      memcpy(line + col, p, w);
      col += w;
      p += w;
    }
    if (col) {
      line[col] = '\0';
      fprintf(f, "# %s\n", line);
    }
  }
  for (size_t i = 0; i < t->n_opts; i++) {
    const wsc_opt_t *o = &t->opts[i];
    if ((o->flags & (WSC_OPT_HIDDEN | WSC_OPT_NOFILE)) || o->kind == WSC_OPT_ACTION) continue;
    fprintf(f, "\n# %s", o->help);
    where_text(t, o, where, sizeof where);
    fprintf(f, "\n# (%s)\n", where);
    if (o->kind == WSC_OPT_BOOL || o->kind == WSC_OPT_NBOOL)
      fprintf(f, "#%s = %s\n", o->name, o->def ? o->def : "false");
    else fprintf(f, "#%s = %s\n", o->name, o->def ? o->def : o->arg);
  }
}
