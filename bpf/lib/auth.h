/* Who may speak (docs/security.md): every request names its client and
 * carries a SipHash-2-4 MAC of the message under that client's key, checked
 * here before any lock state is looked up; its sequence number must be new
 * to the client's replay window. Replies and GRANTED notices are signed with
 * the key of the client they are for. Unauthenticated requests (client
 * LOCKD_CLIENT_NONE) are served only from the subnets the operator opened.
 *
 * Keys are read without the client's guard: a request that races with a
 * rekey may see a torn key, fail and be dropped; the client's retransmission
 * then finds the new key. The window is updated under the guard. */
#ifndef LOCKD_BPF_LIB_AUTH_H_
#define LOCKD_BPF_LIB_AUTH_H_

#include "abi/siphash.h"
#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/reply.h"
#include "bpf/lib/stats.h"

enum auth_result {
  AUTH_OK = 0,
  AUTH_FAILED,          /* unknown client or wrong MAC */
  AUTH_UNAUTHENTICATED, /* no client, from a subnet not opened */
  AUTH_REPLAYED,        /* seq already seen, or behind the window */
};

/* The MAC of message m under (k0, k1). A global function, apart from its
 * callers' stack: SipHash's state spills. */
__noinline __u64 lt_msg_mac(const struct lockd_msg *m, __u64 k0, __u64 k1) {
  if (!m) return 0;
  return lockd_siphash24(k0, k1, m, LOCKD_MAC_BYTES / 8);
}

/* This CPU's message scratch. */
static __always_inline struct lockd_msg *msg_scratch_get(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&msg_scratch, &zero);
}

/* Under the client's guard: whether seq is new to the window (and now
 * seen). */
static __always_inline bool window_accept(struct lockd_client *c, __u64 seq) {
  if (seq > c->seq_top) {
    __u64 ahead = seq - c->seq_top;
    c->seq_seen = ahead >= LOCKD_REPLAY_WINDOW ? 1 : (c->seq_seen << ahead) | 1;
    c->seq_top = seq;
    return true;
  }
  __u64 behind = c->seq_top - seq;
  if (behind >= LOCKD_REPLAY_WINDOW) return false;
  __u64 bit = 1ULL << behind;
  if (c->seq_seen & bit) return false;
  c->seq_seen |= bit;
  return true;
}

static __always_inline bool subnet_open(__be32 addr) {
  struct open_subnet_key key = {.prefixlen = 32, .addr = addr};
  return bpf_map_lookup_elem(&open_subnets, &key) != NULL;
}

/* Authenticates the request `req` parsed from `msg`. `window`: also checks
 * and advances the replay window (XDP and the control program do; TC sees
 * only what XDP let through, so it only checks the MAC). key[] gets the key
 * that signed the request, for its reply (zero: unauthenticated). */
static __always_inline enum auth_result auth_request(
    const struct lockd_msg *msg, const struct lockd_request *req, bool window,
    __u64 key[2]) {
  key[0] = 0;
  key[1] = 0;
  if (req->client_id == LOCKD_CLIENT_NONE)
    return subnet_open(req->from.addr) ? AUTH_OK : AUTH_UNAUTHENTICATED;
  __u32 id = req->client_id;
  struct lockd_client *c = bpf_map_lookup_elem(&clients, &id);
  struct lockd_msg *copy = msg_scratch_get();
  if (!c || !copy) return AUTH_FAILED;
  __builtin_memcpy(copy, msg, sizeof(*copy));
  __u64 mac = copy->mac;
  __u64 k0 = READ_ONCE(c->key[0]);
  __u64 k1 = READ_ONCE(c->key[1]);
  bool current = lt_msg_mac(copy, k0, k1) == mac;
  if (!current) {
    if (!READ_ONCE(c->has_old_key)) return AUTH_FAILED;
    k0 = READ_ONCE(c->old_key[0]);
    k1 = READ_ONCE(c->old_key[1]);
    if (lt_msg_mac(copy, k0, k1) != mac) return AUTH_FAILED;
  }
  key[0] = k0;
  key[1] = k1;
  if (!window) return AUTH_OK;
  bpf_spin_lock(&c->guard);
  bool fresh = req->seq != 0 && window_accept(c, req->seq);
  /* The client signs with its new key now: the old one is done. */
  if (fresh && current) c->has_old_key = 0;
  bpf_spin_unlock(&c->guard);
  return fresh ? AUTH_OK : AUTH_REPLAYED;
}

/* Counts a failed authentication; the request is dropped. */
static __always_inline void auth_count(enum auth_result r) {
  if (r == AUTH_FAILED)
    stat_inc(LOCKD_STAT_AUTH_FAILED);
  else if (r == AUTH_UNAUTHENTICATED)
    stat_inc(LOCKD_STAT_UNAUTHENTICATED);
  else if (r == AUTH_REPLAYED)
    stat_inc(LOCKD_STAT_REPLAYED);
}

/* Sets r->mac: the MAC of the message r is sent as, under key (none for an
 * unauthenticated client). */
static __always_inline void reply_sign(struct lockd_reply *r, __u64 k0,
                                       __u64 k1) {
  r->mac = 0;
  /* No key (an unauthenticated client, or the daemon's own request): no
   * MAC. Keys are never all zero. */
  if (r->client_id == LOCKD_CLIENT_NONE || (k0 == 0 && k1 == 0)) return;
  struct lockd_msg *m = msg_scratch_get();
  if (!m) return;
  msg_write(m, r);
  r->mac = lt_msg_mac(m, k0, k1);
}

/* Signs a notice with the current key of the client it is for. */
static __always_inline void notice_sign(struct lockd_notice *n) {
  __u32 id = n->reply.client_id;
  struct lockd_client *c = bpf_map_lookup_elem(&clients, &id);
  if (c)
    reply_sign(&n->reply, READ_ONCE(c->key[0]), READ_ONCE(c->key[1]));
  else
    n->reply.mac = 0;
}

/* A client's record, or NULL (removed, or never known). */
static __always_inline struct lockd_client *client_of(__u32 id) {
  return bpf_map_lookup_elem(&clients, &id);
}

/* A client's holds + waits change by delta (c may be NULL). */
static __always_inline void client_members_add(struct lockd_client *c,
                                               __s32 delta) {
  if (c) __sync_fetch_and_add(&c->members, delta);
}

/* Whether the client has its quota of holds + waits already. */
static __always_inline bool client_at_quota(const struct lockd_client *c) {
  return c && READ_ONCE(c->members) >= cfg_client_quota;
}

#endif /* LOCKD_BPF_LIB_AUTH_H_ */
