/* base/config — defaults; see config.h. */
#include "base/config.h"

#include <string.h>

#include "base/log.h"

void wsc_config_defaults(wsc_config_t *c) {
  memset(c, 0, sizeof *c);
  c->host = "0.0.0.0";
  c->port = 8000;
  c->ping_interval_ms = 30 * 1000;
  c->handshake_timeout_ms = 10 * 1000;
  c->shutdown_timeout_ms = 5 * 1000;
  c->send_queue_limit = 1024 * 1024;
  c->max_connections = 100000;
  c->tls_alpn = "h2,http/1.1";
  c->deflate = 1;
  c->deflate_min = WSC_DEFLATE_MIN_DEFAULT;
  c->max_message = 16 * 1024 * 1024;
  c->max_chat_message = 64 * 1024;
  c->max_body = 64 * 1024;
  c->max_text = 4096;
  c->history_default = 50;
  c->replay_max = 1000;
  c->history_max_limit = 200;
  c->db_path = "wschat.db";
  c->redis_timeout_ms = 2000;
  c->redis_retention = 10000;
  c->presence_ttl_ms = 15 * 1000;
  c->h3_retry_above = -1;
  c->http_session_ttl_ms = 30 * 1000;
  c->max_held = 10000;
  c->http_queue_max = 1000;
  c->log_level = WSC_LOG_INFO;
  c->log_format = WSC_LOG_TEXT;
}
