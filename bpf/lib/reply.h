/* Writing replies and notices into a lockd frame: addresses, message fields
 * and both checksums (IPv4 header and full UDP), so that what leaves the
 * datapath is a valid packet whatever the NIC offloads. */
#ifndef LOCKD_BPF_LIB_REPLY_H_
#define LOCKD_BPF_LIB_REPLY_H_

#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/parse.h"

static __always_inline void frame_source(const struct lockd_frame *f,
                                         struct lockd_endpoint *ep) {
  __builtin_memcpy(ep->mac, f->eth.h_source, ETH_ALEN);
  ep->addr = f->ip.saddr;
  ep->port = f->udp.source;
}

static __always_inline void frame_dest(const struct lockd_frame *f,
                                       struct lockd_endpoint *ep) {
  __builtin_memcpy(ep->mac, f->eth.h_dest, ETH_ALEN);
  ep->addr = f->ip.daddr;
  ep->port = f->udp.dest;
}

static __always_inline __u16 csum_fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

static __always_inline void frame_fix_checksums(struct lockd_frame *f) {
  const __u16 *words = (const __u16 *)FRAME_PART(f, ip);
  __u32 sum = 0;
  f->ip.check = 0;
#pragma unroll
  for (int i = 0; i < (int)sizeof(struct iphdr) / 2; i++) sum += words[i];
  f->ip.check = csum_fold(sum);

  /* UDP: pseudo header, then the UDP header and the message. */
  sum = (f->ip.saddr & 0xffff) + (f->ip.saddr >> 16) + (f->ip.daddr & 0xffff) +
        (f->ip.daddr >> 16) + bpf_htons(IPPROTO_UDP) + f->udp.len;
  f->udp.check = 0;
  words = (const __u16 *)FRAME_PART(f, udp);
#pragma unroll
  for (int i = 0;
       i < (int)(sizeof(struct udphdr) + sizeof(struct lockd_msg)) / 2; i++)
    sum += words[i];
  __u16 check = csum_fold(sum);
  f->udp.check = check ? check : 0xffff; /* 0 means "no checksum" */
}

/* Fills message `m` with `r` (signed by reply_sign, bpf/lib/auth.h) and the
 * server's epoch; fields a reply does not define are 0. */
static __always_inline void msg_write(struct lockd_msg *m,
                                      const struct lockd_reply *r) {
  m->magic = bpf_htons(LOCKD_MAGIC);
  m->version = LOCKD_VERSION;
  m->opcode = r->opcode;
  m->mode = r->mode;
  m->policy = r->policy;
  m->status = r->status;
  m->flags = 0;
  m->client_id = bpf_htonl(r->client_id);
  m->seq = lockd_htonll(r->seq);
  m->lease_ms = bpf_htonl(r->lease_ms);
  m->wait_ms = bpf_htonl(cfg_epoch);
  m->queue_pos = bpf_htonl(r->queue_pos);
  m->lock_id = lockd_htonll(r->lock_id);
  m->txn_id = lockd_htonll(r->txn_id);
  m->fence = lockd_htonll(r->fence);
  m->ticket = lockd_htonll(r->ticket);
  m->mac = r->mac;
}

static __always_inline void frame_write(struct lockd_frame *f,
                                        const struct lockd_endpoint *from,
                                        const struct lockd_endpoint *to,
                                        const struct lockd_reply *r) {
  __builtin_memcpy(f->eth.h_source, from->mac, ETH_ALEN);
  __builtin_memcpy(f->eth.h_dest, to->mac, ETH_ALEN);
  f->ip.saddr = from->addr;
  f->ip.daddr = to->addr;
  f->ip.ttl = 64;
  f->udp.source = from->port;
  f->udp.dest = to->port;
  msg_write(FRAME_PART(f, msg), r);
  frame_fix_checksums(f);
}

#endif /* LOCKD_BPF_LIB_REPLY_H_ */
