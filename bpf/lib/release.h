/* RELEASE and RENEW (docs/semantics.md), and the endings the daemon decides
 * through the control program: a lease that ran out, an operator's
 * force-release, a wait deadline that passed. All endings share one critical
 * section, end_attempt, that finds the owner's record and ends it. */
#ifndef LOCKD_BPF_LIB_RELEASE_H_
#define LOCKD_BPF_LIB_RELEASE_H_

#include "bpf/lib/grant.h"

enum end_kind {
  END_RELEASE = 0,   /* the owner's RELEASE */
  END_EXPIRE_HOLDER, /* a hold whose lease ran out */
  END_FORCE,         /* an operator's force-release */
  END_EXPIRE_WAITER, /* a wait whose deadline passed */
};

enum end_outcome {
  END_UNKNOWN = 0, /* no such holder or waiter */
  END_RELEASED,    /* a hold ended */
  END_CANCELLED,   /* a wait ended */
  END_STALE,       /* RELEASE older than the ACQUIRE that made the record */
  END_EXPIRED,     /* RELEASE of a hold whose lease ran out */
  END_TO_TC,       /* XDP: ending it may wake waiters */
  END_NOT_DUE,
  END_FENCE_MISMATCH,
  END_FOREIGN, /* RELEASE of a txn whose record another client made */
  END_NEED_SEARCH,
  END_RETRY,
};

/* Under the guard: ends the hold of the member `where` says. */
static __always_inline enum end_outcome end_hold(
    struct lockd_bucket *b, int slot, struct lockd_lock *lk,
    enum member_where where, const struct member_ref *mref,
    const struct chain_links *links, struct end_state *st) {
  struct lockd_member *m = where == MEMBER_INLINE ? &lk->holder : &mref->blk->m;
  if (where == MEMBER_BLOCK) {
    if (!chain_unlink(lk, mref->blk, mref->ticket, links)) return END_RETRY;
    st->free_idx = mref->ticket;
  }
  st->fence = m->fence;
  st->seq = m->seq;
  st->client_id = m->client_id;
  m->state = LOCKD_MEMBER_FREE;
  lock_drop_holder(lk, m->txn_id);
  if (lock_idle(lk)) {
    bucket_free(b, slot);
    st->freed = 1;
  }
  return END_RELEASED;
}

/* Under the guard: ends the wait of member m (always in a block). It stays
 * linked, cancelled, until it reaches the head. */
static __always_inline enum end_outcome end_wait(struct lockd_lock *lk,
                                                 struct lockd_member *m,
                                                 struct end_state *st) {
  st->seq = m->seq;
  st->client_id = m->client_id;
  st->waiter.reply.txn_id = m->txn_id;
  st->waiter.reply.seq = m->seq;
  st->waiter.reply.client_id = m->client_id;
  st->waiter.reply.mode = m->mode;
  st->waiter.reply.policy = m->policy;
  __builtin_memcpy(st->waiter.to.mac, m->mac, ETH_ALEN);
  st->waiter.to.addr = m->addr;
  st->waiter.to.port = m->port;
  st->waiter.local = (m->flags & LOCKD_MEMBER_LOCAL) != 0;
  m->state = LOCKD_MEMBER_CANCELLED;
  lk->version++;
  lock_note_leave(lk, m->txn_id);
  return END_CANCELLED;
}

static __always_inline enum end_outcome end_attempt(
    const struct lockd_config *cfg, struct end_state *st) {
  const struct lockd_request *req = &st->req;
  struct lock_ref ref;
  /* A lock not seen may be one a split or merge is moving: the guard says
   * (bucket_serves). */
  if (lock_find(cfg, req->lock_id, &ref)) return END_RETRY;
  struct member_ref mref;
  member_ref_from_hint(&mref, &st->hint);
  struct chain_links links = {};
  if (mref.blk) chain_links_lookup(mref.blk, &links);
  const __u32 kind = st->kind;
  struct lockd_bucket *b = ref.t.b;
  enum end_outcome outcome = END_UNKNOWN;
  int slot = -1;
  bpf_spin_lock(&b->guard);
  bool serves;
  struct lockd_lock *lk = lock_locked(&ref, req->lock_id, &slot, &serves);
  enum member_where where = member_match(lk, req, &mref, kind == END_RELEASE);
  struct lockd_member *m = member_at(lk, where, &mref);
  if (!serves) {
    outcome = END_RETRY;
  } else if (!lk) {
    outcome = END_UNKNOWN;
  } else if (where == MEMBER_FOREIGN) {
    outcome = END_FOREIGN;
  } else if (!m) {
    outcome = member_unknown(lk, &st->hint) ? END_NEED_SEARCH : END_UNKNOWN;
  } else if (kind == END_RELEASE && req->seq < m->seq) {
    outcome = END_STALE;
  } else if (m->state == LOCKD_MEMBER_HELD) {
    if (kind == END_EXPIRE_WAITER)
      outcome = END_UNKNOWN;
    else if (kind == END_RELEASE && m->expires_ns < st->now)
      outcome = END_EXPIRED;
    else if (kind == END_RELEASE && !st->may_grant && lk->queue_len)
      outcome = END_TO_TC;
    else if (kind == END_EXPIRE_HOLDER && !(m->expires_ns < st->now))
      outcome = END_NOT_DUE;
    else if (kind == END_FORCE && req->fence && m->fence != req->fence)
      outcome = END_FENCE_MISMATCH;
    else
      outcome = end_hold(b, slot, lk, where, &mref, &links, st);
  } else if (kind == END_RELEASE) {
    outcome = st->may_grant ? end_wait(lk, m, st) : END_TO_TC;
  } else if (kind == END_EXPIRE_WAITER) {
    outcome = m->expires_ns && m->expires_ns < st->now ? end_wait(lk, m, st)
                                                       : END_NOT_DUE;
  }
  bpf_spin_unlock(&b->guard);
  return outcome;
}

/* One attempt of the ending in this CPU's end_scratch (a global function:
 * the verifier checks it once, apart from its callers). */
__noinline int lt_end_attempt(void) {
  __u32 zero = 0;
  struct end_state *st = bpf_map_lookup_elem(&end_scratch, &zero);
  struct lockd_config *cfg = config_get();
  if (!st || !cfg) return END_RETRY;
  st->outcome = end_attempt(cfg, st);
  return st->outcome;
}

/* Runs end_attempt until it decides; frees what the ending unlinked and,
 * when waiters may follow, grants from the head. Returns the state (its
 * outcome, the ended member), NULL if there is none. */
static __always_inline struct end_state *lt_end(const struct lockd_request *req,
                                                enum end_kind kind, __u64 now,
                                                bool may_grant,
                                                struct lt_result *res) {
  __u32 zero = 0;
  struct end_state *st = bpf_map_lookup_elem(&end_scratch, &zero);
  if (!st) return NULL;
  __builtin_memset(st, 0, sizeof(*st));
  __builtin_memcpy(&st->req, req, sizeof(st->req));
  st->now = now;
  st->kind = kind;
  st->may_grant = may_grant;
  st->hint.ticket = req->ticket;
  st->outcome = END_RETRY;
  for (int attempt = 0; attempt < LT_MAX_ATTEMPTS + 1; attempt++) {
    enum end_outcome outcome = lt_end_attempt();
    if (outcome == END_NEED_SEARCH) {
      lt_search(req->lock_id, req->txn_id, &st->hint);
    } else if (outcome == END_RETRY) {
      stat_inc(LOCKD_STAT_RETRY);
    } else {
      break;
    }
  }
  enum end_outcome outcome = st->outcome;
  if (st->free_idx) pool_free(st->free_idx);
  if (outcome == END_RELEASED) stat_inc(LOCKD_STAT_HOLD_ENDED);
  if (outcome == END_RELEASED || outcome == END_CANCELLED)
    client_members_add(client_of(st->client_id), -1);
  if (st->freed) {
    stat_inc(LOCKD_STAT_LOCK_FREED);
    struct lockd_config *cfg = config_get();
    struct table_ref t;
    if (cfg && table_find(cfg, req->lock_id, &t) == 0) table_try_merge(&t);
  } else if (may_grant &&
             (outcome == END_RELEASED || outcome == END_CANCELLED)) {
    grant_from_head(req->lock_id, now, res);
  }
  return st;
}

/* The ending remembered for the owner's late RELEASE or RENEW. */
static __always_inline void end_remember(const struct lockd_request *req,
                                         __u8 status,
                                         const struct end_state *st,
                                         __u64 now) {
  struct lockd_owner_key key = {req->lock_id, req->txn_id};
  struct lockd_ended memo = {.fence = st->fence,
                             .time_ns = now,
                             .seq = st->seq,
                             .client_id = st->client_id,
                             .status = status};
  bpf_map_update_elem(&ended, &key, &memo, BPF_ANY);
}

/* RELEASE, or RENEW, from an owner the table does not know: if its hold or
 * wait was ended for it, it learns why (another client learns nothing). */
static __always_inline void reply_not_member(const struct lockd_request *req,
                                             struct lt_result *res) {
  struct lockd_owner_key key = {req->lock_id, req->txn_id};
  struct lockd_ended *gone = bpf_map_lookup_elem(&ended, &key);
  __u8 status = gone && gone->client_id == req->client_id
                    ? gone->status
                    : LOCKD_STATUS_NOT_HOLDER;
  stat_inc(status == LOCKD_STATUS_LEASE_EXPIRED ? LOCKD_STAT_REJECT_EXPIRED
                                                : LOCKD_STAT_REJECT_NOT_HOLDER);
  result_reply(res, req, LOCKD_OP_REJECTED, status, 0, 0);
}

/* A request naming a txn whose record another client made: changes
 * nothing, learns nothing. */
static __always_inline void reply_foreign(const struct lockd_request *req,
                                          struct lt_result *res) {
  stat_inc(LOCKD_STAT_REJECT_NOT_OWNER);
  result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER, 0, 0);
}

/* `may_grant`: the caller can send GRANTED packets to waiters (TC, control
 * program). XDP passes false: it then only serves releases that leave
 * nobody to grant. */
static __always_inline void lt_release(const struct lockd_request *req,
                                       __u64 now, bool may_grant,
                                       struct lt_result *res) {
  struct end_state *st = lt_end(req, END_RELEASE, now, may_grant, res);
  if (!st) return result_silent(res);
  enum end_outcome outcome = st->outcome;
  /* Counted once, by the program that decides (not by XDP passing on). */
  if (outcome != END_TO_TC) stat_inc(LOCKD_STAT_RELEASE);
  switch (outcome) {
    case END_UNKNOWN:
      reply_not_member(req, res);
      return;
    case END_FOREIGN:
      reply_foreign(req, res);
      return;
    case END_RELEASED:
      stat_inc(LOCKD_STAT_RELEASED);
      result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, st->fence, 0);
      return;
    case END_CANCELLED:
      stat_inc(LOCKD_STAT_CANCELLED);
      result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 0, 0);
      return;
    case END_STALE:
      stat_inc(LOCKD_STAT_RELEASE_DUP);
      result_reply(res, req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 0, 0);
      return;
    case END_EXPIRED:
      stat_inc(LOCKD_STAT_REJECT_EXPIRED);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0,
                   0);
      return;
    case END_TO_TC:
      stat_inc(LOCKD_STAT_RELEASE_TO_TC);
      res->verdict = LT_TO_TC;
      return;
    default:
      result_silent(res);
      return;
  }
}

enum renew_outcome {
  RENEW_UNKNOWN = 0,
  RENEW_OK,
  RENEW_EXPIRED,
  RENEW_FOREIGN,
  RENEW_NEED_SEARCH,
  RENEW_RETRY,
};

static __always_inline enum renew_outcome renew_attempt(
    const struct lockd_config *cfg, struct renew_state *st) {
  const struct lockd_request *req = &st->req;
  struct lock_ref ref;
  if (lock_find(cfg, req->lock_id, &ref)) return RENEW_RETRY;
  struct member_ref mref;
  member_ref_from_hint(&mref, &st->hint);
  struct lockd_bucket *b = ref.t.b;
  enum renew_outcome outcome;
  int slot = -1;
  bpf_spin_lock(&b->guard);
  bool serves;
  struct lockd_lock *lk = lock_locked(&ref, req->lock_id, &slot, &serves);
  enum member_where where = member_match(lk, req, &mref, true);
  struct lockd_member *m = member_at(lk, where, &mref);
  if (!serves) {
    outcome = RENEW_RETRY;
  } else if (!lk) {
    outcome = RENEW_UNKNOWN;
  } else if (where == MEMBER_FOREIGN) {
    outcome = RENEW_FOREIGN;
  } else if (!m) {
    outcome = member_unknown(lk, &st->hint) ? RENEW_NEED_SEARCH : RENEW_UNKNOWN;
  } else if (m->state != LOCKD_MEMBER_HELD) {
    outcome = RENEW_UNKNOWN;
  } else if (m->expires_ns < st->now) {
    outcome = RENEW_EXPIRED;
  } else {
    m->lease_ms = st->lease_ms;
    m->expires_ns = st->now + st->lease_ms * NS_PER_MS;
    st->fence = m->fence;
    outcome = RENEW_OK;
  }
  bpf_spin_unlock(&b->guard);
  return outcome;
}

/* One attempt of the RENEW in this CPU's renew_scratch (a global
 * function: the verifier checks it once, apart from its callers). */
__noinline int lt_renew_attempt(void) {
  __u32 zero = 0;
  struct renew_state *st = bpf_map_lookup_elem(&renew_scratch, &zero);
  struct lockd_config *cfg = config_get();
  if (!st || !cfg) return RENEW_RETRY;
  st->outcome = renew_attempt(cfg, st);
  return st->outcome;
}

static __always_inline void lt_renew(const struct lockd_request *req, __u64 now,
                                     struct lt_result *res) {
  __u32 zero = 0;
  struct renew_state *st = bpf_map_lookup_elem(&renew_scratch, &zero);
  if (!st) return result_silent(res);
  __builtin_memset(st, 0, sizeof(*st));
  __builtin_memcpy(&st->req, req, sizeof(st->req));
  st->now = now;
  st->lease_ms = clamp_lease_ms(req->lease_ms);
  st->hint.ticket = req->ticket;
  st->outcome = RENEW_RETRY;
  for (int attempt = 0; attempt < LT_MAX_ATTEMPTS + 1; attempt++) {
    enum renew_outcome outcome = lt_renew_attempt();
    if (outcome == RENEW_NEED_SEARCH) {
      lt_search(req->lock_id, req->txn_id, &st->hint);
    } else if (outcome == RENEW_RETRY) {
      stat_inc(LOCKD_STAT_RETRY);
    } else {
      break;
    }
  }
  switch (st->outcome) {
    case RENEW_OK:
      stat_inc(LOCKD_STAT_RENEW);
      result_reply(res, req, LOCKD_OP_RENEWED, LOCKD_STATUS_OK, st->fence, 0);
      res->reply.lease_ms = st->lease_ms;
      return;
    case RENEW_EXPIRED:
      stat_inc(LOCKD_STAT_REJECT_EXPIRED);
      result_reply(res, req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED, 0,
                   0);
      return;
    case RENEW_UNKNOWN:
      reply_not_member(req, res);
      return;
    case RENEW_FOREIGN:
      reply_foreign(req, res);
      return;
    default:
      result_silent(res);
      return;
  }
}

/* Continues a grant-from-head that a previous run had to cut short. Never
 * answered: its only effect is the grants. */
static __always_inline void lt_kick(const struct lockd_request *req, __u64 now,
                                    struct lt_result *res) {
  res->verdict = LT_SILENT;
  if (req->hops >= LOCKD_MAX_KICK_HOPS) {
    stat_inc(LOCKD_STAT_KICK_DROPPED);
    return;
  }
  stat_inc(LOCKD_STAT_KICK);
  grant_from_head(req->lock_id, now, res);
}

#endif /* LOCKD_BPF_LIB_RELEASE_H_ */
