/* wschat — a real-time chat server on its own RFC 6455 implementation.
 *
 * main.c reads the configuration (main/options: defaults, config file,
 * WSCHAT_* environment, flags), opens the history store, builds the chat server, the bus,
 * and the HTTP routes, and runs the libuv loop until SIGINT/SIGTERM, when
 * every WebSocket is closed with 1001 and the process exits 0. SIGHUP
 * reloads the configuration and the TLS certificate; under systemd
 * (NOTIFY_SOCKET) readiness, reloads and stopping are reported with
 * main/sdnotify.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/config.h"
#include "base/heap.h"
#include "base/log.h"
#include "bus/bus.h"
#include "bus/dir.h"
#include "bus/dir_redis.h"
#include "bus/redis.h"
#include "chat/chat.h"
#include "h2/h2.h"
#include "h3/h3.h"
#include "http/http.h"
#include "main/options.h"
#include "main/sdnotify.h"
#include "net/net.h"
#include "redis/link.h"
#include "store/redis.h"
#include "store/store.h"
#include "transport/h3_routes.h"
#include "transport/http_session.h"
#include "transport/routes.h"
#include "transport/ws_transport.h"
#include "ws/deflate.h"

/* Exit codes besides 0 (README.md): 1 cannot start (listen, memory, Redis),
 * 2 bad flags, 3 the history database cannot be used (unreadable, not a
 * database, corrupt, unknown schema) — fix or move the file, nothing ran. */
#define EXIT_DB_UNUSABLE 3

typedef struct app {
  uv_loop_t *loop;
  options_t opts;                 /* opts.config is the live configuration */
  int argc;                       /* kept for reloads (SIGHUP) */
  char **argv;
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
  uv_timer_t heap_timer;          /* base/heap: free pages back after a burst */
  wsc_heap_watch_t heap;
  int exit_code;
} app_t;

static const char *show_func(const wsc_opt_t *o, const void *target) {
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  const wsc_config_t *c = target;
  if (strcmp(o->name, "log-level") == 0) return levels[c->log_level & 3];
  if (strcmp(o->name, "log-format") == 0) return c->log_format == WSC_LOG_JSON ? "json" : "text";
  return "?";
}

/* Reads the options; returns -1 to go on, else the exit status. */
static int parse_config(app_t *app, int argc, char **argv) {
  if (options_load(&app->opts, argc, argv)) return 2;
  switch (app->opts.action) {
    case OPTIONS_HELP: wsc_opts_help(&wschat_opts, stdout); return 0;
    case OPTIONS_HELP_MAN: wsc_opts_man(&wschat_opts, stdout); return 0;
    case OPTIONS_HELP_CONFIG: wsc_opts_example(&wschat_opts, stdout); return 0;
    case OPTIONS_VERSION: options_print_version(stdout); return 0;
    case OPTIONS_CHECK:
      printf("# wschat: configuration valid (file %s)\n",
             app->opts.config.config_file ? app->opts.config.config_file : "none");
      wsc_opts_dump(&wschat_opts, &app->opts.config, stdout, show_func);
      return 0;
    case OPTIONS_RUN: break;
  }
  options_apply_process(&app->opts.config);
  return -1;
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

static void on_heap_timer(uv_timer_t *h) {
  app_t *app = h->data;
  wsc_heap_tidy(&app->heap);
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
  sdnotify("STOPPING=1");
  uv_signal_stop(&app->sigint);
  uv_signal_stop(&app->sigterm);
  uv_signal_stop(&app->sighup);
  app->net_pending = 1;
  if (app->h3) {
    app->h3_pending = 1;
    h3_server_shutdown(app->h3, app->opts.config.shutdown_timeout_ms, on_h3_closed, app);
  }
  net_server_shutdown(&app->net, app->opts.config.shutdown_timeout_ms, on_net_closed);
}

/* SIGHUP: read every config source again (reloadable settings take effect,
 * main/options), and re-read the TLS certificate and key; open connections
 * keep theirs. */
static void on_sighup(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  (void)signum;
  sdnotify_reloading();
  int rc = options_reload(&app->opts, app->argc, app->argv);
  LOG_INFO("main", "reload done ok=%s", rc == 0 ? "yes" : "no");
  if (!app->opts.config.tls_port) {
    sdnotify("READY=1");
    return;
  }
  char err[512];
  if (net_server_reload_tls(&app->net, err, sizeof err) != 0)
    LOG_ERROR("main", "TLS reload failed, keeping the old certificate err=\"%s\"", err);
  else
    LOG_INFO("main", "TLS certificate reloaded cert=%s", app->opts.config.tls_cert);
  sdnotify("READY=1");
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
  int status = parse_config(&app, argc, argv);
  if (status >= 0) {
    options_free(&app.opts);
    return status;
  }
  app.argc = argc;
  app.argv = argv;
  signal(SIGPIPE, SIG_IGN);
  /* A file size limit (ulimit -f) makes the store's writes fail (EFBIG:
   * `unavailable` to senders), not kill the server. */
  signal(SIGXFSZ, SIG_IGN);
  raise_open_files_limit(app.opts.config.max_connections);
  app.loop = uv_default_loop();

  const char *err = NULL;
  if (app.opts.config.redis_url) {
    /* Many nodes: history, ids and fan-out in Redis. */
    app.redis = wsc_redis_new(app.loop, &app.opts.config, &err);
    app.store = app.redis ? store_redis_open(app.loop, app.redis, &app.opts.config, &err) : NULL;
    if (!app.store) {
      LOG_ERROR("main", "cannot use redis url=%s err=\"%s\"", app.opts.config.redis_url, err ? err : "?");
      return 1;
    }
  } else {
    app.store = store_open(app.loop, &app.opts.config, &err);
    if (!app.store) {
      LOG_ERROR("main", "cannot open history db=%s err=\"%s\" exit=%d", app.opts.config.db_path,
                err ? err : "?", EXIT_DB_UNUSABLE);
      return EXIT_DB_UNUSABLE;
    }
  }
  app.chat = chat_server_new(app.loop, &app.opts.config, app.store);
  if (app.chat && app.redis) {
    bus_handler_t h;
    chat_server_bus_handler(app.chat, &h);
    app.bus = bus_redis_new(app.redis, &h);
    dir_handler_t dh;
    chat_server_dir_handler(app.chat, &dh);
    app.dir = dir_redis_new(app.loop, app.redis, &app.opts.config, &dh);
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
  app.ws = ws_transport_new(&app.opts.config, app.chat);
  if (!app.ws) {
    LOG_ERROR("main", "out of memory");
    return 1;
  }
  routes_init(&app.routes, &app.opts.config, app.chat);
  app.routes.ws = app.ws;
  app.sessions = hsess_server_new(app.loop, &app.opts.config, app.chat, app.redis);
  if (!app.sessions) {
    LOG_ERROR("main", "out of memory");
    return 1;
  }
  if (app.redis) wsc_redis_start(app.redis);   /* after every module registered its scripts */
  app.routes.sessions = app.sessions;

  int rc = net_server_start(&app.net, app.loop, &app.opts.config, on_accept, &app);
  if (rc != 0) {
    LOG_ERROR("main", "cannot listen host=%s port=%d err=\"%s\"", app.opts.config.host, app.opts.config.port,
              uv_strerror(rc));
    return 1;
  }
  if (app.opts.config.tls_port) {
    char tls_err[512];
    if (net_server_start_tls(&app.net, tls_err, sizeof tls_err) != 0) {
      LOG_ERROR("main", "cannot start TLS err=\"%s\"", tls_err);
      return 1;
    }
    LOG_INFO("main", "listening url=https://%s:%d/ alpn=%s", app.opts.config.host, app.opts.config.tls_port,
             app.opts.config.tls_alpn);
  }
  if (app.opts.config.h3_port) {
    /* The same certificate as the TLS listener unless told otherwise. */
    const char *cert = app.opts.config.h3_cert ? app.opts.config.h3_cert : app.opts.config.tls_cert;
    const char *key = app.opts.config.h3_key ? app.opts.config.h3_key : app.opts.config.tls_key;
    h3_options_t o = {app.opts.config.host, app.opts.config.h3_port, cert, key,
                      app.opts.config.h3_max_connections, app.opts.config.h3_idle_timeout_ms,
                      app.opts.config.h3_retry_above, h3_routes_request,
                      &app.routes};
    const char *h3err = "";
    if (!o.cert_file || !o.key_file) {
      LOG_ERROR("main", "--h3-port needs a certificate and key (--tls-cert/--tls-key, or --h3-cert/--h3-key)");
      return 1;
    }
    if (h3_server_start(&app.h3, app.loop, &app.opts.config, &o, &h3err) != 0) {
      LOG_ERROR("main", "cannot serve HTTP/3 host=%s port=%d err=\"%s\"", app.opts.config.host,
                app.opts.config.h3_port, h3err);
      return 1;
    }
    LOG_INFO("main", "HTTP/3 on udp port=%d", app.opts.config.h3_port);
  }
  /* After net: its check handle must run before net's cork (h2/h2.h). */
  app.h2 = h2_server_new(app.loop, &app.opts.config, routes_h2_request, &app.routes);
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
  wsc_heap_start();
  uv_timer_init(app.loop, &app.heap_timer);
  app.heap_timer.data = &app;
  uv_timer_start(&app.heap_timer, on_heap_timer, WSC_HEAP_TIDY_MS, WSC_HEAP_TIDY_MS);
  uv_unref((uv_handle_t *)&app.heap_timer);
  LOG_INFO("main", "listening url=http://%s:%d/ %s=%s echo=%s version=%s", app.opts.config.host,
           app.opts.config.port, app.redis ? "redis" : "db", app.redis ? app.opts.config.redis_url : app.opts.config.db_path,
           app.opts.config.echo ? "on" : "off", wschat_opts.version);
  sdnotify("READY=1");

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
  uv_close((uv_handle_t *)&app.heap_timer, NULL);
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
  options_free(&app.opts);
  return app.exit_code;
}
