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
    ctl->notices = to + 1;
  }
}

static __always_inline void ctl_request(struct lockd_ctl *ctl,
                                        struct lt_result *res, __u64 now) {
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

/* `res`: this CPU's cleared result (the entry scratch). */
static __always_inline void ctl_run(struct lockd_ctl *ctl,
                                    struct lt_result *res) {
  __u64 now = bpf_ktime_get_ns();
  ctl->notices = 0;
  ctl->kick = 0;
  switch (ctl->op) {
    case LOCKD_CTL_REQUEST:
      ctl_request(ctl, res, now);
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
