/* Unit tests for h3/udp: packets written into the arena leave as UDP
 * datagrams on real loopback sockets, GSO datagrams built by its rules, and
 * the fallback when the kernel refuses GSO (SO_NO_CHECK makes it refuse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/metrics.h"
#include "h3/udp.h"

typedef struct {
  int tx, rx, rx2;
  struct sockaddr_in to, to2;
  h3_udp_t *u;
} fx_t;

static int bound_socket(struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0);
  socklen_t l = sizeof *addr;
  assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &l), 0);
  int size = 4 * 1024 * 1024;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  struct sockaddr_in self;
  f->tx = bound_socket(&self);
  f->rx = bound_socket(&f->to);
  f->rx2 = bound_socket(&f->to2);
  f->u = malloc(sizeof *f->u);
  assert_non_null(f->u);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  close(f->tx);
  close(f->rx);
  close(f->rx2);
  free(f->u);
  free(f);
  return 0;
}

/* Writes a packet of len bytes (byte i = tag + i) at the slot and commits it. */
static void put(fx_t *f, const struct sockaddr_in *to, size_t len, uint8_t tag, int coalesce) {
  uint8_t *p = h3_udp_slot(f->u);
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(tag + i);
  h3_udp_commit(f->u, len, (const struct sockaddr *)to, sizeof *to, coalesce);
}

/* The same with a packet larger than H3_UDP_PKT_MAX (up to H3_UDP_PKT_LOCAL_MAX). */
static void put_big(fx_t *f, const struct sockaddr_in *to, size_t len, uint8_t tag, int coalesce) {
  uint8_t *p = h3_udp_slot_n(f->u, len);
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(tag + i);
  h3_udp_commit(f->u, len, (const struct sockaddr *)to, sizeof *to, coalesce);
}

/* Receives one datagram on fd: it must be len bytes made by put(.., tag). */
static void expect(int fd, size_t len, uint8_t tag) {
  uint8_t buf[65536];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  assert_int_equal(n, (ssize_t)len);
  for (size_t i = 0; i < len; i++)
    if (buf[i] != (uint8_t)(tag + i)) fail_msg("byte %zu of packet %u differs", i, tag);
}

static void expect_nothing(int fd) {
  uint8_t buf[16];
  assert_int_equal(recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);
}

static void test_gso_rules(void **state) {
  fx_t *f = *state;
  h3_udp_init(f->u, f->tx, 1);
  if (!f->u->gso) skip(); /* a kernel without UDP_SEGMENT */
  uint64_t pk0 = wsc_metrics.h3_packets_out, calls0 = wsc_metrics.h3_send_calls;
  /* 1200, 1200, 1200, 700: one GSO datagram (the shorter one ends it) */
  put(f, &f->to, 1200, 1, 1);
  put(f, &f->to, 1200, 2, 1);
  put(f, &f->to, 1200, 3, 1);
  put(f, &f->to, 700, 4, 1);
  assert_int_equal(f->u->n, 1);
  assert_int_equal(f->u->d[0].nseg, 4);
  /* after a shorter segment: a new datagram, even of the same size */
  put(f, &f->to, 700, 5, 1);
  /* a larger packet cannot join: new datagram */
  put(f, &f->to, 1400, 6, 1);
  /* another address: new datagram */
  put(f, &f->to2, 1400, 7, 1);
  /* not coalescible: alone, and the next one does not join it */
  put(f, &f->to2, 1400, 8, 0);
  put(f, &f->to2, 1400, 9, 1);
  assert_int_equal(f->u->n, 6);
  /* sealed: the next packet starts over */
  h3_udp_seal(f->u);
  put(f, &f->to2, 1400, 10, 1);
  assert_int_equal(f->u->n, 7);
  h3_udp_flush(f->u);
  assert_int_equal(f->u->n, 0);
  /* the receiver has no UDP_GRO: every segment arrives as its own datagram */
  expect(f->rx, 1200, 1);
  expect(f->rx, 1200, 2);
  expect(f->rx, 1200, 3);
  expect(f->rx, 700, 4);
  expect(f->rx, 700, 5);
  expect(f->rx, 1400, 6);
  expect_nothing(f->rx);
  expect(f->rx2, 1400, 7);
  expect(f->rx2, 1400, 8);
  expect(f->rx2, 1400, 9);
  expect(f->rx2, 1400, 10);
  expect_nothing(f->rx2);
  assert_int_equal(wsc_metrics.h3_packets_out - pk0, 10);
  assert_int_equal(wsc_metrics.h3_send_calls - calls0, 1); /* one sendmmsg */
}

static void test_gso_segment_limit(void **state) {
  fx_t *f = *state;
  h3_udp_init(f->u, f->tx, 1);
  if (!f->u->gso) skip();
  for (int i = 0; i < H3_UDP_GSO_SEGS + 3; i++) put(f, &f->to, H3_UDP_PKT_MAX, (uint8_t)i, 1);
  assert_int_equal(f->u->n, 2);
  assert_int_equal(f->u->d[0].nseg, H3_UDP_GSO_SEGS);
  assert_int_equal(f->u->d[1].nseg, 3);
  h3_udp_flush(f->u);
  for (int i = 0; i < H3_UDP_GSO_SEGS + 3; i++) expect(f->rx, H3_UDP_PKT_MAX, (uint8_t)i);
  expect_nothing(f->rx);
}

static void test_without_gso_each_packet_alone(void **state) {
  fx_t *f = *state;
  h3_udp_init(f->u, f->tx, 0);
  assert_int_equal(f->u->gso, 0);
  for (int i = 0; i < 5; i++) put(f, &f->to, 1000, (uint8_t)(20 + i), 1);
  assert_int_equal(f->u->n, 5);
  h3_udp_flush(f->u);
  for (int i = 0; i < 5; i++) expect(f->rx, 1000, (uint8_t)(20 + i));
  expect_nothing(f->rx);
}

/* More datagrams than the table holds: the batch is sent, the packet moved. */
static void test_full_table_and_arena(void **state) {
  fx_t *f = *state;
  h3_udp_init(f->u, f->tx, 1);
  int n = H3_UDP_BATCH * 3 + 5;
  for (int i = 0; i < n; i++) put(f, i % 2 ? &f->to2 : &f->to, 100 + (size_t)i, (uint8_t)i, 1);
  h3_udp_flush(f->u);
  for (int i = 0; i < n; i++) expect(i % 2 ? f->rx2 : f->rx, 100 + (size_t)i, (uint8_t)i);
  expect_nothing(f->rx);
  expect_nothing(f->rx2);
  /* the arena: more packet bytes than it holds, all to one place (a flush
   * may send a whole arena at once: the receiver must hold it) */
  int rcv = 0;
  socklen_t rl = sizeof rcv;
  getsockopt(f->rx, SOL_SOCKET, SO_RCVBUF, &rcv, &rl);
  if (rcv < 2 * 1024 * 1024) skip();
  int m = (int)(H3_UDP_ARENA / H3_UDP_PKT_MAX) + 50;
  for (int i = 0; i < m; i++) put(f, &f->to, H3_UDP_PKT_MAX, (uint8_t)i, 1);
  h3_udp_flush(f->u);
  for (int i = 0; i < m; i++) expect(f->rx, H3_UDP_PKT_MAX, (uint8_t)i);
  expect_nothing(f->rx);
}

/* SO_NO_CHECK: the kernel refuses GSO on this socket (EINVAL). The refused
 * datagram still arrives, packet by packet, and GSO is off from then on. */
static void test_gso_refused_falls_back(void **state) {
  fx_t *f = *state;
  h3_udp_init(f->u, f->tx, 1);
  if (!f->u->gso) skip();
  int one = 1;
  assert_int_equal(setsockopt(f->tx, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one), 0);
  put(f, &f->to, 1200, 40, 1);
  put(f, &f->to, 1200, 41, 1);
  put(f, &f->to, 500, 42, 1);
  put(f, &f->to2, 300, 43, 1);
  assert_int_equal(f->u->d[0].nseg, 3);
  h3_udp_flush(f->u);
  assert_int_equal(f->u->gso, 0);
  expect(f->rx, 1200, 40);
  expect(f->rx, 1200, 41);
  expect(f->rx, 500, 42);
  expect(f->rx2, 300, 43);
  put(f, &f->to, 1200, 50, 1);
  put(f, &f->to, 1200, 51, 1);
  assert_int_equal(f->u->n, 2); /* no more coalescing */
  h3_udp_flush(f->u);
  expect(f->rx, 1200, 50);
  expect(f->rx, 1200, 51);
}

/* Packets up to H3_UDP_PKT_LOCAL_MAX go out whole; a GSO datagram of large
 * segments stops at H3_UDP_GSO_BYTES; a packet past the maximum is dropped. */
static void test_large_packets(void **state) {
  fx_t *f = *state;
  h3_udp_init(f->u, f->tx, 1);
  size_t big = H3_UDP_PKT_LOCAL_MAX;
  int n = (int)(H3_UDP_GSO_BYTES / big) + 2;
  for (int i = 0; i < n; i++) put_big(f, &f->to, big, (uint8_t)(60 + i), 1);
  if (f->u->gso) {
    assert_int_equal(f->u->d[0].nseg, (int)(H3_UDP_GSO_BYTES / big));
    assert_true(f->u->d[0].len <= H3_UDP_GSO_BYTES);
  }
  uint8_t *p = h3_udp_slot_n(f->u, big + 1);
  (void)p;
  int before = f->u->n;
  h3_udp_commit(f->u, big + 1, (const struct sockaddr *)&f->to, sizeof f->to, 1);
  assert_int_equal(f->u->n, before); /* refused: larger than any packet we send */
  h3_udp_flush(f->u);
  for (int i = 0; i < n; i++) expect(f->rx, big, (uint8_t)(60 + i));
  expect_nothing(f->rx);
}

/* Larger packets only for a loopback peer, as large as its route's MTU
 * allows: never for another address. */
static void test_local_payload(void **state) {
  (void)state;
  struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons(9)};
  lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  size_t p = h3_udp_local_payload((struct sockaddr *)&lo, sizeof lo);
  assert_true(p >= H3_UDP_PKT_MAX && p <= H3_UDP_PKT_LOCAL_MAX);
  /* the loopback's MTU, asked of the kernel as the code does */
  int fd = socket(AF_INET, SOCK_DGRAM, 0), mtu = 0;
  socklen_t ml = sizeof mtu;
  assert_int_equal(connect(fd, (struct sockaddr *)&lo, sizeof lo), 0);
  assert_int_equal(getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &ml), 0);
  close(fd);
  if (mtu - 28 > H3_UDP_PKT_LOCAL_MAX) assert_int_equal(p, H3_UDP_PKT_LOCAL_MAX);
  else if (mtu - 28 > H3_UDP_PKT_MAX) assert_int_equal(p, (size_t)(mtu - 28));
  else assert_int_equal(p, H3_UDP_PKT_MAX);
  struct sockaddr_in other = {.sin_family = AF_INET, .sin_port = htons(9)};
  other.sin_addr.s_addr = htonl(0xC0000201); /* 192.0.2.1 (TEST-NET-1): never larger */
  assert_int_equal(h3_udp_local_payload((struct sockaddr *)&other, sizeof other), H3_UDP_PKT_MAX);
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(9), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  size_t p6 = h3_udp_local_payload((struct sockaddr *)&v6, sizeof v6);
  assert_true(p6 >= H3_UDP_PKT_MAX && p6 <= H3_UDP_PKT_LOCAL_MAX);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_gso_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gso_segment_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_without_gso_each_packet_alone, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_table_and_arena, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gso_refused_falls_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_packets, setup, teardown),
      cmocka_unit_test(test_local_payload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
