/* Kerby memory pool: fixed-size blocks (struct lockd_block) in hash-map
 * segments, keyed by a block index that only grows, so there is no free list
 * to manage while holding a bpf_spin_lock. A block index is
 * (segment id << 32) | n: n comes from the segment's counter (one atomic
 * add), and the segment is found from the index alone. Memory follows use:
 * the daemon sizes each new segment from the live blocks, new blocks come
 * from the newest segment, and an older segment is dropped whole once its
 * last block is freed.
 *
 * The program decides when to grow: an allocation that leaves the current
 * segment above its low-water mark asks the daemon for a successor
 * (LOCKD_EVENT_POOL_LOW) before the segment is full.
 *
 * Indexes start at 2^32 (segment ids start at 1): 0 means "no block" and 1
 * is LOCKD_TICKET_INLINE. */
#ifndef LOCKD_BPF_LIB_POOL_H_
#define LOCKD_BPF_LIB_POOL_H_

#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/events.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/stats.h"

static __always_inline __u32 pool_slot_of(__u64 idx) {
  return (__u32)(idx >> LOCKD_POOL_SEG_SHIFT) % LOCKD_POOL_SLOTS;
}

/* The block at `idx`, or NULL. The element may be reused for another index
 * at any time: compare block->idx before trusting it (under the guard). */
static __always_inline struct lockd_block *pool_lookup(__u64 idx) {
  if (idx >> LOCKD_POOL_SEG_SHIFT == 0) return NULL;
  __u32 slot = pool_slot_of(idx);
  void *segment = bpf_map_lookup_elem(&pool_segments, &slot);
  if (!segment) return NULL;
  return bpf_map_lookup_elem(segment, &idx);
}

enum pool_result {
  POOL_OK = 0,
  POOL_WAIT,   /* no room now; the daemon was asked for a segment */
  POOL_BUDGET, /* no room, and the daemon will add none: refuse */
};

static __always_inline void pool_ask_successor(struct lockd_pool_seg *info,
                                               __u32 id) {
  if (READ_ONCE(info->low_water_signalled)) return;
  if (__sync_val_compare_and_swap(&info->low_water_signalled, 0, 1) == 0)
    event_simple(LOCKD_EVENT_POOL_LOW, id, 0, 0);
}

/* Inserts *init (its idx is set here) as a new block. Returns the index, or
 * 0 with *why saying why there is no room. */
static __always_inline __u64 pool_alloc(struct lockd_block *init,
                                        enum pool_result *why) {
  __u32 zero = 0;
  struct lockd_config *cfg = bpf_map_lookup_elem(&config, &zero);
  *why = POOL_WAIT;
  if (!cfg) return 0;
  __u32 id = READ_ONCE(cfg->pool_current);
  __u32 slot = id % LOCKD_POOL_SLOTS;
  struct lockd_pool_seg *info = bpf_map_lookup_elem(&pool_info, &slot);
  void *segment = bpf_map_lookup_elem(&pool_segments, &slot);
  if (id && info && segment && READ_ONCE(info->id) == id) {
    __u64 n = __sync_fetch_and_add(&info->next, 1);
    if (n < 0xffffffffULL) {
      __u64 idx = ((__u64)id << LOCKD_POOL_SEG_SHIFT) | n;
      init->idx = idx;
      if (bpf_map_update_elem(segment, &idx, init, BPF_NOEXIST) == 0) {
        __s64 live = __sync_fetch_and_add(&info->live, 1) + 1;
        if ((__u64)live * 100 >=
            (__u64)READ_ONCE(info->capacity) * cfg_pool_low_water_pct)
          pool_ask_successor(info, id);
        stat_inc(LOCKD_STAT_POOL_ALLOC);
        return idx;
      }
      stat_inc(LOCKD_STAT_POOL_ALLOC_FAILED);
    }
    pool_ask_successor(info, id); /* full, or out of indexes */
  }
  if (READ_ONCE(cfg->at_budget) & LOCKD_BUDGET_POOL) *why = POOL_BUDGET;
  stat_inc(*why == POOL_BUDGET ? LOCKD_STAT_NO_CAPACITY_POOL
                               : LOCKD_STAT_POOL_WAIT);
  return 0;
}

static __always_inline void pool_free(__u64 idx) {
  if (idx >> LOCKD_POOL_SEG_SHIFT == 0) return;
  __u32 slot = pool_slot_of(idx);
  void *segment = bpf_map_lookup_elem(&pool_segments, &slot);
  if (!segment || bpf_map_delete_elem(segment, &idx) != 0) return;
  stat_inc(LOCKD_STAT_POOL_FREE);
  struct lockd_pool_seg *info = bpf_map_lookup_elem(&pool_info, &slot);
  if (info && READ_ONCE(info->id) == (__u32)(idx >> LOCKD_POOL_SEG_SHIFT))
    __sync_fetch_and_add(&info->live, -1);
}

#endif /* LOCKD_BPF_LIB_POOL_H_ */
