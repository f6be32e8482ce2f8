/* h3/udp — batched UDP output for the QUIC server (h3/h3.c): no QUIC here,
 * only datagrams.
 *
 * Packets are written in place into an arena (h3_udp_slot, then
 * h3_udp_commit) and leave together in sendmmsg calls (h3_udp_flush, once
 * per loop iteration or when the arena or the datagram table is full).
 * Consecutive packets to the same address that may be coalesced (the
 * packets one connection writes in a row) become one GSO datagram
 * (UDP_SEGMENT, Linux >= 4.18): the kernel walks its send path once for up
 * to H3_UDP_GSO_SEGS packets. The rule of GSO is kept: every segment has
 * the size of the first, only the last may be shorter. If the kernel
 * refuses GSO (EIO: no checksum offload on the device; EINVAL/ENOPROTOOPT
 * on an old kernel) it is turned off for good and that datagram is sent
 * packet by packet.
 *
 * Packets are normally at most H3_UDP_PKT_MAX bytes (what fits any path).
 * A peer on the loopback interface may get larger ones, up to
 * H3_UDP_PKT_LOCAL_MAX, when the kernel's route to it says so
 * (h3_udp_local_payload: as TCP sends 64 KiB segments over loopback);
 * h3_udp_slot_n asks for room for such a packet. A GSO datagram holds at
 * most H3_UDP_GSO_BYTES.
 *
 * A send error other than EINTR (EAGAIN: the socket buffer is full) drops
 * the rest of the batch: for QUIC that is a loss on the path, which its
 * loss recovery repairs.
 *
 * Ownership: the caller owns the h3_udp_t (it is large: embed it or
 * allocate it) and the socket; nothing here allocates.
 */
#ifndef WSC_H3_UDP_H
#define WSC_H3_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define H3_UDP_PKT_MAX 1452                     /* a QUIC packet we send, at most */
#define H3_UDP_BATCH 64                         /* datagrams per sendmmsg */
#define H3_UDP_ARENA (256 * H3_UDP_PKT_MAX)     /* packet bytes held before a flush */
#define H3_UDP_GSO_SEGS 40                      /* packets per GSO datagram (< 64 KiB) */
#define H3_UDP_GSO_BYTES 61440                  /* bytes per GSO datagram, at most */
#define H3_UDP_PKT_LOCAL_MAX 16384              /* a packet to a loopback peer, at most */

typedef struct h3_udp_dgram {
  uint32_t off, len;                            /* in the arena */
  uint16_t seg, nseg;                           /* segment size, segments */
  uint8_t open;                                 /* may take another segment */
  socklen_t addr_len;
  struct sockaddr_storage addr;
} h3_udp_dgram_t;

typedef struct h3_udp {
  int fd;
  int gso;                                      /* 1: coalesce into GSO datagrams */
  size_t used;                                  /* arena bytes in use */
  int n;                                        /* datagrams in d[] */
  h3_udp_dgram_t d[H3_UDP_BATCH];
  uint8_t arena[H3_UDP_ARENA];
} h3_udp_t;

/* fd: a bound UDP socket. want_gso: 0 to never use GSO; otherwise GSO is
 * used when the kernel has it. */
void h3_udp_init(h3_udp_t *u, int fd, int want_gso);
/* Where the next packet goes: room for H3_UDP_PKT_MAX bytes (flushes first
 * when the arena is full). Valid until the next call of any h3_udp_*. */
uint8_t *h3_udp_slot(h3_udp_t *u);
/* The same with room for need bytes (at most H3_UDP_PKT_LOCAL_MAX). */
uint8_t *h3_udp_slot_n(h3_udp_t *u, size_t need);
/* The UDP payload a packet to `to` may have beyond H3_UDP_PKT_MAX: for a
 * loopback address, the loopback route's MTU less the IP and UDP headers
 * (asked of the kernel with a connected probe socket, no packet sent),
 * capped at H3_UDP_PKT_LOCAL_MAX; H3_UDP_PKT_MAX for any other address, or
 * when the route's MTU is not larger (a loopback with a 1500-byte MTU). */
size_t h3_udp_local_payload(const struct sockaddr *to, socklen_t tolen);
/* The len bytes written at the slot are a packet for `to`. coalesce: it may
 * join the previous packet's datagram as a GSO segment. */
void h3_udp_commit(h3_udp_t *u, size_t len, const struct sockaddr *to, socklen_t tolen, int coalesce);
/* Ends the datagram being built: the next packet starts a new one. */
void h3_udp_seal(h3_udp_t *u);
/* Sends everything held. */
void h3_udp_flush(h3_udp_t *u);

#endif
