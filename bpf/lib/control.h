/* The control program's operations (struct lockd_ctl, run by the daemon
 * through BPF_PROG_TEST_RUN): requests of gRPC callers and of requests that
 * user space received (the same lock-table code as a packet, with grants
 * returned instead of sent), and the endings the daemon decides: expired
 * leases and waits, and force-release with a fence, all decided under the
 * lock's guard. */
#ifndef LOCKD_BPF_LIB_CONTROL_H_
#define LOCKD_BPF_LIB_CONTROL_H_

#include "bpf/lib/acquire.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/release.h"

/* Appends this run's notice batch to ctl->notice from index `first`. */
static __always_inline void ctl_copy_notices(struct lockd_ctl *ctl,
                                             const struct lt_result *res,
                                             __u32 first) {
  __u32 zero = 0;
  struct lockd_notice_batch *batch = bpf_map_lookup_elem(&notice_batch, &zero);
  ctl->kick = res->kick;
  ctl->notices = first;
  if (!batch) return;
  for (__u32 i = 0; i < LOCKD_MAX_GRANTS; i++) {
    __u32 to = first + i;
    if (i >= res->notices || to > LOCKD_MAX_GRANTS) break;
    __builtin_memcpy(&ctl->notice[to], &batch->n[i], sizeof(ctl->notice[to]));
    /* Signed if it goes out as a packet: the members the daemon's socket
     * serves are LOCAL too, but have an address (gRPC callers have none). */
    if (ctl->notice[to].to.addr != 0) notice_sign(&ctl->notice[to]);
    ctl->notices = to + 1;
  }
}

static __always_inline void ctl_request(struct lockd_ctl *ctl,
                                        struct lt_result *res, __u64 now,
                                        const __u64 key[2]) {
  const struct lockd_request *req = &ctl->req;
  if (!request_fields_valid(req->opcode, req->mode, req->policy, req->flags)) {
    stat_inc(LOCKD_STAT_MALFORMED);
    ctl->result = LOCKD_CTL_MALFORMED;
    return;
  }
  switch (ctl->req.opcode) {
    case LOCKD_OP_ACQUIRE:
      lt_acquire(&ctl->req, now, res);
      break;
    case LOCKD_OP_RELEASE:
      lt_release(&ctl->req, now, true, res);
      break;
    case LOCKD_OP_RENEW:
      lt_renew(&ctl->req, now, res);
      break;
    case LOCKD_OP_KICK:
      lt_kick(&ctl->req, now, res);
      break;
    default:
      ctl->result = LOCKD_CTL_BAD_OP;
      return;
  }
  reply_sign(&res->reply, key[0], key[1]);
  __builtin_memcpy(&ctl->reply, &res->reply, sizeof(ctl->reply));
  ctl->result = res->verdict == LT_REPLY ? LOCKD_CTL_OK : LOCKD_CTL_NO_REPLY;
  ctl_copy_notices(ctl, res, 0);
}

static __always_inline void ctl_end(struct lockd_ctl *ctl,
                                    struct lt_result *res, enum end_kind kind,
                                    __u64 now) {
  struct end_state *st = lt_end(&ctl->req, kind, now, true, res);
  if (!st) {
    ctl->result = LOCKD_CTL_RETRY;
    return;
  }
  __u32 first = 0;
  switch (st->outcome) {
    case END_RELEASED: {
      bool forced = kind == END_FORCE;
      end_remember(
          &ctl->req,
          forced ? LOCKD_STATUS_FORCE_RELEASED : LOCKD_STATUS_LEASE_EXPIRED, st,
          now);
      stat_inc(forced ? LOCKD_STAT_FORCE_RELEASED : LOCKD_STAT_LEASE_EXPIRED);
      ctl->reply.fence = st->fence;
      ctl->result = LOCKD_CTL_OK;
      break;
    }
    case END_CANCELLED:
      end_remember(&ctl->req, LOCKD_STATUS_WAIT_EXPIRED, st, now);
      stat_inc(LOCKD_STAT_WAIT_EXPIRED);
      st->waiter.reply.opcode = LOCKD_OP_REJECTED;
      st->waiter.reply.status = LOCKD_STATUS_WAIT_EXPIRED;
      st->waiter.reply.lock_id = ctl->req.lock_id;
      if (st->waiter.to.addr != 0) notice_sign(&st->waiter);
      __builtin_memcpy(&ctl->notice[0], &st->waiter, sizeof(ctl->notice[0]));
      first = 1;
      ctl->result = LOCKD_CTL_OK;
      break;
    case END_NOT_DUE:
      ctl->result = LOCKD_CTL_NOT_DUE;
      break;
    case END_FENCE_MISMATCH:
      ctl->result = LOCKD_CTL_FENCE_MISMATCH;
      break;
    case END_RETRY:
    case END_NEED_SEARCH:
      ctl->result = LOCKD_CTL_RETRY;
      break;
    default:
      ctl->result = LOCKD_CTL_NOT_FOUND;
      break;
  }
  ctl_copy_notices(ctl, res, first);
}

/* A datagram user space received: parsed and authenticated as the packet
 * path does (the window too), then served as a request. The sender
 * (req.from) and the member flags are the daemon's. */
static __always_inline void ctl_wire(struct lockd_ctl *ctl,
                                     struct entry_scratch *e, __u64 now) {
  struct lockd_endpoint from = ctl->req.from;
  __u8 member_flags = ctl->req.member_flags;
  enum parse_result parsed = msg_parse(&ctl->wire, &ctl->req);
  if (parsed != PARSE_OK) {
    stat_inc(parsed == PARSE_BAD_VERSION ? LOCKD_STAT_BAD_VERSION
                                         : LOCKD_STAT_MALFORMED);
    ctl->result = LOCKD_CTL_MALFORMED;
    return;
  }
  ctl->req.from = from;
  ctl->req.member_flags = member_flags;
  enum auth_result auth = auth_request(&ctl->wire, &ctl->req, true, e->key);
  if (auth == AUTH_OK && ctl->req.opcode == LOCKD_OP_KICK) {
    stat_inc(LOCKD_STAT_FORGED_KICK);
    auth = AUTH_FAILED;
  } else {
    auth_count(auth);
  }
  if (auth != AUTH_OK) {
    ctl->result = LOCKD_CTL_FORGED;
    return;
  }
  ctl_request(ctl, &e->res, now, e->key);
}

/* Creates client req.client_id if new, and gives it key `key`; the key it
 * had stays valid until the client signs with the new one. */
static __always_inline void ctl_set_key(struct lockd_ctl *ctl) {
  __u32 id = ctl->req.client_id;
  struct lockd_client fresh = {};
  bpf_map_update_elem(&clients, &id, &fresh, BPF_NOEXIST);
  struct lockd_client *c = bpf_map_lookup_elem(&clients, &id);
  if (!c) {
    ctl->result = LOCKD_CTL_NOT_FOUND; /* the map is full */
    return;
  }
  __u64 k0 = ctl->key[0], k1 = ctl->key[1];
  bpf_spin_lock(&c->guard);
  if (c->key[0] != k0 || c->key[1] != k1) {
    if (c->key[0] || c->key[1]) {
      c->old_key[0] = c->key[0];
      c->old_key[1] = c->key[1];
      c->has_old_key = 1;
    }
    c->key[0] = k0;
    c->key[1] = k1;
  }
  bpf_spin_unlock(&c->guard);
  ctl->result = LOCKD_CTL_OK;
}

/* `e`: this CPU's cleared entry scratch. */
static __always_inline void ctl_run(struct lockd_ctl *ctl,
                                    struct entry_scratch *e) {
  struct lt_result *res = &e->res;
  __u64 now = bpf_ktime_get_ns();
  ctl->notices = 0;
  ctl->kick = 0;
  switch (ctl->op) {
    case LOCKD_CTL_REQUEST:
      ctl_request(ctl, res, now, e->key);
      break;
    case LOCKD_CTL_WIRE:
      ctl_wire(ctl, e, now);
      break;
    case LOCKD_CTL_SET_KEY:
      ctl_set_key(ctl);
      break;
    case LOCKD_CTL_EXPIRE_HOLDER:
      ctl_end(ctl, res, END_EXPIRE_HOLDER, now);
      break;
    case LOCKD_CTL_FORCE_RELEASE:
      ctl_end(ctl, res, END_FORCE, now);
      break;
    case LOCKD_CTL_EXPIRE_WAITER:
      ctl_end(ctl, res, END_EXPIRE_WAITER, now);
      break;
    default:
      ctl->result = LOCKD_CTL_BAD_OP;
      break;
  }
}

#endif /* LOCKD_BPF_LIB_CONTROL_H_ */
