/* Kerby memory pool: fixed-size blocks in a BPF_F_NO_PREALLOC hash keyed by
 * a block index that only grows (taken from an ARRAY counter with an atomic
 * add), so there is no free list to manage while holding a bpf_spin_lock.
 * Variable-size data is a chain of blocks linked by index; only the tail
 * block wastes space. Memory follows use: an element exists only while its
 * block is allocated (the hash's bucket array is the only up-front cost), and
 * the capacity (max_entries) is set by the loader.
 *
 * API, after the seed paper:
 *   pool_malloc(size, idx[])          allocate ceil(size / block) blocks
 *   pool_free(idx[], n)               free them
 *   pool_resize(size, idx[], n)       grow or shrink a chain
 *   pool_update(idx[], n, values)     write data across a chain
 *   alloc_update(key, idx[], n, size) record a chain under a key
 *   alloc_del(key)                    free a recorded chain and its record
 * plus pool_alloc_block / pool_free_block for single-block users (the wait
 * queue). Indexes start at 1: 0 means "no block". */
#ifndef LOCKD_BPF_LIB_POOL_H_
#define LOCKD_BPF_LIB_POOL_H_

#include "bpf/lib/common.h"
#include "bpf/lib/stats.h"

#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef ENOMEM
#define ENOMEM 12
#endif
#ifndef EINVAL
#define EINVAL 22
#endif

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct lockd_block);
} pool SEC(".maps");

/* Highest block index handed out so far. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} pool_next SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct lockd_alloc);
} allocs SEC(".maps");

/* Indexes into an idx[] array, masked so the verifier sees them bounded
 * (callers check the range first; the mask never changes a valid index). */
LOCKD_STATIC_ASSERT((LOCKD_ALLOC_MAX_BLOCKS & (LOCKD_ALLOC_MAX_BLOCKS - 1)) ==
                        0,
                    "LOCKD_ALLOC_MAX_BLOCKS must be a power of two");
static __always_inline __u64 pool_slot(__u64 i) {
  /* The empty asm keeps clang from folding the mask into an earlier range
   * check that the verifier tracks less precisely. */
  asm volatile("" : "+r"(i));
  return i & (LOCKD_ALLOC_MAX_BLOCKS - 1);
}

/* Reserves `count` consecutive fresh indexes; returns the first, 0 on error. */
static __always_inline __u64 pool_reserve(__u32 count) {
  __u32 zero = 0;
  __u64 *next = bpf_map_lookup_elem(&pool_next, &zero);
  if (!next) return 0;
  return __sync_fetch_and_add(next, count) + 1;
}

/* Inserts `block` under a fresh index `idx` (block->idx is set here). */
static __always_inline int pool_insert(__u64 idx, struct lockd_block *block) {
  block->idx = idx;
  long err = bpf_map_update_elem(&pool, &idx, block, BPF_NOEXIST);
  if (err) {
    stat_inc(LOCKD_STAT_POOL_ALLOC_FAILED);
    return (int)err;
  }
  stat_inc(LOCKD_STAT_POOL_ALLOC);
  return 0;
}

/* One block holding *init (its idx is set here). Returns the index, or 0
 * when the pool is full. */
static __always_inline __u64 pool_alloc_block(struct lockd_block *init) {
  __u64 idx = pool_reserve(1);
  if (!idx || pool_insert(idx, init)) return 0;
  return idx;
}

static __always_inline void pool_free_block(__u64 idx) {
  if (bpf_map_delete_elem(&pool, &idx) == 0) stat_inc(LOCKD_STAT_POOL_FREE);
}

static __always_inline __u32 pool_blocks_for(__u32 size) {
  return (size + LOCKD_BLOCK_DATA - 1) / LOCKD_BLOCK_DATA;
}

static __always_inline int pool_free(const __u64 *idx, __u32 n) {
  for (__u32 i = 0; i < LOCKD_ALLOC_MAX_BLOCKS; i++) {
    if (i >= n) break;
    pool_free_block(idx[pool_slot(i)]);
  }
  return 0;
}

/* Appends `count` zeroed blocks after idx[first - 1] (if first > 0), writing
 * their indexes to idx[first..first+count). Nothing is left allocated on
 * failure. */
static __always_inline int pool_extend(__u64 *idx, __u32 first, __u32 count) {
  __u64 base = pool_reserve(count);
  if (!base) return -ENOMEM;
  struct lockd_block block = {};
  for (__u32 i = 0; i < LOCKD_ALLOC_MAX_BLOCKS; i++) {
    if (i >= count) break;
    __u32 slot = first + i;
    if (slot >= LOCKD_ALLOC_MAX_BLOCKS) return -EINVAL;
    block.next = i + 1 < count ? base + i + 1 : 0;
    int err = pool_insert(base + i, &block);
    if (err) {
      for (__u32 j = 0; j < LOCKD_ALLOC_MAX_BLOCKS; j++) {
        if (j >= i) break;
        pool_free_block(base + j);
      }
      return err;
    }
    idx[pool_slot(slot)] = base + i;
  }
  if (first > 0 && first <= LOCKD_ALLOC_MAX_BLOCKS) {
    __u64 prev_idx = idx[pool_slot(first - 1)];
    struct lockd_block *prev = bpf_map_lookup_elem(&pool, &prev_idx);
    if (prev) prev->next = base;
  }
  return 0;
}

/* Returns the number of blocks allocated into idx[], or a negative errno. */
static __always_inline int pool_malloc(__u32 size, __u64 *idx) {
  __u32 n = pool_blocks_for(size);
  if (n == 0 || n > LOCKD_ALLOC_MAX_BLOCKS) return -E2BIG;
  int err = pool_extend(idx, 0, n);
  return err ? err : (int)n;
}

/* Grows or shrinks the chain idx[0..n) to hold `size` bytes. Returns the new
 * block count, or a negative errno (the chain is then unchanged). */
static __always_inline int pool_resize(__u32 size, __u64 *idx, __u32 n) {
  __u32 want = pool_blocks_for(size);
  if (want == 0 || want > LOCKD_ALLOC_MAX_BLOCKS || n > LOCKD_ALLOC_MAX_BLOCKS)
    return -E2BIG;
  if (want > n) {
    int err = pool_extend(idx, n, want - n);
    return err ? err : (int)want;
  }
  for (__u32 i = 0; i < LOCKD_ALLOC_MAX_BLOCKS; i++) {
    __u32 slot = want + i;
    if (slot >= n || slot >= LOCKD_ALLOC_MAX_BLOCKS) break;
    pool_free_block(idx[pool_slot(slot)]);
    idx[pool_slot(slot)] = 0;
  }
  __u64 tail_idx = idx[pool_slot(want - 1)];
  struct lockd_block *tail = bpf_map_lookup_elem(&pool, &tail_idx);
  if (tail) tail->next = 0;
  return (int)want;
}

/* Writes values (n * LOCKD_BLOCK_DATA bytes) across the chain idx[0..n). */
static __always_inline int pool_update(const __u64 *idx, __u32 n,
                                       const __u8 *values) {
  for (__u32 i = 0; i < LOCKD_ALLOC_MAX_BLOCKS; i++) {
    if (i >= n) break;
    __u64 key = idx[pool_slot(i)];
    struct lockd_block *block = bpf_map_lookup_elem(&pool, &key);
    if (!block) return -ENOENT;
    __builtin_memcpy(block->bytes, values + i * LOCKD_BLOCK_DATA,
                     LOCKD_BLOCK_DATA);
  }
  return 0;
}

static __always_inline int alloc_update(__u64 key, const __u64 *idx, __u32 n,
                                        __u32 size) {
  if (n > LOCKD_ALLOC_MAX_BLOCKS) return -E2BIG;
  struct lockd_alloc record = {.size = size, .blocks = n};
#pragma unroll
  for (__u32 i = 0; i < LOCKD_ALLOC_MAX_BLOCKS; i++)
    record.idx[i] = i < n ? idx[i] : 0;
  return (int)bpf_map_update_elem(&allocs, &key, &record, BPF_ANY);
}

static __always_inline int alloc_del(__u64 key) {
  struct lockd_alloc *record = bpf_map_lookup_elem(&allocs, &key);
  if (!record) return -ENOENT;
  pool_free(record->idx, record->blocks);
  return (int)bpf_map_delete_elem(&allocs, &key);
}

#endif /* LOCKD_BPF_LIB_POOL_H_ */
