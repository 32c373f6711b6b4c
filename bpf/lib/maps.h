/* Every map of the lockd datapath, declared in one place. Layouts are in
 * abi/lockd_abi.h; the loader (lockd/datapath.cc) sizes, creates, pins and
 * fills them. Maps marked "pinned" survive the daemon (a restarted daemon
 * continues with every lock); the others are per load. */
#ifndef LOCKD_BPF_LIB_MAPS_H_
#define LOCKD_BPF_LIB_MAPS_H_

#include "bpf/lib/common.h"
#include "bpf/lib/state.h"

/* Shared datapath state: hash seed, fence base, table shape, pool segment
 * in use (pinned; mmapped by the daemon). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lockd_config);
} config SEC(".maps");

/* clang describes a struct reached only through a map definition's pointer
 * members by a forward declaration, and libbpf needs the inner maps' full
 * value types: these (unused) globals make clang describe them in full
 * (through a typedef: a plain struct pointer is not enough for clang 14). */
typedef struct lockd_bucket btf_bucket_t;
typedef struct lockd_block btf_block_t;
static btf_bucket_t *btf_anchor_bucket __attribute__((used));
static btf_block_t *btf_anchor_block __attribute__((used));

/* The lock table: segment s holds buckets s * LOCKD_TABLE_SEG_BUCKETS and
 * the next ones. The daemon creates and inserts a segment when a split asks
 * for it (pinned). */
struct table_segment {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, LOCKD_TABLE_SEG_BUCKETS);
  __type(key, __u32);
  __type(value, struct lockd_bucket);
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, LOCKD_TABLE_MAX_SEGMENTS);
  __type(key, __u32);
  __array(values, struct table_segment);
} table_segments SEC(".maps");

/* Buckets in use per table segment, kept by splits and merges (pinned;
 * mmapped by the daemon). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, LOCKD_TABLE_MAX_SEGMENTS);
  __type(key, __u32);
  __type(value, __s64);
} table_seg_live SEC(".maps");

/* LOCKD_SEG_* per table segment: asked of the daemon, or being removed by
 * it (pinned; mmapped by the daemon). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, LOCKD_TABLE_MAX_SEGMENTS);
  __type(key, __u32);
  __type(value, __u32);
} table_seg_state SEC(".maps");

/* The Kerby pool: segment with id i sits in slot i mod LOCKD_POOL_SLOTS.
 * Blocks are keyed by their full index, so a slot reused by a later segment
 * never answers for an index of an earlier one (pinned). The loader chooses
 * preallocated or BPF_F_NO_PREALLOC segments. */
struct pool_segment {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, struct lockd_block);
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, LOCKD_POOL_SLOTS);
  __type(key, __u32);
  __array(values, struct pool_segment);
} pool_segments SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, LOCKD_POOL_SLOTS);
  __type(key, __u32);
  __type(value, struct lockd_pool_seg);
} pool_info SEC(".maps");

/* Holds and waits ended for their owner (lease, operator, deadline), so that
 * the owner's late RELEASE or RENEW learns why. The daemon removes entries
 * after a while; max_entries set by the loader (pinned). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 4096);
  __type(key, struct lockd_owner_key);
  __type(value, struct lockd_ended);
} ended SEC(".maps");

/* Clients: keys, replay windows, holds + waits (struct lockd_client). The
 * daemon creates, rekeys and deletes them; max_entries set by the loader
 * (pinned). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, struct lockd_client);
} clients SEC(".maps");

/* Subnets whose unauthenticated requests are served (labs only; the daemon
 * fills it from --open_subnets and says so loudly). */
struct open_subnet_key {
  __u32 prefixlen;
  __be32 addr;
};

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 64);
  __type(key, struct open_subnet_key);
  __type(value, __u8);
} open_subnets SEC(".maps");

/* A reply encoded to be signed (bpf/lib/auth.h). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lockd_msg);
} msg_scratch SEC(".maps");

/* Datapath -> daemon: growth requests, waiters to watch, notices for gRPC
 * callers (struct lockd_event). Size set by the loader (pinned). */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* Per-CPU outcome counters, indexed by enum lockd_stat, then the queue
 * wait histogram (LOCKD_STAT_WAIT_FIRST on) (pinned). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LOCKD_STATS_ENTRIES);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

/* Notices decided by this CPU's current program run, sent by its caller.
 * One level suffices: XDP, TC and test runs (the control program) all keep
 * bottom halves off, so none interrupts another on one CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lockd_notice_batch);
} notice_batch SEC(".maps");

/* The control program's command, copied out of its packet (a struct
 * lockd_ctl is larger than the BPF stack). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lockd_ctl);
} ctl_scratch SEC(".maps");

/* A new pool block, written whole before it is inserted (larger than what
 * the BPF stack can spare on the acquire path). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lockd_block);
} block_scratch SEC(".maps");

/* A merge's locks between their two buckets' critical sections. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct merge_scratch);
} resize_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lt_scratch);
} lt_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct entry_scratch);
} entry_scratch SEC(".maps");

/* The operation in progress on this CPU (bpf/lib/state.h). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct acquire_state);
} acquire_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct end_state);
} end_scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct renew_state);
} renew_scratch SEC(".maps");

#endif /* LOCKD_BPF_LIB_MAPS_H_ */
