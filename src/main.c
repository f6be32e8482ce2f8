/* wschat — a real-time chat server on its own RFC 6455 implementation.
 *
 * main.c reads the configuration (defaults, then WSCHAT_* environment,
 * then flags), opens the history store, builds the chat server, the bus,
 * and the HTTP routes, and runs the libuv loop until SIGINT/SIGTERM, when
 * every WebSocket is closed with 1001 and the process exits 0.
 */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/config.h"
#include "base/log.h"
#include "bus/bus.h"
#include "bus/dir.h"
#include "bus/dir_redis.h"
#include "bus/redis.h"
#include "chat/chat.h"
#include "h2/h2.h"
#include "h3/h3.h"
#include "http/http.h"
#include "net/net.h"
#include "redis/link.h"
#include "store/redis.h"
#include "store/store.h"
#include "transport/h3_routes.h"
#include "transport/http_session.h"
#include "transport/routes.h"
#include "transport/ws_transport.h"
#include "ws/deflate.h"

#define WSCHAT_VERSION "0.1.0"
/* Exit codes besides 0 (README.md): 1 cannot start (listen, memory, Redis),
 * 2 bad flags, 3 the history database cannot be used (unreadable, not a
 * database, corrupt, unknown schema) — fix or move the file, nothing ran. */
#define EXIT_DB_UNUSABLE 3

typedef struct app {
  uv_loop_t *loop;
  wsc_config_t config;
  store_t *store;
  bus_t *bus;
  dir_t *dir;
  wsc_redis_t *redis;
  chat_server_t *chat;
  ws_transport_t *ws;
  h2_server_t *h2;
  routes_t routes;
  hsess_server_t *sessions;
  net_server_t net;
  h3_server_t *h3;                /* --h3-port; NULL when off */
  int h3_pending, net_pending;    /* shutdown: not done yet */
  uv_signal_t sigint, sigterm, sighup;
  int exit_code;
} app_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: wschat [options]\n"
          "  --host ADDR              listen address (default 0.0.0.0; env WSCHAT_HOST)\n"
          "  --port N                 listen port (default 8000; env WSCHAT_PORT)\n"
          "  --db PATH                SQLite history file (default wschat.db; env WSCHAT_DB)\n"
          "  --fsync                  synchronous=FULL: acknowledged messages survive power loss\n"
          "  --echo                   enable GET /echo (diagnostics, conformance tests)\n"
          "  --max-message BYTES      largest WebSocket message on /echo (default 16777216)\n"
          "  --max-text BYTES         largest chat message text (default 4096)\n"
          "  --rate-limit N           chat messages per second per connection, burst 2N (default off)\n"
          "  --send-queue BYTES       per-connection send queue limit (default 1048576)\n"
          "  --max-body BYTES         largest HTTP request body (default 65536)\n"
          "  --max-connections N      open connections at most (default 100000)\n"
          "  --ping-interval SECONDS  server heartbeat ping (default 30; 0 disables)\n"
          "  --handshake-timeout SECONDS  time to send a whole HTTP request (default 10)\n"
          "  --shutdown-timeout SECONDS   time given to clients to close on shutdown (default 5)\n"
          "  --http-session-ttl SECONDS  an HTTP chat session without a request ends (default 30)\n"
          "  --max-held N             HTTP requests held open at most: long polls, sends (default 10000)\n"
          "  --http-queue-max N       events queued per HTTP session before it overflows (default 1000)\n"
          "  --allow-origin ORIGIN    also accept browser WebSockets from ORIGIN (repeatable; * = any)\n"
          "  --redis URL              share the chat with other nodes through Redis: redis://host:port[/db]\n"
          "                           (history, ids and fan-out in Redis; env WSCHAT_REDIS)\n"
          "  --redis-timeout MS       no answer from Redis for this long = unreachable (default 2000)\n"
          "  --redis-retention N      messages kept per room in Redis, about (default 10000)\n"
          "  --presence-ttl SECONDS   a dead node's members leave after this (default 15)\n"
          "  --no-deflate             do not negotiate permessage-deflate\n"
          "  --deflate-min BYTES      send messages shorter than this uncompressed (default 256)\n"
          "  --tls-port N             also serve TLS (https, wss) on port N (needs --tls-cert, --tls-key)\n"
          "  --tls-cert FILE          PEM certificate chain for --tls-port (re-read on SIGHUP)\n"
          "  --tls-key FILE           PEM private key for --tls-port (re-read on SIGHUP)\n"
          "  --h3-port N              also serve HTTP/3 (QUIC) on UDP port N (0 = off, default)\n"
          "  --h3-cert FILE           certificate (PEM) for HTTP/3 (default: --tls-cert)\n"
          "  --h3-key FILE            private key (PEM) for HTTP/3 (default: --tls-key)\n"
          "  --h3-max-connections N   QUIC connections at most (default 4096)\n"
          "  --h3-retry-above N       ask new QUIC clients to Retry (prove their address) once N\n"
          "                           handshakes are in progress (default 64; 0 = always)\n"
          "  --h3-idle-timeout SECONDS  a silent QUIC connection is dropped after this (default 30)\n"
          "  --log-level LEVEL        debug, info, warn, error (default info; env WSCHAT_LOG_LEVEL)\n"
          "  --version, --help\n");
}

static int parse_size(const char *s, size_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || *end || s[0] == '-') return -1;
  *out = (size_t)v;
  return 0;
}

static int parse_int(const char *s, int *out, int min) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < min || v > 1000000000L) return -1;
  *out = (int)v;
  return 0;
}

enum {
  OPT_HOST = 1000, OPT_PORT, OPT_DB, OPT_FSYNC, OPT_ECHO, OPT_MAX_MESSAGE, OPT_MAX_TEXT,
  OPT_RATE, OPT_SEND_QUEUE, OPT_MAX_CONN, OPT_PING, OPT_HS_TIMEOUT, OPT_SHUTDOWN_TIMEOUT,
  OPT_ORIGIN, OPT_LOG, OPT_MAX_BODY, OPT_VERSION, OPT_HELP,
  OPT_REDIS, OPT_REDIS_TIMEOUT, OPT_REDIS_RETENTION, OPT_PRESENCE_TTL,
  OPT_TLS_PORT, OPT_TLS_CERT, OPT_TLS_KEY, OPT_NO_DEFLATE, OPT_DEFLATE_MIN,
  OPT_H3_PORT, OPT_H3_CERT, OPT_H3_KEY, OPT_H3_MAX_CONN, OPT_H3_RETRY, OPT_H3_IDLE,
  OPT_HTTP_TTL, OPT_MAX_HELD, OPT_HTTP_QUEUE,
};

static const struct option options[] = {
    {"host", required_argument, 0, OPT_HOST},
    {"port", required_argument, 0, OPT_PORT},
    {"db", required_argument, 0, OPT_DB},
    {"fsync", no_argument, 0, OPT_FSYNC},
    {"echo", no_argument, 0, OPT_ECHO},
    {"max-message", required_argument, 0, OPT_MAX_MESSAGE},
    {"max-text", required_argument, 0, OPT_MAX_TEXT},
    {"rate-limit", required_argument, 0, OPT_RATE},
    {"send-queue", required_argument, 0, OPT_SEND_QUEUE},
    {"max-connections", required_argument, 0, OPT_MAX_CONN},
    {"ping-interval", required_argument, 0, OPT_PING},
    {"handshake-timeout", required_argument, 0, OPT_HS_TIMEOUT},
    {"shutdown-timeout", required_argument, 0, OPT_SHUTDOWN_TIMEOUT},
    {"allow-origin", required_argument, 0, OPT_ORIGIN},
    {"log-level", required_argument, 0, OPT_LOG},
    {"max-body", required_argument, 0, OPT_MAX_BODY},
    {"redis", required_argument, 0, OPT_REDIS},
    {"redis-timeout", required_argument, 0, OPT_REDIS_TIMEOUT},
    {"redis-retention", required_argument, 0, OPT_REDIS_RETENTION},
    {"presence-ttl", required_argument, 0, OPT_PRESENCE_TTL},
    {"no-deflate", no_argument, 0, OPT_NO_DEFLATE},
    {"deflate-min", required_argument, 0, OPT_DEFLATE_MIN},
    {"tls-port", required_argument, 0, OPT_TLS_PORT},
    {"tls-cert", required_argument, 0, OPT_TLS_CERT},
    {"tls-key", required_argument, 0, OPT_TLS_KEY},
    {"h3-port", required_argument, 0, OPT_H3_PORT},
    {"h3-cert", required_argument, 0, OPT_H3_CERT},
    {"h3-key", required_argument, 0, OPT_H3_KEY},
    {"h3-max-connections", required_argument, 0, OPT_H3_MAX_CONN},
    {"h3-retry-above", required_argument, 0, OPT_H3_RETRY},
    {"h3-idle-timeout", required_argument, 0, OPT_H3_IDLE},
    {"http-session-ttl", required_argument, 0, OPT_HTTP_TTL},
    {"max-held", required_argument, 0, OPT_MAX_HELD},
    {"http-queue-max", required_argument, 0, OPT_HTTP_QUEUE},
    {"version", no_argument, 0, OPT_VERSION},
    {"help", no_argument, 0, OPT_HELP},
    {0, 0, 0, 0},
};

static const char *option_name(int opt) {
  for (const struct option *o = options; o->name; o++)
    if (o->val == opt) return o->name;
  return "?";
}

static int apply_option(wsc_config_t *c, int opt, const char *arg) {
  wsc_log_level_t level;
  int secs;
  switch (opt) {
    case OPT_HOST: c->host = arg; return 0;
    case OPT_PORT: return parse_int(arg, &c->port, 0) || c->port > 65535 ? -1 : 0;
    case OPT_DB: c->db_path = arg; return 0;
    case OPT_FSYNC: c->fsync = 1; return 0;
    case OPT_ECHO: c->echo = 1; return 0;
    case OPT_MAX_MESSAGE: return parse_size(arg, &c->max_message);
    case OPT_MAX_TEXT: return parse_size(arg, &c->max_text) || c->max_text == 0 ? -1 : 0;
    case OPT_RATE: {
      char *end;
      c->rate_limit = strtod(arg, &end);
      return end == arg || *end || c->rate_limit < 0 ? -1 : 0;
    }
    case OPT_SEND_QUEUE: return parse_size(arg, &c->send_queue_limit);
    case OPT_MAX_BODY: return parse_size(arg, &c->max_body);
    case OPT_MAX_CONN: return parse_int(arg, &c->max_connections, 1);
    case OPT_PING:
      if (parse_int(arg, &secs, 0)) return -1;
      c->ping_interval_ms = secs * 1000;
      return 0;
    case OPT_HS_TIMEOUT:
      if (parse_int(arg, &secs, 1)) return -1;
      c->handshake_timeout_ms = secs * 1000;
      return 0;
    case OPT_SHUTDOWN_TIMEOUT:
      if (parse_int(arg, &secs, 0)) return -1;
      c->shutdown_timeout_ms = secs * 1000;
      return 0;
    case OPT_HTTP_TTL:
      if (parse_int(arg, &secs, 1)) return -1;
      c->http_session_ttl_ms = secs * 1000;
      return 0;
    case OPT_MAX_HELD: return parse_int(arg, &c->max_held, 0);
    case OPT_HTTP_QUEUE: return parse_int(arg, &c->http_queue_max, 1);
    case OPT_ORIGIN:
      if (c->n_allowed_origins == WSC_MAX_ALLOWED_ORIGINS) return -1;
      c->allowed_origins[c->n_allowed_origins++] = arg;
      return 0;
    case OPT_TLS_PORT: return parse_int(arg, &c->tls_port, 1) || c->tls_port > 65535 ? -1 : 0;
    case OPT_TLS_CERT: c->tls_cert = arg; return 0;
    case OPT_NO_DEFLATE: c->deflate = 0; return 0;
    case OPT_DEFLATE_MIN: return parse_size(arg, &c->deflate_min);
    case OPT_TLS_KEY: c->tls_key = arg; return 0;
    case OPT_H3_PORT: return parse_int(arg, &c->h3_port, 0) || c->h3_port > 65535 ? -1 : 0;
    case OPT_H3_CERT: c->h3_cert = arg; return 0;
    case OPT_H3_KEY: c->h3_key = arg; return 0;
    case OPT_H3_MAX_CONN: return parse_int(arg, &c->h3_max_connections, 1);
    case OPT_H3_RETRY: return parse_int(arg, &c->h3_retry_above, 0);
    case OPT_H3_IDLE:
      if (parse_int(arg, &secs, 1)) return -1;
      c->h3_idle_timeout_ms = secs * 1000;
      return 0;
    case OPT_LOG:
      if (wsc_log_parse_level(arg, &level)) return -1;
      wsc_log_set_level(level);
      return 0;
    case OPT_REDIS: c->redis_url = *arg ? arg : NULL; return 0;
    case OPT_REDIS_TIMEOUT: return parse_int(arg, &c->redis_timeout_ms, 50);
    case OPT_REDIS_RETENTION: return parse_int(arg, &c->redis_retention, 1);
    case OPT_PRESENCE_TTL:
      if (parse_int(arg, &secs, 1)) return -1;
      c->presence_ttl_ms = secs * 1000;
      return 0;
    default: return -1;
  }
}

static int parse_config(wsc_config_t *c, int argc, char **argv) {
  wsc_config_defaults(c);
  static const struct { const char *env; int opt; } envs[] = {
      {"WSCHAT_HOST", OPT_HOST}, {"WSCHAT_PORT", OPT_PORT}, {"WSCHAT_DB", OPT_DB},
      {"WSCHAT_LOG_LEVEL", OPT_LOG}, {"WSCHAT_REDIS", OPT_REDIS},
  };
  for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
    const char *v = getenv(envs[i].env);
    if (v && *v && apply_option(c, envs[i].opt, v)) {
      fprintf(stderr, "wschat: bad value for %s: %s\n", envs[i].env, v);
      return -1;
    }
  }
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    if (opt == OPT_HELP) { usage(stdout); exit(0); }
    if (opt == OPT_VERSION) { printf("wschat %s\n", WSCHAT_VERSION); exit(0); }
    if (opt == '?' || apply_option(c, opt, optarg)) {
      if (opt != '?') fprintf(stderr, "wschat: bad value for --%s: %s\n", option_name(opt), optarg);
      usage(stderr);
      return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "wschat: unexpected argument: %s\n", argv[optind]);
    return -1;
  }
  if ((c->tls_port || c->tls_cert || c->tls_key) && !(c->tls_port && c->tls_cert && c->tls_key)) {
    fprintf(stderr, "wschat: TLS needs all three of --tls-port, --tls-cert and --tls-key\n");
    return -1;
  }
  return 0;
}

/* Every connection is a file descriptor, and the usual soft limit (1024)
 * would refuse the 1025th client: raise it to the hard limit, as Redis
 * does, and say what we got. */
static void raise_open_files_limit(int wanted) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = (rlim_t)wanted + 64; /* listeners, the store, the loop */
  if (rl.rlim_cur >= want) return;
  rlim_t before = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < want)
    LOG_WARN("main", "open files limited to %llu (hard limit); --max-connections=%d will not all fit",
             (unsigned long long)rl.rlim_cur, wanted);
  else
    LOG_INFO("main", "open files limit raised from %llu to %llu", (unsigned long long)before,
             (unsigned long long)rl.rlim_cur);
}

/* --- shutdown --------------------------------------------------------------------- */

static void maybe_stop(app_t *app) {
  if (app->h3_pending || app->net_pending) return;
  LOG_INFO("main", "all connections closed");
  uv_stop(app->loop);
}

static void on_net_closed(net_server_t *net) {
  app_t *app = net->ud;
  app->net_pending = 0;
  maybe_stop(app);
}

static void on_h3_closed(void *ud) {
  app_t *app = ud;
  app->h3_pending = 0;
  maybe_stop(app);
}

static void on_signal(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  LOG_INFO("main", "shutting down signal=%d open=%zu", signum, app->net.n_conns);
  uv_signal_stop(&app->sigint);
  uv_signal_stop(&app->sigterm);
  uv_signal_stop(&app->sighup);
  app->net_pending = 1;
  if (app->h3) {
    app->h3_pending = 1;
    h3_server_shutdown(app->h3, app->config.shutdown_timeout_ms, on_h3_closed, app);
  }
  net_server_shutdown(&app->net, app->config.shutdown_timeout_ms, on_net_closed);
}

/* SIGHUP: re-read the TLS certificate and key; open connections keep theirs. */
static void on_sighup(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  (void)signum;
  char err[512];
  if (net_server_reload_tls(&app->net, err, sizeof err) != 0)
    LOG_ERROR("main", "TLS reload failed, keeping the old certificate err=\"%s\"", err);
  else
    LOG_INFO("main", "TLS certificate reloaded cert=%s", app->config.tls_cert);
}

/* A new connection: HTTP/2 when TLS ALPN chose "h2", else HTTP/1.1 (which
 * hands h2c with prior knowledge over to h2 itself). */
static void on_accept(net_server_t *net, net_conn_t *c) {
  app_t *app = net->ud;
  char proto[16];
  const char *p = net_conn_protocol(c, proto, sizeof proto);
  if (p && strcmp(p, "h2") == 0) h2_conn_attach(app->h2, c, NULL, 0);
  else http_conn_attach(c, &app->routes.http);
}

int main(int argc, char **argv) {
  static app_t app;
  if (parse_config(&app.config, argc, argv)) return 2;
  signal(SIGPIPE, SIG_IGN);
  /* A file size limit (ulimit -f) makes the store's writes fail (EFBIG:
   * `unavailable` to senders), not kill the server. */
  signal(SIGXFSZ, SIG_IGN);
  raise_open_files_limit(app.config.max_connections);
  app.loop = uv_default_loop();

  const char *err = NULL;
  if (app.config.redis_url) {
    /* Many nodes: history, ids and fan-out in Redis. */
    app.redis = wsc_redis_new(app.loop, &app.config, &err);
    app.store = app.redis ? store_redis_open(app.loop, app.redis, &app.config, &err) : NULL;
    if (!app.store) {
      LOG_ERROR("main", "cannot use redis url=%s err=\"%s\"", app.config.redis_url, err ? err : "?");
      return 1;
    }
  } else {
    app.store = store_open(app.loop, &app.config, &err);
    if (!app.store) {
      LOG_ERROR("main", "cannot open history db=%s err=\"%s\" exit=%d", app.config.db_path,
                err ? err : "?", EXIT_DB_UNUSABLE);
      return EXIT_DB_UNUSABLE;
    }
  }
  app.chat = chat_server_new(app.loop, &app.config, app.store);
  if (app.chat && app.redis) {
    bus_handler_t h;
    chat_server_bus_handler(app.chat, &h);
    app.bus = bus_redis_new(app.redis, &h);
    dir_handler_t dh;
    chat_server_dir_handler(app.chat, &dh);
    app.dir = dir_redis_new(app.loop, app.redis, &app.config, &dh);
  } else if (app.chat) {
    app.bus = bus_local_new(chat_server_deliver, app.chat);
    app.dir = dir_local_new();
  }
  if (!app.chat || !app.bus || !app.dir) {
    LOG_ERROR("main", "out of memory");
    return 1;
  }
  chat_server_set_bus(app.chat, app.bus);
  chat_server_set_dir(app.chat, app.dir);
  if (app.redis) wsc_redis_start(app.redis);
  app.ws = ws_transport_new(&app.config, app.chat);
  if (!app.ws) {
    LOG_ERROR("main", "out of memory");
    return 1;
  }
  routes_init(&app.routes, &app.config, app.chat);
  app.routes.ws = app.ws;
  app.sessions = hsess_server_new(app.loop, &app.config, app.chat);
  if (!app.sessions) {
    LOG_ERROR("main", "out of memory");
    return 1;
  }
  app.routes.sessions = app.sessions;

  int rc = net_server_start(&app.net, app.loop, &app.config, on_accept, &app);
  if (rc != 0) {
    LOG_ERROR("main", "cannot listen host=%s port=%d err=\"%s\"", app.config.host, app.config.port,
              uv_strerror(rc));
    return 1;
  }
  if (app.config.tls_port) {
    char tls_err[512];
    if (net_server_start_tls(&app.net, tls_err, sizeof tls_err) != 0) {
      LOG_ERROR("main", "cannot start TLS err=\"%s\"", tls_err);
      return 1;
    }
    LOG_INFO("main", "listening url=https://%s:%d/ alpn=%s", app.config.host, app.config.tls_port,
             app.config.tls_alpn);
  }
  if (app.config.h3_port) {
    /* The same certificate as the TLS listener unless told otherwise. */
    const char *cert = app.config.h3_cert ? app.config.h3_cert : app.config.tls_cert;
    const char *key = app.config.h3_key ? app.config.h3_key : app.config.tls_key;
    h3_options_t o = {app.config.host, app.config.h3_port, cert, key,
                      app.config.h3_max_connections, app.config.h3_idle_timeout_ms,
                      app.config.h3_retry_above, h3_routes_request,
                      &app.routes};
    const char *h3err = "";
    if (!o.cert_file || !o.key_file) {
      LOG_ERROR("main", "--h3-port needs a certificate and key (--tls-cert/--tls-key, or --h3-cert/--h3-key)");
      return 1;
    }
    if (h3_server_start(&app.h3, app.loop, &app.config, &o, &h3err) != 0) {
      LOG_ERROR("main", "cannot serve HTTP/3 host=%s port=%d err=\"%s\"", app.config.host,
                app.config.h3_port, h3err);
      return 1;
    }
    LOG_INFO("main", "HTTP/3 on udp port=%d", app.config.h3_port);
  }
  /* After net: its check handle must run before net's cork (h2/h2.h). */
  app.h2 = h2_server_new(app.loop, &app.config, routes_h2_request, &app.routes);
  if (!app.h2) {
    LOG_ERROR("main", "out of memory");
    return 1;
  }
  routes_enable_h2(&app.routes, app.h2);
  uv_signal_init(app.loop, &app.sigint);
  uv_signal_init(app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  uv_signal_init(app.loop, &app.sighup);
  app.sighup.data = &app;
  uv_signal_start(&app.sighup, on_sighup, SIGHUP);
  uv_unref((uv_handle_t *)&app.sighup);
  LOG_INFO("main", "listening url=http://%s:%d/ %s=%s echo=%s version=%s", app.config.host,
           app.config.port, app.redis ? "redis" : "db", app.redis ? app.config.redis_url : app.config.db_path,
           app.config.echo ? "on" : "off", WSCHAT_VERSION);

  uv_run(app.loop, UV_RUN_DEFAULT);

  /* Drain the store first: pending commits finish (the messages are
   * durable; their senders are gone) and their callbacks still find the
   * chat server alive. */
  net_server_close(&app.net);
  h3_server_free(app.h3);
  hsess_server_free(app.sessions);   /* its chat clients leave while chat is alive */
  uv_close((uv_handle_t *)&app.sigint, NULL);
  uv_close((uv_handle_t *)&app.sigterm, NULL);
  uv_close((uv_handle_t *)&app.sighup, NULL);
  store_close(app.store);
  chat_server_free(app.chat);
  bus_free(app.bus);
  dir_free(app.dir);
  ws_transport_free(app.ws);
  wsc_redis_free(app.redis);
  h2_server_free(app.h2);
  uv_run(app.loop, UV_RUN_DEFAULT);
  uv_loop_close(app.loop);
  ws_deflate_cleanup();
  LOG_INFO("main", "bye");
  return app.exit_code;
}
