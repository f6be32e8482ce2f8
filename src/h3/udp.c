/* h3/udp — see udp.h. */
#include "h3/udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/metrics.h"

void h3_udp_init(h3_udp_t *u, int fd, int want_gso) {
  u->fd = fd;
  u->used = 0;
  u->n = 0;
  u->gso = 0;
  if (want_gso) {
    int seg = 0;
    socklen_t sl = sizeof seg;
    /* The option exists: the kernel knows UDP_SEGMENT (the send may still
     * refuse it, then flush turns GSO off). */
    u->gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &sl) == 0;
  }
}

/* Sends one GSO datagram the kernel refused as separate packets. */
static void send_split(h3_udp_t *u, const h3_udp_dgram_t *d) {
  for (uint32_t off = 0; off < d->len; off += d->seg) {
    size_t len = d->len - off < d->seg ? d->len - off : d->seg;
    ssize_t n;
    do n = sendto(u->fd, u->arena + d->off + off, len, 0, (const struct sockaddr *)&d->addr, d->addr_len);
    while (n < 0 && errno == EINTR);
    wsc_metrics.h3_send_calls++;
    if (n < 0) return;
    wsc_metrics.h3_packets_out++;
    wsc_metrics.bytes_out += len;
  }
}

void h3_udp_flush(h3_udp_t *u) {
  if (u->n == 0) return;
  struct mmsghdr msgs[H3_UDP_BATCH];
  struct iovec iov[H3_UDP_BATCH];
  /* CMSG_SPACE is a multiple of the header's alignment: every row is aligned. */
  _Alignas(struct cmsghdr) char ctl[H3_UDP_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)u->n);
  for (int i = 0; i < u->n; i++) {
    h3_udp_dgram_t *d = &u->d[i];
    iov[i].iov_base = u->arena + d->off;
    iov[i].iov_len = d->len;
    msgs[i].msg_hdr.msg_name = &d->addr;
    msgs[i].msg_hdr.msg_namelen = d->addr_len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    if (d->nseg > 1) {
      memset(ctl[i], 0, sizeof ctl[i]);
      msgs[i].msg_hdr.msg_control = ctl[i];
      msgs[i].msg_hdr.msg_controllen = sizeof ctl[i];
      struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = d->seg;
      memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    }
  }
  int done = 0;
  while (done < u->n) {
    int n = sendmmsg(u->fd, msgs + done, (unsigned)(u->n - done), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      wsc_metrics.h3_send_calls++;
      if (u->d[done].nseg > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
        LOG_WARN("h3", "UDP GSO refused, sending packet by packet err=\"%s\"", strerror(errno));
        u->gso = 0;
        send_split(u, &u->d[done]);
        done++;
        continue;
      }
      break; /* EAGAIN and the like: lost, as on the path */
    }
    wsc_metrics.h3_send_calls++;
    for (int i = 0; i < n; i++) {
      wsc_metrics.bytes_out += u->d[done + i].len;
      wsc_metrics.h3_packets_out += u->d[done + i].nseg;
    }
    done += n;
  }
  u->n = 0;
  u->used = 0;
}

uint8_t *h3_udp_slot_n(h3_udp_t *u, size_t need) {
  if (need > H3_UDP_PKT_LOCAL_MAX) need = H3_UDP_PKT_LOCAL_MAX;
  if (u->used + need > sizeof u->arena) h3_udp_flush(u);
  return u->arena + u->used;
}

uint8_t *h3_udp_slot(h3_udp_t *u) { return h3_udp_slot_n(u, H3_UDP_PKT_MAX); }

static int is_loopback(const struct sockaddr *a, socklen_t len) {
  if (a->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
    return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
  if (a->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(v6)) return 1;
    return IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127;
  }
  return 0;
}

size_t h3_udp_local_payload(const struct sockaddr *to, socklen_t tolen) {
  if (!is_loopback(to, tolen)) return H3_UDP_PKT_MAX;
  int v6 = to->sa_family == AF_INET6;
  int fd = socket(to->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return H3_UDP_PKT_MAX;
  int mtu = 0;
  socklen_t ml = sizeof mtu;
  /* connect() on UDP only picks the route; IP_MTU then reports its MTU. */
  if (connect(fd, to, tolen) != 0 ||
      getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &mtu, &ml) != 0)
    mtu = 0;
  close(fd);
  long payload = (long)mtu - (v6 ? 40 : 20) - 8;
  if (payload <= H3_UDP_PKT_MAX) return H3_UDP_PKT_MAX;
  return payload > H3_UDP_PKT_LOCAL_MAX ? H3_UDP_PKT_LOCAL_MAX : (size_t)payload;
}

void h3_udp_seal(h3_udp_t *u) {
  if (u->n) u->d[u->n - 1].open = 0;
}

void h3_udp_commit(h3_udp_t *u, size_t len, const struct sockaddr *to, socklen_t tolen, int coalesce) {
  if (len == 0 || len > H3_UDP_PKT_LOCAL_MAX || tolen > sizeof(struct sockaddr_storage)) return;
  h3_udp_dgram_t *last = u->n ? &u->d[u->n - 1] : NULL;
  if (coalesce && u->gso && last && last->open && last->off + last->len == u->used && len <= last->seg &&
      last->nseg < H3_UDP_GSO_SEGS && last->len + len <= H3_UDP_GSO_BYTES && last->addr_len == tolen && memcmp(&last->addr, to, tolen) == 0) {
    last->len += (uint32_t)len;
    last->nseg++;
    u->used += len;
    if (len < last->seg) last->open = 0; /* a shorter segment ends a GSO datagram */
    return;
  }
  if (last) last->open = 0;
  if (u->n == H3_UDP_BATCH) {
    /* No datagram left in the table: send the others, then move this
     * packet to the front of the arena. */
    size_t at = u->used;
    h3_udp_flush(u);
    memmove(u->arena, u->arena + at, len);
  }
  h3_udp_dgram_t *d = &u->d[u->n++];
  d->off = (uint32_t)u->used;
  d->len = (uint32_t)len;
  d->seg = (uint16_t)len;
  d->nseg = 1;
  d->open = coalesce ? 1 : 0;
  memcpy(&d->addr, to, tolen);
  d->addr_len = tolen;
  u->used += len;
}
