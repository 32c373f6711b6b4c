/* ACQUIRE (docs/semantics.md): a free lock is granted into its slot with no
 * allocation; a conflicting request waits in the FIFO queue (a pool block),
 * is rejected (NO_WAIT) or dies (WAIT_DIE); a shared request joining shared
 * holders takes a chain block; a retransmission or an upgrade acts on the
 * owner's existing record. */
#ifndef LOCKD_BPF_LIB_ACQUIRE_H_
#define LOCKD_BPF_LIB_ACQUIRE_H_

#include "bpf/lib/members.h"

enum acquire_outcome {
  ACQ_GRANTED = 0, /* a new hold (ticket says where) */
  ACQ_QUEUED,
  ACQ_CONFLICT,
  ACQ_DIE,
  ACQ_AGAIN_QUEUED, /* a waiter asked again */
  ACQ_AGAIN_HELD,   /* a holder asked again (mode covered) */
  ACQ_UPGRADED,
  ACQ_UPGRADE_CONFLICT,
  ACQ_EXPIRED,      /* a holder whose lease ran out asked again */
  ACQ_FOREIGN,      /* the txn's record belongs to another client */
  ACQ_QUOTA,        /* a new member, but the client has its quota */
  ACQ_RECLAIM_LATE, /* a reclaim after the grace period, of no record */
  ACQ_NEED_BLOCK,
  ACQ_NEED_SPLIT,
  ACQ_NEED_SEARCH,
  ACQ_NEED_MIN, /* WAIT_DIE needs the oldest member: walk, then decide */
  ACQ_RETRY,
};

/* Whether a conflicting request would wait, judged from values read without
 * the guard: only used to decide whether to allocate a queue block ahead of
 * the decision. On a MIN_DIRTY lock, WAIT_DIE compares with the oldest
 * member as the inline holder and the walk, if one was made, say. */
static __always_inline bool policy_may_wait(const struct lockd_request *req,
                                            const struct lockd_lock *lk,
                                            const struct min_walk *w) {
  if (req->policy == LOCKD_POLICY_NO_WAIT) return false;
  if (req->policy != LOCKD_POLICY_WAIT_DIE) return true;
  __u64 min = READ_ONCE(lk->min_txn);
  if (READ_ONCE(lk->flags) & LOCKD_LOCK_MIN_DIRTY) {
    min = READ_ONCE(lk->holder.state) == LOCKD_MEMBER_HELD
              ? READ_ONCE(lk->holder.txn_id)
              : ~0ULL;
    if (w->done && w->min < min) min = w->min;
  }
  return req->txn_id < min;
}

/* The block a new waiter (or chain holder) will live in, written whole
 * before it is inserted into the pool. */
static __always_inline void member_block_init(struct lockd_block *blk,
                                              const struct lockd_request *req,
                                              __u64 now, __u32 lease_ms) {
  blk->next = 0;
  blk->prev = 0;
  blk->lock_id = req->lock_id;
  blk->m.txn_id = req->txn_id;
  blk->m.fence = 0;
  blk->m.since_ns = now;
  blk->m.expires_ns = req->wait_ms ? now + req->wait_ms * NS_PER_MS : 0;
  blk->m.seq = req->seq;
  blk->m.lease_ms = lease_ms;
  blk->m.client_id = req->client_id;
  blk->m.addr = req->from.addr;
  blk->m.port = req->from.port;
  __builtin_memcpy(blk->m.mac, req->from.mac, ETH_ALEN);
  blk->m.state = LOCKD_MEMBER_WAITING;
  blk->m.mode = req->mode;
  blk->m.policy = req->policy;
  blk->m.flags = req->member_flags;
}

/* The lock's inline holder, written from the request. */
static __always_inline void member_inline_init(
    struct lockd_member *m, const struct lockd_request *req) {
  m->txn_id = req->txn_id;
  m->seq = req->seq;
  m->client_id = req->client_id;
  m->addr = req->from.addr;
  m->port = req->from.port;
  __builtin_memcpy(m->mac, req->from.mac, ETH_ALEN);
  m->policy = req->policy;
  m->flags = req->member_flags;
}

/* Under the guard: m becomes a holder of lk. A reclaim keeps the fence its
 * hold had in the server's earlier epoch (below this table's fence base, so
 * below every fence this table hands out); the lock's last fence never goes
 * below it. */
static __always_inline __u64 acquire_grant(struct lockd_lock *lk,
                                           struct lockd_member *m,
                                           const struct acquire_state *st) {
  __u64 fence = lock_add_holder(lk, m, st->req.mode, st->now, st->lease_ms);
  if (!st->reclaim) return fence;
  m->fence = st->req.fence;
  if (lk->fence < st->req.fence) lk->fence = st->req.fence;
  return st->req.fence;
}

/* Under the guard: a request from an owner that already holds or waits. */
static __always_inline enum acquire_outcome acquire_again(
    struct lockd_lock *lk, struct lockd_member *m, struct acquire_state *st) {
  st->fence = m->fence;
  st->lease_ms = m->lease_ms;
  if (m->state == LOCKD_MEMBER_WAITING) return ACQ_AGAIN_QUEUED;
  if (m->expires_ns < st->now) return ACQ_EXPIRED;
  if (m->mode == LOCKD_MODE_EXCLUSIVE || st->req.mode == m->mode)
    return ACQ_AGAIN_HELD;
  if (lk->holders != 1 || lk->queue_len != 0) return ACQ_UPGRADE_CONFLICT;
  /* An upgrade is a new grant: new fence, the lease starts again. */
  __u32 lease_ms = clamp_lease_ms(st->req.lease_ms);
  lk->mode = LOCKD_MODE_EXCLUSIVE;
  lk->fence++;
  lk->version++;
  m->mode = LOCKD_MODE_EXCLUSIVE;
  m->fence = lk->fence;
  m->lease_ms = lease_ms;
  m->expires_ns = st->now + lease_ms * NS_PER_MS;
  st->fence = m->fence;
  st->lease_ms = lease_ms;
  return ACQ_UPGRADED;
}

/* Blocks a new member's decision may touch, looked up before the guard. */
struct acquire_blocks {
  struct lockd_block *block; /* the allocated block */
  struct lockd_block *tail;
  struct lockd_block *first; /* of the holder chain */
  __u64 tail_idx;
  __u64 first_idx;
};

/* Under the guard: a request from a new member of an existing lock. */
static __always_inline enum acquire_outcome acquire_join(
    struct lockd_lock *lk, const struct acquire_blocks *bl,
    struct acquire_state *st) {
  const struct lockd_request *req = &st->req;
  /* A lone holder whose lease ran out does not block a conflicting request
   * on a lock nobody waits for: its hold ends here, rather than when the
   * daemon's expiry pass gets to it. Not for a client at its quota, which
   * would leave the lock idle and refused. */
  if (lk->holders == 1 && lk->queue_len == 0 && !st->over_quota &&
      !modes_compatible(lk, req->mode)) {
    struct lockd_member *m = NULL;
    if (lk->holder.state == LOCKD_MEMBER_HELD) {
      m = &lk->holder;
    } else if (bl->first && lk->chain == bl->first_idx &&
               bl->first->idx == bl->first_idx && bl->first->next == 0 &&
               bl->first->m.state == LOCKD_MEMBER_HELD) {
      m = &bl->first->m;
    }
    if (m && m->expires_ns < st->now) {
      st->expired_txn = m->txn_id;
      st->expired_fence = m->fence;
      st->expired_seq = m->seq;
      st->expired_client = m->client_id;
      m->state = LOCKD_MEMBER_FREE;
      if (m != &lk->holder) {
        lk->chain = 0;
        st->expired_block = bl->first_idx;
      }
      lock_drop_holder(lk, m->txn_id);
    }
  }
  bool conflict = lk->queue_len > 0 || !modes_compatible(lk, req->mode);
  if (!conflict) {
    if (st->over_quota) return ACQ_QUOTA;
    if (lk->holder.state == LOCKD_MEMBER_FREE) {
      member_inline_init(&lk->holder, req);
      st->fence = acquire_grant(lk, &lk->holder, st);
      st->ticket = LOCKD_TICKET_INLINE;
      return ACQ_GRANTED;
    }
    if (!bl->block) return ACQ_NEED_BLOCK;
    if (!chain_head_is(lk, bl->first_idx, bl->first)) return ACQ_RETRY;
    st->fence = acquire_grant(lk, &bl->block->m, st);
    chain_push(lk, bl->block, st->block_idx, bl->first);
    st->ticket = st->block_idx;
    return ACQ_GRANTED;
  }
  if (req->policy == LOCKD_POLICY_NO_WAIT) return ACQ_CONFLICT;
  /* WAIT_DIE waits only if older than every member: a bound that a member
   * left may be too low to tell (MIN_DIRTY). */
  if (req->policy == LOCKD_POLICY_WAIT_DIE && !(req->txn_id < lk->min_txn)) {
    if ((lk->flags & LOCKD_LOCK_MIN_DIRTY) && !lock_exact_min(lk, &st->walk))
      return ACQ_NEED_MIN;
    if (!(req->txn_id < lk->min_txn)) return ACQ_DIE;
  }
  if (st->over_quota) return ACQ_QUOTA;
  if (!bl->block) return ACQ_NEED_BLOCK;
  if (lk->tail != bl->tail_idx ||
      (bl->tail_idx && (!bl->tail || bl->tail->idx != bl->tail_idx)))
    return ACQ_RETRY;
  if (bl->tail)
    bl->tail->next = st->block_idx;
  else
    lk->head = st->block_idx;
  lk->tail = st->block_idx;
  st->queue_pos = lk->queue_len++;
  lk->version++;
  lock_note_member(lk, req->txn_id);
  st->ticket = st->block_idx;
  return ACQ_QUEUED;
}

/* Guesses, from values read without the guard, whether the decision will
 * need a block (a waiter, or a shared holder beside the inline one). */
static __always_inline bool acquire_wants_block(
    const struct lockd_lock *lk, const struct acquire_state *st) {
  const struct lockd_request *req = &st->req;
  if (READ_ONCE(lk->holder.txn_id) == req->txn_id) return false;
  bool shared = READ_ONCE(lk->mode) == LOCKD_MODE_SHARED &&
                req->mode == LOCKD_MODE_SHARED;
  if (READ_ONCE(lk->queue_len) || (READ_ONCE(lk->holders) && !shared))
    return policy_may_wait(req, lk, &st->walk);
  return READ_ONCE(lk->holder.state) != LOCKD_MEMBER_FREE;
}

/* One attempt: look-ups, then one critical section. */
static __always_inline enum acquire_outcome acquire_attempt(
    const struct lockd_config *cfg, struct acquire_state *st,
    struct table_ref *where) {
  const struct lockd_request *req = &st->req;
  struct lock_ref ref;
  if (lock_find(cfg, req->lock_id, &ref)) return ACQ_RETRY;
  *where = ref.t;
  struct acquire_blocks bl = {};
  if (ref.lk) {
    if (acquire_wants_block(ref.lk, st)) st->want_block = 1;
    bl.tail_idx = READ_ONCE(ref.lk->tail);
    bl.tail = bl.tail_idx ? pool_lookup(bl.tail_idx) : NULL;
    bl.first_idx = READ_ONCE(ref.lk->chain);
    bl.first = bl.first_idx ? pool_lookup(bl.first_idx) : NULL;
  }
  if (st->want_block && !st->block_idx && st->pool == POOL_OK) {
    __u32 zero = 0;
    struct lockd_block *init = bpf_map_lookup_elem(&block_scratch, &zero);
    if (!init) return ACQ_RETRY;
    member_block_init(init, req, st->now, st->lease_ms);
    enum pool_result why = POOL_OK;
    st->block_idx = pool_alloc(init, &why);
    st->pool = why;
  }
  if (st->block_idx) {
    bl.block = pool_lookup(st->block_idx);
    if (!bl.block) return ACQ_RETRY;
  }
  struct member_ref mref;
  member_ref_from_hint(&mref, &st->hint);

  struct lockd_bucket *b = ref.t.b;
  enum acquire_outcome outcome;
  int slot = -1;
  bpf_spin_lock(&b->guard);
  bool serves;
  struct lockd_lock *lk = lock_locked(&ref, req->lock_id, &slot, &serves);
  if (!serves) {
    outcome = ACQ_RETRY;
  } else if (!lk) {
    ref.scratch->free_slot = bucket_free_slot(b);
    int free = READ_ONCE(ref.scratch->free_slot);
    st->bucket_full = free < 0 || free >= LOCKD_BUCKET_SLOTS;
    if (st->over_quota) {
      outcome = ACQ_QUOTA;
    } else if (st->reclaim_late) {
      outcome = ACQ_RECLAIM_LATE;
    } else if (st->bucket_full ||
               (b->count >= cfg_split_at && !st->skip_split)) {
      outcome = ACQ_NEED_SPLIT;
    } else {
      lk = bucket_claim(b, free, req->lock_id);
      st->created = 1;
      member_inline_init(&lk->holder, req);
      st->fence = acquire_grant(lk, &lk->holder, st);
      st->ticket = LOCKD_TICKET_INLINE;
      outcome = ACQ_GRANTED;
    }
  } else {
    enum member_where found = member_match(lk, req, &mref, true);
    if (found == MEMBER_FOREIGN) {
      outcome = ACQ_FOREIGN;
    } else if (found == MEMBER_INLINE) {
      st->ticket = LOCKD_TICKET_INLINE;
      outcome = acquire_again(lk, &lk->holder, st);
    } else if (found == MEMBER_BLOCK) {
      st->ticket = mref.ticket;
      outcome = acquire_again(lk, &mref.blk->m, st);
    } else if ((req->flags & LOCKD_FLAG_RETRANSMIT) &&
               member_unknown(lk, &st->hint)) {
      outcome = ACQ_NEED_SEARCH;
    } else if (st->reclaim_late) {
      outcome = ACQ_RECLAIM_LATE;
    } else {
      outcome = acquire_join(lk, &bl, st);
    }
  }
  bpf_spin_unlock(&b->guard);
  return outcome;
}

/* One attempt of the ACQUIRE in this CPU's acquire_scratch. A global
 * function: the verifier checks it once, apart from its callers. */
__noinline int lt_acquire_attempt(void) {
  __u32 zero = 0;
  struct acquire_state *st = bpf_map_lookup_elem(&acquire_scratch, &zero);
  struct lockd_config *cfg = config_get();
  if (!st || !cfg) return ACQ_RETRY;
  struct table_ref where = {};
  enum acquire_outcome outcome = acquire_attempt(cfg, st, &where);
  if (outcome == ACQ_NEED_SPLIT) {
    st->split_idx = where.idx;
    st->split_depth = where.depth;
  }
  st->outcome = outcome;
  return outcome;
}

/* The reply for a decided ACQUIRE; false when it was not decided. */
static __always_inline bool acquire_reply(const struct acquire_state *st,
                                          struct lt_result *res) {
  const struct lockd_request *req = &st->req;
  switch (st->outcome) {
    case ACQ_GRANTED:
      stat_inc(st->reclaim ? LOCKD_STAT_RECLAIMED : LOCKD_STAT_GRANT_IMMEDIATE);
      result_reply(res, req, LOCKD_OP_GRANTED, LOCKD_STATUS_OK, st->fence,
                   st->ticket);
      res->reply.lease_ms = st->lease_ms;
      return true;
    case ACQ_QUEUED:
      stat_inc(LOCKD_STAT_QUEUED);
      result_reply(res, req, LOCKD_OP_QUEUED, LOCKD_STATUS_OK, 0, st->ticket);
      res->reply.queue_pos = st->queue_pos;
      /* The daemon watches a lock from its first waiter on, as long as
       * waiters remain: later waiters matter to it only for a deadline. */
      if (st->queue_pos == 0 || req->wait_ms)
        event_simple(LOCKD_EVENT_WAITING, 0, req->lock_id,
                     req->wait_ms ? st->now + req->wait_ms * NS_PER_MS : 0);
      return true;
    case ACQ_AGAIN_QUEUED:
      stat_inc(LOCKD_STAT_ACQUIRE_DUP);
      result_reply(res, req, LOCKD_OP_QUEUED, LOCKD_STATUS_OK, 0, st->ticket);
      return true;
    case ACQ_AGAIN_HELD:
    case ACQ_UPGRADED:
      stat_inc(st->outcome == ACQ_UPGRADED ? LOCKD_STAT_UPGRADE
                                           : LOCKD_STAT_ACQUIRE_DUP);
      result_reply(res, req, LOCKD_OP_GRANTED, LOCKD_STATUS_OK, st->fence,
                   st->ticket);
      res->reply.lease_ms = st->lease_ms;
      return true;
    case ACQ_UPGRADE_CONFLICT:
      stat_inc(LOCKD_STAT_REJECT_UPGRADE);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_UPGRADE_CONFLICT,
                   0, 0);
      return true;
    case ACQ_EXPIRED:
      stat_inc(LOCKD_STAT_REJECT_EXPIRED);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0,
                   0);
      return true;
    case ACQ_CONFLICT:
      stat_inc(LOCKD_STAT_REJECT_CONFLICT);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_CONFLICT, 0, 0);
      return true;
    case ACQ_DIE:
      stat_inc(LOCKD_STAT_REJECT_DIE);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_DIE, 0, 0);
      return true;
    case ACQ_FOREIGN:
      /* Nothing about the other client's record: no fence, no ticket. */
      stat_inc(LOCKD_STAT_REJECT_NOT_OWNER);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER, 0, 0);
      return true;
    case ACQ_QUOTA:
      stat_inc(LOCKD_STAT_REJECT_QUOTA);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_QUOTA, 0, 0);
      return true;
    case ACQ_RECLAIM_LATE:
      stat_inc(LOCKD_STAT_REJECT_RECLAIM);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER, 0, 0);
      return true;
    default:
      return false;
  }
}

/* Grace and reclaims (docs/semantics.md, "Restarts"), for the ACQUIRE in
 * this CPU's acquire_scratch: GATE_OPEN, or why it is answered at once. A
 * global function, so that its locals stay off its callers' stacks. */
enum acquire_gate {
  GATE_OPEN = 0,
  GATE_GRACE,       /* not a reclaim, during grace: st->lease_ms = grace left */
  GATE_BAD_RECLAIM, /* a reclaim that may wait, or of a fence this table
                       could have made */
};

__noinline int lt_acquire_gate(void) {
  __u32 zero = 0;
  struct acquire_state *st = bpf_map_lookup_elem(&acquire_scratch, &zero);
  struct lockd_config *cfg = config_get();
  if (!st || !cfg) return GATE_OPEN;
  __u64 until = READ_ONCE(cfg->grace_until_ns);
  if (st->req.flags & LOCKD_FLAG_RECLAIM) {
    /* A reclaim never waits, and its fence is an earlier table's. */
    if (st->req.policy != LOCKD_POLICY_NO_WAIT || st->req.fence == 0 ||
        st->req.fence >= READ_ONCE(cfg->fence_base))
      return GATE_BAD_RECLAIM;
    st->reclaim = 1;
    st->reclaim_late = st->now >= until;
    return GATE_OPEN;
  }
  if (st->now >= until) return GATE_OPEN;
  st->lease_ms = (__u32)((until - st->now + NS_PER_MS - 1) / NS_PER_MS);
  return GATE_GRACE;
}

static __always_inline void lt_acquire(const struct lockd_request *req,
                                       __u64 now, struct lt_result *res) {
  stat_inc(LOCKD_STAT_ACQUIRE);
  __u32 zero = 0;
  struct acquire_state *st = bpf_map_lookup_elem(&acquire_scratch, &zero);
  if (!st) return result_silent(res);
  __builtin_memset(st, 0, sizeof(*st));
  __builtin_memcpy(&st->req, req, sizeof(st->req));
  st->now = now;
  st->lease_ms = clamp_lease_ms(req->lease_ms);
  st->hint.ticket = req->ticket;
  st->outcome = ACQ_RETRY;
  int gate = lt_acquire_gate();
  if (gate == GATE_GRACE) {
    stat_inc(LOCKD_STAT_REJECT_GRACE);
    result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_GRACE, 0, 0);
    res->reply.lease_ms = st->lease_ms;
    return;
  }
  if (gate == GATE_BAD_RECLAIM) {
    stat_inc(LOCKD_STAT_REJECT_RECLAIM);
    result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_BAD_REQUEST, 0, 0);
    return;
  }
  /* The requester's record, looked up once for its quota and its count. */
  struct lockd_client *client = client_of(req->client_id);
  st->over_quota = client_at_quota(client);
  /* Attempts, and what an attempt asks for before the next: a block, a
   * split of a full bucket, a search for a record without a ticket, a walk
   * for the oldest member. */
  for (int attempt = 0; attempt < LT_MAX_ATTEMPTS + 4; attempt++) {
    enum acquire_outcome outcome = lt_acquire_attempt();
    if (outcome == ACQ_NEED_BLOCK) {
      if (st->pool != POOL_OK) break;
      st->want_block = 1;
    } else if (outcome == ACQ_NEED_SPLIT) {
      enum resize_result r = table_split(st->split_idx, st->split_depth);
      if ((r == RESIZE_WAIT || r == RESIZE_BUDGET) && !st->bucket_full) {
        /* The bucket keeps a spare slot for this: the lock takes it now,
         * the bucket splits once its segment is there. */
        st->skip_split = 1;
      } else if (r == RESIZE_WAIT || r == RESIZE_BUDGET) {
        stat_inc(r == RESIZE_BUDGET ? LOCKD_STAT_NO_CAPACITY_TABLE
                                    : LOCKD_STAT_TABLE_WAIT);
        st->pool = r == RESIZE_BUDGET ? POOL_BUDGET : POOL_WAIT;
        break;
      }
    } else if (outcome == ACQ_NEED_SEARCH) {
      lt_search(req->lock_id, req->txn_id, &st->hint);
    } else if (outcome == ACQ_NEED_MIN) {
      lt_min_walk(req->lock_id, &st->walk);
    } else if (outcome == ACQ_RETRY) {
      stat_inc(LOCKD_STAT_RETRY);
    } else {
      break;
    }
  }
  if (st->created) stat_inc(LOCKD_STAT_LOCK_CREATED);
  bool linked = st->outcome == ACQ_QUEUED ||
                (st->outcome == ACQ_GRANTED && st->ticket == st->block_idx);
  if (st->block_idx && !linked) pool_free(st->block_idx);
  if (st->expired_block) pool_free(st->expired_block);
  if (st->outcome == ACQ_QUEUED || st->outcome == ACQ_GRANTED)
    client_members_add(client, 1);
  if (st->expired_txn) {
    client_members_add(client_of(st->expired_client), -1);
    struct lockd_owner_key key = {req->lock_id, st->expired_txn};
    struct lockd_ended memo = {.fence = st->expired_fence,
                               .time_ns = now,
                               .seq = st->expired_seq,
                               .client_id = st->expired_client,
                               .status = LOCKD_STATUS_LEASE_EXPIRED};
    bpf_map_update_elem(&ended, &key, &memo, BPF_ANY);
    stat_inc(LOCKD_STAT_HOLD_ENDED);
    stat_inc(LOCKD_STAT_LEASE_EXPIRED);
  }
  if (acquire_reply(st, res)) return;
  if (st->pool == POOL_BUDGET) {
    result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_NO_CAPACITY, 0, 0);
    return;
  }
  result_silent(res);
}

#endif /* LOCKD_BPF_LIB_ACQUIRE_H_ */
