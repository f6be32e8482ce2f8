/* wschat-cli — a terminal client that knows the wschat protocol.
 *
 *   wschat-cli ws://host:8000 --room general --name ann
 *
 * Joins the room and prints its recent history, then every message
 * ("[12:01] bob: hi"), presence and typing line. A typed line is sent to
 * the current room; /join R, /leave R, /dm NAME text, /history, /who,
 * /quit are commands. When the connection drops it reconnects with
 * exponential backoff, reclaims its name with the session token and
 * rejoins each room with `since` = the last id it printed, so nothing is
 * missed and nothing is printed twice. --json prints every server object
 * as received, one a line. When stdin is not a terminal, each line is
 * sent and the client exits at EOF once every message is acknowledged
 * (exit 1 if any was refused).
 *
 * One libuv loop: a TCP connection speaking RFC 6455 through the
 * wschat-bench codec (tools/wschat-bench/wsc.c: handshake, masked frames,
 * incremental parser), jansson for the JSON, stdin as a tty, a pipe or a
 * file. Options come from one table (base/opts), which also writes --help
 * and the man page (--help-man).
 */
#include <signal.h>
#include <stdarg.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/opts.h"
#include "http_poll.h"
#include "tls_client.h"
#include "wsc.h"

#ifndef WSCHAT_VERSION
#define WSCHAT_VERSION "0.0.0"
#endif

#define CLI_MAX_ROOMS 32          /* rooms joined at once */
#define CLI_MAX_LINE 65536        /* longest input line */
#define CLI_MAX_INFLIGHT 64       /* unacknowledged sends before stdin pauses */
#define CLI_MAX_PENDING 1024      /* sends remembered for acks (in flight + queued) */
#define CLI_MAX_MEMBERS 256       /* names remembered per room for /who */
#define CLI_RECV_KEEP (1 << 20)   /* largest server message kept */
#define CLI_CLOSE_WAIT_MS 2000    /* time the server gets to answer our close */

/* --- options -------------------------------------------------------------------------- */

typedef struct cli_opts {
  const char *room;
  const char *name;
  int json;
  int backoff_max_ms;
  int history;
  int ack_timeout_ms;
  const char *ca_file;
  int insecure;
  const char *transport;
} cli_opts_t;

#define F(field) offsetof(cli_opts_t, field)
static const wsc_opt_t table[] = {
    {"room", "ROOM", WSC_OPT_STR, F(room), 0, 0, 0, NULL, NULL, "general",
     "the room joined at start and where typed lines go", 0},
    {"name", "NAME", WSC_OPT_STR, F(name), 0, 0, 0, NULL, NULL, NULL,
     "display name (default: a guest name the server assigns)", 0},
    {"json", NULL, WSC_OPT_BOOL, F(json), 0, 0, 0, NULL, NULL, "false",
     "print every server object as received, one JSON object a line (for scripts); "
     "an input line that starts with { is sent as is", 0},
    {"history", "N", WSC_OPT_INT, F(history), 0, 1, 200, NULL, NULL, "20",
     "messages fetched by /history", 0},
    {"reconnect-max", "SECONDS", WSC_OPT_SECS, F(backoff_max_ms), 0, 1, 3600, NULL, NULL, "10",
     "longest wait between reconnection attempts (backoff starts at 0.25 s and doubles)", 0},
    {"ack-timeout", "SECONDS", WSC_OPT_SECS, F(ack_timeout_ms), 0, 1, 3600, NULL, NULL, "30",
     "when stdin is not a terminal: at EOF, how long to wait for the last acknowledgements", 0},
    {"transport", "KIND", WSC_OPT_STR, F(transport), 0, 0, 0, NULL, NULL, "ws",
     "ws (a WebSocket) or longpoll (plain HTTP requests: POST /http/session, /http/send, GET "
     "/http/longpoll) for networks a WebSocket cannot cross", 0},
    {"ca", "FILE", WSC_OPT_STR, F(ca_file), 0, 0, 0, NULL, NULL, NULL,
     "wss://: trust the certificates in FILE (PEM) instead of the system's", 0},
    {"insecure", NULL, WSC_OPT_BOOL, F(insecure), 0, 0, 0, NULL, NULL, "false",
     "wss://: do not verify the server's certificate (tests only)", 0},
    {"version", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL, "print the version and exit", 0},
    {"help", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL, "print this help and exit (also -h)", 0},
    {"help-man", NULL, WSC_OPT_ACTION, 0, 0, 0, 0, NULL, NULL, NULL,
     "print the wschat-cli(1) man page (roff) and exit", 0},
};

static const wsc_opts_section_t sections[] = {
    {"COMMANDS",
     "A line that does not start with / is sent to the current room.\n\n"
     "  /join ROOM        join ROOM (its recent history follows) and make it current\n"
     "  /leave [ROOM]     leave ROOM (default: the current room)\n"
     "  /room ROOM        make an already joined ROOM current\n"
     "  /dm NAME TEXT     a direct message to NAME\n"
     "  /history          older messages of the current room\n"
     "  /who              who is in the current room\n"
     "  /quit             close the connection and exit (also end of input)"},
    {"OUTPUT",
     "  [12:01] bob: hi                      a message (local time)\n"
     "  [12:01] * carol joined (3 here)      presence\n"
     "  [12:01] * carol is typing            typing\n"
     "  [12:02] bob -> ann: psst             a direct message\n"
     "  ! too_large: text longer than 4096   an error from the server\n\n"
     "With more than one room joined, lines carry #room. Lines starting with * or ! are "
     "the client's or the server's notices."},
    {"RECONNECTING",
     "When the connection is lost (the server restarts, the network drops), wschat-cli "
     "waits 0.25 s, then twice as long after each failed attempt up to --reconnect-max, "
     "reconnects with its session token (keeping its name) and rejoins every room with "
     "since set to the last message id it printed: the server replays what was missed, in "
     "order, and nothing is printed twice. If the server cannot replay everything (a new "
     "history, or too large a gap) a notice says so."},
    {"SCRIPTS",
     "When standard input is not a terminal each line is sent in order and wschat-cli exits "
     "at end of input once every message is acknowledged (stored by the server): exit "
     "status 0, or 1 if the server refused one (the error is printed) or the "
     "acknowledgements did not come within --ack-timeout. With --json every server object is "
     "printed as one line of JSON.\n\n"
     "  printf 'hello\\nworld\\n' | wschat-cli ws://localhost:8000 --room general --name bot"},
    {"EXIT STATUS", "0 on /quit or end of input with everything acknowledged; 1 on a refused "
     "message or a timeout; 2 for bad arguments."},
    {"SEE ALSO", "wschat(1)"},
};

static const wsc_opts_t cli_table = {
    .prog = "wschat-cli",
    .env_prefix = NULL,
    .summary = "terminal client for the wschat chat server",
    .synopsis = "ws://HOST[:PORT] | wss://HOST[:PORT] | http://HOST[:PORT] --transport longpoll [options]",
    .description =
        "wschat-cli joins a room of a wschat server and prints its recent history, then every "
        "message, presence and typing line as it happens; each line typed is sent. It speaks "
        "the wschat JSON protocol over its own WebSocket client.",
    .precedence = NULL,
    .opts = table,
    .n_opts = sizeof table / sizeof table[0],
    .sections = sections,
    .n_sections = sizeof sections / sizeof sections[0],
    .version = WSCHAT_VERSION,
};

/* --- state ------------------------------------------------------------------------------ */

typedef struct room {
  char name[72];
  long long last_id;   /* highest message id printed, 0: none */
  long long first_id;  /* lowest message id printed (for /history), 0: none */
  char epoch[64];
  int joined;          /* server confirmed */
  long long replay_until; /* a resume's replay ends at this id: sends wait for it */
  long long join_since;   /* the since of the last join sent (0: none) */
  char *members[CLI_MAX_MEMBERS];
  int n_members;
} room_t;

typedef struct pending {
  long long ref;
  char *room;          /* NULL for a dm */
  char *to;
  char *text;
  int sent;            /* on the current connection */
} pending_t;

typedef enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING } conn_state_t;

typedef struct cli {
  uv_loop_t *loop;
  cli_opts_t o;
  /* target */
  char host[256], port[8], path[512], url[600];
  int use_tls;          /* wss:// */
  tls_client_t *tls;    /* this connection's TLS, when use_tls */
  tls_client_t *tls_dead; /* the previous connection's, freed later */
  int longpoll;         /* --transport longpoll */
  http_poll_t *hp;      /* the HTTP session, when longpoll */
  int request_sent;
  /* connection */
  conn_state_t state;
  uv_tcp_t *tcp;
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  char key[WSC_KEY_LEN + 1];
  char *hs_buf;
  size_t hs_len;
  wsc_parser parser;
  int attempts;         /* failed attempts since the last open */
  int ever_open;
  uv_timer_t reconnect_timer, close_timer, ack_timer;
  /* session */
  char my_name[64];
  char session[128];
  room_t rooms[CLI_MAX_ROOMS];
  int n_rooms, current;
  /* sends awaiting acks, in order */
  pending_t pend[CLI_MAX_PENDING];
  int n_pend;
  long long next_ref;
  /* stdin */
  int tty;
  uv_tty_t tty_h;
  uv_pipe_t pipe_h;
  uv_fs_t fs_req;
  char fs_buf[16384];
  int64_t fs_off;
  int stdin_kind;       /* 0 tty, 1 pipe, 2 file */
  int stdin_paused, stdin_eof;
  char line[CLI_MAX_LINE + 1];
  size_t line_len;
  int line_too_long;
  /* exit */
  int quitting, failed, exit_code;
} cli_t;

static cli_t g;

static void connect_now(void);
static void schedule_reconnect(const char *why);
static void maybe_finish(void);
static void stdin_resume(void);
static void quit(int code);

/* --- output ----------------------------------------------------------------------------- */

static void stamp(char *out, size_t len, json_t *ts) {
  time_t t = json_is_integer(ts) ? (time_t)(json_integer_value(ts) / 1000) : time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  snprintf(out, len, "[%02d:%02d]", tm.tm_hour, tm.tm_min);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  if (g.o.json) return; /* scripts get protocol objects only */
  va_list ap;
  va_start(ap, fmt);
  printf("* ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

static const char *room_tag(const char *room, char *buf, size_t len) {
  if (g.n_rooms <= 1 || !room) return "";
  snprintf(buf, len, "#%s ", room);
  return buf;
}

static room_t *find_room(const char *name) {
  for (int i = 0; i < g.n_rooms; i++)
    if (name && strcmp(g.rooms[i].name, name) == 0) return &g.rooms[i];
  return NULL;
}

static void member_add(room_t *r, const char *name) {
  for (int i = 0; i < r->n_members; i++)
    if (strcmp(r->members[i], name) == 0) return;
  if (r->n_members < CLI_MAX_MEMBERS) r->members[r->n_members++] = strdup(name);
}

static void member_del(room_t *r, const char *name) {
  for (int i = 0; i < r->n_members; i++)
    if (strcmp(r->members[i], name) == 0) {
      free(r->members[i]);
      r->members[i] = r->members[--r->n_members];
      return;
    }
}

static void members_clear(room_t *r) {
  for (int i = 0; i < r->n_members; i++) free(r->members[i]);
  r->n_members = 0;
}

/* --- sending ------------------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status) {
  free(req->data);
  free(req);
}

/* Bytes to the server: as they are, or through TLS. Takes buf (malloc'd). */
static int conn_send(char *buf, size_t len) {
  if (g.tls) {
    int rc = tls_client_write(g.tls, buf, len);
    free(buf);
    if (rc < 0) return -1;
    len = tls_client_take(g.tls, &buf);
    if (!len) return 0;
  }
  uv_write_t *req = malloc(sizeof *req);
  if (!req) {
    free(buf);
    return -1;
  }
  req->data = buf;
  uv_buf_t b = uv_buf_init(buf, (unsigned)len);
  if (uv_write(req, (uv_stream_t *)g.tcp, &b, 1, on_write) != 0) {
    free(buf);
    free(req);
    return -1;
  }
  return 0;
}

/* TLS's own bytes (handshake, alerts) waiting for the socket. */
static void tls_flush(void) {
  char *buf;
  size_t n;
  if (g.tls && g.tcp && (n = tls_client_take(g.tls, &buf)) > 0) {
    uv_write_t *req = malloc(sizeof *req);
    if (!req) {
      free(buf);
      return;
    }
    req->data = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)n);
    if (uv_write(req, (uv_stream_t *)g.tcp, &b, 1, on_write) != 0) {
      free(buf);
      free(req);
    }
  }
}

static int ws_send_frame(int opcode, const void *data, size_t len) {
  if (!g.tcp || (g.state != ST_OPEN && !(g.state == ST_CLOSING && opcode == WSC_CLOSE))) return -1;
  uint32_t mask;
  RAND_bytes((unsigned char *)&mask, sizeof mask);
  uint8_t *buf = malloc(WSC_MAX_CLIENT_HEADER + len);
  if (!buf) return -1;
  size_t h = wsc_frame_header(buf, opcode, len, mask);
  memcpy(buf + h, data, len);
  wsc_mask(buf + h, len, mask, 0);
  return conn_send((char *)buf, h + len);
}

static int send_json(json_t *obj) {
  char *s = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (!s) return -1;
  int rc = g.hp ? (g.state == ST_OPEN ? http_poll_send(g.hp, s, strlen(s)) : -1)
                : ws_send_frame(WSC_TEXT, s, strlen(s));
  free(s);
  return rc;
}

static void send_join(room_t *r) {
  json_t *j = json_pack("{s:s, s:s}", "type", "join", "room", r->name);
  r->join_since = r->last_id;
  if (r->last_id > 0) {
    json_object_set_new(j, "since", json_integer(r->last_id));
    if (r->epoch[0]) json_object_set_new(j, "epoch", json_string(r->epoch));
  }
  send_json(j);
}

static void send_pending(pending_t *p) {
  json_t *j = p->room ? json_pack("{s:s, s:s, s:s, s:I}", "type", "send", "room", p->room, "text",
                                  p->text, "ref", (json_int_t)p->ref)
                      : json_pack("{s:s, s:s, s:s, s:I}", "type", "dm", "to", p->to, "text",
                                  p->text, "ref", (json_int_t)p->ref);
  if (j && send_json(j) == 0) p->sent = 1;
}

static int inflight(void) {
  int n = 0;
  for (int i = 0; i < g.n_pend; i++) n += g.pend[i].sent;
  return n;
}

/* Sends queued messages while under the in-flight limit; a room's sends
 * wait until the server confirmed the join. */
static void flush_pending(void) {
  if (g.state != ST_OPEN) return;
  int n = inflight();
  for (int i = 0; i < g.n_pend && n < CLI_MAX_INFLIGHT; i++) {
    pending_t *p = &g.pend[i];
    if (p->sent) continue;
    room_t *r = p->room ? find_room(p->room) : NULL;
    /* a room's sends wait for the join and for its replay: a message
     * stored before the drop comes back in it and is not sent again */
    if (p->room && (!r || !r->joined || r->last_id < r->replay_until)) continue;
    send_pending(p);
    n += p->sent;
  }
}

static void pending_free(pending_t *p) {
  free(p->room);
  free(p->to);
  free(p->text);
}

static void pending_remove(int i) {
  pending_free(&g.pend[i]);
  memmove(&g.pend[i], &g.pend[i + 1], (size_t)(g.n_pend - i - 1) * sizeof g.pend[0]);
  g.n_pend--;
  if (g.stdin_paused && g.n_pend < CLI_MAX_PENDING / 2) stdin_resume();
}

static int pending_find(long long ref) {
  for (int i = 0; i < g.n_pend; i++)
    if (g.pend[i].ref == ref) return i;
  return -1;
}

static void queue_send(const char *room, const char *to, const char *text) {
  if (g.n_pend == CLI_MAX_PENDING) {
    fprintf(stderr, "! too many messages waiting for the server; line dropped\n");
    g.failed = 1;
    return;
  }
  pending_t *p = &g.pend[g.n_pend++];
  memset(p, 0, sizeof *p);
  p->ref = ++g.next_ref;
  p->room = room ? strdup(room) : NULL;
  p->to = to ? strdup(to) : NULL;
  p->text = strdup(text);
  flush_pending();
}

/* --- rooms -------------------------------------------------------------------------------- */

static room_t *room_add(const char *name) {
  room_t *r = find_room(name);
  if (r) return r;
  if (g.n_rooms == CLI_MAX_ROOMS) return NULL;
  r = &g.rooms[g.n_rooms++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  return r;
}

static void room_remove(room_t *r) {
  int i = (int)(r - g.rooms);
  members_clear(r);
  memmove(&g.rooms[i], &g.rooms[i + 1], (size_t)(g.n_rooms - i - 1) * sizeof g.rooms[0]);
  g.n_rooms--;
  if (g.current >= g.n_rooms) g.current = g.n_rooms ? g.n_rooms - 1 : 0;
}

/* --- server messages ------------------------------------------------------------------------ */

static const char *jstr(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static void print_message(json_t *m, int from_history) {
  const char *room = jstr(m, "room");
  room_t *r = find_room(room);
  long long id = json_integer_value(json_object_get(m, "id"));
  if (r && !from_history) {
    if (id <= r->last_id) return; /* already printed (a replay overlapping what we saw) */
    r->last_id = id;
  }
  if (r && (r->first_id == 0 || id < r->first_id)) r->first_id = id;
  /* A resumed connection replays our own messages that were stored but
   * not acknowledged before the drop: they count as acknowledged. */
  if (!from_history && strcmp(jstr(m, "from"), g.my_name) == 0) {
    for (int i = 0; i < g.n_pend; i++)
      if (g.pend[i].room && !strcmp(g.pend[i].room, room) && !strcmp(g.pend[i].text, jstr(m, "text"))) {
        pending_remove(i);
        break;
      }
  }
  if (r && !from_history && id == r->replay_until) flush_pending(); /* the replay is over */
  if (g.o.json) return;
  char ts[16], tag[80];
  stamp(ts, sizeof ts, json_object_get(m, "ts"));
  printf("%s %s%s: %s\n", ts, room_tag(room, tag, sizeof tag), jstr(m, "from"), jstr(m, "text"));
}

static void on_server_object(json_t *m, const char *raw, size_t raw_len) {
  const char *type = jstr(m, "type");
  char ts[16], tag[80];
  if (g.o.json) {
    fwrite(raw, 1, raw_len, stdout);
    fputc('\n', stdout);
  }
  if (!strcmp(type, "welcome")) {
    snprintf(g.my_name, sizeof g.my_name, "%s", jstr(m, "name"));
    snprintf(g.session, sizeof g.session, "%s", jstr(m, "session"));
    for (int i = 0; i < g.n_rooms; i++) {
      g.rooms[i].joined = 0;
      send_join(&g.rooms[i]);
    }
  } else if (!strcmp(type, "joined")) {
    room_t *r = find_room(jstr(m, "room"));
    if (!r) return;
    int resumed = r->join_since > 0; /* (over HTTP the replay may come first) */
    json_t *rec = json_object_get(m, "recovered");
    r->joined = 1;
    long long last = json_integer_value(json_object_get(m, "last_id"));
    r->replay_until = resumed && !json_is_false(rec) && last > r->last_id ? last : 0;
    snprintf(r->epoch, sizeof r->epoch, "%s", jstr(m, "epoch"));
    members_clear(r);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(m, "members"), i, v) member_add(r, json_string_value(v));
    if (!g.o.json) {
      if (resumed)
        printf("* rejoined #%s after id %lld%s\n", r->name, r->join_since,
               json_is_false(rec) ? ": the server could not replay everything missed; /history pages back" : "");
      else
        printf("* joined #%s as %s (%d here)\n", r->name, g.my_name, r->n_members);
      fflush(stdout);
    }
    flush_pending();
    maybe_finish();
  } else if (!strcmp(type, "message")) {
    print_message(m, 0);
  } else if (!strcmp(type, "ack")) {
    int i = pending_find(json_integer_value(json_object_get(m, "ref")));
    if (i >= 0) pending_remove(i);
    flush_pending();
  } else if (!strcmp(type, "presence")) {
    room_t *r = find_room(jstr(m, "room"));
    int join = !strcmp(jstr(m, "event"), "join");
    if (r) (join ? member_add : member_del)(r, jstr(m, "name"));
    if (!g.o.json) {
      stamp(ts, sizeof ts, NULL);
      printf("%s %s* %s %s (%lld here)\n", ts, room_tag(jstr(m, "room"), tag, sizeof tag),
             jstr(m, "name"), join ? "joined" : "left",
             (long long)json_integer_value(json_object_get(m, "count")));
    }
  } else if (!strcmp(type, "typing")) {
    if (!g.o.json) {
      stamp(ts, sizeof ts, NULL);
      printf("%s %s* %s is typing\n", ts, room_tag(jstr(m, "room"), tag, sizeof tag), jstr(m, "name"));
    }
  } else if (!strcmp(type, "dm")) {
    int i = pending_find(json_integer_value(json_object_get(m, "ref")));
    if (i >= 0) pending_remove(i);
    if (!g.o.json) {
      stamp(ts, sizeof ts, json_object_get(m, "ts"));
      printf("%s %s -> %s: %s\n", ts, jstr(m, "from"), jstr(m, "to"), jstr(m, "text"));
    }
  } else if (!strcmp(type, "history")) {
    if (!g.o.json) printf("* --- earlier in #%s ---\n", jstr(m, "room"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(m, "messages"), i, v) print_message(v, 1);
    if (!g.o.json)
      printf("* --- %s ---\n", json_is_true(json_object_get(m, "more")) ? "/history for more" : "start of the room");
  } else if (!strcmp(type, "error")) {
    json_t *ref = json_object_get(m, "ref");
    int i = json_is_integer(ref) ? pending_find(json_integer_value(ref)) : -1;
    if (i >= 0 && !strcmp(jstr(m, "code"), "rate_limited")) {
      g.pend[i].sent = 0; /* sent again with the next ack, or by the ack timer */
    } else {
      if (i >= 0) {
        pending_remove(i);
        g.failed = 1;
      }
      if (!g.o.json) fprintf(stderr, "! %s: %s\n", jstr(m, "code"), jstr(m, "message"));
    }
  }
  fflush(stdout);
  maybe_finish();
}

/* --- the connection ------------------------------------------------------------------------ */

static void on_ws_message(void *ud, int opcode, uint8_t *data, size_t len, uint64_t total) {
  if (opcode != WSC_TEXT || total > len) return;
  json_error_t err;
  json_t *m = json_loadb((const char *)data, len, 0, &err);
  if (!json_is_object(m)) {
    json_decref(m);
    return;
  }
  on_server_object(m, (const char *)data, len);
  json_decref(m);
}

static void on_ws_control(void *ud, int opcode, uint8_t *data, size_t len) {
  if (opcode == WSC_PING) {
    ws_send_frame(WSC_PONG, data, len);
  } else if (opcode == WSC_CLOSE) {
    if (g.state == ST_OPEN) {
      ws_send_frame(WSC_CLOSE, data, len >= 2 ? 2 : 0);
      g.state = ST_CLOSING;
    }
    int code = len >= 2 ? (data[0] << 8 | data[1]) : 1005;
    char why[160];
    snprintf(why, sizeof why, "server closed %d %.*s", code, len > 2 ? (int)len - 2 : 0,
             (const char *)data + 2);
    schedule_reconnect(why);
  }
}

static const wsc_cb ws_cb = {on_ws_message, on_ws_control};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char rbuf[65536];
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void on_tcp_closed(uv_handle_t *h) { free(h); }

static void drop_connection(void) {
  if (g.tcp) {
    uv_close((uv_handle_t *)g.tcp, on_tcp_closed);
    g.tcp = NULL;
  }
  free(g.hs_buf);
  g.hs_buf = NULL;
  g.hs_len = 0;
  /* The TLS object may be the caller's (a close read inside
   * tls_client_feed): free it at the next drop, or at exit. */
  http_poll_free(g.hp);
  g.hp = NULL;
  tls_client_free(g.tls_dead);
  g.tls_dead = g.tls;
  g.tls = NULL;
  g.request_sent = 0;
  wsc_parser_free(&g.parser);
  g.state = ST_IDLE;
  for (int i = 0; i < g.n_pend; i++) g.pend[i].sent = 0;
  for (int i = 0; i < g.n_rooms; i++) g.rooms[i].joined = 0;
}

static void send_upgrade(void);

/* A refusal that retrying will not cure (a 4xx to the very first
 * handshake, a certificate that does not verify) ends the program (exit
 * 1); anything else is retried with backoff. */
static void retry_or_give_up(const char *why, int give_up) {
  if (!give_up) {
    schedule_reconnect(why);
    return;
  }
  fprintf(stderr, "wschat-cli: %s %s\n", g.url, why);
  g.exit_code = 1;
  g.quitting = 1;
  drop_connection();
  uv_stop(g.loop);
}

/* Plain bytes from the server (after TLS, when there is TLS). */
static void on_bytes(void *ud, uint8_t *data, size_t len) {
  if (!g.tcp) return;
  if (g.state == ST_HANDSHAKE) {
    char *nb = realloc(g.hs_buf, g.hs_len + len + 1);
    if (!nb) { schedule_reconnect("out of memory"); return; }
    g.hs_buf = nb;
    memcpy(g.hs_buf + g.hs_len, data, len);
    g.hs_len += len;
    long hl = wsc_handshake_response(g.hs_buf, g.hs_len, g.key);
    if (hl == 0) return;
    if (hl < 0) {
      g.hs_buf[g.hs_len] = '\0';
      char *eol = strpbrk(g.hs_buf, "\r\n");
      if (eol) *eol = '\0';
      char why[300];
      snprintf(why, sizeof why, "handshake refused: %.200s", g.hs_buf);
      retry_or_give_up(why, !g.ever_open && !strncmp(g.hs_buf, "HTTP/1.1 4", 10));
      return;
    }
    g.state = ST_OPEN;
    if (g.ever_open) note("reconnected");
    g.ever_open = 1;
    g.attempts = 0;
    size_t rest = g.hs_len - (size_t)hl;
    char *tail = g.hs_buf;
    g.hs_buf = NULL;
    if (rest && wsc_feed(&g.parser, (uint8_t *)tail + hl, rest, &ws_cb, NULL) < 0) {
      free(tail);
      { schedule_reconnect("protocol error"); return; }
    }
    free(tail);
    return;
  }
  if (g.tcp && wsc_feed(&g.parser, data, len, &ws_cb, NULL) < 0) schedule_reconnect("protocol error");
}

static void tls_failed(void) {
  char why[300];
  snprintf(why, sizeof why, "%s", tls_client_error(g.tls));
  retry_or_give_up(why, !g.ever_open && strstr(why, "certificate"));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    schedule_reconnect(n == UV_EOF ? "connection closed" : uv_strerror((int)n));
    return;
  }
  if (!g.tls) {
    on_bytes(NULL, (uint8_t *)buf->base, (size_t)n);
    return;
  }
  tls_client_t *t = g.tls;
  if (tls_client_feed(t, (uint8_t *)buf->base, (size_t)n, on_bytes, NULL) < 0) {
    if (g.tls != t) return; /* the connection ended inside (a close frame) */
    tls_flush(); /* the alert */
    tls_failed();
    return;
  }
  tls_flush();
  if (g.tls && tls_client_ready(g.tls) && !g.request_sent) send_upgrade();
}

static void send_upgrade(void) {
  uint8_t rnd[16];
  RAND_bytes(rnd, sizeof rnd);
  wsc_make_key(rnd, g.key);
  char path[1024], hostport[300], req_text[2048];
  /* the name, and the session token that reclaims it after a drop */
  size_t pl = (size_t)snprintf(path, sizeof path, "%s%s", g.path, strchr(g.path, '?') ? "&" : "?");
  const char *name = g.my_name[0] ? g.my_name : g.o.name;
  if (name) pl += (size_t)snprintf(path + pl, sizeof path - pl, "name=%s&", name);
  if (g.session[0]) pl += (size_t)snprintf(path + pl, sizeof path - pl, "session=%s&", g.session);
  path[pl - 1] = '\0';
  snprintf(hostport, sizeof hostport, "%s:%s", g.host, g.port);
  size_t n = wsc_handshake_request(req_text, sizeof req_text, hostport, path, g.key);
  wsc_parser_init(&g.parser, CLI_RECV_KEEP);
  g.state = ST_HANDSHAKE;
  g.request_sent = 1;
  char *copy = malloc(n);
  if (!copy || conn_send(memcpy(copy, req_text, n), n) < 0) schedule_reconnect("write failed");
}

static void on_connect(uv_connect_t *req, int status) {
  if (status < 0) {
    if (status != UV_ECANCELED) schedule_reconnect(uv_strerror(status));
    return;
  }
  uv_read_start((uv_stream_t *)g.tcp, alloc_cb, on_read);
  if (!g.use_tls) {
    send_upgrade();
    return;
  }
  char err[256];
  g.tls = tls_client_new(g.host, g.o.ca_file, g.o.insecure, err, sizeof err);
  if (!g.tls) {
    fprintf(stderr, "wschat-cli: %s\n", err);
    quit(1);
    return;
  }
  if (tls_client_feed(g.tls, NULL, 0, on_bytes, NULL) < 0) {
    tls_failed();
    return;
  }
  tls_flush();
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  if (status < 0 || g.quitting) {
    if (res) uv_freeaddrinfo(res);
    if (!g.quitting) schedule_reconnect(uv_strerror(status));
    return;
  }
  g.tcp = malloc(sizeof *g.tcp);
  uv_tcp_init(g.loop, g.tcp);
  uv_tcp_nodelay(g.tcp, 1);
  int rc = uv_tcp_connect(&g.connect_req, g.tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc < 0) schedule_reconnect(uv_strerror(rc));
}

static void on_poll_object(void *ud, const char *json, size_t len) {
  json_t *m = json_loadb(json, len, 0, NULL);
  if (!json_is_object(m)) {
    json_decref(m);
    return;
  }
  if (!strcmp(jstr(m, "type"), "welcome")) {
    if (g.ever_open) note("reconnected");
    g.ever_open = 1;
    g.attempts = 0;
  }
  on_server_object(m, json, len);
  json_decref(m);
}

static void on_poll_lost(void *ud, const char *why) { schedule_reconnect(why); }

static void connect_now(void) {
  if (g.quitting || g.state != ST_IDLE) return;
  if (g.longpoll) {
    static const http_poll_cb cb = {on_poll_object, on_poll_lost};
    const char *name = g.my_name[0] ? g.my_name : g.o.name;
    g.state = ST_OPEN; /* sends queue in http_poll until the session exists */
    g.hp = http_poll_open(g.loop, g.host, g.port, name, g.session, &cb, NULL);
    if (!g.hp) schedule_reconnect("cannot resolve the host");
    return;
  }
  g.state = ST_CONNECTING;
  struct addrinfo hints = {0};
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(g.loop, &g.gai, on_resolved, g.host, g.port, &hints);
  if (rc < 0) schedule_reconnect(uv_strerror(rc));
}

static void on_reconnect_timer(uv_timer_t *t) { connect_now(); }

static void schedule_reconnect(const char *why) {
  int was = g.state;
  drop_connection();
  if (g.quitting) {
    uv_stop(g.loop);
    return;
  }
  if (was == ST_IDLE && uv_is_active((uv_handle_t *)&g.reconnect_timer)) return;
  /* 0.25 s, doubling, up to --reconnect-max, with up to 25% jitter */
  int shift = g.attempts < 16 ? g.attempts : 16;
  long long delay = 250LL << shift;
  if (delay > g.o.backoff_max_ms) delay = g.o.backoff_max_ms;
  delay -= (long long)(rand() % (int)(delay / 4 + 1));
  g.attempts++;
  note("disconnected (%s); reconnecting in %.1f s", why, (double)delay / 1000);
  uv_timer_start(&g.reconnect_timer, on_reconnect_timer, (uint64_t)delay, 0);
}

/* --- quitting ------------------------------------------------------------------------------- */

static void on_close_timer(uv_timer_t *t) {
  drop_connection();
  uv_stop(g.loop);
}

static void quit(int code) {
  if (g.quitting) return;
  g.quitting = 1;
  g.exit_code = code;
  uv_timer_stop(&g.reconnect_timer);
  uv_timer_stop(&g.ack_timer);
  if (g.state == ST_OPEN && !g.hp) {
    uint8_t close_payload[2] = {1000 >> 8, 1000 & 255};
    ws_send_frame(WSC_CLOSE, close_payload, 2);
    g.state = ST_CLOSING;
    uv_timer_start(&g.close_timer, on_close_timer, CLI_CLOSE_WAIT_MS, 0);
  } else {
    drop_connection();
    uv_stop(g.loop);
  }
}

/* Non-interactive input ends: exit once nothing waits for an ack. */
static room_t *current_room(void);
static void maybe_finish(void) {
  if (!g.stdin_eof || g.quitting) return;
  /* done when everything is acknowledged, and at least the join went
   * through (an empty input still checks the server takes us) */
  room_t *r = current_room();
  if (g.n_pend == 0 && g.state == ST_OPEN && (!r || r->joined)) quit(g.failed ? 1 : 0);
}

static void on_ack_timeout(uv_timer_t *t) {
  if (g.quitting) return;
  if (g.n_pend)
    fprintf(stderr, "wschat-cli: %d message(s) not acknowledged within %d s\n", g.n_pend,
            g.o.ack_timeout_ms / 1000);
  else
    fprintf(stderr, "wschat-cli: not connected within %d s\n", g.o.ack_timeout_ms / 1000);
  quit(1);
}

/* --- input ------------------------------------------------------------------------------------- */

static room_t *current_room(void) { return g.n_rooms ? &g.rooms[g.current] : NULL; }

static void do_line(char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = '\0';
  if (!n) return;
  if (g.o.json && line[0] == '{') { /* raw protocol object */
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    if (!json_is_object(j)) {
      json_decref(j);
      fprintf(stderr, "! not a JSON object: %s\n", err.text);
      return;
    }
    if (g.state != ST_OPEN || send_json(j) != 0) fprintf(stderr, "! not connected; not sent\n");
    return;
  }
  if (line[0] != '/' || line[1] == '/') {
    room_t *r = current_room();
    if (!r) {
      fprintf(stderr, "! no room: /join ROOM first\n");
      return;
    }
    queue_send(r->name, NULL, line[0] == '/' ? line + 1 : line);
    return;
  }
  char *cmd = line + 1, *arg = cmd + strcspn(cmd, " ");
  if (*arg) *arg++ = '\0';
  while (*arg == ' ') arg++;
  if (!strcmp(cmd, "quit") || !strcmp(cmd, "exit")) {
    quit(0);
  } else if (!strcmp(cmd, "join") && *arg) {
    room_t *r = room_add(arg);
    if (!r) { fprintf(stderr, "! at most %d rooms\n", CLI_MAX_ROOMS); return; }
    g.current = (int)(r - g.rooms);
    if (g.state == ST_OPEN && !r->joined) send_join(r);
  } else if (!strcmp(cmd, "room") && *arg) {
    room_t *r = find_room(arg);
    if (!r) { fprintf(stderr, "! not in #%s: /join %s\n", arg, arg); return; }
    g.current = (int)(r - g.rooms);
    note("now in #%s", r->name);
  } else if (!strcmp(cmd, "leave")) {
    room_t *r = *arg ? find_room(arg) : current_room();
    if (!r) { fprintf(stderr, "! not in that room\n"); return; }
    if (g.state == ST_OPEN) send_json(json_pack("{s:s, s:s}", "type", "leave", "room", r->name));
    note("left #%s", r->name);
    room_remove(r);
    if (current_room()) note("now in #%s", current_room()->name);
  } else if (!strcmp(cmd, "dm")) {
    char *to = arg, *text = arg + strcspn(arg, " ");
    if (*text) *text++ = '\0';
    if (!*to || !*text) { fprintf(stderr, "! usage: /dm NAME text\n"); return; }
    queue_send(NULL, to, text);
  } else if (!strcmp(cmd, "history")) {
    room_t *r = current_room();
    if (!r || g.state != ST_OPEN) { fprintf(stderr, "! not connected to a room\n"); return; }
    json_t *j = json_pack("{s:s, s:s, s:i}", "type", "history", "room", r->name, "limit", g.o.history);
    if (r->first_id > 0) json_object_set_new(j, "before", json_integer(r->first_id));
    send_json(j);
  } else if (!strcmp(cmd, "who")) {
    room_t *r = current_room();
    if (!r) { fprintf(stderr, "! no room\n"); return; }
    printf("* #%s (%d):", r->name, r->n_members);
    for (int i = 0; i < r->n_members; i++) printf("%s %s", i ? "," : "", r->members[i]);
    printf("\n");
    fflush(stdout);
  } else {
    fprintf(stderr, "! commands: /join ROOM, /leave [ROOM], /room ROOM, /dm NAME text, /history, /who, /quit\n");
  }
}

static void on_input(const char *data, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char ch = data[i];
    if (ch == '\n') {
      g.line[g.line_len] = '\0';
      if (g.line_too_long) fprintf(stderr, "! line longer than %d bytes; not sent\n", CLI_MAX_LINE);
      else do_line(g.line);
      g.line_len = 0;
      g.line_too_long = 0;
      if (g.quitting) return;
    } else if (g.line_len < CLI_MAX_LINE) {
      g.line[g.line_len++] = ch;
    } else {
      g.line_too_long = 1;
    }
  }
}

static void on_eof(void) {
  if (g.line_len) on_input("\n", 1);
  g.stdin_eof = 1;
  if (g.tty) { quit(0); return; }
  uv_timer_start(&g.ack_timer, on_ack_timeout, (uint64_t)g.o.ack_timeout_ms, 0);
  maybe_finish();
}

static void stdin_pause_if_full(void) {
  if (g.n_pend >= CLI_MAX_PENDING / 2 && !g.stdin_paused) {
    g.stdin_paused = 1;
    if (g.stdin_kind == 1) uv_read_stop((uv_stream_t *)&g.pipe_h);
    if (g.stdin_kind == 0) uv_read_stop((uv_stream_t *)&g.tty_h);
  }
}

static void stdin_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  static char b[16384];
  buf->base = b;
  buf->len = sizeof b;
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    uv_read_stop(s);
    on_eof();
    return;
  }
  on_input(buf->base, (size_t)n);
  stdin_pause_if_full();
}

static void on_fs_read(uv_fs_t *req);
static void fs_read_next(void) {
  uv_buf_t b = uv_buf_init(g.fs_buf, sizeof g.fs_buf);
  uv_fs_read(g.loop, &g.fs_req, 0, &b, 1, g.fs_off, on_fs_read);
}

static void on_fs_read(uv_fs_t *req) {
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  if (n <= 0) {
    g.stdin_kind = -1;
    on_eof();
    return;
  }
  g.fs_off += n;
  on_input(g.fs_buf, (size_t)n);
  if (g.quitting) return;
  stdin_pause_if_full();
  if (!g.stdin_paused) fs_read_next();
}

static void stdin_resume(void) {
  g.stdin_paused = 0;
  if (g.stdin_kind == 0) uv_read_start((uv_stream_t *)&g.tty_h, stdin_alloc, on_stdin);
  else if (g.stdin_kind == 1) uv_read_start((uv_stream_t *)&g.pipe_h, stdin_alloc, on_stdin);
  else if (g.stdin_kind == 2) fs_read_next();
}

static void stdin_start(void) {
  uv_handle_type t = uv_guess_handle(0);
  g.tty = t == UV_TTY;
  if (t == UV_TTY && uv_tty_init(g.loop, &g.tty_h, 0, 1) == 0) {
    g.stdin_kind = 0;
  } else if ((t == UV_NAMED_PIPE || t == UV_TCP) && uv_pipe_init(g.loop, &g.pipe_h, 0) == 0 &&
             uv_pipe_open(&g.pipe_h, 0) == 0) {
    g.stdin_kind = 1;
  } else {
    g.stdin_kind = 2; /* a file, /dev/null */
  }
  stdin_resume();
}

/* --- start ------------------------------------------------------------------------------------ */

static int parse_url(const char *url) {
  const char *p;
  if (!strncmp(url, "ws://", 5)) p = url + 5;
  else if (!strncmp(url, "wss://", 6) || !strncmp(url, "https://", 8)) {
    p = strstr(url, "://") + 3;
    g.use_tls = 1;
  }
  else if (!strncmp(url, "http://", 7)) p = url + 7;
  else return fprintf(stderr, "wschat-cli: %s: expected ws://HOST[:PORT][/PATH] or wss://\n", url), -1;
  size_t hl = strcspn(p, "/?");
  char hostport[256];
  if (hl == 0 || hl >= sizeof hostport) return fprintf(stderr, "wschat-cli: %s: bad host\n", url), -1;
  memcpy(hostport, p, hl);
  hostport[hl] = '\0';
  char *colon = hostport[0] == '[' ? strstr(hostport, "]:") : strrchr(hostport, ':');
  if (colon && hostport[0] == '[') colon++;
  if (colon) {
    *colon = '\0';
    snprintf(g.port, sizeof g.port, "%s", colon + 1);
  } else {
    snprintf(g.port, sizeof g.port, "%s", g.use_tls ? "443" : "80");
  }
  char *h = hostport;
  if (h[0] == '[') {
    h++;
    h[strcspn(h, "]")] = '\0';
  }
  snprintf(g.host, sizeof g.host, "%s", h);
  const char *path = p + hl;
  /* the chat endpoint is /ws; a bare host means it */
  snprintf(g.path, sizeof g.path, "%s", !*path || !strcmp(path, "/") ? "/ws" : path);
  snprintf(g.url, sizeof g.url, "%s", url);
  return 0;
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int main(int argc, char **argv) {
  wsc_opt_arg_t args[64];
  size_t n;
  int pos;
  char err[512];
  g.o.room = "general";
  g.o.history = 20;
  g.o.backoff_max_ms = 10000;
  g.o.ack_timeout_ms = 30000;
  g.o.transport = "ws";
  if (wsc_opts_scan(&cli_table, argc, argv, args, 64, &n, &pos, err, sizeof err) ||
      wsc_opts_apply_args(&cli_table, &g.o, args, n, err, sizeof err)) {
    fprintf(stderr, "wschat-cli: %s\n", err);
    return 2;
  }
  if (wsc_opts_find(args, n, "help")) return wsc_opts_help(&cli_table, stdout), 0;
  if (wsc_opts_find(args, n, "help-man")) return wsc_opts_man(&cli_table, stdout), 0;
  if (wsc_opts_find(args, n, "version")) return printf("wschat-cli %s\n", WSCHAT_VERSION), 0;
  if (pos >= argc) {
    fprintf(stderr, "usage: wschat-cli ws://HOST[:PORT] [--room ROOM] [--name NAME] (see --help)\n");
    return 2;
  }
  if (parse_url(argv[pos])) return 2;
  if (strcmp(g.o.transport, "longpoll") == 0) g.longpoll = 1;
  else if (strcmp(g.o.transport, "ws") != 0) {
    fprintf(stderr, "wschat-cli: --transport is ws or longpoll\n");
    return 2;
  }
  if (g.longpoll && g.use_tls) {
    fprintf(stderr, "wschat-cli: --transport longpoll speaks plain HTTP: use http://HOST:PORT\n");
    return 2;
  }
  srand((unsigned)(time(NULL) ^ getpid()));
  signal(SIGPIPE, SIG_IGN); /* a server gone mid-write is a disconnect, not death */
  setvbuf(stdout, NULL, _IOLBF, 0);
  g.loop = uv_default_loop();
  uv_timer_init(g.loop, &g.reconnect_timer);
  uv_timer_init(g.loop, &g.close_timer);
  uv_timer_init(g.loop, &g.ack_timer);
  room_add(g.o.room);
  connect_now();
  stdin_start();
  uv_run(g.loop, UV_RUN_DEFAULT);
  /* close whatever is left (stdin, timers) and let the callbacks run */
  if (g.tty) uv_tty_reset_mode();
  drop_connection();
  uv_walk(g.loop, close_walk, NULL);
  uv_run(g.loop, UV_RUN_DEFAULT);
  uv_loop_close(g.loop);
  for (int i = 0; i < g.n_rooms; i++) members_clear(&g.rooms[i]);
  for (int i = 0; i < g.n_pend; i++) pending_free(&g.pend[i]);
  tls_client_free(g.tls_dead);
  return g.exit_code;
}
