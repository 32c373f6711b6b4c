/* Grant from the head (docs/semantics.md): unlinks cancelled waiters at the
 * head and grants every compatible one, up to LOCKD_MAX_GRANTS per run into
 * this CPU's notice batch; the caller sends them (TC: GRANTED packets or
 * events for gRPC callers; the control program: back to the daemon). */
#ifndef LOCKD_BPF_LIB_GRANT_H_
#define LOCKD_BPF_LIB_GRANT_H_

#include "bpf/lib/members.h"

enum round_outcome {
  ROUND_DONE = 0, /* head empty or incompatible: nothing more to grant */
  ROUND_GRANTED,
  ROUND_SKIPPED, /* unlinked a cancelled waiter */
  ROUND_RETRY,   /* the queue changed under the look-ups */
};

static __always_inline void notice_granted(struct lockd_notice *n,
                                           __u64 lock_id,
                                           const struct lockd_member *m,
                                           __u64 ticket) {
  n->reply.opcode = LOCKD_OP_GRANTED;
  n->reply.status = LOCKD_STATUS_OK;
  n->reply.fence = m->fence;
  n->reply.ticket = ticket;
  n->reply.lock_id = lock_id;
  n->reply.txn_id = m->txn_id;
  n->reply.seq = m->seq;
  n->reply.client_id = m->client_id;
  n->reply.lease_ms = m->lease_ms;
  n->reply.queue_pos = 0;
  n->reply.mode = m->mode;
  n->reply.policy = m->policy;
  __builtin_memcpy(n->to.mac, m->mac, ETH_ALEN);
  n->to.addr = m->addr;
  n->to.port = m->port;
  n->local = (m->flags & LOCKD_MEMBER_LOCAL) != 0;
}

/* One step of grant from the head: one critical section. `*freed`: the step
 * left the lock idle and freed its slot. */
static __always_inline enum round_outcome grant_round(
    const struct lockd_config *cfg, __u64 lock_id, __u64 now,
    struct lockd_notice *notice, bool *freed, __u64 *waited) {
  struct lock_ref ref;
  if (lock_find(cfg, lock_id, &ref)) return ROUND_RETRY;
  /* No lock seen may be one a split or merge is moving: the guard says. */
  __u64 head_idx = ref.lk ? READ_ONCE(ref.lk->head) : 0;
  struct lockd_block *head = head_idx ? pool_lookup(head_idx) : NULL;
  __u64 first_idx = ref.lk ? READ_ONCE(ref.lk->chain) : 0;
  struct lockd_block *first = first_idx ? pool_lookup(first_idx) : NULL;
  struct lockd_bucket *b = ref.t.b;
  __u64 free_idx = 0;
  int slot = -1;
  enum round_outcome outcome;
  bpf_spin_lock(&b->guard);
  bool serves;
  struct lockd_lock *lk = lock_locked(&ref, lock_id, &slot, &serves);
  if (!serves) {
    outcome = ROUND_RETRY;
  } else if (!lk || lk->head == 0) {
    outcome = ROUND_DONE;
  } else if (lk->head != head_idx || !head || head->idx != head_idx) {
    outcome = ROUND_RETRY;
  } else if (head->m.state == LOCKD_MEMBER_CANCELLED) {
    lock_unlink_head(lk, head);
    free_idx = head_idx;
    if (lock_idle(lk)) {
      bucket_free(b, slot);
      *freed = true;
    }
    outcome = ROUND_SKIPPED;
  } else if (!modes_compatible(lk, head->m.mode)) {
    outcome = ROUND_DONE;
  } else if (lk->holder.state != LOCKD_MEMBER_FREE &&
             !chain_head_is(lk, first_idx, first)) {
    outcome = ROUND_RETRY;
  } else {
    lock_unlink_head(lk, head);
    *waited = now - head->m.since_ns; /* enqueued at since_ns */
    if (lk->holder.state == LOCKD_MEMBER_FREE) {
      /* The first holder moves into the slot; its block goes. */
      __builtin_memcpy(&lk->holder, &head->m, sizeof(lk->holder));
      lock_add_holder(lk, &lk->holder, head->m.mode, now, head->m.lease_ms);
      notice_granted(notice, lock_id, &lk->holder, LOCKD_TICKET_INLINE);
      free_idx = head_idx;
    } else {
      lock_add_holder(lk, &head->m, head->m.mode, now, head->m.lease_ms);
      chain_push(lk, head, head_idx, first);
      notice_granted(notice, lock_id, &head->m, head_idx);
    }
    outcome = ROUND_GRANTED;
  }
  bpf_spin_unlock(&b->guard);
  if (free_idx) pool_free(free_idx);
  if (*freed) stat_inc(LOCKD_STAT_LOCK_FREED);
  if (outcome == ROUND_GRANTED) stat_wait(*waited);
  return outcome;
}

/* One round of grant from the head for lock `lock_id`, its notice (if any)
 * into slot `slot` of this CPU's notice batch. Returns enum round_outcome,
 * plus ROUND_FREED_BIT when the round freed the lock's slot. A global
 * function: the verifier checks it once, apart from its callers. */
#define ROUND_FREED_BIT 0x100
__noinline int lt_grant_round(__u64 lock_id, __u64 now, __u32 slot) {
  __u32 zero = 0;
  struct lockd_config *cfg = config_get();
  struct lockd_notice_batch *batch = bpf_map_lookup_elem(&notice_batch, &zero);
  if (!cfg || !batch) return ROUND_DONE;
  bool freed = false;
  __u64 waited = 0;
  int outcome =
      grant_round(cfg, lock_id, now, &batch->n[slot & (LOCKD_MAX_GRANTS - 1)],
                  &freed, &waited);
  return freed ? outcome | ROUND_FREED_BIT : outcome;
}

struct grant_loop {
  __u64 lock_id;
  __u64 now;
  __u32 granted;
  __u32 skipped;
  __u32 retries;
  __u32 done;
  __u32 freed;
};

/* One bpf_loop iteration of grant_from_head: returns 1 to stop. A loop of
 * bpf_loop, not a C loop: the verifier would otherwise walk every
 * combination of its counters. */
static long grant_loop_step(__u64 index, struct grant_loop *loop) {
  (void)index;
  int r = lt_grant_round(loop->lock_id, loop->now, loop->granted);
  if (r & ROUND_FREED_BIT) loop->freed = 1;
  r &= ~ROUND_FREED_BIT;
  if (r == ROUND_DONE) {
    loop->done = 1;
    return 1;
  }
  if (r == ROUND_GRANTED) {
    stat_inc(LOCKD_STAT_GRANT_FROM_QUEUE);
    return ++loop->granted >= LOCKD_MAX_GRANTS;
  }
  if (r == ROUND_SKIPPED) {
    stat_inc(LOCKD_STAT_SKIPPED_CANCELLED);
    loop->skipped++;
    return 0;
  }
  stat_inc(LOCKD_STAT_RETRY);
  return ++loop->retries > LT_MAX_ATTEMPTS;
}

/* Grants every waiter at the head that is compatible now, up to
 * LOCKD_MAX_GRANTS into the notice batch; sets res->kick when it stopped
 * before finding the head incompatible (more may remain). */
static __always_inline void grant_from_head(__u64 lock_id, __u64 now,
                                            struct lt_result *res) {
  struct grant_loop loop = {.lock_id = lock_id, .now = now};
  bpf_loop(LOCKD_MAX_GRANTS + 2 * LT_MAX_ATTEMPTS, grant_loop_step, &loop, 0);
  res->notices = loop.granted;
  res->progress = loop.granted + loop.skipped;
  res->kick = !loop.done;
  if (loop.freed) {
    struct lockd_config *cfg = config_get();
    struct table_ref t;
    if (cfg && table_find(cfg, lock_id, &t) == 0) table_try_merge(&t);
  }
}

#endif /* LOCKD_BPF_LIB_GRANT_H_ */
