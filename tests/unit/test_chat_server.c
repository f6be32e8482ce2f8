/* chat/ driven through its real API (chat.h) with a real SQLite store in a
 * temporary directory, the real in-process bus, a real libuv loop and a
 * fake transport that records every buffer it is given. Covers the
 * behaviour of docs/PROTOCOL.md that needs server state: names and
 * sessions, rooms and presence, exact join/replay, resume, history, dm,
 * typing, rate limits, plain text on /ws/{room}, and the lifetime rules
 * (store callbacks after detach, detach from inside a send, server freed
 * with operations in flight) that ASan checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "bus/bus.h"
#include "chat/chat.h"
#include "chat/internal.h"   /* white box: srv->pending, to wait for the store */
#include "store/store.h"
#include "msg/outbuf.h"

#define MAX_MSGS 4096
#define MAX_LOOP_ITERATIONS 100000
#define TEST_MAX_TEXT 100
#define TEST_HISTORY_DEFAULT 3
#define TEST_REPLAY_MAX 5

/* ---- fake transport ---------------------------------------------------------- */

typedef struct fake {
  json_t *msgs[MAX_MSGS];
  size_t n, next;
  int close_code;
  char close_reason[64];
  int fail_sends;          /* send returns -1 (over the queue limit) */
  int detach_in_send;      /* ...and detaches at once, from inside send */
  int detach_in_close;
  int held;                /* fake_hold_ops: chat holds room events for it (net's F_HELD) */
  chat_client_t *c;
} fake_t;

static int fake_send(void *ud, wsc_buf_t *b) {
  fake_t *f = ud;
  const uint8_t *frame = wsc_buf_bytes(b);
  assert_int_equal(frame[0], 0x81);   /* sealed: FIN + text */
  if (f->fail_sends) {
    if (f->detach_in_send && f->c) {
      chat_client_t *c = f->c;
      f->c = NULL;
      chat_client_detach(c);
    }
    return -1;
  }
  /* One buffer may hold several frames (a join's replay): read each. */
  size_t off = 0;
  while (off < b->len) {
    const uint8_t *fr = frame + off;
    assert_int_equal(fr[0], 0x81);
    size_t hlen = 2, len = fr[1] & 0x7f;
    if (len == 126) { len = ((size_t)fr[2] << 8) | fr[3]; hlen = 4; }
    else if (len == 127) { len = 0; for (int i = 0; i < 8; i++) len = (len << 8) | fr[2 + i]; hlen = 10; }
    assert_true(off + hlen + len <= b->len);
    assert_true(f->n < MAX_MSGS);
    json_error_t err;
    json_t *j = json_loadb((const char *)fr + hlen, len, 0, &err);
    if (!j) fail_msg("server sent invalid JSON: %s", err.text);
    f->msgs[f->n++] = j;
    off += hlen + len;
  }
  return 0;
}

static void fake_close(void *ud, int code, const char *reason) {
  fake_t *f = ud;
  f->close_code = code;
  snprintf(f->close_reason, sizeof f->close_reason, "%s", reason);
  if (f->detach_in_close && f->c) {
    chat_client_t *c = f->c;
    f->c = NULL;
    chat_client_detach(c);
  }
}

static const chat_transport_ops_t fake_ops = {.send = fake_send, .reply = fake_send, .notify = fake_send, .close = fake_close};

/* A transport that lets chat hold room events, as a TCP WebSocket does
 * (net_conn_hold): what is held is asked for (chat_client_fill) before
 * anything else is queued, or when the test "writes" the connection. */
static int fake_held_send(void *ud, wsc_buf_t *b) {
  fake_t *f = ud;
  if (f->held && f->c) {
    f->held = 0;
    chat_client_fill(f->c);
  }
  return fake_send(ud, b);
}
static int fake_hold(void *ud) {
  ((fake_t *)ud)->held = 1;
  return 0;
}
static const chat_transport_ops_t fake_hold_ops = {.send = fake_held_send, .reply = fake_held_send,
                                                   .notify = fake_held_send, .hold = fake_hold, .close = fake_close};

/* The lazy round reaches f: what chat holds for it is queued. */
static void fake_write(fake_t *f) {
  if (f->held && f->c) {
    f->held = 0;
    chat_client_fill(f->c);
  }
}

/* The next unread message (borrowed; freed with the fake). */
static json_t *take(fake_t *f) {
  if (f->next >= f->n) fail_msg("expected another message (got %zu)", f->n);
  return f->msgs[f->next++];
}

static const char *str(json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  if (!v || !json_is_string(v)) {
    char *d = json_dumps(j, 0);
    fail_msg("no string %s in %s", key, d);
  }
  return json_string_value(v);
}

static int64_t num(json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  if (!v || !json_is_integer(v)) {
    char *d = json_dumps(j, 0);
    fail_msg("no integer %s in %s", key, d);
  }
  return json_integer_value(v);
}

/* Takes the next message and checks its type. */
static json_t *expect_at(fake_t *f, const char *type, int line) {
  if (f->next >= f->n) fail_msg("line %d: expected %s, got nothing", line, type);
  json_t *j = take(f);
  if (strcmp(str(j, "type"), type) != 0) {
    char *d = json_dumps(j, 0);
    fail_msg("line %d: expected %s, got %s", line, type, d);
  }
  return j;
}
#define expect(f, type) expect_at((f), (type), __LINE__)

static void expect_error_at(fake_t *f, const char *code, int line) {
  json_t *j = expect_at(f, "error", line);
  if (strcmp(str(j, "code"), code) != 0) fail_msg("line %d: expected error %s, got %s", line, code, str(j, "code"));
}
#define expect_error(f, code) expect_error_at((f), (code), __LINE__)

static void expect_none_at(fake_t *f, int line) {
  if (f->next < f->n) {
    char *d = json_dumps(f->msgs[f->next], 0);
    fail_msg("line %d: unexpected message %s", line, d);
  }
}
#define expect_none(f) expect_none_at((f), __LINE__)

static void fake_clear(fake_t *f) {
  for (size_t i = 0; i < f->n; i++) json_decref(f->msgs[i]);
  f->n = f->next = 0;
}

/* ---- fixture ----------------------------------------------------------------- */

typedef struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  wsc_config_t config;
  store_t *store;
  bus_t *bus;
  chat_server_t *srv;
  fake_t fakes[8];
} fixture_t;

static void open_all(fixture_t *fx) {
  const char *err = NULL;
  fx->store = store_open(&fx->loop, &fx->config, &err);
  if (!fx->store) fail_msg("store_open: %s", err ? err : "?");
  fx->srv = chat_server_new(&fx->loop, &fx->config, fx->store);
  assert_non_null(fx->srv);
  fx->bus = bus_local_new(chat_server_deliver, fx->srv);
  assert_non_null(fx->bus);
  chat_server_set_bus(fx->srv, fx->bus);
}

static int setup(void **state) {
  fixture_t *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  snprintf(fx->dir, sizeof fx->dir, "/tmp/wsc-test-chat-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->path, sizeof fx->path, "%s/chat.db", fx->dir);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  wsc_config_defaults(&fx->config);
  fx->config.db_path = fx->path;
  fx->config.max_text = TEST_MAX_TEXT;
  fx->config.history_default = TEST_HISTORY_DEFAULT;
  fx->config.replay_max = TEST_REPLAY_MAX;
  open_all(fx);
  *state = fx;
  return 0;
}

/* Runs the loop until every store operation chat issued has called back. */
static void settle(fixture_t *fx) {
  for (int i = 0; fx->srv->pending; i++) {
    if (i == MAX_LOOP_ITERATIONS) fail_msg("store operations never completed");
    uv_run(&fx->loop, UV_RUN_ONCE);
  }
}

static void detach(fake_t *f) {
  if (!f->c) return;
  chat_client_t *c = f->c;
  f->c = NULL;
  chat_client_detach(c);
}

static int teardown(void **state) {
  fixture_t *fx = *state;
  for (size_t i = 0; i < sizeof fx->fakes / sizeof *fx->fakes; i++) detach(&fx->fakes[i]);
  if (fx->srv) {
    settle(fx);
    chat_server_free(fx->srv);
  }
  if (fx->store) store_close(fx->store);
  bus_free(fx->bus);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  for (size_t i = 0; i < sizeof fx->fakes / sizeof *fx->fakes; i++) fake_clear(&fx->fakes[i]);
  const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
  char name[256];
  for (size_t i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "%s%s", fx->path, suffixes[i]);
    unlink(name);
  }
  assert_int_equal(rmdir(fx->dir), 0);
  free(fx);
  return 0;
}

static fake_t *connect_p(fixture_t *fx, int slot, const chat_connect_params_t *p) {
  fake_t *f = &fx->fakes[slot];
  f->c = chat_client_attach(fx->srv, &fake_ops, f, p);
  assert_non_null(f->c);
  return f;
}

static fake_t *connect_holding(fixture_t *fx, int slot, const char *name) {
  fake_t *f = &fx->fakes[slot];
  chat_connect_params_t p = {.name = name};
  f->c = chat_client_attach(fx->srv, &fake_hold_ops, f, &p);
  assert_non_null(f->c);
  return f;
}

/* /ws?name=NAME (NULL: none) */
static fake_t *connect_named(fixture_t *fx, int slot, const char *name) {
  chat_connect_params_t p = {.name = name};
  return connect_p(fx, slot, &p);
}

static void say(fake_t *f, const char *json) { chat_client_receive(f->c, json, strlen(json)); }

static void sayf(fake_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sayf(fake_t *f, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  say(f, buf);
}

/* Joins and settles, consuming an unread welcome, `joined` and replay. */
static void join(fixture_t *fx, fake_t *f, const char *room) {
  if (f->next < f->n && strcmp(str(f->msgs[f->next], "type"), "welcome") == 0) f->next++;
  sayf(f, "{\"type\":\"join\",\"room\":\"%s\"}", room);
  settle(fx);
  json_t *j = expect(f, "joined");
  assert_string_equal(str(j, "room"), room);
  for (int64_t i = 0, n = num(j, "last_id"); i < n && i < TEST_HISTORY_DEFAULT; i++) expect(f, "message");
}

static int is_guest(const char *name) {
  if (strncmp(name, "guest-", 6) != 0 || strlen(name) != 10) return 0;
  for (int i = 6; i < 10; i++)
    if (!strchr("0123456789abcdef", name[i])) return 0;
  return 1;
}

/* ---- names and sessions ---------------------------------------------------------- */

static void test_welcome_and_names(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  json_t *w = expect(a, "welcome");
  assert_string_equal(str(w, "name"), "alice");
  const char *tok = str(w, "session");
  assert_int_equal(strlen(tok), 32);
  assert_int_equal(strspn(tok, "0123456789abcdef"), 32);
  expect_none(a);

  /* held (case-insensitively) -> name_taken, then a guest welcome */
  fake_t *b = connect_named(fx, 1, "  ALICE ");
  expect_error(b, "name_taken");
  w = expect(b, "welcome");
  assert_true(is_guest(str(w, "name")));
  assert_string_not_equal(str(w, "session"), tok);

  fake_t *c = connect_named(fx, 2, "guest-0000");
  expect_error(c, "bad_name");
  assert_true(is_guest(str(expect(c, "welcome"), "name")));

  fake_t *d = connect_named(fx, 3, NULL);
  assert_true(is_guest(str(expect(d, "welcome"), "name")));
  expect_none(d);

  /* trimmed, and free again once its connection is gone */
  fake_t *e = connect_named(fx, 4, "  bob  ");
  assert_string_equal(str(expect(e, "welcome"), "name"), "bob");
  detach(e);
  fake_clear(e);
  e = connect_named(fx, 4, "Bob");
  assert_string_equal(str(expect(e, "welcome"), "name"), "Bob");
}

static void test_hello_rename(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  const char *tok = str(expect(a, "welcome"), "session");
  fake_t *b = connect_named(fx, 1, "bob");
  expect(b, "welcome");
  join(fx, a, "r1");
  join(fx, b, "r1");
  expect(a, "presence");
  join(fx, a, "r2");

  say(a, "{\"type\":\"hello\",\"name\":\" Al \"}");
  json_t *w = expect(a, "welcome");
  assert_string_equal(str(w, "name"), "Al");
  assert_string_equal(str(w, "session"), tok);
  /* every room of the renamer, every member including the renamer */
  for (int i = 0; i < 2; i++) {
    json_t *p = expect(a, "presence");
    assert_string_equal(str(p, "event"), "rename");
    assert_string_equal(str(p, "name"), "Al");
    assert_string_equal(str(p, "old"), "alice");
  }
  json_t *p = expect(b, "presence");
  assert_string_equal(str(p, "room"), "r1");
  assert_string_equal(str(p, "event"), "rename");
  assert_int_equal(num(p, "count"), 2);
  expect_none(b);

  say(b, "{\"type\":\"hello\",\"name\":\"al\",\"ref\":\"h1\"}");
  expect_error(b, "name_taken");
  say(b, "{\"type\":\"hello\",\"name\":\"guest-1\"}");
  expect_error(b, "bad_name");
  /* alice's old name is free now */
  say(b, "{\"type\":\"hello\",\"name\":\"alice\"}");
  assert_string_equal(str(expect(b, "welcome"), "name"), "alice");
  expect(b, "presence");
  expect(a, "presence");

  /* the same name again: welcome, no presence */
  say(a, "{\"type\":\"hello\",\"name\":\"Al\"}");
  expect(a, "welcome");
  expect_none(a);
  /* a case change of one's own name is allowed and announced */
  say(a, "{\"type\":\"hello\",\"name\":\"AL\"}");
  assert_string_equal(str(expect(a, "welcome"), "name"), "AL");
  assert_string_equal(str(expect(a, "presence"), "old"), "Al");
}

/* Names of up to 13 bytes live inside the session, longer ones are
 * malloc'd: renames across that line keep the old name for the presence,
 * free the old name in the names map and hold the new one. */
static void test_rename_inline_and_long(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "short");
  expect(a, "welcome");
  fake_t *b = connect_named(fx, 1, "bob");
  expect(b, "welcome");
  join(fx, a, "r1");
  join(fx, b, "r1");
  expect(a, "presence");
  const char *names[] = {"a-name-of-seventeen", "tiny", "thirteen-byte", "fourteen-bytes", "thirteen-BYTE", "s"};
  const char *old = "short";
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    sayf(a, "{\"type\":\"hello\",\"name\":\"%s\"}", names[i]);
    assert_string_equal(str(expect(a, "welcome"), "name"), names[i]);
    json_t *p = expect(a, "presence");
    assert_string_equal(str(p, "name"), names[i]);
    assert_string_equal(str(p, "old"), old);
    p = expect(b, "presence");
    assert_string_equal(str(p, "event"), "rename");
    assert_string_equal(str(p, "name"), names[i]);
    assert_string_equal(str(p, "old"), old);
    /* the new name is held, the old one free again */
    sayf(b, "{\"type\":\"hello\",\"name\":\"%s\"}", names[i]);
    expect_error(b, "name_taken");
    sayf(b, "{\"type\":\"hello\",\"name\":\"%s\"}", old);
    assert_string_equal(str(expect(b, "welcome"), "name"), old);
    expect(b, "presence");
    expect(a, "presence");
    sayf(b, "{\"type\":\"hello\",\"name\":\"bob\"}");
    expect(b, "welcome");
    expect(b, "presence");
    expect(a, "presence");
    old = names[i];
  }
  expect_none(a);
  expect_none(b);
}

static void test_session_reclaim(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  char tok[64];
  snprintf(tok, sizeof tok, "%s", str(expect(a, "welcome"), "session"));
  fake_t *b = connect_named(fx, 1, "bob");
  expect(b, "welcome");
  join(fx, a, "r");
  join(fx, b, "r");
  expect(a, "presence");

  /* reclaim while the old connection is open */
  chat_connect_params_t p = {.session = tok, .name = "ignored"};
  fake_t *a2 = connect_p(fx, 2, &p);
  json_t *w = expect(a2, "welcome");
  assert_string_equal(str(w, "name"), "alice");
  assert_string_equal(str(w, "session"), tok);
  expect_none(a2);
  assert_int_equal(a->close_code, 4001);
  assert_string_equal(a->close_reason, "replaced");
  json_t *pr = expect(b, "presence");
  assert_string_equal(str(pr, "event"), "leave");
  assert_string_equal(str(pr, "name"), "alice");
  assert_int_equal(num(pr, "count"), 1);
  /* the old connection is dead to chat: nothing it says has effect */
  say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"ghost\"}");
  settle(fx);
  expect_none(b);
  detach(a);
  expect_none(b);
  /* the new one joined no rooms by itself */
  say(a2, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"x\",\"ref\":1}");
  expect_error(a2, "not_member");
  /* the name is still held: */
  fake_t *c = connect_named(fx, 3, "alice");
  expect_error(c, "name_taken");
  expect(c, "welcome");

  /* after a2 closes, the token reclaims the name if it is free... */
  detach(a2);
  fake_t *a3 = connect_p(fx, 4, &p);
  assert_string_equal(str(expect(a3, "welcome"), "name"), "alice");
  detach(a3);
  /* ...and gets name_taken + a guest name when someone else took it */
  say(b, "{\"type\":\"hello\",\"name\":\"ALICE\"}");
  expect(b, "welcome");
  fake_clear(&fx->fakes[4]);
  a3 = connect_p(fx, 4, &p);
  expect_error(a3, "name_taken");
  w = expect(a3, "welcome");
  assert_true(is_guest(str(w, "name")));
  assert_string_equal(str(w, "session"), tok);

  /* an unknown token is ignored: a new session with ?name= */
  chat_connect_params_t q = {.session = "00000000000000000000000000000000", .name = "carol"};
  fake_t *d = connect_p(fx, 5, &q);
  w = expect(d, "welcome");
  assert_string_equal(str(w, "name"), "carol");
  assert_string_not_equal(str(w, "session"), q.session);
}

/* Sessions of closed connections are kept up to a cap, oldest dropped. */
static void test_idle_sessions_capped(void **state) {
  fixture_t *fx = *state;
  fx->srv->idle_max = 2;
  char tok[3][64];
  const char *names[] = {"one", "two", "three"};
  for (int i = 0; i < 3; i++) {
    fake_t *f = connect_named(fx, 0, names[i]);
    snprintf(tok[i], sizeof tok[i], "%s", str(expect(f, "welcome"), "session"));
    detach(f);
    fake_clear(f);
  }
  assert_int_equal(fx->srv->n_idle, 2);
  chat_connect_params_t p = {.session = tok[0]};
  fake_t *f = connect_p(fx, 0, &p);   /* dropped: a new guest session */
  json_t *w = expect(f, "welcome");
  assert_true(is_guest(str(w, "name")));
  assert_string_not_equal(str(w, "session"), tok[0]);
  p.session = tok[2];
  fake_t *g = connect_p(fx, 1, &p);
  w = expect(g, "welcome");
  assert_string_equal(str(w, "name"), "three");
  assert_string_equal(str(w, "session"), tok[2]);
  assert_int_equal(fx->srv->n_idle, 1);   /* "two"; "three" is live again */
  detach(g);
  detach(f);
  assert_int_equal(fx->srv->n_idle, 2);
}

static void test_reclaim_detach_in_close(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  a->detach_in_close = 1;   /* a transport that detaches from inside close */
  char tok[64];
  snprintf(tok, sizeof tok, "%s", str(expect(a, "welcome"), "session"));
  join(fx, a, "r");
  chat_connect_params_t p = {.session = tok, .room = "r"};
  fake_t *a2 = connect_p(fx, 1, &p);
  assert_null(a->c);
  assert_int_equal(a->close_code, 4001);
  expect(a2, "welcome");
  settle(fx);
  json_t *j = expect(a2, "joined");
  assert_int_equal(json_array_size(json_object_get(j, "members")), 1);
}

/* ---- rooms, messages, presence ----------------------------------------------------- */

static void test_join_send_order(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");
  expect(a, "welcome");
  expect(b, "welcome");
  say(a, "{\"type\":\"join\",\"room\":\"general\"}");
  settle(fx);
  json_t *j = expect(a, "joined");
  assert_string_equal(str(j, "room"), "general");
  assert_int_equal(num(j, "last_id"), 0);
  assert_string_equal(str(j, "epoch"), store_epoch(fx->store));
  assert_null(json_object_get(j, "recovered"));
  assert_int_equal(json_array_size(json_object_get(j, "members")), 1);

  say(b, "{\"type\":\"join\",\"room\":\"general\"}");
  settle(fx);
  j = expect(b, "joined");
  assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
  j = expect(a, "presence");
  assert_string_equal(str(j, "event"), "join");
  assert_string_equal(str(j, "name"), "bob");
  assert_int_equal(num(j, "count"), 2);
  expect_none(b);   /* no presence for oneself */

  /* re-join: joined again, no presence to anyone */
  say(b, "{\"type\":\"join\",\"room\":\"general\"}");
  settle(fx);
  assert_int_equal(json_array_size(json_object_get(expect(b, "joined"), "members")), 2);
  expect_none(a);

  say(a, "{\"type\":\"send\",\"room\":\"general\",\"text\":\"hi\",\"ref\":\"c1\"}");
  say(b, "{\"type\":\"send\",\"room\":\"general\",\"text\":\"yo\",\"ref\":7}");
  settle(fx);
  j = expect(a, "ack");
  assert_string_equal(str(j, "ref"), "c1");
  assert_string_equal(str(j, "room"), "general");
  assert_int_equal(num(j, "id"), 1);
  j = expect(a, "message");
  assert_int_equal(num(j, "id"), 1);
  assert_string_equal(str(j, "from"), "alice");
  assert_string_equal(str(j, "text"), "hi");
  assert_true(num(j, "ts") > 1700000000000);
  assert_int_equal(num(expect(a, "message"), "id"), 2);
  assert_int_equal(num(expect(b, "message"), "id"), 1);
  j = expect(b, "ack");
  assert_int_equal(num(j, "ref"), 7);
  assert_int_equal(num(j, "id"), 2);
  assert_int_equal(num(expect(b, "message"), "id"), 2);
  expect_none(a);
  expect_none(b);
}

/* Messages appended before, during and after a join reach the joiner
 * exactly once, in id order: by replay or live, never both. */
static void test_join_exact(void **state) {
  fixture_t *fx = *state;
  fx->config.history_default = 50;
  fx->srv->lim.history_default = 50;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");
  join(fx, a, "r");
  fake_clear(a);
  fake_clear(b);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 4; i++) sayf(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"m%d\"}", i);
    if (round == 1) say(b, "{\"type\":\"join\",\"room\":\"r\"}");
  }
  settle(fx);
  json_t *j = expect(b, "joined");
  int64_t last = num(j, "last_id");
  assert_int_equal(last, 8);   /* the appends issued before the join */
  for (int64_t id = 1; id <= 12; id++) assert_int_equal(num(expect(b, "message"), "id"), id);
  expect_none(b);
}

static void test_since_resume(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  join(fx, a, "r");
  for (int i = 1; i <= 10; i++) sayf(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"m%d\"}", i);
  settle(fx);
  const char *epoch = store_epoch(fx->store);

  struct {
    int64_t since;
    const char *epoch;
    int recovered;
    int64_t first, last;   /* replayed ids */
  } cases[] = {
      {5, NULL, 1, 6, 10},           /* 5 follow = replay_max: all */
      {10, NULL, 1, 0, -1},          /* nothing missed */
      {4, NULL, 0, 8, 10},           /* 6 follow > replay_max: latest 3 */
      {11, NULL, 0, 8, 10},          /* since beyond last_id */
      {7, "different", 0, 8, 10},    /* another database */
      {7, "", 0, 8, 10},
      {7, epoch, 1, 8, 10},
      {0, NULL, 0, 8, 10},           /* 10 follow */
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char since[32];
    snprintf(since, sizeof since, "%lld", (long long)cases[k].since);
    chat_connect_params_t p = {.name = "bob", .room = "r", .since = since, .epoch = cases[k].epoch};
    fake_t *b = connect_p(fx, 1, &p);
    expect(b, "welcome");
    settle(fx);
    json_t *j = expect(b, "joined");
    assert_int_equal(num(j, "last_id"), 10);
    json_t *rec = json_object_get(j, "recovered");
    assert_non_null(rec);
    if (json_is_true(rec) != cases[k].recovered) fail_msg("case %zu: recovered", k);
    for (int64_t id = cases[k].first; id && id <= cases[k].last; id++)
      assert_int_equal(num(expect(b, "message"), "id"), id);
    expect_none(b);
    detach(b);
    fake_clear(b);
  }

  /* the same through a join message */
  fake_t *b = connect_named(fx, 1, "bob");
  expect(b, "welcome");
  say(b, "{\"type\":\"join\",\"room\":\"r\",\"since\":8}");
  settle(fx);
  json_t *jj = expect(b, "joined");
  assert_true(json_is_true(json_object_get(jj, "recovered")));
  assert_int_equal(num(expect(b, "message"), "id"), 9);
  assert_int_equal(num(expect(b, "message"), "id"), 10);
  say(b, "{\"type\":\"join\",\"room\":\"r\",\"since\":-1,\"ref\":\"j\"}");
  expect_error(b, "bad_request");
  /* a bad ?since= is reported and the room is NOT joined (no plain join
   * for a client that asked to resume) */
  chat_connect_params_t p = {.name = "carol", .room = "r", .since = "abc"};
  fake_t *c = connect_p(fx, 2, &p);
  expect(c, "welcome");
  expect_error(c, "bad_request");
  settle(fx);
  expect_none(c);
}

static void test_leave_and_membership(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");
  expect(a, "welcome");
  expect(b, "welcome");
  join(fx, a, "r");
  join(fx, b, "r");
  expect(a, "presence");

  say(b, "{\"type\":\"leave\",\"room\":\"r\"}");
  json_t *j = expect(b, "left");
  assert_string_equal(str(j, "room"), "r");
  j = expect(a, "presence");
  assert_string_equal(str(j, "event"), "leave");
  assert_string_equal(str(j, "name"), "bob");
  assert_int_equal(num(j, "count"), 1);

  const char *reqs[] = {
      "{\"type\":\"leave\",\"room\":\"r\",\"ref\":\"x\"}",
      "{\"type\":\"send\",\"room\":\"r\",\"text\":\"t\",\"ref\":\"x\"}",
      "{\"type\":\"typing\",\"room\":\"r\",\"ref\":\"x\"}",
      "{\"type\":\"history\",\"room\":\"r\",\"ref\":\"x\"}",
      "{\"type\":\"send\",\"room\":\"nowhere\",\"text\":\"t\",\"ref\":\"x\"}",
  };
  for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
    say(b, reqs[i]);
    j = expect(b, "error");
    assert_string_equal(str(j, "code"), "not_member");
    assert_string_equal(str(j, "ref"), "x");
  }
  /* field checks come before membership */
  say(b, "{\"type\":\"send\",\"room\":\"no way\",\"text\":\"t\"}");
  expect_error(b, "bad_room");
  expect_none(a);

  /* the last member leaving frees the room; joining creates it again */
  detach(a);
  say(b, "{\"type\":\"join\",\"room\":\"r\"}");
  settle(fx);
  assert_int_equal(json_array_size(json_object_get(expect(b, "joined"), "members")), 1);
}

static void test_errors_and_ping(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  expect(a, "welcome");
  join(fx, a, "r");
  say(a, "not json");
  expect_error(a, "bad_request");
  say(a, "{\"type\":\"frobnicate\",\"ref\":3}");
  json_t *j = expect(a, "error");
  assert_string_equal(str(j, "code"), "unknown_type");
  assert_int_equal(num(j, "ref"), 3);
  say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"\",\"ref\":\"e\"}");
  expect_error(a, "bad_request");
  char big[TEST_MAX_TEXT + 64];
  memset(big, 'x', TEST_MAX_TEXT + 1);
  big[TEST_MAX_TEXT + 1] = '\0';
  sayf(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"%s\"}", big);
  expect_error(a, "too_large");
  big[TEST_MAX_TEXT] = '\0';
  sayf(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"%s\"}", big);   /* exactly max: fine */
  settle(fx);
  expect(a, "ack");
  expect(a, "message");

  say(a, "{\"type\":\"ping\",\"ref\":\"p1\"}");
  j = expect(a, "pong");
  assert_string_equal(str(j, "ref"), "p1");
  assert_true(num(j, "ts") > 1700000000000);
  say(a, "{\"type\":\"ping\"}");
  j = expect(a, "pong");
  assert_null(json_object_get(j, "ref"));
  say(a, "{\"type\":\"ping\",\"ref\":2.5}");
  assert_true(json_real_value(json_object_get(expect(a, "pong"), "ref")) == 2.5);
  expect_none(a);
}

static void test_typing(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");
  join(fx, a, "r");
  join(fx, b, "r");
  fake_clear(a);
  fake_clear(b);
  say(a, "{\"type\":\"typing\",\"room\":\"r\"}");
  say(a, "{\"type\":\"typing\",\"room\":\"r\"}");   /* within 2 s: dropped */
  json_t *j = expect(b, "typing");
  assert_string_equal(str(j, "room"), "r");
  assert_string_equal(str(j, "name"), "alice");
  expect_none(b);
  expect_none(a);   /* not to oneself, and no error for the dropped one */
  say(b, "{\"type\":\"typing\",\"room\":\"r\"}");   /* per member */
  expect(a, "typing");
  /* per room */
  join(fx, a, "s");
  join(fx, b, "s");
  fake_clear(a);
  fake_clear(b);
  say(a, "{\"type\":\"typing\",\"room\":\"s\"}");
  assert_string_equal(str(expect(b, "typing"), "room"), "s");
  /* 2 s later it goes out again */
  chat_room_t *r = chat_room_get(fx->srv, "s", 1);
  chat_client_t *ac = a->c;
  chat_rooms(ac)[chat_find_membership(ac, r)].typing_ms -= CHAT_TYPING_INTERVAL_MS;
  say(a, "{\"type\":\"typing\",\"room\":\"s\"}");
  expect(b, "typing");
}

/* Held room events (server.c): kept by the room until the member is
 * written, then queued as one run; exactly once and in order — across two
 * rooms, past the ring's CHAT_HELD_MAX, around the excluded typer, before a reply. */
static void expect_presence_at(fake_t *f, const char *room, const char *event, const char *name, int64_t count,
                               int line) {
  json_t *p = expect_at(f, "presence", line);
  if (strcmp(str(p, "room"), room) || strcmp(str(p, "event"), event) || strcmp(str(p, "name"), name) ||
      num(p, "count") != count)
    fail_msg("line %d: expected presence %s %s %s %lld, got %s", line, room, event, name, (long long)count,
             json_dumps(p, 0));
}
#define expect_presence(f, room, event, name, count) expect_presence_at((f), (room), (event), (name), (count), __LINE__)

/* Leaves (b is not holding: what it was sent is dropped, `left` included). */
static void leave_clear(fake_t *f, const char *room) {
  sayf(f, "{\"type\":\"leave\",\"room\":\"%s\"}", room);
  fake_clear(f);
}

static void test_held_events(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_holding(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");        /* not holding: each event queued at once */
  fake_t *c = connect_holding(fx, 2, "carol");
  join(fx, a, "r");
  join(fx, a, "s");
  join(fx, b, "r");
  join(fx, c, "r");
  expect_presence(b, "r", "join", "carol", 3);
  expect_none(a);                                 /* held: nothing queued yet */
  fake_write(a);
  expect_presence(a, "r", "join", "bob", 2);
  expect_presence(a, "r", "join", "carol", 3);
  expect_none(a);

  /* two rooms: r, s, r in the order they happened */
  join(fx, c, "s");
  leave_clear(b, "r");
  join(fx, b, "r");
  fake_write(a);
  expect_presence(a, "s", "join", "carol", 2);
  expect_presence(a, "r", "leave", "bob", 2);
  expect_presence(a, "r", "join", "bob", 3);
  expect_none(a);

  /* a reply takes what is held along, first */
  fake_write(c);
  fake_clear(c);
  join(fx, b, "s");
  say(c, "{\"type\":\"ping\",\"ref\":\"p\"}");
  expect_presence(c, "s", "join", "bob", 3);
  expect(c, "pong");

  /* the typing member is not told of its own typing; the others are, in order */
  fake_write(a);
  fake_clear(a);
  fake_clear(c);
  leave_clear(b, "s");
  say(a, "{\"type\":\"typing\",\"room\":\"s\"}");
  join(fx, b, "s");
  fake_write(a);
  fake_write(c);
  expect_presence(a, "s", "leave", "bob", 2);
  expect_presence(a, "s", "join", "bob", 3);
  expect_none(a);
  expect_presence(c, "s", "leave", "bob", 2);
  assert_string_equal(str(expect(c, "typing"), "name"), "alice");
  expect_presence(c, "s", "join", "bob", 3);
  expect_none(c);

  /* more than the ring keeps: CHAT_HELD_MAX + 6 events, none lost or doubled */
  enum { PAIRS = CHAT_HELD_MAX / 2 + 3 };
  fake_clear(a);
  for (int i = 0; i < PAIRS; i++) {
    leave_clear(b, "r");
    join(fx, b, "r");
  }
  fake_write(a);
  for (int i = 0; i < PAIRS; i++) {
    expect_presence(a, "r", "leave", "bob", 2);
    expect_presence(a, "r", "join", "bob", 3);
  }
  expect_none(a);
}

static void test_dm(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "Bob");
  expect(a, "welcome");
  expect(b, "welcome");
  say(a, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"psst\",\"ref\":\"c2\"}");
  json_t *j = expect(b, "dm");
  assert_string_equal(str(j, "from"), "alice");
  assert_string_equal(str(j, "to"), "Bob");
  assert_string_equal(str(j, "text"), "psst");
  assert_true(num(j, "ts") > 1700000000000);
  j = expect(a, "ack");
  assert_string_equal(str(j, "ref"), "c2");
  assert_null(json_object_get(j, "id"));
  assert_null(json_object_get(j, "room"));
  say(a, "{\"type\":\"dm\",\"to\":\"ALICE\",\"text\":\"me\",\"ref\":1}");
  expect_error(a, "bad_request");
  say(a, "{\"type\":\"dm\",\"to\":\"nobody\",\"text\":\"x\",\"ref\":1}");
  expect_error(a, "no_such_user");
  say(a, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"\"}");
  expect_error(a, "bad_request");
  detach(b);
  say(a, "{\"type\":\"dm\",\"to\":\"bob\",\"text\":\"x\"}");
  expect_error(a, "no_such_user");
  expect_none(a);
}

static void test_history(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  join(fx, a, "r");
  for (int i = 1; i <= 10; i++) sayf(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"m%d\"}", i);
  settle(fx);
  fake_clear(a);

  struct {
    const char *req;
    int64_t first, last;
    int more;
  } cases[] = {
      {"{\"type\":\"history\",\"room\":\"r\",\"limit\":4}", 7, 10, 1},
      {"{\"type\":\"history\",\"room\":\"r\",\"before\":7,\"limit\":4}", 3, 6, 1},
      {"{\"type\":\"history\",\"room\":\"r\",\"before\":3,\"limit\":4}", 1, 2, 0},
      {"{\"type\":\"history\",\"room\":\"r\",\"before\":1}", 0, -1, 0},
      {"{\"type\":\"history\",\"room\":\"r\",\"before\":0}", 0, -1, 0},
      {"{\"type\":\"history\",\"room\":\"r\"}", 8, 10, 1},          /* default (3 here) */
      {"{\"type\":\"history\",\"room\":\"r\",\"before\":999,\"limit\":1000}", 1, 10, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    say(a, cases[k].req);
    settle(fx);
    json_t *j = expect(a, "history");
    assert_string_equal(str(j, "room"), "r");
    json_t *msgs = json_object_get(j, "messages");
    size_t want = cases[k].first ? (size_t)(cases[k].last - cases[k].first + 1) : 0;
    if (json_array_size(msgs) != want) fail_msg("case %zu: %zu messages", k, json_array_size(msgs));
    for (size_t i = 0; i < want; i++) {
      json_t *m = json_array_get(msgs, i);
      assert_string_equal(str(m, "type"), "message");
      assert_int_equal(num(m, "id"), cases[k].first + (int64_t)i);
      assert_string_equal(str(m, "room"), "r");
      assert_string_equal(str(m, "from"), "alice");
    }
    if (json_is_true(json_object_get(j, "more")) != cases[k].more) fail_msg("case %zu: more", k);
  }
  say(a, "{\"type\":\"history\",\"room\":\"r\",\"limit\":0,\"ref\":\"h\"}");
  expect_error(a, "bad_request");
  expect_none(a);
}

static void test_rate_limit(void **state) {
  fixture_t *fx = *state;
  fx->config.rate_limit = 1;   /* 1/s, burst 2 (read at attach) */
  fake_t *a = connect_named(fx, 0, "alice");
  join(fx, a, "r");
  fake_clear(a);
  for (int i = 0; i < 3; i++) sayf(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"m\",\"ref\":%d}", i);
  json_t *j = expect(a, "error");   /* synchronous: before the acks */
  assert_string_equal(str(j, "code"), "rate_limited");
  assert_int_equal(num(j, "ref"), 2);
  settle(fx);
  assert_int_equal(num(expect(a, "ack"), "id"), 1);
  expect(a, "message");
  assert_int_equal(num(expect(a, "ack"), "id"), 2);   /* the limited one took no id */
  expect(a, "message");
  expect_none(a);
  /* dm and ping are not rate limited */
  say(a, "{\"type\":\"ping\"}");
  expect(a, "pong");
}

static void test_room_endpoint(void **state) {
  fixture_t *fx = *state;
  chat_connect_params_t p = {.room = "demo", .room_endpoint = 1};
  fake_t *a = connect_p(fx, 0, &p);
  fake_t *b = connect_named(fx, 1, "bob");
  expect(a, "welcome");
  settle(fx);
  expect(a, "joined");
  join(fx, b, "demo");
  expect(a, "presence");

  say(a, "hello there");
  say(a, "{\"no\":\"type\"}");
  say(a, "[1,2,3]");
  say(a, "{\"type\":\"ping\"}");
  expect(a, "pong");   /* a protocol message: answered at once */
  say(a, "");
  expect_error(a, "bad_request");
  char big[TEST_MAX_TEXT + 2];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  say(a, big);
  expect_error(a, "too_large");
  say(a, "{\"type\":\"nope\"}");
  expect_error(a, "unknown_type");
  settle(fx);
  const char *texts[] = {"hello there", "{\"no\":\"type\"}", "[1,2,3]"};
  for (int i = 0; i < 3; i++) {
    json_t *ack = expect(a, "ack");
    assert_null(json_object_get(ack, "ref"));
    assert_int_equal(num(ack, "id"), i + 1);
    assert_string_equal(str(expect(a, "message"), "text"), texts[i]);
    assert_string_equal(str(expect(b, "message"), "text"), texts[i]);
  }
  /* on /ws plain text is just a bad request */
  say(b, "hello there");
  expect_error(b, "bad_request");
  /* after leaving its room, plain text gets not_member */
  say(a, "{\"type\":\"leave\",\"room\":\"demo\"}");
  expect(a, "left");
  say(a, "more");
  expect_error(a, "not_member");
  /* a bad room in the URL of /ws */
  chat_connect_params_t q = {.room = "bad room"};
  fake_t *c = connect_p(fx, 2, &q);
  expect(c, "welcome");
  expect_error(c, "bad_room");
  expect_none(c);
}

/* ---- lifetimes ------------------------------------------------------------------- */

static void test_detach_with_pending(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");
  join(fx, a, "r");
  join(fx, b, "r");
  fake_clear(b);
  /* a's send, join and history are in flight when a goes away */
  say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"last words\",\"ref\":\"z\"}");
  say(a, "{\"type\":\"join\",\"room\":\"other\"}");
  say(a, "{\"type\":\"history\",\"room\":\"r\",\"ref\":\"h\"}");
  size_t before = a->n;
  detach(a);
  assert_string_equal(str(expect(b, "presence"), "event"), "leave");
  settle(fx);
  /* stored and delivered to the room anyway; nothing to the gone client */
  assert_string_equal(str(expect(b, "message"), "text"), "last words");
  assert_int_equal(a->n, before);
  expect_none(b);
}

static void test_detach_inside_send(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  fake_t *b = connect_named(fx, 1, "bob");
  fake_t *c = connect_named(fx, 2, "carol");
  join(fx, a, "r");
  join(fx, b, "r");
  join(fx, c, "r");
  fake_clear(a);
  fake_clear(c);
  /* b's queue is over its limit: its transport detaches it from inside
   * send, in the middle of the fan-out */
  b->fail_sends = 1;
  b->detach_in_send = 1;
  for (int i = 0; i < 3; i++) say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"x\"}");
  settle(fx);
  assert_null(b->c);
  for (int64_t id = 1; id <= 3; id++) {
    json_t *j = expect(a, "ack");
    assert_int_equal(num(j, "id"), id);
    j = expect(a, "message");
    assert_int_equal(num(j, "id"), id);
    if (id == 1) {   /* b left once the first fan-out was over */
      j = expect(a, "presence");
      assert_string_equal(str(j, "event"), "leave");
      assert_int_equal(num(j, "count"), 2);
    }
  }
  for (int64_t id = 1; id <= 3; id++) {
    assert_int_equal(num(expect(c, "message"), "id"), id);
    if (id == 1) expect(c, "presence");
  }
  expect_none(c);

  /* a send that fails without detaching: chat stops sending to it */
  c->fail_sends = 1;
  say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"y\"}");
  settle(fx);
  say(c, "{\"type\":\"ping\"}");
  c->fail_sends = 0;
  say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"z\"}");
  settle(fx);
  expect_none(c);
}

static void test_free_with_pending(void **state) {
  fixture_t *fx = *state;
  fake_t *a = connect_named(fx, 0, "alice");
  join(fx, a, "r");
  say(a, "{\"type\":\"send\",\"room\":\"r\",\"text\":\"in flight\"}");
  say(a, "{\"type\":\"history\",\"room\":\"r\"}");
  fake_clear(a);
  /* the server goes first; the store's callbacks come later */
  chat_server_free(fx->srv);
  fx->srv = NULL;
  store_close(fx->store);
  fx->store = NULL;
  expect_none(a);
  /* the transport detaches its connection after the server is gone */
  detach(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_welcome_and_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hello_rename, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rename_inline_and_long, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_reclaim, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reclaim_detach_in_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_sessions_capped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_join_send_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_join_exact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_since_resume, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leave_and_membership, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors_and_ping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_typing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_held_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dm, setup, teardown),
      cmocka_unit_test_setup_teardown(test_history, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_room_endpoint, setup, teardown),
      cmocka_unit_test_setup_teardown(test_detach_with_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_detach_inside_send, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
