/* chat/encode — see encode.h. */
#include "chat/encode.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/outbuf.h"

#define JW_MIN_CAP 512

void chat_jw_init(chat_jw_t *w) { memset(w, 0, sizeof *w); }

void chat_jw_free(chat_jw_t *w) {
  free(w->p);
  memset(w, 0, sizeof *w);
}

static int reserve(chat_jw_t *w, size_t n) {
  if (w->oom) return -1;
  if (w->len + n <= w->cap) return 0;
  size_t cap = w->cap ? w->cap : JW_MIN_CAP;
  while (cap < w->len + n) cap *= 2;
  char *p = realloc(w->p, cap);
  if (!p) {
    w->oom = 1;
    return -1;
  }
  w->p = p;
  w->cap = cap;
  return 0;
}

void chat_jw_raw(chat_jw_t *w, const char *s, size_t n) {
  if (reserve(w, n) < 0) return;
  memcpy(w->p + w->len, s, n);
  w->len += n;
}

#define RAW(w, lit) chat_jw_raw((w), (lit), sizeof(lit) - 1)

static int needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

void chat_jw_str(chat_jw_t *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  RAW(w, "\"");
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!needs_escape(c)) continue;
    chat_jw_raw(w, s + run, i - run);   /* copy the plain run before it */
    run = i + 1;
    switch (c) {
      case '"': RAW(w, "\\\""); break;
      case '\\': RAW(w, "\\\\"); break;
      case '\n': RAW(w, "\\n"); break;
      case '\r': RAW(w, "\\r"); break;
      case '\t': RAW(w, "\\t"); break;
      case '\b': RAW(w, "\\b"); break;
      case '\f': RAW(w, "\\f"); break;
      default: {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        chat_jw_raw(w, u, sizeof u);
      }
    }
  }
  chat_jw_raw(w, s + run, n - run);
  RAW(w, "\"");
}

static void jw_cstr(chat_jw_t *w, const char *s) { chat_jw_str(w, s, strlen(s)); }

/* ,"name" (or "name" first): names rarely need escaping, so one reserve
 * and one copy each; chat_jw_str for the others. */
static void jw_list_str(chat_jw_t *w, int first, const char *s, size_t n) {
  size_t i = 0;
  while (i < n && !needs_escape((unsigned char)s[i])) i++;
  if (i < n || reserve(w, n + 3) < 0) {
    if (!first) RAW(w, ",");
    chat_jw_str(w, s, n);
    return;
  }
  char *p = w->p + w->len;
  if (!first) *p++ = ',';
  *p++ = '"';
  memcpy(p, s, n);
  p[n] = '"';
  w->len = (size_t)(p + n + 1 - w->p);
}

void chat_jw_int(chat_jw_t *w, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
  chat_jw_raw(w, tmp, (size_t)n);
}

void chat_jw_ref(chat_jw_t *w, const json_t *ref) {
  chat_jw_raw(w, json_string_value(ref), json_string_length(ref));
}

wsc_buf_t *chat_jw_finish(chat_jw_t *w) {
  wsc_buf_t *b = w->oom ? NULL : outbuf_text(w->p, w->len);
  w->len = 0;
  w->oom = 0;
  if (w->cap > CHAT_JW_KEEP) {
    free(w->p);
    w->p = NULL;
    w->cap = 0;
  }
  return b;
}

/* ,"ref":R when there is one. */
static void jw_opt_ref(chat_jw_t *w, const json_t *ref) {
  if (!ref) return;
  RAW(w, ",\"ref\":");
  chat_jw_ref(w, ref);
}

wsc_buf_t *chat_enc_welcome(chat_jw_t *w, const char *name, const char *session) {
  RAW(w, "{\"type\":\"welcome\",\"name\":");
  jw_cstr(w, name);
  RAW(w, ",\"session\":");
  jw_cstr(w, session);
  RAW(w, "}");
  return chat_jw_finish(w);
}

void chat_jw_names(chat_jw_t *w, chat_name_at_fn name_at, void *ud, size_t from, size_t n) {
  for (size_t i = from; i < n; i++) {
    size_t len;
    const char *name = name_at(ud, i, &len);
    jw_list_str(w, i == 0, name, len);
  }
}

static void joined_head(chat_jw_t *w, const char *room) {
  RAW(w, "{\"type\":\"joined\",\"room\":");
  jw_cstr(w, room);
  RAW(w, ",\"members\":[");
}

static wsc_buf_t *joined_tail(chat_jw_t *w, int64_t last_id, const char *epoch, int recovered) {
  RAW(w, "],\"last_id\":");
  chat_jw_int(w, last_id);
  RAW(w, ",\"epoch\":");
  jw_cstr(w, epoch ? epoch : "");
  if (recovered >= 0) {
    if (recovered) RAW(w, ",\"recovered\":true");
    else RAW(w, ",\"recovered\":false");
  }
  RAW(w, "}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_joined(chat_jw_t *w, const char *room, chat_name_at_fn name_at, void *ud,
                           size_t n_members, int64_t last_id, const char *epoch, int recovered) {
  joined_head(w, room);
  chat_jw_names(w, name_at, ud, 0, n_members);
  return joined_tail(w, last_id, epoch, recovered);
}

wsc_buf_t *chat_enc_joined_list(chat_jw_t *w, const char *room, const char *members, size_t members_len,
                                int64_t last_id, const char *epoch, int recovered) {
  joined_head(w, room);
  if (members_len) chat_jw_raw(w, members, members_len);
  return joined_tail(w, last_id, epoch, recovered);
}

wsc_buf_t *chat_enc_left(chat_jw_t *w, const char *room) {
  RAW(w, "{\"type\":\"left\",\"room\":");
  jw_cstr(w, room);
  RAW(w, "}");
  return chat_jw_finish(w);
}

static void jw_message_obj(chat_jw_t *w, const store_msg_t *m) {
  RAW(w, "{\"type\":\"message\",\"room\":");
  jw_cstr(w, m->room);
  RAW(w, ",\"id\":");
  chat_jw_int(w, m->id);
  RAW(w, ",\"from\":");
  jw_cstr(w, m->from);
  RAW(w, ",\"text\":");
  chat_jw_str(w, m->text, m->text_len);
  RAW(w, ",\"ts\":");
  chat_jw_int(w, m->ts);
  RAW(w, "}");
}

wsc_buf_t *chat_enc_message(chat_jw_t *w, const store_msg_t *m) {
  jw_message_obj(w, m);
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_ack(chat_jw_t *w, const json_t *ref, const char *room, int64_t id) {
  RAW(w, "{\"type\":\"ack\"");
  jw_opt_ref(w, ref);
  if (room) {
    RAW(w, ",\"room\":");
    jw_cstr(w, room);
  }
  if (id >= 0) {
    RAW(w, ",\"id\":");
    chat_jw_int(w, id);
  }
  RAW(w, "}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_presence(chat_jw_t *w, const char *room, const char *event, const char *name,
                             const char *old, size_t count) {
  RAW(w, "{\"type\":\"presence\",\"room\":");
  jw_cstr(w, room);
  RAW(w, ",\"event\":");
  jw_cstr(w, event);
  RAW(w, ",\"name\":");
  jw_cstr(w, name);
  if (old) {
    RAW(w, ",\"old\":");
    jw_cstr(w, old);
  }
  RAW(w, ",\"count\":");
  chat_jw_int(w, (int64_t)count);
  RAW(w, "}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_typing(chat_jw_t *w, const char *room, const char *name) {
  RAW(w, "{\"type\":\"typing\",\"room\":");
  jw_cstr(w, room);
  RAW(w, ",\"name\":");
  jw_cstr(w, name);
  RAW(w, "}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_dm(chat_jw_t *w, const char *from, const char *to, const char *text,
                       size_t text_len, int64_t ts) {
  RAW(w, "{\"type\":\"dm\",\"from\":");
  jw_cstr(w, from);
  RAW(w, ",\"to\":");
  jw_cstr(w, to);
  RAW(w, ",\"text\":");
  chat_jw_str(w, text, text_len);
  RAW(w, ",\"ts\":");
  chat_jw_int(w, ts);
  RAW(w, "}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_history(chat_jw_t *w, const char *room, const store_msg_t *rows, size_t n,
                            int more) {
  RAW(w, "{\"type\":\"history\",\"room\":");
  jw_cstr(w, room);
  RAW(w, ",\"messages\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) RAW(w, ",");
    jw_message_obj(w, &rows[i]);
  }
  if (more) RAW(w, "],\"more\":true}");
  else RAW(w, "],\"more\":false}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_pong(chat_jw_t *w, const json_t *ref, int64_t ts) {
  RAW(w, "{\"type\":\"pong\"");
  jw_opt_ref(w, ref);
  RAW(w, ",\"ts\":");
  chat_jw_int(w, ts);
  RAW(w, "}");
  return chat_jw_finish(w);
}

wsc_buf_t *chat_enc_error(chat_jw_t *w, const char *code, const char *message, const json_t *ref) {
  RAW(w, "{\"type\":\"error\",\"code\":");
  jw_cstr(w, code);
  RAW(w, ",\"message\":");
  jw_cstr(w, message);
  jw_opt_ref(w, ref);
  RAW(w, "}");
  return chat_jw_finish(w);
}
