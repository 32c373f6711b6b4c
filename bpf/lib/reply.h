/* Writing replies and grants into a lockd frame: addresses, message fields
 * and both checksums (IPv4 header and full UDP), so that what leaves the
 * datapath is a valid packet whatever the NIC offloads. */
#ifndef LOCKD_BPF_LIB_REPLY_H_
#define LOCKD_BPF_LIB_REPLY_H_

#include "bpf/lib/common.h"
#include "bpf/lib/parse.h"

/* One end of a conversation, as it appears in headers (network order). */
struct lockd_endpoint {
  __u8 mac[6];
  __be16 port;
  __be32 addr;
};

/* A reply message in host order; written into the frame's lockd_msg. */
struct lockd_reply {
  __u64 lock_id;
  __u64 txn_id;
  __u64 fence;
  __u32 seq;
  __u32 lease_ms;
  __u32 queue_pos;
  __u8 opcode;
  __u8 status;
  __u8 mode;
  __u8 policy;
};

/* A GRANTED for a waiter that a release made a holder. */
struct lockd_grant {
  struct lockd_reply reply;
  struct lockd_endpoint to;
};

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

  struct lockd_msg *m = FRAME_PART(f, msg);
  m->magic = bpf_htons(LOCKD_MAGIC);
  m->version = LOCKD_VERSION;
  m->opcode = r->opcode;
  m->mode = r->mode;
  m->policy = r->policy;
  m->status = r->status;
  m->flags = 0;
  m->seq = bpf_htonl(r->seq);
  m->lease_ms = bpf_htonl(r->lease_ms);
  m->wait_ms = 0;
  m->queue_pos = bpf_htonl(r->queue_pos);
  m->lock_id = lockd_htonll(r->lock_id);
  m->txn_id = lockd_htonll(r->txn_id);
  m->fence = lockd_htonll(r->fence);
  frame_fix_checksums(f);
}

/* Marks a request for the daemon: it keeps every field, so the daemon sees
 * exactly what the client sent, plus why the kernel did not serve it. */
static __always_inline void frame_mark_handoff(struct lockd_frame *f,
                                               __u8 reason) {
  f->msg.flags = LOCKD_FLAG_HANDOFF;
  f->msg.status = reason;
  frame_fix_checksums(f);
}

#endif /* LOCKD_BPF_LIB_REPLY_H_ */
