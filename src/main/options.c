/* main/options — see options.h. */
#include "main/options.h"

#include <http_parser.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"

#ifndef WSCHAT_VERSION
#define WSCHAT_VERSION "0.0.0"
#endif
#ifndef WSCHAT_COMMIT
#define WSCHAT_COMMIT "unknown"
#endif
#ifndef WSCHAT_DEFAULT_CONFIG
#define WSCHAT_DEFAULT_CONFIG ""
#endif

#define F(field) offsetof(wsc_config_t, field)
#define XSTR(x) STR(x)
#define STR(x) #x

static int apply_log_level(void *target, const char *v) {
  wsc_log_level_t l;
  if (wsc_log_parse_level(v, &l)) return -1;
  ((wsc_config_t *)target)->log_level = (int)l;
  return 0;
}

static int apply_log_format(void *target, const char *v) {
  wsc_log_format_t fmt;
  if (wsc_log_parse_format(v, &fmt)) return -1;
  ((wsc_config_t *)target)->log_format = (int)fmt;
  return 0;
}

/* The table. Add a setting here (and its field in base/config.h): the
 * flag, key, environment variable, --help, man page and example config
 * file all follow. */
static const wsc_opt_t table[] = {
    {"config", "FILE", WSC_OPT_STR, F(config_file), 0, 0, 0, NULL, NULL,
     WSCHAT_DEFAULT_CONFIG[0] ? WSCHAT_DEFAULT_CONFIG " if it exists" : NULL,
     "read settings from FILE (key = value lines; see CONFIGURATION FILE in wschat(1))",
     WSC_OPT_NOFILE},
    {"check-config", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL,
     "read every source, report the first error or print the settings, and exit (0: valid)",
     WSC_OPT_NOENV | WSC_OPT_NOFILE},
    {"host", "ADDR", WSC_OPT_STR, F(host), 0, 0, 0, NULL, NULL, "0.0.0.0", "listen address", 0},
    {"port", "N", WSC_OPT_INT, F(port), 0, 0, 65535, NULL, NULL, "8000", "listen port", 0},
    {"db", "PATH", WSC_OPT_STR, F(db_path), 0, 0, 0, NULL, NULL, "wschat.db",
     "SQLite history file, WAL mode (:memory: keeps nothing)", 0},
    {"fsync", NULL, WSC_OPT_BOOL, F(fsync), 0, 0, 0, NULL, NULL, "false",
     "synchronous=FULL: acknowledged messages also survive a power loss (the default survives kill -9)", 0},
    {"echo", NULL, WSC_OPT_BOOL, F(echo), 0, 0, 0, NULL, NULL, "false",
     "enable GET /echo, a WebSocket that echoes every message (diagnostics, conformance)", 0},
    {"max-message", "BYTES", WSC_OPT_SIZE, F(max_message), 0, 0, 1099511627776.0, NULL, NULL, "16777216",
     "largest WebSocket message on /echo (chat endpoints: 64 KiB, close 1009 past it)", 0},
    {"max-text", "BYTES", WSC_OPT_SIZE, F(max_text), 0, 1, 16777216, NULL, NULL, "4096",
     "largest chat message text (error too_large past it)", 0},
    {"rate-limit", "N", WSC_OPT_DOUBLE, F(rate_limit), 0, 0, 1e9, NULL, NULL, "0",
     "chat sends per second per connection, burst 2N (error rate_limited past it; 0: off)", WSC_OPT_RELOAD},
    {"send-queue", "BYTES", WSC_OPT_SIZE, F(send_queue_limit), 0, 1024, 1099511627776.0, NULL, NULL, "1048576",
     "per-connection send queue; a client that stops reading is closed with 1013 past it", WSC_OPT_RELOAD},
    {"max-body", "BYTES", WSC_OPT_SIZE, F(max_body), 0, 0, 1073741824, NULL, NULL, "65536",
     "largest HTTP request body (413 past it)", WSC_OPT_RELOAD},
    {"max-connections", "N", WSC_OPT_INT, F(max_connections), 0, 1, 1000000000, NULL, NULL, "100000",
     "open connections at most", 0},
    {"ping-interval", "SECONDS", WSC_OPT_SECS, F(ping_interval_ms), 0, 0, 86400, NULL, NULL, "30",
     "server heartbeat ping; a connection that misses two pongs is dropped (0: off)", WSC_OPT_RELOAD},
    {"handshake-timeout", "SECONDS", WSC_OPT_SECS, F(handshake_timeout_ms), 0, 1, 3600, NULL, NULL, "10",
     "time a client has to send a whole HTTP request (408 after)", WSC_OPT_RELOAD},
    {"shutdown-timeout", "SECONDS", WSC_OPT_SECS, F(shutdown_timeout_ms), 0, 0, 3600, NULL, NULL, "5",
     "on SIGINT/SIGTERM, how long clients get to answer close 1001", WSC_OPT_RELOAD},
    {"allow-origin", "ORIGIN", WSC_OPT_LIST, F(allowed_origins), F(n_allowed_origins), 0,
     WSC_MAX_ALLOWED_ORIGINS, NULL, NULL, NULL,
     "also accept browser WebSockets from ORIGIN (repeat it; * accepts any); by default a request "
     "with an Origin must match its Host", 0},
    {"http-session-ttl", "SECONDS", WSC_OPT_SECS, F(http_session_ttl_ms), 0, 1, 86400, NULL, NULL, "30",
     "an HTTP chat session (polling, long polling) without a request for this long ends", 0},
    {"max-held", "N", WSC_OPT_INT, F(max_held), 0, 0, 1000000000, NULL, NULL, "10000",
     "HTTP requests held open at most: long polls, sends", 0},
    {"http-queue-max", "N", WSC_OPT_INT, F(http_queue_max), 0, 1, 1000000000, NULL, NULL, "1000",
     "events queued per HTTP session before it overflows", 0},
    {"no-deflate", NULL, WSC_OPT_NBOOL, F(deflate), 0, 0, 0, NULL, NULL, "false",
     "do not negotiate permessage-deflate", 0},
    {"deflate-min", "BYTES", WSC_OPT_SIZE, F(deflate_min), 0, 0, 1073741824, NULL, NULL,
     XSTR(WSC_DEFLATE_MIN_DEFAULT),
     "send messages shorter than this uncompressed", 0},
    {"tls-port", "N", WSC_OPT_INT, F(tls_port), 0, 1, 65535, NULL, NULL, NULL,
     "also serve TLS (https, wss) on port N (needs tls-cert and tls-key)", 0},
    {"tls-cert", "FILE", WSC_OPT_STR, F(tls_cert), 0, 0, 0, NULL, NULL, NULL,
     "PEM certificate chain for tls-port (re-read on SIGHUP)", 0},
    {"tls-key", "FILE", WSC_OPT_STR, F(tls_key), 0, 0, 0, NULL, NULL, NULL,
     "PEM private key for tls-port (re-read on SIGHUP)", 0},
    {"h3-port", "N", WSC_OPT_INT, F(h3_port), 0, 0, 65535, NULL, NULL, "0",
     "also serve HTTP/3 (QUIC) on UDP port N (0: off)", 0},
    {"h3-cert", "FILE", WSC_OPT_STR, F(h3_cert), 0, 0, 0, NULL, NULL, NULL,
     "certificate (PEM) for HTTP/3 (default: tls-cert)", 0},
    {"h3-key", "FILE", WSC_OPT_STR, F(h3_key), 0, 0, 0, NULL, NULL, NULL,
     "private key (PEM) for HTTP/3 (default: tls-key)", 0},
    {"h3-max-connections", "N", WSC_OPT_INT, F(h3_max_connections), 0, 1, 1000000000, NULL, NULL,
     NULL, "QUIC connections at most (default 4096)", 0},
    {"h3-retry-above", "N", WSC_OPT_INT, F(h3_retry_above), 0, 0, 1000000000, NULL, NULL, NULL,
     "ask new QUIC clients to Retry (prove their address) once N handshakes are in progress "
     "(default 64; 0: always)", 0},
    {"h3-idle-timeout", "SECONDS", WSC_OPT_SECS, F(h3_idle_timeout_ms), 0, 1, 86400, NULL, NULL, NULL,
     "a silent QUIC connection is dropped after this (default 30)", 0},
    {"redis", "URL", WSC_OPT_STR, F(redis_url), 0, 0, 0, NULL, NULL, NULL,
     "share the chat with other nodes through Redis, redis://host:port[/db]: history, ids and "
     "fan-out in Redis (default: SQLite and an in-process bus)", 0},
    {"redis-timeout", "MS", WSC_OPT_INT, F(redis_timeout_ms), 0, 50, 3600000, NULL, NULL, "2000",
     "no answer from Redis for this many milliseconds = unreachable", 0},
    {"redis-retention", "N", WSC_OPT_INT, F(redis_retention), 0, 1, 1000000000, NULL, NULL, "10000",
     "messages kept per room in Redis, about", 0},
    {"presence-ttl", "SECONDS", WSC_OPT_SECS, F(presence_ttl_ms), 0, 1, 86400, NULL, NULL, "15",
     "a dead node's members leave their rooms after this", 0},
    {"log-level", "LEVEL", WSC_OPT_FUNC, 0, 0, 0, 0, apply_log_level, "debug, info, warn or error",
     "info", "least severe log lines written: debug, info, warn or error", WSC_OPT_RELOAD},
    {"log-format", "FORMAT", WSC_OPT_FUNC, 0, 0, 0, 0, apply_log_format, "text or json", "text",
     "log lines as text (LEVEL component message key=value) or json (one object a line)",
     WSC_OPT_RELOAD},
    {"version", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL,
     "print the version, the commit and the library versions, and exit", 0},
    {"help", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL, "print this help and exit (also -h)", 0},
    {"help-man", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL,
     "print the wschat(1) man page (roff) and exit", 0},
    {"help-config", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL,
     "print an example config file, every key at its default, and exit", 0},
};

static const wsc_opts_section_t sections[] = {
    {"CONFIGURATION FILE",
     "One setting a line, key = value, where the key is the long flag without its dashes. "
     "Blank lines and lines starting with # are ignored, as is the rest of a line after a # "
     "preceded by a space; a value in double quotes is taken as is. A boolean is true, false, "
     "yes, no, on, off, 1 or 0. allow-origin may be repeated, or list origins separated by "
     "commas. A key that is not a setting, a key given twice, or a bad value stops the server "
     "with the file name and line, e.g. wschat: /etc/wschat/wschat.conf:12: unknown key 'prot'.\n\n"
     "  # /etc/wschat/wschat.conf\n"
     "  port = 8000\n"
     "  db = /var/lib/wschat/wschat.db\n"
     "  rate-limit = 5\n"
     "  log-format = json\n\n"
     "wschat --help-config prints a complete example, every key commented out at its default; "
     "wschat --config FILE --check-config validates a file without starting the server."},
    {"SIGNALS",
     "SIGTERM, SIGINT: graceful stop; every WebSocket is closed with 1001, clients get "
     "--shutdown-timeout seconds to answer, pending history commits finish, exit status 0.\n\n"
     "SIGHUP: reload. Every source is read again as at start-up; if it is valid, the settings "
     "marked \"reloads on SIGHUP\" take effect at once and a change to any other setting is "
     "logged as needing a restart; if it is not valid, the error is logged and the running "
     "settings are kept."},
    {"SYSTEMD",
     "When NOTIFY_SOCKET is set (a service of Type=notify), wschat sends READY=1 once it "
     "listens, RELOADING=1 and READY=1 around a reload, and STOPPING=1 when it begins to stop, "
     "over the datagram socket (no libsystemd). The Debian package installs wschat.service: "
     "DynamicUser, ProtectSystem=strict, history in /var/lib/wschat (StateDirectory)."},
    {"FILES",
     "/etc/wschat/wschat.conf \\(en the config file of the packaged service.\n\n"
     "/var/lib/wschat/wschat.db \\(en the history of the packaged service.\n\n"
     "GET /metrics \\(en Prometheus metrics; GET /healthz \\(en liveness."},
    {"EXIT STATUS",
     "0 after a graceful stop or a successful --check-config; 1 when the server cannot start "
     "(the port is taken, Redis cannot be used); 2 for a bad flag, environment variable or "
     "config file; 3 when the history database cannot be used (unreadable, not a database, "
     "corrupt, unknown schema)."},
    {"SEE ALSO", "wschat-cli(1)"},
};

const wsc_opts_t wschat_opts = {
    .prog = "wschat",
    .env_prefix = "WSCHAT_",
    .has_file = 1,
    .summary = "real-time chat server on its own RFC 6455 WebSocket implementation",
    .synopsis = "[options]",
    .description =
        "wschat serves a web chat page at /, WebSocket chat at /ws and /ws/{room} (a JSON "
        "protocol: rooms, names, presence, typing, direct messages, history and resume), "
        "and keeps the history in SQLite.",
    .precedence =
        "Settings come from, highest first: command-line flags, the environment (WSCHAT_ and "
        "the flag's name in capitals, dashes as underscores: --max-text is WSCHAT_MAX_TEXT), "
        "the config file (--config FILE; keys are the flag names), built-in defaults.",
    .opts = table,
    .n_opts = sizeof table / sizeof table[0],
    .sections = sections,
    .n_sections = sizeof sections / sizeof sections[0],
    .version = WSCHAT_VERSION,
};

/* --- loading ------------------------------------------------------------------------ */

static int load(options_t *o, int argc, char **argv, char *err, size_t errlen) {
  wsc_opt_arg_t args[WSC_OPTS_MAX * 4];
  size_t n;
  int pos;
  memset(o, 0, sizeof *o);
  wsc_config_defaults(&o->config);
  if (wsc_opts_scan(&wschat_opts, argc, argv, args, sizeof args / sizeof args[0], &n, &pos, err,
                    errlen))
    return -1;
  if (pos < argc) return snprintf(err, errlen, "unexpected argument: %s", argv[pos]), -1;
  static const struct { const char *name; options_action_t action; } actions[] = {
      {"help", OPTIONS_HELP}, {"help-man", OPTIONS_HELP_MAN},
      {"help-config", OPTIONS_HELP_CONFIG}, {"version", OPTIONS_VERSION},
  };
  for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
    if (wsc_opts_find(args, n, actions[i].name)) {
      o->action = actions[i].action;
      return 0;
    }
  if (wsc_opts_find(args, n, "check-config")) o->action = OPTIONS_CHECK;

  /* Which file: --config, else WSCHAT_CONFIG, else the build's default if
   * it exists. */
  const wsc_opt_arg_t *cf = wsc_opts_find(args, n, "config");
  const char *path = cf ? cf->value : getenv("WSCHAT_CONFIG");
  if (path && !*path) path = NULL;
  if (!path && WSCHAT_DEFAULT_CONFIG[0] && access(WSCHAT_DEFAULT_CONFIG, F_OK) == 0)
    path = WSCHAT_DEFAULT_CONFIG;
  if (path) {
    if (wsc_opts_load_file(&wschat_opts, &o->config, path, &o->file_buf, err, errlen)) return -1;
    o->config.config_file = path;
  }
  if (wsc_opts_load_env(&wschat_opts, &o->config, err, errlen)) return -1;
  if (wsc_opts_apply_args(&wschat_opts, &o->config, args, n, err, errlen)) return -1;
  if (path) o->config.config_file = path;
  const wsc_config_t *c = &o->config;
  if ((c->tls_port || c->tls_cert || c->tls_key) && !(c->tls_port && c->tls_cert && c->tls_key))
    return snprintf(err, errlen, "TLS needs all three of tls-port, tls-cert and tls-key"), -1;
  return 0;
}

int options_load(options_t *o, int argc, char **argv) {
  char err[512];
  if (load(o, argc, argv, err, sizeof err)) {
    fprintf(stderr, "wschat: %s\n", err);
    options_free(o);
    return -1;
  }
  return 0;
}

void options_apply_process(const wsc_config_t *c) {
  wsc_log_set_level((wsc_log_level_t)c->log_level);
  wsc_log_set_format((wsc_log_format_t)c->log_format);
}

int options_reload(options_t *live, int argc, char **argv) {
  options_t fresh;
  char err[512];
  if (load(&fresh, argc, argv, err, sizeof err)) {
    LOG_ERROR("main", "reload failed, settings kept err=\"%s\"", err);
    options_free(&fresh);
    return -1;
  }
  for (size_t i = 0; i < wschat_opts.n_opts; i++) {
    const wsc_opt_t *opt = &wschat_opts.opts[i];
    int differ = opt->kind == WSC_OPT_FUNC
                     ? (strcmp(opt->name, "log-level") == 0
                            ? fresh.config.log_level != live->config.log_level
                            : fresh.config.log_format != live->config.log_format)
                     : wsc_opts_differ(opt, &fresh.config, &live->config);
    if (!differ) continue;
    /* Only values are reloaded, never strings: they would point into the
     * new file buffer, which is freed below. */
    if (!(opt->flags & WSC_OPT_RELOAD) || opt->kind == WSC_OPT_STR || opt->kind == WSC_OPT_LIST) {
      LOG_WARN("main", "setting changed, needs a restart key=%s", opt->name);
      continue;
    }
    if (opt->kind == WSC_OPT_FUNC) {
      live->config.log_level = fresh.config.log_level;
      live->config.log_format = fresh.config.log_format;
    } else {
      wsc_opts_copy(opt, &live->config, &fresh.config);
    }
    LOG_INFO("main", "setting reloaded key=%s", opt->name);
  }
  options_apply_process(&live->config);
  options_free(&fresh); /* nothing reloaded points into it: see below */
  return 0;
}

void options_free(options_t *o) {
  free(o->file_buf);
  o->file_buf = NULL;
}

void options_print_version(FILE *f) {
  fprintf(f, "wschat %s\n", WSCHAT_VERSION);
  fprintf(f, "commit %s\n", WSCHAT_COMMIT);
  fprintf(f, "libuv %s, %s, SQLite %s, jansson %s, http-parser %lu.%lu.%lu\n",
          uv_version_string(), OpenSSL_version(OPENSSL_VERSION), sqlite3_libversion(),
          jansson_version_str(), (http_parser_version() >> 16) & 255,
          (http_parser_version() >> 8) & 255, http_parser_version() & 255);
  fprintf(f, "default config %s\n", WSCHAT_DEFAULT_CONFIG[0] ? WSCHAT_DEFAULT_CONFIG : "none");
}
