/* transport/http_session_redis — where HTTP chat sessions live on a
 * cluster (--redis): the session record and its event queue in Redis, so a
 * request for a session may land on any node (no sticky sessions).
 *
 * The session's chat client stays on ONE node, its home (the node that
 * answered POST /http/session): the home produces the session's events as
 * on one node, numbers them (seq) and appends each to the session's stream.
 * Any node answers /http/poll and /http/longpoll from that stream, and
 * forwards /http/send to the home over the home's node channel; the home
 * publishes the reply back on the asking node's channel.
 *
 * Keys (hash-tagged by the token, so a session is one Redis Cluster slot):
 *   wschat:hs:{T}      hash: home (node id), inst (which session of that
 *                      token: a takeover makes a new one), seq (the last
 *                      seq appended), ovf (the queue overflowed), seen
 *                      (wall ms of the last request on any node), held
 *                      (deadline of a held long poll), poller (the node
 *                      holding it), pgen (poll generation)
 *   wschat:hs:{T}:q    stream: entry <seq>-0, field j = the event's JSON
 *                      with "seq" first; trimmed by the polls' ack
 * The home deletes both when the session ends; every script that uses
 * them refreshes their expiry (the session TTL + HSR_EXPIRE_SLACK_MS), so
 * only a dead home's sessions are left to expire.
 * Messages on a node channel wschat:node:<node> (beside the directory's
 * k and d):
 *   h<token>                 wake: an event was appended (to the poller)
 *   x<gen> <token>           a newer poll (or the session's end) took over:
 *                            a held poll of an older generation answers []
 *   s<reqid> <node> <token> <body>   a /http/send for the home to run
 *   r<reqid> <status> <j|t><body>    its answer, to the node that asked
 * A session whose home died (swept from wschat:nodes) moves to the first
 * node that gets a request for it (hsr_rehome): same token, queue and seq.
 * All scripts run on the link's command connection, in order.
 *
 * Ownership: the caller owns the link (it outlives this) and every buffer
 * passed in; callbacks' pointers are valid during the call only.
 */
#ifndef WSC_TRANSPORT_HTTP_SESSION_REDIS_H
#define WSC_TRANSPORT_HTTP_SESSION_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "redis/link.h"

#define HSR_EXPIRE_SLACK_MS 3600000  /* keys outlive the TTL by this: only a dead home's are left */
#define HSR_POLL_COUNT_MAX 4096      /* events read per poll at most */
#define HSR_INST_MAX 48

/* Poll results (status < 0). */
#define HSR_E_UNKNOWN (-10)          /* no such session */
#define HSR_E_ACK (-11)              /* ack beyond the last seq (*last set) */
#define HSR_E_HOME_GONE (-12)        /* the home node is dead */
#define HSR_E_SUPERSEDED (-13)       /* a newer poll took over (reread only) */
#define HSR_E_DOWN (-14)             /* Redis unreachable, or no answer in time */
#define HSR_E_NO_ANSWER (-15)        /* forward: nobody listens on the home's channel (yet in the nodes) */

typedef struct hsr hsr_t;

typedef struct hsr_handler {
  void (*wake)(void *ud, const char *token);
  void (*supersede)(void *ud, const char *token, uint64_t gen);
  void (*send)(void *ud, uint64_t reqid, const char *node, const char *token, const char *body, size_t len);
  void (*reply)(void *ud, uint64_t reqid, int status, int json, const char *body, size_t len);
  void *ud;
} hsr_handler_t;

/* Registers the scripts (call before wsc_redis_start) and listens on the
 * link's slot 2. NULL on ENOMEM. */
hsr_t *hsr_new(wsc_redis_t *link, const wsc_config_t *config, const hsr_handler_t *h);
void hsr_free(hsr_t *r);
int hsr_up(const hsr_t *r);
const char *hsr_node(const hsr_t *r);

/* 1 if the token may name a session in Redis (1-64 of [0-9A-Za-z_-]). */
int hsr_token_ok(const char *token);

/* status: 0, or < 0 (HSR_E_*). */
typedef void (*hsr_status_cb)(void *ud, int status, int64_t value);

/* The home made (or took over) session `token`: a new record and an empty
 * queue; a poll held for the old one is answered []. */
int hsr_create(hsr_t *r, const char *token, const char *inst, hsr_status_cb cb, void *ud);
/* Appends one event (json: {"seq":N,...}) if `inst` is still the session
 * and its queue holds fewer than `limit`. cb value: 0 appended (or there
 * already: a seq not above the last is skipped, so resending after a lost
 * answer is safe), 1 the queue is full (nothing more is appended until
 * hsr_reset), -1 not this session. */
int hsr_append(hsr_t *r, const char *token, const char *inst, uint64_t seq, const char *json, size_t len,
               int limit, hsr_status_cb cb, void *ud);
/* The queue replaced by one event (the overflow error); skipped like an
 * append when its seq is not above the last. */
int hsr_reset(hsr_t *r, const char *token, const char *inst, uint64_t seq, const char *json, size_t len,
              hsr_status_cb cb, void *ud);
/* The session ended: its keys go (if `inst` is still the session). */
void hsr_end(hsr_t *r, const char *token, const char *inst);
/* When the session was last used on any node (wall ms; now while a poll
 * is held). cb value: that time, or -1 when the record is gone. */
int hsr_last_use(hsr_t *r, const char *token, hsr_status_cb cb, void *ud);

/* A poll's answer: gen, and the events (each JSON with "seq"). */
typedef void (*hsr_poll_cb)(void *ud, int status, uint64_t gen, uint64_t last, const char *const *events,
                            const size_t *lens, size_t n);
enum { HSR_POLL_NOW = 0, HSR_POLL_HOLD = 1, HSR_POLL_REREAD = 2 };
/* Drops the events up to ack and reads those after it (at most max_bytes
 * of them, at least one). HOLD: when there are none, this node becomes the
 * session's poller (woken by h<token>). REREAD: for a held poll of `gen`. */
int hsr_poll(hsr_t *r, const char *token, uint64_t ack, int mode, uint64_t gen, int64_t hold_until_ms,
             size_t max_bytes, hsr_poll_cb cb, void *ud);
/* A held poll of `gen` ended without events (timeout, client gone). */
void hsr_poll_done(hsr_t *r, const char *token, uint64_t gen);

/* Forwards a /http/send to the session's home. cb value: 1 sent, or
 * status HSR_E_UNKNOWN / HSR_E_HOME_GONE / HSR_E_NO_ANSWER / HSR_E_DOWN. */
int hsr_forward(hsr_t *r, const char *token, uint64_t reqid, const char *body, size_t len, hsr_status_cb cb,
                void *ud);
/* The session's home is gone (swept): this node becomes its home, as
 * `inst`, keeping its queue and seq, and `event` (a JSON object) is
 * appended as the next seq, in the same script. cb value: that seq, -1
 * unknown, -2 another node's (its home is alive). */
int hsr_rehome(hsr_t *r, const char *token, const char *inst, const char *event, size_t len, hsr_status_cb cb,
               void *ud);
/* The home's answer to a forwarded send, to the node that asked. */
void hsr_answer(hsr_t *r, const char *node, uint64_t reqid, int status, int json, const char *body, size_t len);

#endif
