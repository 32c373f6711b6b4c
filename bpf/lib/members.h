/* A lock's members: the holder kept in the lock's slot, further holders in
 * a doubly linked chain of pool blocks, and waiters in a FIFO queue of pool
 * blocks (singly linked, cancelled waiters unlinked lazily at the head).
 * Semantics: docs/semantics.md; concurrency: docs/architecture.md.
 *
 * The rule that shapes this code: while a bucket's guard is held no helper
 * may be called, so every pool block a critical section touches is looked up
 * before the guard and re-validated under it by the index stored in the
 * block. Block indexes are never reused, so a stale pointer is always
 * detected; the critical section then changes nothing and retries. */
#ifndef LOCKD_BPF_LIB_MEMBERS_H_
#define LOCKD_BPF_LIB_MEMBERS_H_

#include "bpf/lib/auth.h"
#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/pool.h"
#include "bpf/lib/stats.h"
#include "bpf/lib/table.h"

#define NS_PER_MS 1000000ULL
/* Attempts of an operation whose critical section found the state changed
 * under its look-ups. After them the request is not answered; the client's
 * retransmission gets the answer (counted as `contended`). */
#define LT_MAX_ATTEMPTS 6
/* Blocks a search for a member without a ticket visits at most. A search
 * that stops there has not settled anything (the owner may be further on):
 * the request is then not answered, and counted as contended. */
#define LT_SEARCH_STEPS 65536

static __always_inline void result_reply(struct lt_result *res,
                                         const struct lockd_request *req,
                                         __u8 opcode, __u8 status, __u64 fence,
                                         __u64 ticket) {
  res->verdict = LT_REPLY;
  res->reply.opcode = opcode;
  res->reply.status = status;
  res->reply.fence = fence;
  res->reply.ticket = ticket;
  res->reply.lease_ms = 0;
  res->reply.queue_pos = 0;
  res->reply.lock_id = req->lock_id;
  res->reply.txn_id = req->txn_id;
  res->reply.seq = req->seq;
  res->reply.client_id = req->client_id;
  res->reply.mode = req->mode;
  res->reply.policy = req->policy;
}

static __always_inline void result_silent(struct lt_result *res) {
  stat_inc(LOCKD_STAT_CONTENDED);
  res->verdict = LT_SILENT;
}

static __always_inline bool modes_compatible(const struct lockd_lock *lk,
                                             __u8 asked) {
  return lk->holders == 0 ||
         (lk->mode == LOCKD_MODE_SHARED && asked == LOCKD_MODE_SHARED);
}

/* ---- Mutations; call with the bucket's guard held. ----------------------*/

/* WAIT_DIE's min_txn (docs/semantics.md): the smallest txn id among the
 * members, or, while LOCKD_LOCK_MIN_DIRTY is set, at most that. Every
 * member is at least min_txn, so a member at or below it is the smallest:
 * the bound is exact again. */
static __always_inline void lock_note_member(struct lockd_lock *lk,
                                             __u64 txn_id) {
  if (txn_id <= lk->min_txn) {
    lk->min_txn = txn_id;
    lk->flags &= ~LOCKD_LOCK_MIN_DIRTY;
  }
}

/* An idle lock has no members: no bound. */
static __always_inline void lock_reset_min(struct lockd_lock *lk) {
  lk->min_txn = ~0ULL;
  lk->flags &= ~LOCKD_LOCK_MIN_DIRTY;
}

static __always_inline bool lock_idle(const struct lockd_lock *lk) {
  return lk->holders == 0 && lk->queue_len == 0;
}

/* A member left a lock that is not idle: if it was the smallest, min_txn
 * may now be below every member. */
static __always_inline void lock_note_leave(struct lockd_lock *lk,
                                            __u64 txn_id) {
  if (txn_id == lk->min_txn) lk->flags |= LOCKD_LOCK_MIN_DIRTY;
}

/* A new hold in `mode` for member `m`; returns its fencing token. */
static __always_inline __u64 lock_add_holder(struct lockd_lock *lk,
                                             struct lockd_member *m, __u8 mode,
                                             __u64 now, __u32 lease_ms) {
  lk->holders++;
  lk->mode = mode;
  lk->fence++;
  lk->version++;
  lock_note_member(lk, m->txn_id);
  m->state = LOCKD_MEMBER_HELD;
  m->mode = mode;
  m->fence = lk->fence;
  m->since_ns = now;
  m->lease_ms = lease_ms;
  m->expires_ns = now + lease_ms * NS_PER_MS;
  return lk->fence;
}

/* The hold of txn_id ends (the member's own state is the caller's to
 * change). */
static __always_inline void lock_drop_holder(struct lockd_lock *lk,
                                             __u64 txn_id) {
  lk->holders--;
  if (lk->holders == 0) lk->mode = LOCKD_MODE_NONE;
  lk->version++;
  if (lock_idle(lk))
    lock_reset_min(lk);
  else
    lock_note_leave(lk, txn_id);
}

static __always_inline void lock_unlink_head(struct lockd_lock *lk,
                                             const struct lockd_block *head) {
  lk->head = head->next;
  if (lk->head == 0) lk->tail = 0;
  lk->queue_len--;
  lk->version++;
  if (lock_idle(lk)) lock_reset_min(lk);
}

/* Neighbours of a chain block, looked up before the guard. */
struct chain_links {
  __u64 prev_idx, next_idx;
  struct lockd_block *prev, *next;
};

static __always_inline void chain_links_lookup(const struct lockd_block *blk,
                                               struct chain_links *l) {
  l->prev_idx = READ_ONCE(blk->prev);
  l->next_idx = READ_ONCE(blk->next);
  l->prev = l->prev_idx ? pool_lookup(l->prev_idx) : NULL;
  l->next = l->next_idx ? pool_lookup(l->next_idx) : NULL;
}

/* Under the guard: unlinks chain block `blk` (index idx) of `lk`, if its
 * neighbours are still the ones looked up; false (nothing changed) if not. */
static __always_inline bool chain_unlink(struct lockd_lock *lk,
                                         struct lockd_block *blk, __u64 idx,
                                         const struct chain_links *l) {
  if (blk->prev != l->prev_idx || blk->next != l->next_idx) return false;
  if (l->prev_idx) {
    if (!l->prev || l->prev->idx != l->prev_idx || l->prev->next != idx)
      return false;
  } else if (lk->chain != idx) {
    return false;
  }
  if (l->next_idx &&
      (!l->next || l->next->idx != l->next_idx || l->next->prev != idx))
    return false;
  if (l->prev_idx)
    l->prev->next = l->next_idx;
  else
    lk->chain = l->next_idx;
  if (l->next_idx) l->next->prev = l->prev_idx;
  return true;
}

/* Under the guard: the chain's first block is still `first` (looked up
 * before the guard), so a block can be pushed in front of it. */
static __always_inline bool chain_head_is(const struct lockd_lock *lk,
                                          __u64 first_idx,
                                          const struct lockd_block *first) {
  return lk->chain == first_idx &&
         (first_idx == 0 || (first && first->idx == first_idx));
}

static __always_inline void chain_push(struct lockd_lock *lk,
                                       struct lockd_block *blk, __u64 idx,
                                       struct lockd_block *first) {
  blk->prev = 0;
  blk->next = lk->chain;
  if (first) first->prev = idx;
  lk->chain = idx;
}

/* ---- Finding a member ---------------------------------------------------*/

/* The hint's block, looked up (before the guard). */
struct member_ref {
  __u64 ticket;
  struct lockd_block *blk;
};

static __always_inline void member_ref_from_hint(
    struct member_ref *mref, const struct member_hint *hint) {
  mref->ticket = hint->ticket;
  mref->blk =
      hint->ticket > LOCKD_TICKET_INLINE ? pool_lookup(hint->ticket) : NULL;
}

enum member_where {
  MEMBER_NONE = 0,
  MEMBER_INLINE,
  MEMBER_BLOCK,
  MEMBER_FOREIGN, /* the txn's record belongs to another client */
};

/* Under the guard: where the request's owner (lock_id, txn_id) holds or
 * waits in lk (NULL: no lock), if the inline holder or the looked-up block
 * is it; when `bound`, MEMBER_FOREIGN if that record was made by another
 * client than the request's (the daemon's endings are not bound). Cancelled
 * waiters are not members. */
static __always_inline enum member_where member_match(
    const struct lockd_lock *lk, const struct lockd_request *req,
    const struct member_ref *mref, bool bound) {
  if (!lk) return MEMBER_NONE;
  const struct lockd_member *m = NULL;
  enum member_where where = MEMBER_NONE;
  if (lk->holder.state == LOCKD_MEMBER_HELD &&
      lk->holder.txn_id == req->txn_id) {
    m = &lk->holder;
    where = MEMBER_INLINE;
  } else {
    const struct lockd_block *blk = mref->blk;
    if (blk && blk->idx == mref->ticket && blk->lock_id == req->lock_id &&
        blk->m.txn_id == req->txn_id &&
        (blk->m.state == LOCKD_MEMBER_HELD ||
         blk->m.state == LOCKD_MEMBER_WAITING)) {
      m = &blk->m;
      where = MEMBER_BLOCK;
    }
  }
  if (bound && m && m->client_id != req->client_id) return MEMBER_FOREIGN;
  return where;
}

/* The member member_match found in lk, or NULL. */
static __always_inline struct lockd_member *member_at(
    struct lockd_lock *lk, enum member_where where,
    const struct member_ref *mref) {
  if (where == MEMBER_INLINE) return &lk->holder;
  return where == MEMBER_BLOCK ? &mref->blk->m : NULL;
}

/* Under the guard: whether "no match" may be wrong because the owner sits
 * in the chain or the queue where no ticket pointed (a search must settle
 * it). A search is exact if the lock did not change while it ran. */
static __always_inline bool member_unknown(const struct lockd_lock *lk,
                                           struct member_hint *hint) {
  if (lk->chain == 0 && lk->head == 0) return false;
  if (hint->searched && hint->version == lk->version &&
      hint->chain == lk->chain && hint->head == lk->head)
    return false;
  /* Where the search starts, seen under the guard: a change after this
   * moment bumps the version; everything before it the search sees. */
  hint->searched = 0;
  hint->version = lk->version;
  hint->chain = lk->chain;
  hint->head = lk->head;
  return true;
}

/* A walk of a lock's chain, then its queue, without the guard (from where
 * the guard last saw them): for the block of `txn_id` (a search; 0: none)
 * and the smallest txn id of the members walked (WAIT_DIE). */
struct walk_ctx {
  __u64 lock_id;
  __u64 txn_id;
  __u64 cur;
  __u64 queue;
  __u64 found;
  __u64 min;
  __u32 in_queue;
  __u32 broken;
};

static long walk_step(__u64 i, struct walk_ctx *c) {
  (void)i;
  if (c->cur == 0) {
    if (c->in_queue || c->queue == 0) return 1;
    c->in_queue = 1;
    c->cur = c->queue;
  }
  struct lockd_block *blk = pool_lookup(c->cur);
  if (!blk || blk->idx != c->cur || blk->lock_id != c->lock_id) {
    c->broken = 1; /* changed under the walk */
    return 1;
  }
  __u8 state = READ_ONCE(blk->m.state);
  __u64 txn_id = READ_ONCE(blk->m.txn_id);
  if (state == LOCKD_MEMBER_HELD || state == LOCKD_MEMBER_WAITING) {
    if (c->txn_id && txn_id == c->txn_id) {
      c->found = c->cur;
      return 1;
    }
    if (txn_id < c->min) c->min = txn_id;
  }
  c->cur = READ_ONCE(blk->next);
  return 0;
}

/* Whether the walk reached the end of the queue (not the step limit). */
static __always_inline bool walk_complete(const struct walk_ctx *c) {
  return c->cur == 0 && (c->in_queue || c->queue == 0);
}

/* ---- Looking up a lock --------------------------------------------------*/
/* ---- Looking up a lock --------------------------------------------------*/

/* A lock as found without the guard: the bucket, and the slot if any. */
struct lock_ref {
  struct table_ref t;
  struct lockd_lock *lk; /* NULL: no such lock (as seen) */
  struct lt_scratch *scratch;
};

static __always_inline int lock_find(const struct lockd_config *cfg,
                                     __u64 lock_id, struct lock_ref *ref) {
  if (table_find(cfg, lock_id, &ref->t)) return -1;
  struct lt_scratch *scratch = lt_scratch_get();
  if (!scratch) return -1;
  scratch->slot = lockd_bucket_find(ref->t.b, lock_id);
  int s = READ_ONCE(scratch->slot);
  ref->lk = s >= 0 && s < LOCKD_BUCKET_SLOTS ? bucket_slot(ref->t.b, s) : NULL;
  ref->scratch = scratch;
  return 0;
}

/* Under the guard: the lock's slot now, or NULL (slot index in *slot).
 * *serves is false when the bucket no longer serves the lock's hash (a
 * split or merge moved it since lock_find): NULL then means "retry", not
 * "no such lock". */
static __always_inline struct lockd_lock *lock_locked(
    const struct lock_ref *ref, __u64 lock_id, int *slot, bool *serves) {
  struct lockd_bucket *b = ref->t.b;
  struct lt_scratch *scratch = ref->scratch;
  *serves = bucket_serves(b, ref->t.hash);
  if (!*serves) return NULL;
  scratch->slot = lockd_bucket_find(b, lock_id);
  int s = READ_ONCE(scratch->slot);
  if (s < 0 || s >= LOCKD_BUCKET_SLOTS) return NULL;
  *slot = s;
  return bucket_slot(b, s);
}

/* Walks the chain, then the queue, of lock `lock_id` from where the hint
 * says (member_unknown recorded them under the guard; the blocks are read
 * without it) for the owner's block, and records what it found in the hint;
 * the next attempt checks under the guard that the lock did not change
 * meanwhile (member_unknown). A global function: the verifier checks it
 * once, apart from its callers. */
__noinline int lt_search(__u64 lock_id, __u64 txn_id,
                         struct member_hint *hint) {
  if (!hint) return 0;
  struct walk_ctx c = {.lock_id = lock_id,
                       .txn_id = txn_id,
                       .cur = hint->chain,
                       .queue = hint->head,
                       .min = ~0ULL};
  bpf_loop(LT_SEARCH_STEPS, walk_step, &c, 0);
  __u64 found = c.found;
  bool complete = found || walk_complete(&c);
  bool broken = c.broken || !complete;
  stat_inc(LOCKD_STAT_MEMBER_SEARCH);
  hint->searched = !broken;
  if (found) hint->ticket = found;
  return 0;
}

/* ---- WAIT_DIE: the oldest member ---------------------------------------*/

/* Under the guard: makes a MIN_DIRTY lock's min_txn exact, from the inline
 * holder and from the walk of the chain and queue, if it was made at the
 * lock's current version; false if such a walk is still to be made (its
 * start is then recorded in *w). */
static __always_inline bool lock_exact_min(struct lockd_lock *lk,
                                           struct min_walk *w) {
  __u64 min = lk->holder.state == LOCKD_MEMBER_HELD ? lk->holder.txn_id : ~0ULL;
  if (lk->chain || lk->head) {
    if (!w->done || w->version != lk->version || w->chain != lk->chain ||
        w->head != lk->head) {
      w->chain = lk->chain;
      w->head = lk->head;
      w->version = lk->version;
      w->done = 0;
      return false;
    }
    if (w->min < min) min = w->min;
  }
  lk->min_txn = min;
  lk->flags &= ~LOCKD_LOCK_MIN_DIRTY;
  return true;
}

/* Walks the chain, then the queue, of lock `lock_id` from where *w says
 * (read without the guard) for the smallest txn id of their members; the
 * next attempt uses it if the lock did not change meanwhile
 * (lock_exact_min). A global function: the verifier checks it once, apart
 * from its callers. */
__noinline int lt_min_walk(__u64 lock_id, struct min_walk *w) {
  if (!w) return 0;
  struct walk_ctx c = {
      .lock_id = lock_id, .cur = w->chain, .queue = w->head, .min = ~0ULL};
  bpf_loop(LT_SEARCH_STEPS, walk_step, &c, 0);
  stat_inc(LOCKD_STAT_MIN_WALK);
  w->min = c.min;
  w->done = walk_complete(&c) && !c.broken;
  return 0;
}

#endif /* LOCKD_BPF_LIB_MEMBERS_H_ */
