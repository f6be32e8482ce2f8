/* h3ws — WebSockets over HTTP/3 (RFC 9220) from the command line, for
 * tests: our own client on ngtcp2 + nghttp3 (tools/wschat-bench/h3b.c) and
 * the bench's WebSocket codec (wsc.c); it shares no code with the server.
 *
 *   h3ws [--origin O] [--header NAME=VALUE] [--stall I] HOST PORT PATH...
 *
 * Every PATH is one WebSocket, all on one QUIC connection, numbered from 0.
 * stdin: lines "I TEXT" send TEXT as a text message on WebSocket I; "I
 * close" starts its closing handshake (1000); "I reset" resets its stream;
 * "I stall" / "I read" stop / restart reading it. stdout, one event a line:
 *   I open | I fail STATUS WHY | I msg TEXT | I binary LEN | I close CODE REASON
 * It exits when every WebSocket is closed or failed (status 0) or after
 * --timeout seconds (status 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "h3b.h"
#include "wsc.h"

#define MAX_WS 128

typedef struct pending {
  struct pending *next;
  char line[];
} pending;

static struct {
  int n, done[MAX_WS], opened[MAX_WS];
  pending *wait[MAX_WS], *wait_tail[MAX_WS]; /* lines that came before the WebSocket opened */
  wsc_parser p[MAX_WS];
  uv_loop_t *loop;
  uv_pipe_t in;
  char line[1 << 20];
  size_t line_len;
  uv_timer_t timeout;
  int exit_code;
} S;

static void on_linger(uv_timer_t *t) { uv_stop(S.loop); }

/* All done: give the last frames and FINs 200 ms to leave, then stop. */
static void check_done(void) {
  for (int i = 0; i < S.n; i++)
    if (!S.done[i]) return;
  fflush(stdout);
  static uv_timer_t linger;
  if (uv_is_active((uv_handle_t *)&linger)) return;
  uv_timer_init(S.loop, &linger);
  uv_timer_start(&linger, on_linger, 200, 0);
}

static void send_frame(int ws, int opcode, const void *data, size_t len) {
  uint8_t *f = malloc(WSC_MAX_CLIENT_HEADER + len);
  if (!f) return;
  uint32_t mask = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
  size_t h = wsc_frame_header(f, opcode, len, mask);
  memcpy(f + h, data, len);
  wsc_mask(f + h, len, mask, 0);
  if (h3b_send(ws, f, h + len) != 0) printf("%d fail 0 send refused\n", ws);
  free(f);
}

static void on_message(void *ud, int opcode, uint8_t *d, size_t len, uint64_t total) {
  int ws = (int)(intptr_t)ud;
  if (opcode == WSC_TEXT) printf("%d msg %.*s\n", ws, (int)len, (const char *)d);
  else printf("%d binary %llu\n", ws, (unsigned long long)total);
  fflush(stdout);
}

static void on_control(void *ud, int opcode, uint8_t *d, size_t len) {
  int ws = (int)(intptr_t)ud;
  if (opcode == WSC_PING) {
    send_frame(ws, WSC_PONG, d, len);
  } else if (opcode == WSC_CLOSE) {
    int code = len >= 2 ? (d[0] << 8 | d[1]) : 1005;
    printf("%d close %d %.*s\n", ws, code, len > 2 ? (int)len - 2 : 0, (const char *)d + 2);
    fflush(stdout);
    send_frame(ws, WSC_CLOSE, d, len >= 2 ? 2 : 0);
    h3b_close(ws, 0);
    S.done[ws] = 1;
    check_done();
  }
}

static const wsc_cb parser_cb = {on_message, on_control};

static void do_cmd(int ws, const char *rest);

static void on_open(int ws) {
  printf("%d open\n", ws);
  fflush(stdout);
  S.opened[ws] = 1;
  while (S.wait[ws]) {
    pending *p = S.wait[ws];
    S.wait[ws] = p->next;
    do_cmd(ws, p->line);
    free(p);
  }
}

static void on_data(int ws, uint8_t *d, size_t n) {
  if (S.done[ws]) return;
  if (wsc_feed(&S.p[ws], d, n, &parser_cb, (void *)(intptr_t)ws) < 0) {
    printf("%d fail 0 WebSocket protocol error from server\n", ws);
    S.done[ws] = 1;
    check_done();
  }
}

static void on_fail(int ws, const char *why, int status) {
  if (S.done[ws]) return;
  printf("%d fail %d %s\n", ws, status, why);
  fflush(stdout);
  S.done[ws] = 1;
  check_done();
}

static void do_line(char *l) {
  char *sp = strchr(l, ' ');
  if (!sp) return;
  *sp = 0;
  int ws = atoi(l);
  const char *rest = sp + 1;
  if (ws < 0 || ws >= S.n) return;
  if (!S.opened[ws] && strcmp(rest, "stall") && strcmp(rest, "read") && strcmp(rest, "reset")) {
    pending *p = malloc(sizeof *p + strlen(rest) + 1);
    if (!p) return;
    p->next = NULL;
    strcpy(p->line, rest);
    if (S.wait[ws]) S.wait_tail[ws]->next = p;
    else S.wait[ws] = p;
    S.wait_tail[ws] = p;
    return;
  }
  do_cmd(ws, rest);
}

static void do_cmd(int ws, const char *rest) {
  if (!strcmp(rest, "close")) {
    uint8_t c[2] = {1000 >> 8, 1000 & 0xff};
    send_frame(ws, WSC_CLOSE, c, 2);
  } else if (!strcmp(rest, "reset")) {
    h3b_close(ws, 1);
    S.done[ws] = 1;
    check_done();
  } else if (!strcmp(rest, "stall")) {
    h3b_stall(ws, 1);
  } else if (!strcmp(rest, "read")) {
    h3b_stall(ws, 0);
  } else {
    send_frame(ws, WSC_TEXT, rest, strlen(rest));
  }
}

static void alloc_in(uv_handle_t *h, size_t s, uv_buf_t *b) {
  static char buf[65536];
  b->base = buf;
  b->len = sizeof buf;
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  if (n < 0) {
    uv_read_stop(s);
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char ch = b->base[i];
    if (ch == '\n') {
      S.line[S.line_len] = 0;
      do_line(S.line);
      S.line_len = 0;
    } else if (S.line_len + 1 < sizeof S.line) {
      S.line[S.line_len++] = ch;
    }
  }
}

static void on_timeout(uv_timer_t *t) {
  printf("timeout\n");
  fflush(stdout);
  S.exit_code = 3;
  uv_stop(S.loop);
}

int main(int argc, char **argv) {
  int i = 1, stall = -1;
  double timeout = 30;
  for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
    if (i + 1 >= argc) break;
    if (!strcmp(argv[i], "--origin")) h3b_add_header("origin", argv[i + 1]);
    else if (!strcmp(argv[i], "--header")) {
      char *eq = strchr(argv[i + 1], '=');
      if (!eq) return 2;
      *eq = 0;
      h3b_add_header(argv[i + 1], eq + 1);
    } else if (!strcmp(argv[i], "--stall")) stall = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--timeout")) timeout = atof(argv[i + 1]);
    else return 2;
  }
  if (argc - i < 3 || argc - i - 2 > MAX_WS) {
    fprintf(stderr, "usage: h3ws [--origin O] [--header N=V] [--stall I] [--timeout S] HOST PORT PATH...\n");
    return 2;
  }
  const char *host = argv[i], *port = argv[i + 1];
  S.n = argc - i - 2;
  S.loop = uv_default_loop();
  char authority[300];
  snprintf(authority, sizeof authority, "localhost:%s", port);
  h3b_cb cb = {on_open, on_data, on_fail};
  if (h3b_init(S.loop, host, atoi(port), authority, S.n, S.n, &cb) != 0) return 2;
  for (int k = 0; k < S.n; k++) {
    wsc_parser_init(&S.p[k], 1 << 20);
    h3b_open(k, argv[i + 2 + k]);
  }
  if (stall >= 0 && stall < S.n) h3b_stall(stall, 1);
  uv_pipe_init(S.loop, &S.in, 0);
  uv_pipe_open(&S.in, 0);
  uv_read_start((uv_stream_t *)&S.in, alloc_in, on_stdin);
  uv_timer_init(S.loop, &S.timeout);
  uv_timer_start(&S.timeout, on_timeout, (uint64_t)(timeout * 1000), 0);
  uv_run(S.loop, UV_RUN_DEFAULT);
  for (int k = 0; k < S.n; k++) wsc_parser_free(&S.p[k]);
  return S.exit_code;
}
