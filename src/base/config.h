/* base/config — every tunable of the server in one struct.
 *
 * main fills it from defaults, then the config file, then the environment
 * (WSCHAT_*), then the command line (src/main/options.c has the table); every layer reads its own fields and never writes them.
 * Limits that are not tunable are named constants in the module that owns
 * them.
 */
#ifndef WSC_BASE_CONFIG_H
#define WSC_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define WSC_MAX_ALLOWED_ORIGINS 32
/* --deflate-min default: below this, compressing a chat message saves less
 * than it costs (docs/BENCHMARKS.md, "permessage-deflate"). */
#define WSC_DEFLATE_MIN_DEFAULT 256

typedef struct wsc_config {
  /* net */
  const char *host;               /* --host, default 0.0.0.0 */
  int port;                       /* --port, default 8000 */
  int ping_interval_ms;           /* --ping-interval (seconds), default 30 s */
  int handshake_timeout_ms;       /* --handshake-timeout (seconds), default 10 s */
  int shutdown_timeout_ms;        /* --shutdown-timeout (seconds), default 5 s */
  size_t send_queue_limit;        /* --send-queue (bytes), default 1 MiB */
  int max_connections;            /* --max-connections, default 100000 */
  int tls_port;                   /* --tls-port, 0 = no TLS listener */
  const char *tls_cert;           /* --tls-cert: PEM certificate chain */
  const char *tls_key;            /* --tls-key: PEM private key */
  const char *tls_alpn;           /* ALPN protocols, preferred first: "h2,http/1.1" */

  /* http / ws */
  size_t max_message;             /* --max-message (bytes), default 16 MiB, for /echo */
  size_t max_chat_message;        /* chat endpoints: 64 KiB (PROTOCOL.md) */
  size_t max_body;                /* --max-body (bytes) for POST, default 64 KiB */
  int echo;                       /* --echo: enable GET /echo */
  int deflate;                    /* permessage-deflate offered (--no-deflate: 0) */
  size_t deflate_min;             /* --deflate-min: smaller messages go out plain */
  const char *allowed_origins[WSC_MAX_ALLOWED_ORIGINS]; /* --allow-origin, repeatable */
  int n_allowed_origins;

  /* chat */
  size_t max_text;                /* --max-text (bytes), default 4096 */
  double rate_limit;              /* --rate-limit (msgs/s per connection), 0 = off */
  int history_default;            /* messages after `joined` without since: 50 */
  int replay_max;                 /* most messages replayed for `since`: 1000 */
  int history_max_limit;          /* clamp of history.limit: 200 */

  /* HTTP sessions (polling, long polling) */
  int http_session_ttl_ms;        /* --http-session-ttl (seconds), default 30 s */
  int max_held;                   /* --max-held: held HTTP requests at most, default 10000 */
  int http_queue_max;             /* --http-queue-max: events queued per session, default 1000 */

  /* store */
  const char *db_path;            /* --db, default ./wschat.db; ":memory:" allowed */
  int fsync;                      /* --fsync: synchronous=FULL */

  /* h3 (QUIC) */
  int h3_port;                    /* --h3-port: HTTP/3 on this UDP port, 0 = off */
  const char *h3_cert, *h3_key;   /* --h3-cert/--h3-key (PEM); default: the TLS listener's */
  int h3_max_connections;         /* --h3-max-connections, default H3_MAX_CONNECTIONS */
  int h3_idle_timeout_ms;         /* --h3-idle-timeout (seconds), default H3_IDLE_TIMEOUT_MS */
  int h3_retry_above;             /* --h3-retry-above: Retry past N handshakes (-1: default) */

  /* process (main) */
  const char *config_file;        /* --config FILE / WSCHAT_CONFIG; NULL: none */
  int log_level;                  /* --log-level, a wsc_log_level_t, default info */
  int log_format;                 /* --log-format, a wsc_log_format_t, default text */

  /* bus (cluster) */
  const char *redis_url;          /* --redis redis://host:port[/db]; NULL = SQLite + in-process bus */
  int redis_timeout_ms;           /* --redis-timeout (ms): no answer for this long = link down; 2000 */
  int redis_retention;            /* --redis-retention: messages kept per room stream (~); 10000 */
  int presence_ttl_ms;            /* --presence-ttl (s): a dead node's members leave after it; 15 s */
} wsc_config_t;

/* Fills *c with the defaults above. */
void wsc_config_defaults(wsc_config_t *c);

#endif
