/* Packet parsing: Ethernet / IPv4 / UDP to lockd's port / struct lockd_msg.
 * Only the exact shape lockd answers in the kernel is accepted for the fast
 * path; anything else either passes untouched (not ours) or is malformed. */
#ifndef LOCKD_BPF_LIB_PARSE_H_
#define LOCKD_BPF_LIB_PARSE_H_

#include "bpf/lib/common.h"

/* The one frame layout the datapath rewrites in place. */
struct lockd_frame {
  struct ethhdr eth;
  struct iphdr ip;
  struct udphdr udp;
  struct lockd_msg msg;
} __attribute__((packed));
LOCKD_STATIC_ASSERT(sizeof(struct lockd_frame) ==
                        14 + 20 + 8 + sizeof(struct lockd_msg),
                    "lockd frame is Ethernet + IPv4 (no options) + UDP + msg");

/* Members of a packed frame are reached by offset: the compiler refuses to
 * take their address directly, since packet data has no alignment. */
#define FRAME_PART(frame, member)                                           \
  ((__typeof__(&((struct lockd_frame *)0)->member))((void *)(frame) +       \
                                                    __builtin_offsetof(     \
                                                        struct lockd_frame, \
                                                        member)))

enum parse_result {
  PARSE_NOT_OURS = 0, /* pass it on untouched */
  PARSE_MALFORMED,    /* to lockd's port but unusable: drop */
  PARSE_BAD_VERSION,  /* to lockd's port, other protocol version: drop */
  PARSE_SLOW_PATH,    /* ours, but a shape only user space handles */
  PARSE_OK,
};

/* Mode and policy are checked on every opcode, as the C++ codec does, so
 * that the kernel and user space agree on what is malformed. Requests of
 * the control program are checked the same way. */
static __always_inline bool request_fields_valid(__u8 opcode, __u8 mode,
                                                 __u8 policy, __u8 flags) {
  if (flags & ~LOCKD_REQUEST_FLAGS) return false;
  if (mode > LOCKD_MODE_EXCLUSIVE || policy >= LOCKD_POLICY_COUNT) return false;
  switch (opcode) {
    case LOCKD_OP_ACQUIRE:
      return mode != LOCKD_MODE_NONE;
    case LOCKD_OP_RELEASE:
    case LOCKD_OP_RENEW:
    case LOCKD_OP_KICK:
      return true;
    default:
      return false;
  }
}

static __always_inline bool request_is_valid(const struct lockd_msg *msg) {
  return msg->status == 0 &&
         request_fields_valid(msg->opcode, msg->mode, msg->policy, msg->flags);
}

/* A wire message (in a packet, or handed to the control program), checked
 * and decoded into *req; `from` is the caller's to fill. */
static __always_inline enum parse_result msg_parse(const struct lockd_msg *msg,
                                                   struct lockd_request *req) {
  if (msg->magic != bpf_htons(LOCKD_MAGIC)) return PARSE_MALFORMED;
  if (msg->version != LOCKD_VERSION) return PARSE_BAD_VERSION;
  if (!request_is_valid(msg)) return PARSE_MALFORMED;
  req->lock_id = lockd_ntohll(msg->lock_id);
  req->txn_id = lockd_ntohll(msg->txn_id);
  req->ticket = lockd_ntohll(msg->ticket);
  req->fence = lockd_ntohll(msg->fence);
  req->seq = lockd_ntohll(msg->seq);
  req->lease_ms = bpf_ntohl(msg->lease_ms);
  req->wait_ms = bpf_ntohl(msg->wait_ms);
  req->hops = bpf_ntohl(msg->queue_pos);
  req->client_id = bpf_ntohl(msg->client_id);
  req->opcode = msg->opcode;
  req->mode = msg->mode;
  req->policy = msg->policy;
  req->flags = msg->flags;
  req->member_flags = 0;
  return PARSE_OK;
}

/* Classifies the packet in [data, data_end) and, when it is a well-formed
 * lockd request, fills *req. `port` is lockd's UDP port in host order. */
static __always_inline enum parse_result parse_request(
    void *data, void *data_end, __u16 port, struct lockd_request *req) {
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return PARSE_NOT_OURS;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return PARSE_NOT_OURS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end) return PARSE_NOT_OURS;
  if (ip->protocol != IPPROTO_UDP) return PARSE_NOT_OURS;
  /* Options or fragments: rare, and only user space reassembles. */
  bool odd_shape = ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)) != 0;
  struct udphdr *udp = (void *)ip + ip->ihl * 4;
  if ((void *)(udp + 1) > data_end) return PARSE_NOT_OURS;
  if (udp->dest != bpf_htons(port)) return PARSE_NOT_OURS;
  if (odd_shape) return PARSE_SLOW_PATH;

  struct lockd_frame *frame = data;
  if ((void *)(frame + 1) > data_end) return PARSE_MALFORMED;
  /* Lengths must say exactly one message: no truncation, no trailer. */
  if (frame->udp.len !=
          bpf_htons(sizeof(struct udphdr) + sizeof(struct lockd_msg)) ||
      bpf_ntohs(frame->ip.tot_len) < sizeof(struct iphdr) +
                                         sizeof(struct udphdr) +
                                         sizeof(struct lockd_msg))
    return PARSE_MALFORMED;
  const struct lockd_msg *msg = FRAME_PART(frame, msg);
  enum parse_result r = msg_parse(msg, req);
  if (r != PARSE_OK) return r;
  req->from.addr = frame->ip.saddr;
  req->from.port = frame->udp.source;
  __builtin_memcpy(req->from.mac, frame->eth.h_source, ETH_ALEN);
  return PARSE_OK;
}

#endif /* LOCKD_BPF_LIB_PARSE_H_ */
