/* Control operations the daemon runs through lockd_ctl (BPF_PROG_TEST_RUN
 * on a struct lockd_ctl): lease and wait expiry, force-release, KICK, and
 * moving a lock between the kernel and user space. They reuse the lock
 * table's critical sections, so they serialize with packets on the lock's
 * guard. */
#ifndef LOCKD_BPF_LIB_CONTROL_H_
#define LOCKD_BPF_LIB_CONTROL_H_

#include "bpf/lib/common.h"
#include "bpf/lib/lock_table.h"

static __always_inline void ctl_copy_grants(struct lockd_ctl *ctl,
                                            const struct lt_result *res) {
  struct lockd_grant_batch *batch =
      bpf_map_lookup_elem(&grant_batch, &res->batch);
  ctl->grants = 0;
  ctl->kick = res->kick;
  if (!batch) return;
  for (__u32 i = 0; i < LOCKD_MAX_GRANTS; i++) {
    if (i >= res->grants) break;
    const struct lockd_grant *g = &batch->grants[i];
    struct lockd_ctl_notice *n = &ctl->granted[i];
    n->txn_id = g->reply.txn_id;
    n->fence = g->reply.fence;
    n->seq = g->reply.seq;
    n->lease_ms = g->reply.lease_ms;
    n->addr = g->to.addr;
    n->port = g->to.port;
    n->mode = g->reply.mode;
    n->policy = g->reply.policy;
    ctl->grants = i + 1;
  }
}

/* Flags the lock USER_OWNED: from now on the datapath hands every request
 * for it to the daemon, and changes nothing of it. Its holders, queue and
 * their records move to the daemon, so the entry keeps only the flag, the
 * fence and min_txn; ctl returns what it had (head: where the queue's blocks
 * start, for the daemon to free). */
static __always_inline void ctl_takeover(struct lockd_ctl *ctl) {
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &ctl->lock_id);
  if (!lk) {
    ctl->result = LOCKD_CTL_NOT_FOUND;
    return;
  }
  bpf_spin_lock(&lk->guard);
  ctl->mode = lk->mode;
  ctl->holders = lk->holders;
  ctl->queue_len = lk->queue_len;
  ctl->head = lk->head;
  ctl->fence = lk->fence;
  ctl->min_txn = lk->min_txn;
  if (lk->flags & LOCKD_LOCK_USER_OWNED) {
    ctl->result = LOCKD_CTL_BAD_STATE;
  } else {
    lk->flags |= LOCKD_LOCK_USER_OWNED;
    lk->mode = LOCKD_MODE_NONE;
    lk->holders = 0;
    lk->queue_len = 0;
    lk->head = 0;
    lk->tail = 0;
    lk->version++;
    ctl->result = LOCKD_CTL_OK;
  }
  bpf_spin_unlock(&lk->guard);
}

/* Hands a user-owned lock back with the holders the daemon installed as
 * owner records and no queue (the daemon gives back only when its queue for
 * the lock is empty). Fences never go back. */
static __always_inline void ctl_give_back(struct lockd_ctl *ctl) {
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &ctl->lock_id);
  if (!lk) {
    ctl->result = LOCKD_CTL_NOT_FOUND;
    return;
  }
  bpf_spin_lock(&lk->guard);
  if (!(lk->flags & LOCKD_LOCK_USER_OWNED) || ctl->fence < lk->fence ||
      (ctl->holders == 0) != (ctl->mode == LOCKD_MODE_NONE)) {
    ctl->result = LOCKD_CTL_BAD_STATE;
  } else {
    lk->mode = ctl->mode;
    lk->holders = ctl->holders;
    lk->queue_len = 0;
    lk->head = 0;
    lk->tail = 0;
    lk->fence = ctl->fence;
    lk->min_txn = ctl->holders ? ctl->min_txn : ~0ULL;
    lk->flags &= ~LOCKD_LOCK_USER_OWNED;
    lk->version++;
    ctl->result = LOCKD_CTL_OK;
  }
  bpf_spin_unlock(&lk->guard);
}

/* Ends a hold for the daemon: `reason` LEASE_EXPIRED (only once the lease
 * ran out) or FORCE_RELEASED. The holder's late RELEASE is told the reason;
 * waiters that became compatible are granted into ctl->granted. */
static __always_inline void ctl_end_hold(struct lockd_ctl *ctl, __u64 now,
                                         __u8 reason, struct lt_result *res) {
  struct lockd_owner_key key = {ctl->lock_id, ctl->txn_id};
  struct lockd_owner *own = bpf_map_lookup_elem(&owners, &key);
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &ctl->lock_id);
  if (!own || !lk) {
    ctl->result = LOCKD_CTL_NOT_FOUND;
    return;
  }
  __u32 result;
  struct lockd_released memo = {.status = reason};
  bpf_spin_lock(&lk->guard);
  if (!owner_matches(own, key.lock_id, key.txn_id) ||
      own->state != LOCKD_OWNER_HELD) {
    result = LOCKD_CTL_NOT_FOUND;
  } else if (lk->flags & LOCKD_LOCK_USER_OWNED) {
    result = LOCKD_CTL_BAD_STATE;
  } else if (reason == LOCKD_STATUS_LEASE_EXPIRED &&
             !(own->lease_expires_ns < now)) {
    result = LOCKD_CTL_NOT_DUE;
  } else {
    lk->holders--;
    if (lk->holders == 0) lk->mode = LOCKD_MODE_NONE;
    lk->version++;
    lock_note_maybe_idle(lk);
    own->state = LOCKD_OWNER_GONE;
    memo.fence = own->fence;
    memo.seq = own->seq;
    result = LOCKD_CTL_OK;
  }
  bpf_spin_unlock(&lk->guard);
  ctl->result = result;
  if (result != LOCKD_CTL_OK) return;
  bpf_map_update_elem(&released, &key, &memo, BPF_ANY);
  bpf_map_delete_elem(&owners, &key);
  ctl->fence = memo.fence;
  grant_from_head(ctl->lock_id, now, res);
}

/* Cancels a wait whose deadline passed; ctl->waiter says whom to tell. */
static __always_inline void ctl_expire_waiter(struct lockd_ctl *ctl, __u64 now,
                                              struct lt_result *res) {
  struct lockd_owner_key key = {ctl->lock_id, ctl->txn_id};
  struct lockd_owner *own = bpf_map_lookup_elem(&owners, &key);
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &ctl->lock_id);
  if (!own || !lk) {
    ctl->result = LOCKD_CTL_NOT_FOUND;
    return;
  }
  __u64 block_idx = READ_ONCE(own->block);
  struct lockd_block *block =
      block_idx ? bpf_map_lookup_elem(&pool, &block_idx) : NULL;
  __u32 result;
  bpf_spin_lock(&lk->guard);
  if (!owner_matches(own, key.lock_id, key.txn_id) ||
      own->state != LOCKD_OWNER_QUEUED || !block || own->block != block_idx ||
      block->idx != block_idx) {
    result = LOCKD_CTL_NOT_FOUND;
  } else if (lk->flags & LOCKD_LOCK_USER_OWNED) {
    result = LOCKD_CTL_BAD_STATE;
  } else if (!block->waiter.deadline_ns || !(block->waiter.deadline_ns < now)) {
    result = LOCKD_CTL_NOT_DUE;
  } else {
    block->waiter.cancelled = 1;
    lk->version++;
    own->state = LOCKD_OWNER_GONE;
    ctl->waiter.txn_id = block->waiter.txn_id;
    ctl->waiter.seq = block->waiter.seq;
    ctl->waiter.addr = block->waiter.addr;
    ctl->waiter.port = block->waiter.port;
    ctl->waiter.mode = block->waiter.mode;
    ctl->waiter.policy = block->waiter.policy;
    ctl->notified = 1;
    result = LOCKD_CTL_OK;
  }
  bpf_spin_unlock(&lk->guard);
  ctl->result = result;
  if (result != LOCKD_CTL_OK) return;
  struct lockd_released memo = {.status = LOCKD_STATUS_WAIT_EXPIRED};
  bpf_map_update_elem(&released, &key, &memo, BPF_ANY);
  bpf_map_delete_elem(&owners, &key);
  grant_from_head(ctl->lock_id, now, res);
}

static __always_inline void ctl_run(struct lockd_ctl *ctl) {
  struct lt_result res = {.batch = batch_enter()};
  __u64 now = bpf_ktime_get_ns();
  ctl->notified = 0;
  switch (ctl->op) {
    case LOCKD_CTL_TAKEOVER:
      ctl_takeover(ctl);
      break;
    case LOCKD_CTL_GIVE_BACK:
      ctl_give_back(ctl);
      break;
    case LOCKD_CTL_EXPIRE_HOLDER:
      ctl_end_hold(ctl, now, LOCKD_STATUS_LEASE_EXPIRED, &res);
      break;
    case LOCKD_CTL_FORCE_RELEASE:
      ctl_end_hold(ctl, now, LOCKD_STATUS_FORCE_RELEASED, &res);
      break;
    case LOCKD_CTL_EXPIRE_WAITER:
      ctl_expire_waiter(ctl, now, &res);
      break;
    case LOCKD_CTL_KICK:
      grant_from_head(ctl->lock_id, now, &res);
      ctl->result = LOCKD_CTL_OK;
      break;
    default:
      ctl->result = LOCKD_CTL_BAD_STATE;
      break;
  }
  ctl_copy_grants(ctl, &res);
  batch_exit(res.batch);
}

#endif /* LOCKD_BPF_LIB_CONTROL_H_ */
