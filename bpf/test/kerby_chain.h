/* The Kerby allocator's general API (after the seed paper), over lockd's
 * pool (bpf/lib/pool.h): variable-size objects as chains of fixed-size
 * blocks linked by `next`, fragmentation only in the tail block. lockd's
 * datapath uses single blocks only; this API is kept, and tested, apart
 * from the production object.
 *
 *   pool_malloc(size, idx[])          allocate ceil(size / block) blocks
 *   pool_free_chain(idx[], n)         free them
 *   pool_resize(size, idx[], n)       grow or shrink a chain
 *   pool_update(idx[], n, values)     write data across a chain
 *   alloc_update(key, idx[], n, size) record a chain under a key
 *   alloc_del(key)                    free a recorded chain and its record
 */
#ifndef LOCKD_BPF_TEST_KERBY_CHAIN_H_
#define LOCKD_BPF_TEST_KERBY_CHAIN_H_

#include "bpf/lib/pool.h"
#include "bpf/test/pool_test_command.h"

#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef ENOMEM
#define ENOMEM 12
#endif
#ifndef EINVAL
#define EINVAL 22
#endif

/* Kerby allocation map: key -> the blocks of one object. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct kerby_alloc);
} allocs SEC(".maps");

/* Indexes into an idx[] array, masked so the verifier sees them bounded
 * (callers check the range first; the mask never changes a valid index). */
static __always_inline __u64 chain_slot(__u64 i) {
  asm volatile("" : "+r"(i));
  return i & (KERBY_MAX_BLOCKS - 1);
}

static __always_inline __u32 pool_blocks_for(__u32 size) {
  return (size + LOCKD_BLOCK_DATA - 1) / LOCKD_BLOCK_DATA;
}

static __always_inline int pool_free_chain(const __u64 *idx, __u32 n) {
  for (__u32 i = 0; i < KERBY_MAX_BLOCKS; i++) {
    if (i >= n) break;
    pool_free(idx[chain_slot(i)]);
  }
  return 0;
}

/* Appends `count` zeroed blocks after idx[first - 1] (if first > 0), writing
 * their indexes to idx[first..first+count). Nothing is left allocated on
 * failure. */
static __always_inline int pool_extend(__u64 *idx, __u32 first, __u32 count) {
  __u32 zero = 0;
  struct lockd_block *init = bpf_map_lookup_elem(&block_scratch, &zero);
  if (!init) return -ENOMEM;
  __u64 prev_idx =
      first > 0 && first <= KERBY_MAX_BLOCKS ? idx[chain_slot(first - 1)] : 0;
  for (__u32 i = 0; i < KERBY_MAX_BLOCKS; i++) {
    if (i >= count) break;
    __u32 slot = first + i;
    if (slot >= KERBY_MAX_BLOCKS) return -E2BIG;
    __builtin_memset(init, 0, sizeof(*init));
    enum pool_result why;
    __u64 block = pool_alloc(init, &why);
    if (!block) {
      for (__u32 j = 0; j < KERBY_MAX_BLOCKS; j++) {
        if (j >= i) break;
        pool_free(idx[chain_slot(first + j)]);
      }
      return -ENOMEM;
    }
    idx[chain_slot(slot)] = block;
    if (prev_idx) {
      struct lockd_block *prev = pool_lookup(prev_idx);
      if (prev) prev->next = block;
    }
    prev_idx = block;
  }
  return 0;
}

/* Returns the number of blocks allocated into idx[], or a negative errno. */
static __always_inline int pool_malloc(__u32 size, __u64 *idx) {
  __u32 n = pool_blocks_for(size);
  if (n == 0 || n > KERBY_MAX_BLOCKS) return -E2BIG;
  int err = pool_extend(idx, 0, n);
  return err ? err : (int)n;
}

/* Grows or shrinks the chain idx[0..n) to hold `size` bytes. Returns the new
 * block count, or a negative errno (the chain is then unchanged). */
static __always_inline int pool_resize(__u32 size, __u64 *idx, __u32 n) {
  __u32 want = pool_blocks_for(size);
  if (want == 0 || want > KERBY_MAX_BLOCKS || n > KERBY_MAX_BLOCKS)
    return -E2BIG;
  if (want > n) {
    int err = pool_extend(idx, n, want - n);
    return err ? err : (int)want;
  }
  for (__u32 i = 0; i < KERBY_MAX_BLOCKS; i++) {
    __u32 slot = want + i;
    if (slot >= n || slot >= KERBY_MAX_BLOCKS) break;
    pool_free(idx[chain_slot(slot)]);
    idx[chain_slot(slot)] = 0;
  }
  struct lockd_block *tail = pool_lookup(idx[chain_slot(want - 1)]);
  if (tail) tail->next = 0;
  return (int)want;
}

/* Writes values (n * LOCKD_BLOCK_DATA bytes) across the chain idx[0..n). */
static __always_inline int pool_update(const __u64 *idx, __u32 n,
                                       const __u8 *values) {
  for (__u32 i = 0; i < KERBY_MAX_BLOCKS; i++) {
    if (i >= n) break;
    struct lockd_block *block = pool_lookup(idx[chain_slot(i)]);
    if (!block) return -ENOENT;
    __builtin_memcpy(block->bytes, values + i * LOCKD_BLOCK_DATA,
                     LOCKD_BLOCK_DATA);
  }
  return 0;
}

static __always_inline int alloc_update(__u64 key, const __u64 *idx, __u32 n,
                                        __u32 size) {
  if (n > KERBY_MAX_BLOCKS) return -E2BIG;
  struct kerby_alloc record = {.size = size, .blocks = n};
#pragma unroll
  for (__u32 i = 0; i < KERBY_MAX_BLOCKS; i++)
    record.idx[i] = i < n ? idx[i] : 0;
  return (int)bpf_map_update_elem(&allocs, &key, &record, BPF_ANY);
}

static __always_inline int alloc_del(__u64 key) {
  struct kerby_alloc *record = bpf_map_lookup_elem(&allocs, &key);
  if (!record) return -ENOENT;
  pool_free_chain(record->idx, record->blocks);
  return (int)bpf_map_delete_elem(&allocs, &key);
}

#endif /* LOCKD_BPF_TEST_KERBY_CHAIN_H_ */
