/* redis/link — this node's link to Redis: two hiredis async connections on
 * the libuv loop (one for commands and scripts, answered in order; one in
 * subscribe mode), kept alive by the link itself.
 *
 * Used by store/redis.c (history, ids) and bus/redis.c (pub/sub). The link
 * is "up" once both connections are open, the scripts are loaded and a
 * PING has come back. A command that gets no answer within the timeout
 * (--redis-timeout; a Redis that is stopped accepts TCP but never answers)
 * or a broken connection takes the link down: every command still waiting
 * gets its callback with reply NULL, new commands are refused at once
 * (WSC_REDIS_EDOWN), and the link reconnects by itself with backoff (100 ms
 * doubling to 1 s). While up and idle it PINGs once a second, so a stopped
 * Redis is noticed without traffic too.
 *
 * Ownership: the caller owns the link (wsc_redis_free); replies passed to
 * callbacks belong to hiredis and are valid during the call only.
 */
#ifndef WSC_REDIS_LINK_H
#define WSC_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "base/config.h"

#define WSC_REDIS_EDOWN (-2)       /* the link is down: nothing was sent */
#define WSC_REDIS_EFULL (-1)       /* too many commands waiting, or out of memory */
#define WSC_REDIS_MAX_PENDING 200000
#define WSC_REDIS_MAX_SCRIPTS 24
#define WSC_REDIS_SHA_LEN 40

typedef struct wsc_redis wsc_redis_t;

/* A command's answer: reply NULL when the link broke or timed out before it
 * (the command may or may not have run). */
typedef void (*wsc_redis_reply_cb)(void *ud, redisReply *reply);

/* What the link tells the bus (any may be NULL). */
typedef struct wsc_redis_events {
  void (*up)(void *ud);                 /* (again) up: no subscription is active */
  void (*down)(void *ud);
  void (*subscribed)(void *ud, const char *channel, size_t len);
  void (*message)(void *ud, const char *channel, size_t chlen, const char *payload, size_t len);
  void *ud;
} wsc_redis_events_t;

/* Parses config->redis_url (redis://host:port[/db] or host:port). NULL and
 * *err on a bad URL. Does not connect yet (wsc_redis_start). */
wsc_redis_t *wsc_redis_new(uv_loop_t *loop, const wsc_config_t *config, const char **err);
/* Registers a Lua script (before wsc_redis_start; the text must outlive
 * the link); its SHA1 in sha (hex, NUL-terminated) for EVALSHA. 0 or -1. */
int wsc_redis_script(wsc_redis_t *r, const char *lua, char sha[WSC_REDIS_SHA_LEN + 1]);
/* Who hears the link: slot 0 the bus, slot 1 the directory, slot 2 the HTTP
 * sessions (transport/http_session_redis) (NULL: none). */
#define WSC_REDIS_LISTENERS 3
void wsc_redis_set_events(wsc_redis_t *r, int slot, const wsc_redis_events_t *ev);
/* Starts connecting (and keeps reconnecting). */
void wsc_redis_start(wsc_redis_t *r);
int wsc_redis_is_up(const wsc_redis_t *r);
/* A random hex id of this node (16 digits), made at wsc_redis_new. */
const char *wsc_redis_node_id(const wsc_redis_t *r);
/* Commands waiting for an answer. */
size_t wsc_redis_pending(const wsc_redis_t *r);

/* Sends a command on the command connection; cb (may be NULL) runs once
 * with the answer. 0, or WSC_REDIS_EDOWN / WSC_REDIS_EFULL (cb not run). */
int wsc_redis_command(wsc_redis_t *r, wsc_redis_reply_cb cb, void *ud, int argc, const char **argv,
                      const size_t *argvlen);
/* SUBSCRIBE / UNSUBSCRIBE on the subscribe connection (only while up;
 * the subscriptions die with the link: events.up says to subscribe again).
 * 0 or WSC_REDIS_EDOWN. */
int wsc_redis_subscribe(wsc_redis_t *r, const char *channel);
int wsc_redis_unsubscribe(wsc_redis_t *r, const char *channel);

/* Runs the loop until no command waits (at most timeout_ms). */
void wsc_redis_drain(wsc_redis_t *r, int timeout_ms);
/* Closes both connections (waiting callbacks get NULL) and frees. */
void wsc_redis_free(wsc_redis_t *r);

#endif
