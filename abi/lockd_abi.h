/* lockd ABI: the one definition of the UDP wire format, of the request and
 * reply vocabulary, of the BPF map layouts and of the control channel, shared
 * by the BPF programs (C, clang -target bpf) and the C++ daemon, client
 * library, lockctl, reference model and tests. Never copy a struct from here:
 * include this header. Every layout is pinned by size and offset asserts that
 * both compilers check.
 *
 * Byte order: the wire message is big-endian (network order). Everything
 * else is host order, except addresses (IPv4 address, UDP port), which stay
 * in network order exactly as they appear in packets.
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
/* Protocol constants shared by the datapath, the daemon and the clients    */
/* ------------------------------------------------------------------------ */

#define LOCKD_MAGIC 0x4c4b /* "LK" */
#define LOCKD_VERSION 3
#define LOCKD_DEFAULT_PORT 20231

#define LOCKD_DEFAULT_LEASE_MS 10000
#define LOCKD_MAX_LEASE_MS 300000

/* Waiters one datapath run may grant; more continue through a KICK. */
#define LOCKD_MAX_GRANTS 16
/* A chain of KICKs that grant and unlink nothing, longer than this, is
 * dropped (and counted); a KICK that made progress starts the count again. */
#define LOCKD_MAX_KICK_HOPS 64
/* skb->mark of the datapath's own KICKs. */
#define LOCKD_KICK_MARK 0x4c4b4b49u /* "LKKI" */

/* Tickets (see struct lockd_msg): 0 = unknown; LOCKD_TICKET_INLINE = the
 * holder kept in the lock's slot; anything else is a pool block index. */
#define LOCKD_TICKET_NONE 0ULL
#define LOCKD_TICKET_INLINE 1ULL

/* ------------------------------------------------------------------------ */
/* Wire format                                                              */
/* ------------------------------------------------------------------------ */

/* Requests carry an opcode below 0x80; replies have the high bit set. */
enum lockd_opcode {
  LOCKD_OP_ACQUIRE = 0x01,
  LOCKD_OP_RELEASE = 0x02,
  LOCKD_OP_RENEW = 0x03,
  /* Grant whatever waiters of lock_id are compatible now. Sent by the
   * datapath to itself when one release frees more waiters than one program
   * run may grant, marked LOCKD_KICK_MARK (skb->mark, which no packet from
   * the network carries); any other KICK is dropped (forged_kick). */
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
  LOCKD_STATUS_NO_CAPACITY = 5,   /* the server's memory budget is used up */
  LOCKD_STATUS_WAIT_EXPIRED = 6,  /* the waiter's deadline passed */
  LOCKD_STATUS_FORCE_RELEASED = 7,
  LOCKD_STATUS_UPGRADE_CONFLICT = 8, /* S->X upgrade while others hold */
  LOCKD_STATUS_BAD_REQUEST = 9,
  LOCKD_STATUS_QUOTA = 10, /* the client's holds + waits are at its quota */
  /* The server restarted without its state and is in its grace period: it
   * grants only reclaims of holds from before (LOCKD_FLAG_RECLAIM). Retry
   * after lease_ms (the grace left). */
  LOCKD_STATUS_GRACE = 11,
  LOCKD_STATUS_COUNT = 12,
};

/* Request flags. Replies carry 0. */
/* A copy of a request sent before (same seq): the server may have served
 * it already, so it looks for the owner's record even without a ticket. */
#define LOCKD_FLAG_RETRANSMIT 0x01
/* ACQUIRE: re-establish a hold granted by an earlier epoch of the server
 * (docs/semantics.md, "Restarts"), with the hold's fence in `fence`. Granted
 * only during the grace period, never queued. */
#define LOCKD_FLAG_RECLAIM 0x02
#define LOCKD_REQUEST_FLAGS (LOCKD_FLAG_RETRANSMIT | LOCKD_FLAG_RECLAIM)

struct lockd_msg {
  __be16 magic;
  __u8 version;
  __u8 opcode;      /* enum lockd_opcode */
  __u8 mode;        /* enum lockd_mode */
  __u8 policy;      /* enum lockd_policy */
  __u8 status;      /* enum lockd_status; 0 on requests */
  __u8 flags;       /* LOCKD_FLAG_* */
  __be32 client_id; /* who sent the request / whom the reply is for;
                       LOCKD_CLIENT_NONE = unauthenticated (lab subnets) */
  __be32 lease_ms;  /* asked for (request) / granted (GRANTED, RENEWED) /
                       grace left (REJECTED GRACE) */
  /* Request: longest time to wait in the queue, 0 = no limit. Reply: the
   * server's epoch (lockd_epoch_of its table's fence base): it changes when
   * the server starts without its state, which its holders then reclaim. */
  __be32 wait_ms;
  __be32 queue_pos; /* QUEUED: waiters ahead at enqueue time */
  /* Request: the client's sequence number, new for every transmission (a
   * retransmission too) and increasing, so that the server's replay window
   * drops a copy it has seen. Reply: the request's, echoed; GRANTED: that
   * of the ACQUIRE that made the waiter. */
  __be64 seq;
  __be64 lock_id;
  __be64 txn_id; /* the owner's transaction; for WAIT_DIE, smaller = older */
  __be64 fence;  /* GRANTED/RENEWED/RELEASED: the holder's fencing token;
                    ACQUIRE with LOCKD_FLAG_RECLAIM: the hold's */
  /* Where the server keeps this owner's record: set by GRANTED and QUEUED,
   * echoed by the owner in its later requests for the same lock so that the
   * server finds the record in O(1). A hint: a stale or zero ticket costs a
   * search, never a wrong answer. */
  __be64 ticket;
  /* SipHash-2-4 of bytes [0, LOCKD_MAC_BYTES) under the client's key
   * (abi/siphash.h), its 8 output bytes as SipHash writes them; 0 when
   * client_id is LOCKD_CLIENT_NONE. */
  __u64 mac;
};
LOCKD_ASSERT_SIZE(struct lockd_msg, 72);
LOCKD_ASSERT_OFFSET(struct lockd_msg, opcode, 3);
LOCKD_ASSERT_OFFSET(struct lockd_msg, mode, 4);
LOCKD_ASSERT_OFFSET(struct lockd_msg, status, 6);
LOCKD_ASSERT_OFFSET(struct lockd_msg, flags, 7);
LOCKD_ASSERT_OFFSET(struct lockd_msg, client_id, 8);
LOCKD_ASSERT_OFFSET(struct lockd_msg, lease_ms, 12);
LOCKD_ASSERT_OFFSET(struct lockd_msg, wait_ms, 16);
LOCKD_ASSERT_OFFSET(struct lockd_msg, queue_pos, 20);
LOCKD_ASSERT_OFFSET(struct lockd_msg, seq, 24);
LOCKD_ASSERT_OFFSET(struct lockd_msg, lock_id, 32);
LOCKD_ASSERT_OFFSET(struct lockd_msg, txn_id, 40);
LOCKD_ASSERT_OFFSET(struct lockd_msg, fence, 48);
LOCKD_ASSERT_OFFSET(struct lockd_msg, ticket, 56);
LOCKD_ASSERT_OFFSET(struct lockd_msg, mac, 64);
/* The bytes the MAC covers: everything before it. */
#define LOCKD_MAC_BYTES 64

/* Client identities (docs/security.md). A client id names one client key;
 * LOCKD_CLIENT_NONE is every unauthenticated sender, served only from the
 * subnets the operator opened for labs. */
#define LOCKD_CLIENT_NONE 0u

/* ------------------------------------------------------------------------ */
/* The request/reply vocabulary (host order)                                */
/* ------------------------------------------------------------------------ */

/* One end of a conversation, as it appears in headers (network order). A
 * member whose endpoint is all zero and flagged LOCKD_MEMBER_LOCAL is a gRPC
 * caller inside the daemon. */
struct lockd_endpoint {
  __u8 mac[6];
  __be16 port;
  __be32 addr;
};
LOCKD_ASSERT_SIZE(struct lockd_endpoint, 12);

/* A request, decoded: what the packet path parses, what the daemon hands to
 * the control program for gRPC callers, what the reference model takes. */
struct lockd_request {
  __u64 lock_id;
  __u64 txn_id;
  __u64 ticket;
  __u64 fence; /* FORCE_RELEASE: the hold's fence, 0 = any */
  __u64 seq;
  __u32 lease_ms;
  __u32 wait_ms;
  __u32 hops; /* KICK: continuation count (carried in queue_pos) */
  __u8 opcode;
  __u8 mode;
  __u8 policy;
  __u8 flags;        /* LOCKD_FLAG_* */
  __u8 member_flags; /* LOCKD_MEMBER_* the new member gets (gRPC: LOCAL) */
  __u8 reserved[3];
  struct lockd_endpoint from; /* where replies and grants go */
  __u32 client_id;            /* authenticated sender (owner binding) */
};
LOCKD_ASSERT_SIZE(struct lockd_request, 80);

/* A reply, or a GRANTED for a waiter that some release let in. */
struct lockd_reply {
  __u64 lock_id;
  __u64 txn_id;
  __u64 fence;
  __u64 ticket;
  __u64 seq;
  __u64 mac; /* of the wire message, under client_id's key (0: none) */
  __u32 lease_ms;
  __u32 queue_pos;
  __u32 client_id;
  __u8 opcode;
  __u8 status;
  __u8 mode;
  __u8 policy;
};
LOCKD_ASSERT_SIZE(struct lockd_reply, 64);

/* A GRANTED (or, from the control program's expiry, a REJECTED/WAIT_EXPIRED)
 * that must reach a member other than the requester. */
struct lockd_notice {
  struct lockd_reply reply;
  struct lockd_endpoint to;
  __u8 local; /* the member is a gRPC caller: no packet, tell the daemon */
  __u8 reserved[3];
};
LOCKD_ASSERT_SIZE(struct lockd_notice, 80);

/* ------------------------------------------------------------------------ */
/* Map layouts                                                              */
/* ------------------------------------------------------------------------ */

/* A holder or waiter of one lock ("member"). The lock's first holder lives
 * in the lock's slot; further holders (shared) and every waiter live in pool
 * blocks. A member's fields are written under its lock's guard. */
enum lockd_member_state {
  LOCKD_MEMBER_FREE = 0, /* inline slot unused */
  LOCKD_MEMBER_WAITING = 1,
  LOCKD_MEMBER_CANCELLED = 2, /* left the queue; unlinked at the head */
  LOCKD_MEMBER_HELD = 3,
};

#define LOCKD_MEMBER_LOCAL 0x01 /* a gRPC caller inside the daemon */

struct lockd_member {
  __u64 txn_id;
  __u64 fence;      /* holder: its grant's fence; waiter: 0 */
  __u64 since_ns;   /* holder: grant time; waiter: enqueue time */
  __u64 expires_ns; /* holder: lease end; waiter: wait deadline, 0 = none */
  __u64 seq;        /* of the ACQUIRE that made it a member */
  __u32 lease_ms;   /* holder: lease granted; waiter: lease it will get */
  __u32 client_id;  /* the owner's client: only it may act on the record */
  __be32 addr;
  __be16 port;
  __u8 mac[6];
  __u8 state;  /* enum lockd_member_state */
  __u8 mode;   /* enum lockd_mode */
  __u8 policy; /* enum lockd_policy, echoed in its GRANTED */
  __u8 flags;  /* LOCKD_MEMBER_* */
};
LOCKD_ASSERT_SIZE(struct lockd_member, 64);
LOCKD_ASSERT_OFFSET(struct lockd_member, seq, 32);
LOCKD_ASSERT_OFFSET(struct lockd_member, client_id, 44);
LOCKD_ASSERT_OFFSET(struct lockd_member, addr, 48);
LOCKD_ASSERT_OFFSET(struct lockd_member, state, 60);

/* lockd_lock.flags: min_txn may be below every member's txn id (the member
 * whose txn id it was left); a WAIT_DIE request that needs the exact
 * minimum computes it (docs/semantics.md, "WAIT_DIE"). */
#define LOCKD_LOCK_MIN_DIRTY 0x01

/* One lock, in a slot of a table bucket. Written only under the bucket's
 * guard. The lock exists exactly while it has a holder or a waiter: the
 * program that leaves it idle frees the slot in the same critical section. */
struct lockd_lock {
  __u64 fence;     /* last fencing token handed out; only grows */
  __u64 head;      /* pool block of the oldest waiter, 0 = empty queue */
  __u64 tail;      /* pool block of the newest waiter, 0 = empty queue */
  __u64 chain;     /* pool block of the first extra holder, 0 = none */
  __u64 min_txn;   /* WAIT_DIE: the oldest member's txn id (MIN_DIRTY: at
                    * most that); all ones while idle */
  __u32 holders;   /* the inline holder plus the chain */
  __u32 queue_len; /* waiters linked from head to tail, cancelled included */
  __u32 version;   /* bumped on every change: readers detect torn views */
  __u8 mode;       /* enum lockd_mode held now; NONE when holders == 0 */
  __u8 flags;      /* LOCKD_LOCK_* */
  __u16 reserved;
  struct lockd_member holder; /* inline holder; state FREE when unused */
};
LOCKD_ASSERT_SIZE(struct lockd_lock, 120);
LOCKD_ASSERT_OFFSET(struct lockd_lock, holders, 40);
LOCKD_ASSERT_OFFSET(struct lockd_lock, holder, 56);

/* The lock table: a hash table of buckets that grows and shrinks one bucket
 * at a time (a split or a merge), decided by the datapath itself. Bucket b
 * serves the lock ids whose hash h has h mod 2^depth(b) == b. Buckets live in
 * small array segments (inner maps of an ARRAY_OF_MAPS): the daemon adds a
 * segment when a split asks for it, and removes it once merges have left it
 * unused, so that memory follows the buckets in use, also where a few deep
 * buckets sit far apart. */
#define LOCKD_BUCKET_SLOTS 8
#define LOCKD_TABLE_BASE_DEPTH 8 /* buckets 0..255 always exist */
#define LOCKD_TABLE_MAX_DEPTH 20 /* up to 2^20 buckets, 8M lock slots */
#define LOCKD_TABLE_SEG_SHIFT 6  /* 64 buckets (67 KB) per segment */
#define LOCKD_TABLE_SEG_BUCKETS (1u << LOCKD_TABLE_SEG_SHIFT)
#define LOCKD_TABLE_MAX_SEGMENTS \
  (1u << (LOCKD_TABLE_MAX_DEPTH - LOCKD_TABLE_SEG_SHIFT))
/* Segments that always exist: the base buckets and the images of their
 * first splits (depth BASE + 1), so that no first split waits. */
#define LOCKD_TABLE_KEPT_SEGMENTS \
  (1u << (LOCKD_TABLE_BASE_DEPTH + 1 - LOCKD_TABLE_SEG_SHIFT))
LOCKD_STATIC_ASSERT(LOCKD_TABLE_BASE_DEPTH >= LOCKD_TABLE_SEG_SHIFT,
                    "the base buckets fill whole segments");

/* A table segment's state (map "table_seg_state", per segment, mmapable):
 * the datapath marks one it needs ASKED (once) and sends TABLE_GROW; the
 * daemon marks one it is about to remove RETIRING, which splits do not use,
 * and waits for every program that could have missed the mark. */
#define LOCKD_SEG_IDLE 0
#define LOCKD_SEG_ASKED 1
#define LOCKD_SEG_RETIRING 2

/* The hash that places a lock id in the table (splitmix64's finalizer over
 * the seeded id: every bit of the id reaches the low bits that pick the
 * bucket). The datapath and the daemon's readers must agree on it. */
static inline __u64 lockd_table_hash(__u64 lock_id, __u64 seed) {
  __u64 x = lock_id ^ seed;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct lockd_bucket {
  struct bpf_spin_lock guard;
  __u8 depth; /* hash bits this bucket serves; 0 = not in use */
  __u8 used;  /* bit i: slot i holds a lock */
  __u8 count; /* bits set in `used` */
  __u8 flags;
  __u32 index;   /* this bucket's number (set with depth) */
  __u32 version; /* bumped when a slot is claimed or freed, or locks move */
  /* At least every fence ever handed out for a lock that no longer has a
   * slot and whose id this bucket serves: a lock created here starts above
   * it, so fences never repeat or go back across delete and re-create. */
  __u64 fence_floor;
  __u64 ids[LOCKD_BUCKET_SLOTS];
  struct lockd_lock slots[LOCKD_BUCKET_SLOTS];
};
LOCKD_ASSERT_SIZE(struct lockd_bucket, 24 + 8 * 8 + 8 * 120);
LOCKD_ASSERT_OFFSET(struct lockd_bucket, fence_floor, 16);
LOCKD_ASSERT_OFFSET(struct lockd_bucket, ids, 24);
LOCKD_ASSERT_OFFSET(struct lockd_bucket, slots, 88);

/* The slot of `lock_id` in a bucket, or -1: the datapath's look-up (under
 * the guard, or racily as a hint) and the daemon's readers' (on a copy). */
static inline __attribute__((always_inline)) int lockd_bucket_find(
    const struct lockd_bucket *b, __u64 lock_id) {
  for (int i = 0; i < LOCKD_BUCKET_SLOTS; i++)
    if ((b->used & (1u << i)) && b->ids[i] == lock_id) return i;
  return -1;
}

/* The Kerby memory pool: fixed-size blocks in hash-map segments, keyed by a
 * block index that only grows (no free list). A block's index carries its
 * segment in the high 32 bits, so a segment is found without a search, and a
 * drained segment is dropped whole. Segment ids are never reused. */
#define LOCKD_POOL_SEG_SHIFT 32
#define LOCKD_POOL_SLOTS 64 /* segments alive at once */
#define LOCKD_BLOCK_DATA 64

struct lockd_block {
  __u64 idx;     /* the block's own index: a reused element has another */
  __u64 next;    /* queue: next waiter; chain: next holder; 0 = last */
  __u64 prev;    /* chain: previous holder; 0 = first */
  __u64 lock_id; /* the lock whose queue or chain links it */
  union {
    struct lockd_member m;
    __u8 bytes[LOCKD_BLOCK_DATA];
  };
};
LOCKD_ASSERT_SIZE(struct lockd_block, 96);
LOCKD_ASSERT_OFFSET(struct lockd_block, m, 32);

/* One pool segment's bookkeeping (map "pool_info", indexed by slot = id mod
 * LOCKD_POOL_SLOTS). The daemon fills id and capacity before it inserts the
 * segment's map; the datapath keeps the rest. */
struct lockd_pool_seg {
  __u32 id;       /* segment id, 0 = slot empty */
  __u32 capacity; /* blocks the segment's map holds */
  __u64 next;     /* low 32 bits of the next block index handed out */
  __s64 live;     /* blocks allocated and not yet freed */
  __u32 low_water_signalled; /* the daemon was asked for a successor */
  __u32 reserved;
};
LOCKD_ASSERT_SIZE(struct lockd_pool_seg, 32);

/* Shared state of the datapath (map "config", one element, mmapable: the
 * daemon reads and writes single fields atomically while programs run). The
 * daemon writes hash_seed, fence_base and pool_map_flags once, and
 * pool_current and at_budget when it adds or removes segments; the programs
 * write the rest. */
#define LOCKD_BUDGET_TABLE 0x01 /* a full bucket that cannot split: refuse */
#define LOCKD_BUDGET_POOL 0x02  /* a full pool: refuse */

struct lockd_config {
  __u64 hash_seed;  /* lock id -> bucket hashing */
  __u64 fence_base; /* fence_floor of the table's first buckets */
  __u32 min_depth;  /* hints: buckets in use have depths in [min, max] */
  __u32 max_depth;
  __u32 resizing;       /* 1 while one CPU splits or merges a bucket */
  __u32 pool_current;   /* segment new blocks are taken from */
  __u32 at_budget;      /* LOCKD_BUDGET_*: the daemon will add no segment */
  __u32 pool_map_flags; /* map_flags of every pool segment */
  __s64 leaves[LOCKD_TABLE_MAX_DEPTH + 1]; /* buckets in use per depth */
  /* Until then (CLOCK_MONOTONIC ns), ACQUIREs other than reclaims are
   * refused with LOCKD_STATUS_GRACE; 0 = no grace. Set by the daemon when
   * it starts a table without the state of its predecessor; the daemon may
   * end it early (a store of 0). */
  __u64 grace_until_ns;
};
LOCKD_ASSERT_SIZE(struct lockd_config, 48 + 8 * (LOCKD_TABLE_MAX_DEPTH + 1));
LOCKD_ASSERT_OFFSET(struct lockd_config, grace_until_ns,
                    40 + 8 * (LOCKD_TABLE_MAX_DEPTH + 1));

/* The epoch replies carry (struct lockd_msg.wait_ms): the table's fence base
 * in milliseconds, cut to 32 bits and never 0. A table started without its
 * predecessor's state has a later fence base (docs/semantics.md,
 * "Restarts"), so a client that sees the epoch change knows its holds there
 * must be reclaimed. 0 in a reply: a server that does not say. */
static inline __u32 lockd_epoch_of(__u64 fence_base) {
  __u32 epoch = (__u32)(fence_base / 1000000ULL);
  return epoch ? epoch : 1;
}

/* One client (map "clients", key: client id): its keys, its replay window
 * and how many holds and waits it has. The daemon creates and rekeys it
 * through the control program (LOCKD_CTL_SET_KEY), under `guard`, and
 * deletes it; the datapath never creates one. LOCKD_CLIENT_NONE's record
 * has no key and counts the unauthenticated senders' members. */
struct lockd_client {
  struct bpf_spin_lock guard; /* the window and the keys */
  __s32 members;    /* holds + waits now (atomic adds; an ending may be
                       counted an instant before its start) */
  __u64 key[2];     /* current key (SipHash k0, k1) */
  __u64 old_key[2]; /* the previous key, while has_old_key */
  __u64 seq_top;    /* highest seq accepted */
  __u64 seq_seen;   /* bit i: seq_top - i was accepted */
  __u32 has_old_key;
  __u32 reserved;
};
LOCKD_ASSERT_SIZE(struct lockd_client, 64);
/* Requests this far behind the newest seq accepted are dropped as replays
 * (the window's bits). */
#define LOCKD_REPLAY_WINDOW 64
/* Holds + waits per client when the operator sets no quota. */
#define LOCKD_DEFAULT_CLIENT_QUOTA 65536

/* Why an owner's hold or wait was ended for it (map "ended", key struct
 * lockd_owner_key): what its late RELEASE or RENEW is told. Written only for
 * endings the owner did not ask for; kept a bounded time. */
struct lockd_owner_key {
  __u64 lock_id;
  __u64 txn_id;
};
LOCKD_ASSERT_SIZE(struct lockd_owner_key, 16);

struct lockd_ended {
  __u64 fence;
  __u64 time_ns;
  __u64 seq;
  __u32 client_id; /* the owner's: told to it only */
  __u8 status;     /* LEASE_EXPIRED, FORCE_RELEASED, WAIT_EXPIRED */
  __u8 reserved[3];
};
LOCKD_ASSERT_SIZE(struct lockd_ended, 32);

/* ------------------------------------------------------------------------ */
/* Events: datapath -> daemon (ring buffer "events")                        */
/* ------------------------------------------------------------------------ */

enum lockd_event_type {
  /* Add table segment `arg`: a split needs it (one lock before its bucket
   * is full: the low-water mark). */
  LOCKD_EVENT_TABLE_GROW = 1,
  /* A merge left table segment `arg` with no bucket in use: it may go. */
  LOCKD_EVENT_TABLE_SEGMENT_IDLE = 2,
  /* Pool segment `arg` passed its low-water mark, or is full. */
  LOCKD_EVENT_POOL_LOW = 3,
  /* The first waiter queued on lock_id, or a waiter with a deadline
   * (time_ns; 0 = none). */
  LOCKD_EVENT_WAITING = 4,
  /* A notice for a LOCAL member (notice.reply says what). */
  LOCKD_EVENT_LOCAL_NOTICE = 5,
  /* A KICK could not be sent: lock_id's queue may stall. */
  LOCKD_EVENT_KICK_LOST = 6,
};

struct lockd_event {
  __u32 type; /* enum lockd_event_type */
  __u32 arg;
  __u64 lock_id;
  __u64 time_ns;
  __u64 reserved;
  struct lockd_notice notice; /* LOCAL_NOTICE */
};
LOCKD_ASSERT_SIZE(struct lockd_event, 112);

/* ------------------------------------------------------------------------ */
/* Control channel: daemon -> datapath                                      */
/* ------------------------------------------------------------------------ */

/* The daemon changes lock state only through the control program
 * (lockd_ctl), which it runs with BPF_PROG_TEST_RUN on a struct lockd_ctl:
 * the same lock-table code as the packet path, under the same guards. A test
 * run is not preempted and keeps bottom halves off on its CPU, so it never
 * interleaves with the packet path on that CPU. */
enum lockd_ctl_op {
  LOCKD_CTL_REQUEST = 1,       /* run `req` as a packet would be (+ grants) */
  LOCKD_CTL_EXPIRE_HOLDER = 2, /* end the hold of req.txn_id if its lease ran
                                  out */
  LOCKD_CTL_EXPIRE_WAITER = 3, /* cancel the wait of req.txn_id if past its
                                  deadline */
  LOCKD_CTL_FORCE_RELEASE = 4, /* end the hold of req.txn_id, whose fence is
                                  req.fence (0 = any) */
  LOCKD_CTL_WIRE = 5,    /* authenticate `wire` (from req.from) as the packet
                            path does, then run it as REQUEST */
  LOCKD_CTL_SET_KEY = 6, /* client req.client_id's key becomes `key`; the
                            one before stays valid until the client uses the
                            new one (creates the client if new) */
};

enum lockd_ctl_result {
  LOCKD_CTL_OK = 0,
  LOCKD_CTL_NOT_FOUND = 1,      /* no such lock, holder or waiter */
  LOCKD_CTL_NOT_DUE = 2,        /* lease or wait deadline not passed yet */
  LOCKD_CTL_RETRY = 3,          /* the lock kept changing: try again */
  LOCKD_CTL_FENCE_MISMATCH = 4, /* FORCE_RELEASE: the hold has another fence */
  LOCKD_CTL_NO_REPLY = 5,       /* REQUEST: the packet path would not answer */
  LOCKD_CTL_BAD_OP = 6,         /* no such operation */
  LOCKD_CTL_MALFORMED = 7,      /* REQUEST: fields the packet path would drop */
  LOCKD_CTL_FORGED = 8, /* WIRE: failed authentication or replayed: dropped */
};

struct lockd_ctl {
  __u32 op;      /* enum lockd_ctl_op */
  __u32 result;  /* enum lockd_ctl_result */
  __u32 notices; /* entries of `notice` filled */
  __u32 kick;    /* compatible waiters may remain: run a KICK request */
  struct lockd_request req;
  struct lockd_reply reply; /* REQUEST: the reply (unless NO_REPLY) */
  struct lockd_msg wire;    /* WIRE: the datagram as received */
  __u64 key[2];             /* SET_KEY */
  /* Members to tell: the waiter whose wait expired (EXPIRE_WAITER:
   * notice[0]), then the waiters granted (at most LOCKD_MAX_GRANTS). */
  struct lockd_notice notice[LOCKD_MAX_GRANTS + 1];
};
LOCKD_ASSERT_SIZE(struct lockd_ctl,
                  16 + 80 + 64 + 72 + 16 + 80 * (LOCKD_MAX_GRANTS + 1));

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */
/* ------------------------------------------------------------------------ */

/* Per-CPU counters (map "stats", PERCPU_ARRAY indexed by enum lockd_stat).
 * Every outcome the datapath can produce has one. One list, expanded into
 * the enum here and into names on the C++ side: X(ENUM_SUFFIX, "name"). */
#define LOCKD_STATS(X)                                                         \
  X(RX, "rx")                               /* packets to lockd's port */      \
  X(MALFORMED, "malformed")                 /* truncated/bad magic: dropped */ \
  X(BAD_VERSION, "bad_version")             /* wrong version: dropped */       \
  X(AUTH_FAILED, "auth_failed")             /* bad MAC/unknown client: drop */ \
  X(UNAUTHENTICATED, "unauthenticated")     /* no client, closed subnet */     \
  X(REPLAYED, "replayed")                   /* seq seen or too old: dropped */ \
  X(FORGED_KICK, "forged_kick")             /* KICK not from us: dropped */    \
  X(REJECT_NOT_OWNER, "reject_not_owner")   /* txn owned by another client */  \
  X(REJECT_QUOTA, "reject_quota")           /* client at its quota */          \
  X(REJECT_GRACE, "reject_grace")           /* ACQUIRE during grace */         \
  X(RECLAIMED, "reclaimed")                 /* holds reclaimed in grace */     \
  X(REJECT_RECLAIM, "reject_reclaim")       /* reclaim after grace / bad */    \
  X(ACQUIRE, "acquire")                     /* ACQUIRE requests processed */   \
  X(GRANT_IMMEDIATE, "grant_immediate")     /* granted on arrival */           \
  X(QUEUED, "queued")                       /* enqueued as a waiter */         \
  X(REJECT_CONFLICT, "reject_conflict")     /* NO_WAIT conflict */             \
  X(REJECT_DIE, "reject_die")               /* WAIT_DIE: younger died */       \
  X(REJECT_UPGRADE, "reject_upgrade")       /* S->X upgrade refused */         \
  X(ACQUIRE_DUP, "acquire_dup")             /* retransmit answered again */    \
  X(UPGRADE, "upgrade")                     /* S->X upgrade granted */         \
  X(RELEASE, "release")                     /* RELEASE requests processed */   \
  X(RELEASED, "released")                   /* releases that freed a hold */   \
  X(RELEASE_DUP, "release_dup")             /* stale release answered */       \
  X(CANCELLED, "cancelled")                 /* RELEASE by a waiter */          \
  X(REJECT_NOT_HOLDER, "reject_not_holder") /* by a non-holder */              \
  X(REJECT_EXPIRED, "reject_expired")       /* after the lease ran out */      \
  X(RENEW, "renew")                         /* leases renewed */               \
  X(GRANT_FROM_QUEUE, "grant_from_queue")   /* waiters granted by release */   \
  X(GRANT_SENT, "grant_sent")               /* GRANTED packets sent by TC */   \
  X(GRANT_SEND_FAILED, "grant_send_failed") /* clone_redirect failed */        \
  X(GRANT_LOCAL, "grant_local")             /* notices to gRPC callers */      \
  X(SKIPPED_CANCELLED, "skipped_cancelled") /* cancelled waiters unlinked */   \
  X(RELEASE_TO_TC, "release_to_tc")         /* XDP passed release to TC */     \
  X(KICK, "kick")                           /* continuation kicks served */    \
  X(KICK_SENT, "kick_sent")                 /* continuation kicks sent */      \
  X(KICK_SEND_FAILED, "kick_send_failed")   /* a kick could not be sent */     \
  X(KICK_DROPPED, "kick_dropped")           /* kick chain over its hops */     \
  X(RETRY, "retry")                         /* state changed: step retried */  \
  X(CONTENDED, "contended")                 /* retries spent: not answered */  \
  X(MEMBER_SEARCH, "member_search")         /* record found without ticket */  \
  X(MIN_WALK, "min_walk")                   /* walks for WAIT_DIE's oldest */  \
  X(HOLD_ENDED, "hold_ended")               /* holds ended, any reason */      \
  X(LEASE_EXPIRED, "lease_expired")         /* holds ended by their lease */   \
  X(FORCE_RELEASED, "force_released")       /* holds ended by an operator */   \
  X(WAIT_EXPIRED, "wait_expired")           /* waits ended by deadline */      \
  X(LOCK_CREATED, "lock_created")           /* table slots claimed */          \
  X(LOCK_FREED, "lock_freed")               /* table slots freed (idle) */     \
  X(SPLIT, "split")                         /* buckets split */                \
  X(MERGE, "merge")                         /* buckets merged */               \
  X(RESIZE_BUSY, "resize_busy")             /* another CPU was resizing */     \
  X(TABLE_WAIT, "table_wait")               /* full bucket, segment pending */ \
  X(NO_CAPACITY_TABLE, "no_capacity_table") /* full bucket, at budget */       \
  X(POOL_ALLOC, "pool_alloc")               /* pool blocks allocated */        \
  X(POOL_FREE, "pool_free")                 /* pool blocks freed */            \
  X(POOL_ALLOC_FAILED, "pool_alloc_failed") /* segment insert refused */       \
  X(POOL_WAIT, "pool_wait")                 /* pool full, segment pending */   \
  X(NO_CAPACITY_POOL, "no_capacity_pool")   /* pool full, at budget */         \
  X(EVENT_LOST, "event_lost")               /* ring buffer full */

#define LOCKD_STAT_ENUM_ENTRY(suffix, name) LOCKD_STAT_##suffix,
enum lockd_stat { LOCKD_STATS(LOCKD_STAT_ENUM_ENTRY) LOCKD_STAT_COUNT };
#undef LOCKD_STAT_ENUM_ENTRY

/* How long waiters waited, from enqueue to grant, in the "stats" map after
 * the counters: LOCKD_WAIT_BUCKETS buckets, bucket i counting the waits
 * shorter than LOCKD_WAIT_BUCKET0_US x 4^i (the last one: all the others),
 * then the sum of all waits in ns. */
#define LOCKD_WAIT_BUCKETS 12
#define LOCKD_WAIT_BUCKET0_US 16
#define LOCKD_STAT_WAIT_FIRST LOCKD_STAT_COUNT
#define LOCKD_STAT_WAIT_SUM_NS (LOCKD_STAT_COUNT + LOCKD_WAIT_BUCKETS)
#define LOCKD_STATS_ENTRIES (LOCKD_STAT_WAIT_SUM_NS + 1)

#endif /* LOCKD_ABI_LOCKD_ABI_H_ */
