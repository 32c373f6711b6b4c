/* lockd ABI: the one definition of the UDP wire format and of the BPF map
 * layouts, shared by the BPF programs (C, clang -target bpf) and the C++
 * daemon, client library, lockctl and tests. Never copy a struct from here:
 * include this header. Every layout is pinned by size and offset asserts that
 * both compilers check.
 *
 * Byte order: the wire message is big-endian (network order). Map values are
 * host order, except addresses (IPv4 address, UDP port), which stay in
 * network order exactly as they appear in packets.
 */
#ifndef LOCKD_ABI_LOCKD_ABI_H_
#define LOCKD_ABI_LOCKD_ABI_H_

#include <linux/bpf.h> /* struct bpf_spin_lock */
#include <linux/types.h>

#ifdef __cplusplus
#define LOCKD_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define LOCKD_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define LOCKD_ASSERT_SIZE(type, size)               \
  LOCKD_STATIC_ASSERT(sizeof(type) == (size), #type \
                      " size is part of the "       \
                      "ABI")
#define LOCKD_ASSERT_OFFSET(type, field, off)                   \
  LOCKD_STATIC_ASSERT(__builtin_offsetof(type, field) == (off), \
                      #type "." #field " offset is part of the ABI")

/* ------------------------------------------------------------------------ */
/* Wire format                                                              */
/* ------------------------------------------------------------------------ */

#define LOCKD_MAGIC 0x4c4b /* "LK" */
#define LOCKD_VERSION 1
#define LOCKD_DEFAULT_PORT 20231

/* Requests carry an opcode below 0x80; replies have the high bit set. */
enum lockd_opcode {
  LOCKD_OP_ACQUIRE = 0x01,
  LOCKD_OP_RELEASE = 0x02,
  LOCKD_OP_RENEW = 0x03,
  /* Grant whatever waiters of lock_id are compatible now. Sent by the
   * datapath to itself when one release frees more waiters than one program
   * run may grant; harmless from anyone, since it only does what the lock's
   * invariants already demand. */
  LOCKD_OP_KICK = 0x04,

  LOCKD_OP_GRANTED = 0x81,
  LOCKD_OP_QUEUED = 0x82,
  LOCKD_OP_REJECTED = 0x83,
  LOCKD_OP_RELEASED = 0x84,
  LOCKD_OP_RENEWED = 0x85,
};

enum lockd_mode {
  LOCKD_MODE_NONE = 0,
  LOCKD_MODE_SHARED = 1,
  LOCKD_MODE_EXCLUSIVE = 2,
};

/* What an ACQUIRE does when it conflicts with holders or waiters. */
enum lockd_policy {
  LOCKD_POLICY_WAIT = 0,     /* join the FIFO queue */
  LOCKD_POLICY_NO_WAIT = 1,  /* reject at once (DINT-Lock behaviour) */
  LOCKD_POLICY_WAIT_DIE = 2, /* wait if older than every member, else die */
  LOCKD_POLICY_COUNT = 3,
};

/* Reason carried by replies (status field). */
enum lockd_status {
  LOCKD_STATUS_OK = 0,
  LOCKD_STATUS_CONFLICT = 1,      /* NO_WAIT request met a conflict */
  LOCKD_STATUS_DIE = 2,           /* WAIT_DIE request younger than a member */
  LOCKD_STATUS_NOT_HOLDER = 3,    /* release/renew by a non-holder */
  LOCKD_STATUS_LEASE_EXPIRED = 4, /* the holder's lease ran out */
  LOCKD_STATUS_NO_CAPACITY = 5,   /* no room anywhere, kernel or daemon */
  LOCKD_STATUS_WAIT_EXPIRED = 6,  /* the waiter's deadline passed */
  LOCKD_STATUS_FORCE_RELEASED = 7,
  LOCKD_STATUS_UPGRADE_CONFLICT = 8, /* S->X upgrade while others hold */
  LOCKD_STATUS_BAD_REQUEST = 9,
  LOCKD_STATUS_COUNT = 10,
};

/* Message flags. Clients send 0; anything else is malformed. */
#define LOCKD_FLAG_HANDOFF 0x01 /* set by the datapath on XDP_PASS to lockd */

/* Why the datapath handed a request to user space (status field of a
 * message whose flags carry LOCKD_FLAG_HANDOFF). */
enum lockd_handoff {
  LOCKD_HANDOFF_NONE = 0,
  LOCKD_HANDOFF_POOL_FULL = 1,   /* no pool block for a waiter */
  LOCKD_HANDOFF_TABLE_FULL = 2,  /* no room for a new lock entry */
  LOCKD_HANDOFF_OWNERS_FULL = 3, /* no room for an owner record */
  LOCKD_HANDOFF_USER_OWNED = 4,  /* the lock is served by user space now */
  LOCKD_HANDOFF_CONTENDED = 5,   /* queue kept changing under the walk */
  LOCKD_HANDOFF_COUNT = 6,
};

struct lockd_msg {
  __be16 magic;
  __u8 version;
  __u8 opcode;      /* enum lockd_opcode */
  __u8 mode;        /* enum lockd_mode */
  __u8 policy;      /* enum lockd_policy */
  __u8 status;      /* enum lockd_status, or enum lockd_handoff on hand-off */
  __u8 flags;       /* LOCKD_FLAG_* */
  __be32 seq;       /* request sequence number, echoed in the reply */
  __be32 lease_ms;  /* asked for (request) / granted (GRANTED, RENEWED) */
  __be32 wait_ms;   /* longest time to wait in the queue, 0 = no limit */
  __be32 queue_pos; /* QUEUED: waiters ahead at enqueue time */
  __be64 lock_id;
  __be64 txn_id; /* owner identity; for WAIT_DIE, smaller = older */
  __be64 fence;  /* GRANTED/RENEWED/RELEASED: the holder's fencing token */
};
LOCKD_ASSERT_SIZE(struct lockd_msg, 48);
LOCKD_ASSERT_OFFSET(struct lockd_msg, opcode, 3);
LOCKD_ASSERT_OFFSET(struct lockd_msg, mode, 4);
LOCKD_ASSERT_OFFSET(struct lockd_msg, status, 6);
LOCKD_ASSERT_OFFSET(struct lockd_msg, flags, 7);
LOCKD_ASSERT_OFFSET(struct lockd_msg, seq, 8);
LOCKD_ASSERT_OFFSET(struct lockd_msg, lease_ms, 12);
LOCKD_ASSERT_OFFSET(struct lockd_msg, wait_ms, 16);
LOCKD_ASSERT_OFFSET(struct lockd_msg, queue_pos, 20);
LOCKD_ASSERT_OFFSET(struct lockd_msg, lock_id, 24);
LOCKD_ASSERT_OFFSET(struct lockd_msg, txn_id, 32);
LOCKD_ASSERT_OFFSET(struct lockd_msg, fence, 40);

/* ------------------------------------------------------------------------ */
/* Map layouts                                                              */
/* ------------------------------------------------------------------------ */

/* Lock table value (map "locks", key: __u64 lock id). Every field after
 * `guard` is written only while holding it; reads without it are hints that
 * a critical section checks again. `version` grows on every change so that
 * readers outside the lock can detect a torn view. */
#define LOCKD_LOCK_USER_OWNED 0x01 /* user space serves this lock for now */

struct lockd_lock {
  struct bpf_spin_lock guard;
  __u8 mode;  /* enum lockd_mode held now; NONE when holders == 0 */
  __u8 flags; /* LOCKD_LOCK_* */
  __u16 reserved;
  __u32 holders;   /* number of holders in `mode` */
  __u32 queue_len; /* waiters linked from head to tail, cancelled included */
  __u64 head;      /* pool block index of the oldest waiter, 0 = empty */
  __u64 tail;      /* pool block index of the newest waiter, 0 = empty */
  __u64 version;   /* bumped on every change */
  __u64 fence;     /* last fencing token handed out; only grows */
  /* WAIT_DIE: a lower bound of the txn ids of all holders and waiters; may
   * only fall while the lock is busy, reset when it becomes idle. */
  __u64 min_txn;
};
LOCKD_ASSERT_SIZE(struct lockd_lock, 56);
LOCKD_ASSERT_OFFSET(struct lockd_lock, holders, 8);
LOCKD_ASSERT_OFFSET(struct lockd_lock, head, 16);
LOCKD_ASSERT_OFFSET(struct lockd_lock, min_txn, 48);

/* Owner records (map "owners"): one per (lock, txn) that holds or waits.
 * They make retransmissions idempotent and let only holders release. */
struct lockd_owner_key {
  __u64 lock_id;
  __u64 txn_id;
};
LOCKD_ASSERT_SIZE(struct lockd_owner_key, 16);

enum lockd_owner_state {
  LOCKD_OWNER_CLAIMED = 0, /* inserted, decision in progress on some CPU */
  LOCKD_OWNER_QUEUED = 1,
  LOCKD_OWNER_HELD = 2,
  LOCKD_OWNER_GONE = 3, /* released or cancelled; being deleted */
};

struct lockd_owner {
  struct lockd_owner_key key; /* copy of the map key: detects reuse */
  __u8 state;                 /* enum lockd_owner_state */
  __u8 mode;
  __u8 policy;
  __u8 reserved;
  __u32 seq;              /* sequence number of the request that created it */
  __u64 fence;            /* valid once HELD */
  __u64 block;            /* pool block while QUEUED */
  __u64 since_ns;         /* enqueue or grant time (CLOCK_MONOTONIC) */
  __u64 lease_expires_ns; /* valid once HELD */
  __u32 lease_ms;
  __be32 addr; /* client's IPv4 address */
  __be16 port; /* client's UDP port */
  __u8 mac[6]; /* client's (or its router's) Ethernet address */
};
LOCKD_ASSERT_SIZE(struct lockd_owner, 72);
LOCKD_ASSERT_OFFSET(struct lockd_owner, state, 16);
LOCKD_ASSERT_OFFSET(struct lockd_owner, fence, 24);
LOCKD_ASSERT_OFFSET(struct lockd_owner, lease_expires_ns, 48);
LOCKD_ASSERT_OFFSET(struct lockd_owner, addr, 60);

/* Recently released (LRU map "released"): answers a retransmitted RELEASE
 * with RELEASED instead of NOT_HOLDER, and tells a holder whose hold was
 * ended for it (lease swept, force-released) why. */
struct lockd_released {
  __u64 fence;
  __u32 seq;
  __u8 status; /* OK: released or cancelled; LEASE_EXPIRED; FORCE_RELEASED */
  __u8 reserved[3];
};
LOCKD_ASSERT_SIZE(struct lockd_released, 16);

/* Kerby memory pool (map "pool", BPF_F_NO_PREALLOC hash keyed by a block
 * index that only grows; no free list). A block is a fixed-size unit;
 * variable-size data is a chain of blocks linked by `next`. */
/* 48 B of payload make a 64-B block value, which the kernel's allocator
 * stores in 128 B per element (a 72-B value would take 192 B). */
#define LOCKD_BLOCK_DATA 48

/* A wait-queue entry, the payload of one pool block (its lock is the one
 * whose queue links it). Written completely before the block is linked;
 * afterwards only `cancelled` changes (under the lock's guard). */
struct lockd_waiter {
  __u64 txn_id;
  __u64 enqueued_ns;
  __u64 deadline_ns; /* 0 = waits without limit */
  __u32 seq;
  __u32 lease_ms;
  __be32 addr;
  __be16 port;
  __u8 mac[6];
  __u8 mode;
  __u8 policy;
  __u8 cancelled;
  __u8 reserved;
};
LOCKD_ASSERT_SIZE(struct lockd_waiter, LOCKD_BLOCK_DATA);

struct lockd_block {
  __u64 idx;  /* the block's own index: a reused element has another */
  __u64 next; /* index of the next block in the chain, 0 = last */
  union {
    struct lockd_waiter waiter;
    __u8 bytes[LOCKD_BLOCK_DATA];
  };
};
LOCKD_ASSERT_SIZE(struct lockd_block, 64);
LOCKD_ASSERT_OFFSET(struct lockd_block, waiter, 16);

/* Kerby allocation map (map "allocs"): key -> the blocks of one object. */
#define LOCKD_ALLOC_MAX_BLOCKS 8
struct lockd_alloc {
  __u32 size;   /* bytes */
  __u32 blocks; /* used entries of idx */
  __u64 idx[LOCKD_ALLOC_MAX_BLOCKS];
};
LOCKD_ASSERT_SIZE(struct lockd_alloc, 72);

/* ------------------------------------------------------------------------ */
/* Control channel: daemon -> datapath                                      */
/* ------------------------------------------------------------------------ */

/* The daemon changes kernel-owned locks only through the control program
 * (lockd_ctl), which it runs with BPF_PROG_TEST_RUN on a struct lockd_ctl:
 * the same lock-table code as the packet path, under the same per-lock
 * guard, so the kernel and the daemon never decide for one lock at once. */

/* Waiters one datapath run may grant; more continue through a KICK. */
#define LOCKD_MAX_GRANTS 16

enum lockd_ctl_op {
  LOCKD_CTL_TAKEOVER = 1,      /* flag the lock USER_OWNED, return its state */
  LOCKD_CTL_GIVE_BACK = 2,     /* install holders-only state, clear the flag */
  LOCKD_CTL_EXPIRE_HOLDER = 3, /* end a hold whose lease ran out */
  LOCKD_CTL_EXPIRE_WAITER = 4, /* cancel a wait whose deadline passed */
  LOCKD_CTL_FORCE_RELEASE = 5, /* end a hold for an operator */
  LOCKD_CTL_KICK = 6,          /* grant whatever is compatible now */
};

enum lockd_ctl_result {
  LOCKD_CTL_OK = 0,
  LOCKD_CTL_NOT_FOUND = 1, /* no such lock, holder or waiter */
  LOCKD_CTL_NOT_DUE = 2,   /* lease or wait deadline not passed yet */
  LOCKD_CTL_BAD_STATE = 3, /* e.g. lock already (or not) user-owned */
  LOCKD_CTL_RETRY = 4,     /* the lock kept changing: try again */
};

/* Someone the daemon must send a packet to after a control operation. */
struct lockd_ctl_notice {
  __u64 txn_id;
  __u64 fence;
  __u32 seq;
  __u32 lease_ms;
  __be32 addr;
  __be16 port;
  __u8 mode;
  __u8 policy;
};
LOCKD_ASSERT_SIZE(struct lockd_ctl_notice, 32);

struct lockd_ctl {
  __u32 op;     /* enum lockd_ctl_op */
  __u32 result; /* enum lockd_ctl_result */
  __u64 lock_id;
  __u64 txn_id;
  /* TAKEOVER: the lock as it was flagged. GIVE_BACK: mode, holders, fence
   * and min_txn to install (the queue must be empty). */
  __u8 mode;
  __u8 reserved[3];
  __u32 holders;
  __u32 queue_len;
  __u32 grants; /* entries of `granted` filled */
  __u64 head;
  __u64 fence;
  __u64 min_txn;
  __u32 kick;     /* compatible waiters may remain: send LOCKD_CTL_KICK */
  __u32 notified; /* EXPIRE_WAITER: `waiter` holds whom to tell */
  struct lockd_ctl_notice waiter;
  struct lockd_ctl_notice granted[LOCKD_MAX_GRANTS];
};
LOCKD_ASSERT_SIZE(struct lockd_ctl, 72 + 32 + 32 * LOCKD_MAX_GRANTS);

/* Per-CPU counters (map "stats", PERCPU_ARRAY indexed by enum lockd_stat).
 * Every outcome the datapath can produce has one. One list, expanded into
 * the enum here and into names on the C++ side: X(ENUM_SUFFIX, "name"). */
#define LOCKD_STATS(X)                                                         \
  X(RX, "rx")                               /* packets to lockd's port */      \
  X(MALFORMED, "malformed")                 /* truncated/bad magic: dropped */ \
  X(BAD_VERSION, "bad_version")             /* wrong version: dropped */       \
  X(ACQUIRE, "acquire")                     /* ACQUIRE requests processed */   \
  X(GRANT_IMMEDIATE, "grant_immediate")     /* granted on arrival */           \
  X(QUEUED, "queued")                       /* enqueued as a waiter */         \
  X(REJECT_CONFLICT, "reject_conflict")     /* NO_WAIT conflict */             \
  X(REJECT_DIE, "reject_die")               /* WAIT_DIE: younger died */       \
  X(REJECT_UPGRADE, "reject_upgrade")       /* S->X upgrade refused */         \
  X(ACQUIRE_DUP, "acquire_dup")             /* retransmit answered again */    \
  X(ACQUIRE_INFLIGHT, "acquire_inflight")   /* dup of one being decided */     \
  X(UPGRADE, "upgrade")                     /* S->X upgrade granted */         \
  X(RELEASE, "release")                     /* RELEASE requests processed */   \
  X(RELEASED, "released")                   /* releases that freed a hold */   \
  X(RELEASE_DUP, "release_dup")             /* retransmit answered again */    \
  X(CANCELLED, "cancelled")                 /* RELEASE by a waiter */          \
  X(REJECT_NOT_HOLDER, "reject_not_holder") /* by a non-holder */              \
  X(REJECT_EXPIRED, "reject_expired")       /* after the lease ran out */      \
  X(RENEW, "renew")                         /* leases renewed */               \
  X(GRANT_FROM_QUEUE, "grant_from_queue")   /* waiters granted by release */   \
  X(GRANT_SENT, "grant_sent")               /* GRANTED packets sent by TC */   \
  X(GRANT_SEND_FAILED, "grant_send_failed") /* clone_redirect failed */        \
  X(SKIPPED_CANCELLED, "skipped_cancelled") /* cancelled waiters unlinked */   \
  X(RELEASE_TO_TC, "release_to_tc")         /* XDP passed release to TC */     \
  X(KICK, "kick")                           /* continuation kicks served */    \
  X(KICK_SENT, "kick_sent")                 /* continuation kicks sent */      \
  X(KICK_SEND_FAILED, "kick_send_failed")   /* a kick could not be sent */     \
  X(KICK_DROPPED, "kick_dropped")           /* kick chain over its hops */     \
  X(RETRY, "retry")                         /* queue changed: walk retried */  \
  X(HANDOFF_POOL_FULL, "handoff_pool_full") /* to user: pool full */           \
  X(HANDOFF_TABLE_FULL, "handoff_table_full")   /* to user: table full */      \
  X(HANDOFF_OWNERS_FULL, "handoff_owners_full") /* to user: owners full */     \
  X(HANDOFF_USER_OWNED, "handoff_user_owned")   /* to user: lock owned */      \
  X(HANDOFF_CONTENDED, "handoff_contended")     /* to user: retries spent */   \
  X(POOL_ALLOC, "pool_alloc")                   /* pool blocks allocated */    \
  X(POOL_FREE, "pool_free")                     /* pool blocks freed */        \
  X(POOL_ALLOC_FAILED, "pool_alloc_failed")     /* pool insert refused */

#define LOCKD_STAT_ENUM_ENTRY(suffix, name) LOCKD_STAT_##suffix,
enum lockd_stat { LOCKD_STATS(LOCKD_STAT_ENUM_ENTRY) LOCKD_STAT_COUNT };
#undef LOCKD_STAT_ENUM_ENTRY

#endif /* LOCKD_ABI_LOCKD_ABI_H_ */
