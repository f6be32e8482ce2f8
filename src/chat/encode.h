/* chat/encode — server messages of protocol v1 as sealed outbufs.
 *
 * Each function writes one message's JSON into the writer's scratch space
 * (reused across calls, so a broadcast costs no allocation besides the
 * outbuf itself), then copies it into a new sealed outbuf
 * (msg/outbuf.h) that the caller owns (one reference) and queues to
 * every recipient. NULL on allocation failure.
 *
 * JSON is written by hand: keys are fixed, strings are escaped per RFC 8259
 * (", \ and control characters); input strings are valid UTF-8 (jansson
 * and chat/names guarantee it), which passes through unchanged.
 */
#ifndef WSC_CHAT_ENCODE_H
#define WSC_CHAT_ENCODE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/store.h"

/* Scratch space larger than this is given back after use, so one huge
 * history page does not pin memory for the life of the server. */
#define CHAT_JW_KEEP (64 * 1024)

typedef struct chat_jw {
  char *p;
  size_t len, cap;
  int oom;
} chat_jw_t;

void chat_jw_init(chat_jw_t *w);
void chat_jw_free(chat_jw_t *w);

/* Primitives (exposed for tests and composite messages). */
void chat_jw_raw(chat_jw_t *w, const char *s, size_t n);
void chat_jw_str(chat_jw_t *w, const char *s, size_t n);   /* quoted, escaped */
void chat_jw_int(chat_jw_t *w, int64_t v);
/* A ref is the JSON text of the client's ref, held in a jansson string
 * (chat/proto.h): written as is, so it is echoed exactly as given. */
void chat_jw_ref(chat_jw_t *w, const json_t *ref);
/* Seals what was written into a new outbuf and resets the writer. */
wsc_buf_t *chat_jw_finish(chat_jw_t *w);

/* Names of a room's members for `joined`, by index, with their length in
 * *len (a join in a room of 100 lists ~50 names: no strlen each). */
typedef const char *(*chat_name_at_fn)(void *ud, size_t i, size_t *len);

/* Names [from, n) of name_at as they stand in joined.members: quoted, and
 * each but the list's first (index 0) after a comma. Appended to w, which
 * may hold the list's names [0, from) already (a room's cached list). */
void chat_jw_names(chat_jw_t *w, chat_name_at_fn name_at, void *ud, size_t from, size_t n);

wsc_buf_t *chat_enc_welcome(chat_jw_t *w, const char *name, const char *session);
/* recovered: -1 (no since given: field omitted), 0 or 1. */
wsc_buf_t *chat_enc_joined(chat_jw_t *w, const char *room, chat_name_at_fn name_at, void *ud,
                           size_t n_members, int64_t last_id, const char *epoch, int recovered);
/* The same with the members list already written (chat_jw_names). */
wsc_buf_t *chat_enc_joined_list(chat_jw_t *w, const char *room, const char *members, size_t members_len,
                                int64_t last_id, const char *epoch, int recovered);
wsc_buf_t *chat_enc_left(chat_jw_t *w, const char *room);
wsc_buf_t *chat_enc_message(chat_jw_t *w, const store_msg_t *m);
/* ref may be NULL (omitted); room NULL and id < 0 omit those (dm acks). */
wsc_buf_t *chat_enc_ack(chat_jw_t *w, const json_t *ref, const char *room, int64_t id);
/* event: "join", "leave", "rename" (old only for rename, else NULL). */
wsc_buf_t *chat_enc_presence(chat_jw_t *w, const char *room, const char *event, const char *name,
                             const char *old, size_t count);
wsc_buf_t *chat_enc_typing(chat_jw_t *w, const char *room, const char *name);
wsc_buf_t *chat_enc_dm(chat_jw_t *w, const char *from, const char *to, const char *text,
                       size_t text_len, int64_t ts);
wsc_buf_t *chat_enc_history(chat_jw_t *w, const char *room, const store_msg_t *rows, size_t n,
                            int more);
wsc_buf_t *chat_enc_pong(chat_jw_t *w, const json_t *ref, int64_t ts);
wsc_buf_t *chat_enc_error(chat_jw_t *w, const char *code, const char *message, const json_t *ref);

#endif
