/* The lock table: per-lock state under a bpf_spin_lock, owner records, and
 * FIFO wait queues of Kerby pool blocks. Semantics: docs/semantics.md.
 * Concurrency design: docs/architecture.md ("The queue under concurrency").
 *
 * The rule that shapes this file: while a lock's guard is held no helper may
 * be called, so every map element a critical section touches (the owner
 * record, the tail block, the head block and its owner) is looked up before
 * taking the guard, and re-validated under it by comparing the indexes and
 * keys stored inside the elements. Block indexes are never reused, so a stale
 * pointer is always detected; the critical section then changes nothing and
 * the operation retries a bounded number of times. */
#ifndef LOCKD_BPF_LIB_LOCK_TABLE_H_
#define LOCKD_BPF_LIB_LOCK_TABLE_H_

#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/pool.h"
#include "bpf/lib/reply.h"
#include "bpf/lib/stats.h"

/* Attempts of a critical section that found the queue changed under its
 * look-ups (acquire's link, grant rounds); release, cancel and duplicate
 * acquires instead answer nothing and let the client retransmit. */
#define LOCKD_MAX_RETRIES 4
/* A chain of KICKs that grant and unlink nothing, longer than this, is
 * dropped (and counted); a KICK that made progress starts the count again,
 * since the queue it works through is finite. */
#define LOCKD_MAX_KICK_HOPS 64

#define NS_PER_MS 1000000ULL

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct lockd_lock);
} locks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, struct lockd_owner_key);
  __type(value, struct lockd_owner);
} owners SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct lockd_owner_key);
  __type(value, struct lockd_released);
} released SEC(".maps");

/* Grants decided by this CPU's current program run, sent by the caller.
 * A run started by BPF_PROG_TEST_RUN in process context (the daemon's
 * control calls) can be interrupted on its CPU by a softirq running lockd_tc:
 * each nesting level gets a batch of its own (batch_depth counts them). */
struct lockd_grant_batch {
  struct lockd_grant grants[LOCKD_MAX_GRANTS];
};

#define LOCKD_BATCH_LEVELS 2 /* process context, softirq */

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LOCKD_BATCH_LEVELS);
  __type(key, __u32);
  __type(value, struct lockd_grant_batch);
} grant_batch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} batch_depth SEC(".maps");

/* Takes this nesting level's batch slot; pair with batch_exit(). Returns
 * LOCKD_BATCH_LEVELS when none is free (grants are then not attempted). */
static __always_inline __u32 batch_enter(void) {
  __u32 zero = 0;
  __u32 *depth = bpf_map_lookup_elem(&batch_depth, &zero);
  if (!depth || *depth >= LOCKD_BATCH_LEVELS) return LOCKD_BATCH_LEVELS;
  return (*depth)++;
}

static __always_inline void batch_exit(__u32 slot) {
  __u32 zero = 0;
  __u32 *depth = bpf_map_lookup_elem(&batch_depth, &zero);
  if (depth && slot<LOCKD_BATCH_LEVELS && * depth> 0) (*depth)--;
}

enum lt_verdict {
  LT_REPLY = 0, /* send `reply` back to the requester */
  LT_SILENT,    /* no answer now; the client's retransmission gets one */
  LT_HANDOFF,   /* hand the request to user space, `handoff` says why */
  LT_TO_TC,     /* (XDP) needs to send several packets: leave it to TC */
};

struct lt_result {
  struct lockd_reply reply;
  __u32 verdict;
  __u32 handoff;
  __u32 batch;    /* grant_batch slot of this run (batch_enter) */
  __u32 grants;   /* entries of that batch filled */
  __u32 kick;     /* compatible waiters may remain: continue with a KICK */
  __u32 progress; /* waiters granted or unlinked by this run */
};

static __always_inline void result_reply(struct lt_result *res,
                                         const struct lockd_req *req,
                                         __u8 opcode, __u8 status,
                                         __u64 fence) {
  res->verdict = LT_REPLY;
  res->reply.opcode = opcode;
  res->reply.status = status;
  res->reply.fence = fence;
  res->reply.lock_id = req->lock_id;
  res->reply.txn_id = req->txn_id;
  res->reply.seq = req->seq;
  res->reply.mode = req->mode;
  res->reply.policy = req->policy;
}

static __always_inline void result_handoff(struct lt_result *res,
                                           __u32 reason) {
  static const __u32 stat_of[LOCKD_HANDOFF_COUNT] = {
      [LOCKD_HANDOFF_POOL_FULL] = LOCKD_STAT_HANDOFF_POOL_FULL,
      [LOCKD_HANDOFF_TABLE_FULL] = LOCKD_STAT_HANDOFF_TABLE_FULL,
      [LOCKD_HANDOFF_OWNERS_FULL] = LOCKD_STAT_HANDOFF_OWNERS_FULL,
      [LOCKD_HANDOFF_USER_OWNED] = LOCKD_STAT_HANDOFF_USER_OWNED,
      [LOCKD_HANDOFF_CONTENDED] = LOCKD_STAT_HANDOFF_CONTENDED,
  };
  res->verdict = LT_HANDOFF;
  res->handoff = reason;
  if (reason < LOCKD_HANDOFF_COUNT) stat_inc(stat_of[reason]);
}

static __always_inline bool modes_compatible(const struct lockd_lock *lk,
                                             __u8 asked) {
  return lk->holders == 0 ||
         (lk->mode == LOCKD_MODE_SHARED && asked == LOCKD_MODE_SHARED);
}

static __always_inline bool owner_matches(const struct lockd_owner *own,
                                          __u64 lock_id, __u64 txn_id) {
  return own->key.lock_id == lock_id && own->key.txn_id == txn_id;
}

/* ---- Mutations of a lock; call with lk->guard held. ---------------------*/

/* A new member (holder or waiter) joins: keeps min_txn a lower bound. */
static __always_inline void lock_note_member(struct lockd_lock *lk,
                                             __u64 txn_id) {
  if (txn_id < lk->min_txn) lk->min_txn = txn_id;
}

static __always_inline void lock_note_maybe_idle(struct lockd_lock *lk) {
  if (lk->holders == 0 && lk->queue_len == 0) lk->min_txn = ~0ULL;
}

/* Makes `own` a holder in `mode`; returns its fencing token. */
static __always_inline __u64 lock_add_holder(struct lockd_lock *lk,
                                             struct lockd_owner *own, __u8 mode,
                                             __u64 now, __u32 lease_ms) {
  lk->holders++;
  lk->mode = mode;
  lk->fence++;
  lk->version++;
  lock_note_member(lk, own->key.txn_id);
  own->state = LOCKD_OWNER_HELD;
  own->mode = mode;
  own->fence = lk->fence;
  own->block = 0;
  own->since_ns = now;
  own->lease_ms = lease_ms;
  own->lease_expires_ns = now + lease_ms * NS_PER_MS;
  return lk->fence;
}

static __always_inline void lock_unlink_head(struct lockd_lock *lk,
                                             const struct lockd_block *head) {
  lk->head = head->next;
  if (lk->head == 0) lk->tail = 0;
  lk->queue_len--;
  lk->version++;
  lock_note_maybe_idle(lk);
}

/* ---- Lookups ------------------------------------------------------------*/

/* Lock entries are created on first use and never deleted by the datapath:
 * deleting one under a CPU that waits for its guard would let the element
 * be reused under that CPU. Returns NULL only when the table is full. */
static __always_inline struct lockd_lock *lock_lookup_or_create(__u64 lock_id) {
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &lock_id);
  if (lk) return lk;
  struct lockd_lock fresh = {.min_txn = ~0ULL};
  long err = bpf_map_update_elem(&locks, &lock_id, &fresh, BPF_NOEXIST);
  if (err && err != -EEXIST) return NULL;
  return bpf_map_lookup_elem(&locks, &lock_id);
}

/* ---- Grant from the head ------------------------------------------------*/

enum round_outcome {
  ROUND_DONE = 0, /* head empty or incompatible: nothing more to grant */
  ROUND_GRANTED,
  ROUND_SKIPPED, /* unlinked a cancelled waiter */
  ROUND_RETRY,   /* the queue changed under the look-ups */
};

/* One step of "grant from the head" (docs/semantics.md): looks up the head
 * block and its owner, then under the guard unlinks a cancelled head, or
 * grants a compatible one into *grant. */
static __always_inline enum round_outcome grant_round(
    struct lockd_lock *lk, __u64 lock_id, __u64 now,
    struct lockd_grant *grant) {
  __u64 head_idx = READ_ONCE(lk->head);
  struct lockd_block *head = NULL;
  struct lockd_owner *own = NULL;
  if (head_idx) {
    head = bpf_map_lookup_elem(&pool, &head_idx);
    if (head) {
      struct lockd_owner_key key = {lock_id, READ_ONCE(head->waiter.txn_id)};
      own = bpf_map_lookup_elem(&owners, &key);
    }
  }
  enum round_outcome outcome;
  bpf_spin_lock(&lk->guard);
  if (lk->head != head_idx) {
    outcome = ROUND_RETRY;
  } else if (head_idx == 0 || (lk->flags & LOCKD_LOCK_USER_OWNED)) {
    outcome = ROUND_DONE;
  } else if (!head || head->idx != head_idx) {
    outcome = ROUND_RETRY;
  } else if (head->waiter.cancelled) {
    lock_unlink_head(lk, head);
    outcome = ROUND_SKIPPED;
  } else if (!modes_compatible(lk, head->waiter.mode)) {
    outcome = ROUND_DONE;
  } else if (!own || !owner_matches(own, lock_id, head->waiter.txn_id) ||
             own->state != LOCKD_OWNER_QUEUED || own->block != head_idx) {
    outcome = ROUND_RETRY;
  } else {
    lock_unlink_head(lk, head);
    __u64 fence =
        lock_add_holder(lk, own, head->waiter.mode, now, head->waiter.lease_ms);
    grant->reply.opcode = LOCKD_OP_GRANTED;
    grant->reply.status = LOCKD_STATUS_OK;
    grant->reply.fence = fence;
    grant->reply.lock_id = lock_id;
    grant->reply.txn_id = head->waiter.txn_id;
    grant->reply.seq = head->waiter.seq;
    grant->reply.lease_ms = head->waiter.lease_ms;
    grant->reply.queue_pos = 0;
    grant->reply.mode = head->waiter.mode;
    grant->reply.policy = head->waiter.policy;
    __builtin_memcpy(grant->to.mac, head->waiter.mac, ETH_ALEN);
    grant->to.addr = head->waiter.addr;
    grant->to.port = head->waiter.port;
    outcome = ROUND_GRANTED;
  }
  bpf_spin_unlock(&lk->guard);
  if (outcome == ROUND_GRANTED || outcome == ROUND_SKIPPED)
    pool_free_block(head_idx);
  return outcome;
}

struct grant_loop {
  __u64 lock_id;
  __u64 now;
  __u32 batch;
  __u32 granted;
  __u32 skipped;
  __u32 retries;
  __u32 done;
};

/* One bpf_loop iteration of grant_from_head: returns 1 to stop. The loop is
 * a bpf_loop callback so the verifier checks one round, not every unrolled
 * combination of round outcomes. */
static long grant_loop_step(__u64 index, struct grant_loop *loop) {
  (void)index;
  __u32 slot = loop->granted;
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &loop->lock_id);
  struct lockd_grant_batch *batch =
      bpf_map_lookup_elem(&grant_batch, &loop->batch);
  if (!lk) {
    loop->done = 1; /* no such lock: nobody to grant */
    return 1;
  }
  if (!batch || slot >= LOCKD_MAX_GRANTS) return 1;
  switch (grant_round(lk, loop->lock_id, loop->now, &batch->grants[slot])) {
    case ROUND_DONE:
      loop->done = 1;
      return 1;
    case ROUND_GRANTED:
      stat_inc(LOCKD_STAT_GRANT_FROM_QUEUE);
      return ++loop->granted >= LOCKD_MAX_GRANTS;
    case ROUND_SKIPPED:
      stat_inc(LOCKD_STAT_SKIPPED_CANCELLED);
      loop->skipped++;
      return 0;
    default:
      stat_inc(LOCKD_STAT_RETRY);
      return ++loop->retries > LOCKD_MAX_RETRIES;
  }
}

/* Grants every waiter at the head that is compatible now, up to
 * LOCKD_MAX_GRANTS into grant_batch; sets res->kick when the loop stopped
 * before finding the head incompatible (more may remain). */
static __always_inline void grant_from_head(__u64 lock_id, __u64 now,
                                            struct lt_result *res) {
  struct grant_loop loop = {
      .lock_id = lock_id, .now = now, .batch = res->batch};
  bpf_loop(LOCKD_MAX_GRANTS + 2 * LOCKD_MAX_RETRIES, grant_loop_step, &loop, 0);
  res->grants = loop.granted;
  res->progress = loop.granted + loop.skipped;
  res->kick = !loop.done;
}

/* ---- ACQUIRE ------------------------------------------------------------*/

enum acquire_outcome {
  ACQ_GRANTED = 0,
  ACQ_QUEUED,
  ACQ_CONFLICT,
  ACQ_DIE,
  ACQ_NEED_BLOCK,
  ACQ_STALE_TAIL,
  ACQ_USER_OWNED,
};

/* The conflict test of the critical section, on values read without the
 * guard: only a guess, used to allocate a queue block ahead of the decision
 * when it will probably be needed. */
static __always_inline bool lock_looks_like_queueing(struct lockd_lock *lk,
                                                     __u8 asked) {
  if (READ_ONCE(lk->flags) & LOCKD_LOCK_USER_OWNED) return false;
  if (READ_ONCE(lk->queue_len)) return true;
  return READ_ONCE(lk->holders) && !(READ_ONCE(lk->mode) == LOCKD_MODE_SHARED &&
                                     asked == LOCKD_MODE_SHARED);
}

/* Whether a conflicting request would wait, judged from a min_txn read
 * without the guard: only used to decide whether to allocate a queue block
 * ahead of the decision. */
static __always_inline bool policy_may_wait(const struct lockd_req *req,
                                            __u64 min_txn) {
  if (req->policy == LOCKD_POLICY_NO_WAIT) return false;
  return req->policy != LOCKD_POLICY_WAIT_DIE || req->txn_id < min_txn;
}

/* ACQUIRE from an owner that already has a record: retransmission, or an
 * S->X upgrade. */
static __always_inline void acquire_again(const struct lockd_req *req,
                                          const struct lockd_owner_key *key,
                                          __u64 now, struct lt_result *res) {
  enum {
    AGAIN_INFLIGHT,
    AGAIN_QUEUED,
    AGAIN_HELD,
    AGAIN_UPGRADED,
    AGAIN_UPGRADE_CONFLICT,
    AGAIN_EXPIRED,
    AGAIN_USER_OWNED,
  } outcome = AGAIN_INFLIGHT;
  struct lockd_owner *own = bpf_map_lookup_elem(&owners, key);
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &req->lock_id);
  __u64 fence = 0;
  __u32 lease_ms = 0, upgrade_lease_ms = clamp_lease_ms(req->lease_ms);
  if (own && lk) {
    bpf_spin_lock(&lk->guard);
    if (!owner_matches(own, key->lock_id, key->txn_id)) {
      outcome = AGAIN_INFLIGHT;
    } else if (lk->flags & LOCKD_LOCK_USER_OWNED) {
      outcome = AGAIN_USER_OWNED;
    } else if (own->state == LOCKD_OWNER_QUEUED) {
      outcome = AGAIN_QUEUED;
    } else if (own->state != LOCKD_OWNER_HELD) {
      outcome = AGAIN_INFLIGHT;
    } else if (own->lease_expires_ns < now) {
      outcome = AGAIN_EXPIRED;
    } else if (own->mode == LOCKD_MODE_EXCLUSIVE || req->mode == own->mode) {
      outcome = AGAIN_HELD;
    } else if (lk->holders == 1 && lk->queue_len == 0) {
      /* An upgrade is a new grant: new fence, the lease starts again. */
      lk->mode = LOCKD_MODE_EXCLUSIVE;
      lk->fence++;
      lk->version++;
      own->mode = LOCKD_MODE_EXCLUSIVE;
      own->fence = lk->fence;
      own->lease_ms = upgrade_lease_ms;
      own->lease_expires_ns = now + upgrade_lease_ms * NS_PER_MS;
      outcome = AGAIN_UPGRADED;
    } else {
      outcome = AGAIN_UPGRADE_CONFLICT;
    }
    fence = own->fence;
    lease_ms = own->lease_ms;
    bpf_spin_unlock(&lk->guard);
  }
  switch (outcome) {
    case AGAIN_QUEUED:
      stat_inc(LOCKD_STAT_ACQUIRE_DUP);
      result_reply(res, req, LOCKD_OP_QUEUED, LOCKD_STATUS_OK, 0);
      break;
    case AGAIN_HELD:
      stat_inc(LOCKD_STAT_ACQUIRE_DUP);
      result_reply(res, req, LOCKD_OP_GRANTED, LOCKD_STATUS_OK, fence);
      res->reply.lease_ms = lease_ms;
      break;
    case AGAIN_UPGRADED:
      stat_inc(LOCKD_STAT_UPGRADE);
      result_reply(res, req, LOCKD_OP_GRANTED, LOCKD_STATUS_OK, fence);
      res->reply.lease_ms = lease_ms;
      break;
    case AGAIN_UPGRADE_CONFLICT:
      stat_inc(LOCKD_STAT_REJECT_UPGRADE);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_UPGRADE_CONFLICT,
                   0);
      break;
    case AGAIN_USER_OWNED:
      result_handoff(res, LOCKD_HANDOFF_USER_OWNED);
      break;
    case AGAIN_EXPIRED:
      stat_inc(LOCKD_STAT_REJECT_EXPIRED);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0);
      break;
    default:
      stat_inc(LOCKD_STAT_ACQUIRE_INFLIGHT);
      res->verdict = LT_SILENT;
      break;
  }
}

static __always_inline void waiter_block_init(struct lockd_block *blk,
                                              const struct lockd_req *req,
                                              __u64 now, __u32 lease_ms) {
  blk->next = 0;
  blk->waiter.txn_id = req->txn_id;
  blk->waiter.enqueued_ns = now;
  blk->waiter.deadline_ns = req->wait_ms ? now + req->wait_ms * NS_PER_MS : 0;
  blk->waiter.seq = req->seq;
  blk->waiter.lease_ms = lease_ms;
  blk->waiter.addr = req->addr;
  blk->waiter.port = req->port;
  __builtin_memcpy(blk->waiter.mac, req->mac, ETH_ALEN);
  blk->waiter.mode = req->mode;
  blk->waiter.policy = req->policy;
  blk->waiter.cancelled = 0;
  blk->waiter.reserved = 0;
}

static __always_inline void lt_acquire(const struct lockd_req *req, __u64 now,
                                       struct lt_result *res) {
  stat_inc(LOCKD_STAT_ACQUIRE);
  struct lockd_owner_key key = {req->lock_id, req->txn_id};
  __u32 lease_ms = clamp_lease_ms(req->lease_ms);
  struct lockd_owner claim = {
      .key = key,
      .state = LOCKD_OWNER_CLAIMED,
      .mode = req->mode,
      .policy = req->policy,
      .seq = req->seq,
      .since_ns = now,
      .lease_ms = lease_ms,
      .addr = req->addr,
      .port = req->port,
  };
  __builtin_memcpy(claim.mac, req->mac, ETH_ALEN);
  /* Claiming the (lock, txn) key first makes this CPU the only one deciding
   * for this owner: a concurrent retransmission finds the claim. */
  long err = bpf_map_update_elem(&owners, &key, &claim, BPF_NOEXIST);
  if (err == -EEXIST) {
    acquire_again(req, &key, now, res);
    return;
  }
  if (err) {
    result_handoff(res, LOCKD_HANDOFF_OWNERS_FULL);
    return;
  }
  struct lockd_owner *own = bpf_map_lookup_elem(&owners, &key);
  struct lockd_lock *lk = lock_lookup_or_create(req->lock_id);
  if (!own || !lk) {
    bpf_map_delete_elem(&owners, &key);
    result_handoff(res,
                   lk ? LOCKD_HANDOFF_CONTENDED : LOCKD_HANDOFF_TABLE_FULL);
    return;
  }

  struct lockd_block waiter = {};
  __u64 block_idx = 0;
  bool want_block = false, pool_full = false;
  enum acquire_outcome outcome = ACQ_STALE_TAIL;
  __u64 fence = 0;
  __u32 queue_pos = 0;
  for (int attempt = 0; attempt < LOCKD_MAX_RETRIES; attempt++) {
    /* Allocate the queue block outside the guard, when queueing looks
     * likely; the decision itself is taken under the guard. */
    if (!block_idx && !pool_full &&
        (want_block || (policy_may_wait(req, READ_ONCE(lk->min_txn)) &&
                        lock_looks_like_queueing(lk, req->mode)))) {
      waiter_block_init(&waiter, req, now, lease_ms);
      block_idx = pool_alloc_block(&waiter);
      pool_full = block_idx == 0;
    }
    __u64 tail_idx = READ_ONCE(lk->tail);
    struct lockd_block *tail =
        tail_idx ? bpf_map_lookup_elem(&pool, &tail_idx) : NULL;

    bpf_spin_lock(&lk->guard);
    bool conflict = lk->queue_len > 0 || !modes_compatible(lk, req->mode);
    if (lk->flags & LOCKD_LOCK_USER_OWNED) {
      outcome = ACQ_USER_OWNED;
    } else if (!conflict) {
      fence = lock_add_holder(lk, own, req->mode, now, lease_ms);
      outcome = ACQ_GRANTED;
    } else if (req->policy == LOCKD_POLICY_NO_WAIT) {
      outcome = ACQ_CONFLICT;
    } else if (req->policy == LOCKD_POLICY_WAIT_DIE &&
               !(req->txn_id < lk->min_txn)) {
      outcome = ACQ_DIE;
    } else if (!block_idx) {
      outcome = ACQ_NEED_BLOCK;
    } else if (lk->tail != tail_idx ||
               (tail_idx && (!tail || tail->idx != tail_idx))) {
      outcome = ACQ_STALE_TAIL;
    } else {
      if (tail)
        tail->next = block_idx;
      else
        lk->head = block_idx;
      lk->tail = block_idx;
      queue_pos = lk->queue_len++;
      lk->version++;
      lock_note_member(lk, req->txn_id);
      own->state = LOCKD_OWNER_QUEUED;
      own->block = block_idx;
      outcome = ACQ_QUEUED;
    }
    bpf_spin_unlock(&lk->guard);

    if (outcome == ACQ_STALE_TAIL) {
      stat_inc(LOCKD_STAT_RETRY);
      continue;
    }
    if (outcome == ACQ_NEED_BLOCK && !pool_full) {
      want_block = true;
      continue;
    }
    break;
  }

  if (outcome != ACQ_QUEUED && block_idx) pool_free_block(block_idx);
  switch (outcome) {
    case ACQ_GRANTED:
      stat_inc(LOCKD_STAT_GRANT_IMMEDIATE);
      result_reply(res, req, LOCKD_OP_GRANTED, LOCKD_STATUS_OK, fence);
      res->reply.lease_ms = lease_ms;
      return;
    case ACQ_QUEUED:
      stat_inc(LOCKD_STAT_QUEUED);
      result_reply(res, req, LOCKD_OP_QUEUED, LOCKD_STATUS_OK, 0);
      res->reply.queue_pos = queue_pos;
      return;
    default:
      break;
  }
  /* Not a member: the claim goes away before anyone is answered. */
  bpf_map_delete_elem(&owners, &key);
  switch (outcome) {
    case ACQ_CONFLICT:
      stat_inc(LOCKD_STAT_REJECT_CONFLICT);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_CONFLICT, 0);
      break;
    case ACQ_DIE:
      stat_inc(LOCKD_STAT_REJECT_DIE);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_DIE, 0);
      break;
    case ACQ_USER_OWNED:
      result_handoff(res, LOCKD_HANDOFF_USER_OWNED);
      break;
    case ACQ_NEED_BLOCK:
      result_handoff(res, LOCKD_HANDOFF_POOL_FULL);
      break;
    default:
      result_handoff(res, LOCKD_HANDOFF_CONTENDED);
      break;
  }
}

/* ---- RELEASE ------------------------------------------------------------*/

/* RELEASE from an owner without a record: a retransmission of a release
 * that already happened, or a release by a non-holder. */
static __always_inline void release_unknown(const struct lockd_req *req,
                                            const struct lockd_owner_key *key,
                                            struct lt_result *res) {
  struct lockd_released *gone = bpf_map_lookup_elem(&released, key);
  if (gone && gone->status == LOCKD_STATUS_LEASE_EXPIRED) {
    stat_inc(LOCKD_STAT_REJECT_EXPIRED);
    result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0);
    return;
  }
  if (gone && gone->status != LOCKD_STATUS_OK) {
    stat_inc(LOCKD_STAT_REJECT_NOT_HOLDER);
    result_reply(res, req, LOCKD_OP_REJECTED, gone->status, 0);
    return;
  }
  if (gone) {
    stat_inc(LOCKD_STAT_RELEASE_DUP);
    result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, gone->fence);
    return;
  }
  stat_inc(LOCKD_STAT_REJECT_NOT_HOLDER);
  result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER, 0);
}

enum release_outcome {
  REL_UNKNOWN = 0,
  REL_RELEASED,
  REL_CANCELLED,
  REL_DUP,
  REL_STALE,
  REL_EXPIRED,
  REL_INFLIGHT,
  REL_USER_OWNED,
  REL_TO_TC,
};

/* `may_grant`: the caller can send GRANTED packets to waiters (TC). XDP
 * passes false: it then only serves releases that leave nobody to grant. */
static __always_inline void lt_release(const struct lockd_req *req, __u64 now,
                                       bool may_grant, struct lt_result *res) {
  struct lockd_owner_key key = {req->lock_id, req->txn_id};
  struct lockd_owner *own = bpf_map_lookup_elem(&owners, &key);
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &req->lock_id);
  if (!own || !lk) {
    stat_inc(LOCKD_STAT_RELEASE);
    /* The daemon took the lock over with its records: only it knows. */
    if (lk && (READ_ONCE(lk->flags) & LOCKD_LOCK_USER_OWNED))
      result_handoff(res, LOCKD_HANDOFF_USER_OWNED);
    else
      release_unknown(req, &key, res);
    return;
  }
  /* A queued owner's block, looked up now in case the release cancels. */
  __u64 own_block_idx = READ_ONCE(own->block);
  struct lockd_block *own_block =
      own_block_idx ? bpf_map_lookup_elem(&pool, &own_block_idx) : NULL;

  enum release_outcome outcome = REL_UNKNOWN;
  __u64 fence = 0;
  bpf_spin_lock(&lk->guard);
  if (!owner_matches(own, key.lock_id, key.txn_id)) {
    outcome = REL_UNKNOWN;
  } else if (lk->flags & LOCKD_LOCK_USER_OWNED) {
    outcome = REL_USER_OWNED;
  } else if ((__s32)(req->seq - own->seq) < 0) {
    outcome = REL_STALE;
  } else if (own->state == LOCKD_OWNER_HELD) {
    fence = own->fence;
    if (own->lease_expires_ns < now) {
      outcome = REL_EXPIRED;
    } else if (!may_grant && lk->queue_len) {
      outcome = REL_TO_TC;
    } else {
      lk->holders--;
      if (lk->holders == 0) lk->mode = LOCKD_MODE_NONE;
      lk->version++;
      lock_note_maybe_idle(lk);
      own->state = LOCKD_OWNER_GONE;
      outcome = REL_RELEASED;
    }
  } else if (own->state == LOCKD_OWNER_QUEUED) {
    if (!may_grant) {
      outcome = REL_TO_TC;
    } else if (!own_block || own_block->idx != own->block ||
               own_block_idx != own->block) {
      outcome = REL_INFLIGHT;
    } else {
      own_block->waiter.cancelled = 1;
      lk->version++;
      own->state = LOCKD_OWNER_GONE;
      outcome = REL_CANCELLED;
    }
  } else if (own->state == LOCKD_OWNER_GONE) {
    fence = own->fence;
    outcome = REL_DUP;
  } else {
    outcome = REL_INFLIGHT;
  }
  bpf_spin_unlock(&lk->guard);

  /* Counted once, by the program that decides (not by XDP passing to TC). */
  if (outcome != REL_TO_TC) stat_inc(LOCKD_STAT_RELEASE);
  switch (outcome) {
    case REL_UNKNOWN:
      release_unknown(req, &key, res);
      return;
    case REL_USER_OWNED:
      result_handoff(res, LOCKD_HANDOFF_USER_OWNED);
      return;
    case REL_STALE:
      stat_inc(LOCKD_STAT_RELEASE_DUP);
      result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 0);
      return;
    case REL_EXPIRED:
      stat_inc(LOCKD_STAT_REJECT_EXPIRED);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0);
      return;
    case REL_TO_TC:
      stat_inc(LOCKD_STAT_RELEASE_TO_TC);
      res->verdict = LT_TO_TC;
      return;
    case REL_INFLIGHT:
      stat_inc(LOCKD_STAT_ACQUIRE_INFLIGHT);
      res->verdict = LT_SILENT;
      return;
    case REL_DUP:
      stat_inc(LOCKD_STAT_RELEASE_DUP);
      result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, fence);
      return;
    case REL_RELEASED: {
      /* Remember before forgetting, so a retransmission never finds
       * neither (a cancelled wait is remembered with fence 0). */
      struct lockd_released memo = {.fence = fence, .seq = req->seq};
      bpf_map_update_elem(&released, &key, &memo, BPF_ANY);
      stat_inc(LOCKD_STAT_RELEASED);
      break;
    }
    default: { /* REL_CANCELLED */
      struct lockd_released memo = {.fence = 0, .seq = req->seq};
      bpf_map_update_elem(&released, &key, &memo, BPF_ANY);
      stat_inc(LOCKD_STAT_CANCELLED);
      fence = 0;
      break;
    }
  }
  bpf_map_delete_elem(&owners, &key);
  result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, fence);
  if (may_grant) grant_from_head(req->lock_id, now, res);
}

/* ---- RENEW and KICK -----------------------------------------------------*/

static __always_inline void lt_renew(const struct lockd_req *req, __u64 now,
                                     struct lt_result *res) {
  struct lockd_owner_key key = {req->lock_id, req->txn_id};
  struct lockd_owner *own = bpf_map_lookup_elem(&owners, &key);
  struct lockd_lock *lk = bpf_map_lookup_elem(&locks, &req->lock_id);
  __u32 lease_ms = clamp_lease_ms(req->lease_ms);
  enum {
    RENEW_NOT_HOLDER,
    RENEW_EXPIRED,
    RENEW_OK,
    RENEW_USER_OWNED,
  } outcome = RENEW_NOT_HOLDER;
  __u64 fence = 0;
  if (!own && lk && (READ_ONCE(lk->flags) & LOCKD_LOCK_USER_OWNED)) {
    /* The daemon took the lock over with its records: only it knows. */
    outcome = RENEW_USER_OWNED;
  } else if (own && lk) {
    bpf_spin_lock(&lk->guard);
    if (lk->flags & LOCKD_LOCK_USER_OWNED) {
      outcome = RENEW_USER_OWNED;
    } else if (!owner_matches(own, key.lock_id, key.txn_id) ||
               own->state != LOCKD_OWNER_HELD) {
      outcome = RENEW_NOT_HOLDER;
    } else if (own->lease_expires_ns < now) {
      outcome = RENEW_EXPIRED;
    } else {
      own->lease_ms = lease_ms;
      own->lease_expires_ns = now + lease_ms * NS_PER_MS;
      fence = own->fence;
      outcome = RENEW_OK;
    }
    bpf_spin_unlock(&lk->guard);
  }
  if (outcome == RENEW_USER_OWNED) {
    result_handoff(res, LOCKD_HANDOFF_USER_OWNED);
  } else if (outcome == RENEW_OK) {
    stat_inc(LOCKD_STAT_RENEW);
    result_reply(res, req, LOCKD_OP_RENEWED, LOCKD_STATUS_OK, fence);
    res->reply.lease_ms = lease_ms;
  } else if (outcome == RENEW_EXPIRED) {
    stat_inc(LOCKD_STAT_REJECT_EXPIRED);
    result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0);
  } else {
    /* A holder whose hold the daemon ended learns why. */
    struct lockd_released *gone = bpf_map_lookup_elem(&released, &key);
    __u8 status = gone && gone->status != LOCKD_STATUS_OK
                      ? gone->status
                      : LOCKD_STATUS_NOT_HOLDER;
    stat_inc(status == LOCKD_STATUS_LEASE_EXPIRED
                 ? LOCKD_STAT_REJECT_EXPIRED
                 : LOCKD_STAT_REJECT_NOT_HOLDER);
    result_reply(res, req, LOCKD_OP_REJECTED, status, 0);
  }
}

/* Continues a grant-from-head that a previous run had to cut short. Never
 * answered: its only effect is the grants. */
static __always_inline void lt_kick(const struct lockd_req *req, __u64 now,
                                    struct lt_result *res) {
  res->verdict = LT_SILENT;
  if (req->hops >= LOCKD_MAX_KICK_HOPS) {
    stat_inc(LOCKD_STAT_KICK_DROPPED);
    return;
  }
  stat_inc(LOCKD_STAT_KICK);
  grant_from_head(req->lock_id, now, res);
}

#endif /* LOCKD_BPF_LIB_LOCK_TABLE_H_ */
