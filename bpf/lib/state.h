/* The per-CPU state of one lock-table operation in progress. Its attempts
 * run as bpf_loop iterations (the verifier then checks one attempt, not
 * every combination of attempts); the iterations find their state in a
 * per-CPU map (bpf/lib/maps.h), since it does not fit the BPF stack beside
 * the caller's. Only one operation runs on a CPU at a time: XDP, TC and test
 * runs all keep bottom halves off. Everything here is a scalar: each attempt
 * looks its pointers up again. */
#ifndef LOCKD_BPF_LIB_STATE_H_
#define LOCKD_BPF_LIB_STATE_H_

#include "bpf/lib/common.h"

enum lt_verdict {
  LT_REPLY = 0, /* send `reply` back to the requester */
  LT_SILENT,    /* no answer now; the client's retransmission gets one */
  LT_TO_TC,     /* (XDP) needs to send several packets: leave it to TC */
};

struct lt_result {
  struct lockd_reply reply;
  __u32 verdict;
  __u32 notices;  /* entries of this CPU's notice_batch filled */
  __u32 kick;     /* compatible waiters may remain: continue with a KICK */
  __u32 progress; /* waiters granted or unlinked by this run */
};

/* Where a request's owner may be, carried between attempts: the ticket it
 * sent or a search found, and whether a search looked at the whole chain
 * and queue of the lock as they were, under the guard, at `version` (with
 * `chain` and `head` first). */
struct member_hint {
  __u64 ticket;
  __u64 chain;
  __u64 head;
  __u32 searched;
  __u32 version;
};

/* WAIT_DIE: a walk of a MIN_DIRTY lock's chain and queue for their oldest
 * member (lt_min_walk), without the guard. Its start is read under the
 * guard; its result counts only if, under a later guard, the lock is still
 * at that version with the same chain and queue. */
struct min_walk {
  __u64 chain; /* where it starts */
  __u64 head;
  __u64 min; /* smallest txn id of the HELD and WAITING blocks walked */
  __u32 version;
  __u32 done; /* walked to the end, unbroken */
};

/* An ACQUIRE in progress. */
struct acquire_state {
  struct lockd_request req;
  __u64 now;
  __u64 block_idx; /* allocated, not yet linked */
  __u64 fence;
  __u64 ticket;
  struct member_hint hint;
  struct min_walk walk;
  __u32 queue_pos;
  __u32 lease_ms;
  __u32 want_block;
  __u32 created;   /* this request's critical section claimed the slot */
  __u32 pool;      /* enum pool_result of the last allocation */
  __u32 outcome;   /* enum acquire_outcome of the last attempt */
  __u32 split_idx; /* ACQ_NEED_SPLIT: the full bucket */
  __u32 split_depth;
  __u32 bucket_full; /* ... and it has no free slot at all */
  __u32 skip_split;  /* it cannot split now: take a spare slot */
  /* An expired inline holder this request ended (lazy expiry). */
  __u64 expired_txn;
  __u64 expired_fence;
  __u64 expired_block; /* its chain block, to free */
  __u64 expired_seq;
  __u32 expired_client;
  __u32 over_quota;   /* the client had its quota of members at the start */
  __u32 reclaim;      /* LOCKD_FLAG_RECLAIM: granted with the request's fence */
  __u32 reclaim_late; /* ... after the grace period: only its own record */
};

/* A RELEASE, or an ending the daemon decided, in progress. */
struct end_state {
  struct lockd_request req;
  __u64 now;
  struct member_hint hint;
  __u64 fence;
  __u64 free_idx; /* a chain block the ending unlinked */
  __u64 seq;
  __u32 client_id; /* of the ended member */
  __u32 kind;      /* enum end_kind */
  __u32 may_grant; /* the caller can send grants (TC, control program) */
  __u32 freed;     /* the lock became idle and lost its slot */
  __u32 outcome;   /* enum end_outcome */
  __u32 reserved;
  struct lockd_notice waiter; /* END_EXPIRE_WAITER: whom to tell */
};

/* A RENEW in progress. */
struct renew_state {
  struct lockd_request req;
  __u64 now;
  struct member_hint hint;
  __u64 fence;
  __u32 lease_ms;
  __u32 outcome; /* enum renew_outcome */
};

/* Values this CPU's program stores and reads back at once: the verifier
 * then stops tracking their exact value, so that the paths that computed
 * different values (a slot index, the depth a walk ended at) are verified
 * once onwards instead of once each (see table_find, lock_locked). */
struct lt_scratch {
  __u32 idx;
  __u32 depth;
  __u32 lo; /* table_find's search bounds */
  __u32 hi;
  __u32 widened;
  __s32 slot;
  __s32 free_slot;
  __u32 result; /* of a split run as a bpf_loop */
  __u32 reserved;
};

/* An entry point's request and result (beside the operation's state, they
 * would not fit the BPF stack). */
struct entry_scratch {
  struct lockd_request req;
  struct lt_result res;
  __u64 key[2]; /* the key the request was signed with: its reply's */
  struct lockd_endpoint us, them; /* TC: the frame's ends */
};

/* A merge's locks between their two buckets' critical sections. */
struct merge_scratch {
  __u64 ids[LOCKD_BUCKET_SLOTS];
  struct lockd_lock slots[LOCKD_BUCKET_SLOTS];
  __u64 fence_floor;
  __u32 used;
  __u32 count;
};

/* Notices decided by this CPU's current program run, sent by its caller. */
struct lockd_notice_batch {
  struct lockd_notice n[LOCKD_MAX_GRANTS];
};

#endif /* LOCKD_BPF_LIB_STATE_H_ */
