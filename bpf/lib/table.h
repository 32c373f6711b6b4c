/* The lock table: a hash table of buckets that grows and shrinks one bucket
 * at a time, decided by the datapath (docs/architecture.md, "The lock
 * table").
 *
 * Bucket b at depth d serves the lock ids whose hash h has h mod 2^d == b.
 * A full bucket splits: its image b + 2^d takes the locks with bit d of the
 * hash set, and both serve depth d + 1. Two sibling buckets with few locks
 * merge back. Buckets sit in small array segments; the daemon adds the
 * segment a split needs when the program asks (LOCKD_EVENT_TABLE_GROW). A
 * bucket splits one lock before it is full (cfg_split_at): that lock takes
 * the spare slot while the segment is made, so only a bucket that fills up
 * meanwhile waits (the low-water mark). The daemon removes a segment once
 * merges have left it unused (LOCKD_SEG_RETIRING).
 *
 * Concurrency. A bucket's guard protects its locks, their slots, and its
 * depth. Readers find a bucket without the guard (table_find walks from the
 * shallowest depth in use, following depths read racily) and check under
 * the guard that it still serves their hash (bucket_serves). A split or a
 * merge changes depths under the guards of the buckets it changes; only one
 * runs at a time (config.resizing), and a split writes its image, which
 * nobody uses yet, before it publishes the image's depth last (x86 stores
 * are seen in order). A bucket's memory is never reused for something else:
 * segments are arrays, dropped only when every bucket in them is unused and
 * after every program that could have missed their RETIRING mark ended, and
 * freed by the kernel after every program that could still see them ended. */
#ifndef LOCKD_BPF_LIB_TABLE_H_
#define LOCKD_BPF_LIB_TABLE_H_

#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/events.h"
#include "bpf/lib/maps.h"
#include "bpf/lib/stats.h"

/* Probes of one search: log2 of the depths there are, twice (the hints may
 * be stale once). */
#define TABLE_WALK_STEPS 10

static __always_inline struct lockd_config *config_get(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline __u64 table_hash(__u64 lock_id, __u64 seed) {
  return lockd_table_hash(lock_id, seed);
}

static __always_inline __u32 hash_bits(__u64 hash, __u32 depth) {
  return (__u32)(hash & ((1ULL << (depth & 31)) - 1));
}

static __always_inline struct lockd_bucket *table_bucket(__u32 idx) {
  __u32 seg = idx >> LOCKD_TABLE_SEG_SHIFT;
  void *segment = bpf_map_lookup_elem(&table_segments, &seg);
  if (!segment) return NULL;
  __u32 offset = idx & (LOCKD_TABLE_SEG_BUCKETS - 1);
  return bpf_map_lookup_elem(segment, &offset);
}

/* A bucket found for a hash, to be checked under its guard. */
struct table_ref {
  struct lockd_bucket *b;
  __u64 hash;
  __u32 idx;
  __u32 depth;
};

static __always_inline struct lt_scratch *lt_scratch_get(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&lt_scratch, &zero);
}

/* Finds the bucket serving `lock_id`. 0, or -1 when the search found none
 * (the table changed under it: the caller retries).
 *
 * A binary search over depths: for the depth D of the bucket that serves a
 * hash h, the bucket h mod 2^d is in use at a depth above d for every
 * d < D (an ancestor that split), and not in use for every d > D (a split
 * that never happened). The table's depth range (config min/max) bounds the
 * search: one probe when all buckets have one depth, two or three when
 * they spread over a few. */
static __always_inline int table_find(const struct lockd_config *cfg,
                                      __u64 lock_id, struct table_ref *ref) {
  struct lt_scratch *scratch = lt_scratch_get();
  if (!scratch) return -1;
  __u64 h = table_hash(lock_id, cfg->hash_seed);
  __u32 lo = READ_ONCE(cfg->min_depth), hi = READ_ONCE(cfg->max_depth);
  if (lo < LOCKD_TABLE_BASE_DEPTH) lo = LOCKD_TABLE_BASE_DEPTH;
  if (hi > LOCKD_TABLE_MAX_DEPTH || hi < lo) hi = LOCKD_TABLE_MAX_DEPTH;
  /* lo, hi and the result live in memory between probes: the verifier
   * then checks one probe, not every combination of bounds. */
  scratch->lo = lo;
  scratch->hi = hi;
  scratch->widened = 0;
  scratch->depth = 0;
  for (int step = 0; step < TABLE_WALK_STEPS; step++) {
    lo = READ_ONCE(scratch->lo);
    hi = READ_ONCE(scratch->hi);
    if (lo > hi) { /* the hints were stale: search every depth once */
      if (READ_ONCE(scratch->widened)) break;
      scratch->widened = 1;
      lo = LOCKD_TABLE_BASE_DEPTH;
      hi = LOCKD_TABLE_MAX_DEPTH;
    }
    if (lo < LOCKD_TABLE_BASE_DEPTH || hi > LOCKD_TABLE_MAX_DEPTH) break;
    __u32 d = (lo + hi) / 2;
    __u32 idx = hash_bits(h, d);
    struct lockd_bucket *b = table_bucket(idx);
    __u32 bd = b ? READ_ONCE(b->depth) : 0;
    if (bd == 0) {
      WRITE_ONCE(scratch->lo, lo); /* no such split: shallower */
      WRITE_ONCE(scratch->hi, d - 1);
    } else if (bd > d) {
      WRITE_ONCE(scratch->lo, d + 1); /* an ancestor that split: deeper */
      WRITE_ONCE(scratch->hi, hi);
    } else {
      /* In use at depth bd <= d, so its index is below 2^bd: it serves h. */
      scratch->idx = idx;
      scratch->depth = bd;
      break;
    }
  }
  /* Read back from memory: every path of the search continues as one. */
  __u32 depth = READ_ONCE(scratch->depth);
  if (depth == 0) return -1;
  ref->idx = READ_ONCE(scratch->idx);
  ref->b = table_bucket(ref->idx);
  if (!ref->b) return -1;
  ref->hash = h;
  ref->depth = depth;
  return 0;
}

/* Under the guard: the bucket still serves the hash. */
static __always_inline bool bucket_serves(const struct lockd_bucket *b,
                                          __u64 hash) {
  return b->depth != 0 && b->index == hash_bits(hash, b->depth);
}

static __always_inline int bucket_free_slot(const struct lockd_bucket *b) {
  for (int i = 0; i < LOCKD_BUCKET_SLOTS; i++)
    if (!(b->used & (1u << i))) return i;
  return -1;
}

/* A slot index as the verifier can bound it: masked after an empty asm,
 * so that clang cannot fold the mask into an earlier range check (which the
 * verifier tracks on another register). */
static __always_inline __u32 slot_index(int i) {
  __u32 j = (__u32)i;
  asm volatile("" : "+r"(j));
  return j & (LOCKD_BUCKET_SLOTS - 1);
}

static __always_inline struct lockd_lock *bucket_slot(struct lockd_bucket *b,
                                                      int i) {
  return &b->slots[slot_index(i)];
}

/* Under the guard: a new, idle lock in free slot i. Its fence starts from
 * the bucket's floor, above every fence the id had before. */
static __always_inline struct lockd_lock *bucket_claim(struct lockd_bucket *b,
                                                       int slot,
                                                       __u64 lock_id) {
  __u32 i = slot_index(slot);
  struct lockd_lock *lk = &b->slots[i];
  b->ids[i] = lock_id;
  b->used |= 1u << i;
  b->count++;
  b->version++;
  lk->fence = b->fence_floor;
  lk->head = 0;
  lk->tail = 0;
  lk->chain = 0;
  lk->min_txn = ~0ULL;
  lk->holders = 0;
  lk->queue_len = 0;
  lk->version++;
  lk->mode = LOCKD_MODE_NONE;
  lk->flags = 0;
  lk->holder.state = LOCKD_MEMBER_FREE;
  return lk;
}

/* Under the guard: the lock in slot i has neither holders nor waiters; its
 * slot goes, and its fence is remembered in the bucket's floor. */
static __always_inline void bucket_free(struct lockd_bucket *b, int slot) {
  __u32 i = slot_index(slot);
  struct lockd_lock *lk = &b->slots[i];
  if (lk->fence > b->fence_floor) b->fence_floor = lk->fence;
  lk->version++;
  b->used &= ~(1u << i);
  b->count--;
  b->version++;
}

static __always_inline __u32 popcount8(__u32 v) {
  v = v - ((v >> 1) & 0x55);
  v = (v & 0x33) + ((v >> 2) & 0x33);
  return (v + (v >> 4)) & 0x0f;
}

static __always_inline __u32 *seg_state(__u32 seg) {
  return bpf_map_lookup_elem(&table_seg_state, &seg);
}

/* Asks the daemon, once, for table segment `seg`. */
static __always_inline void table_ask_segment(__u32 seg) {
  __u32 *state = seg_state(seg);
  if (state && __sync_val_compare_and_swap(state, LOCKD_SEG_IDLE,
                                           LOCKD_SEG_ASKED) == LOCKD_SEG_IDLE)
    event_simple(LOCKD_EVENT_TABLE_GROW, seg, 0, 0);
}

static __always_inline void resize_done(struct lockd_config *cfg) {
  __sync_lock_test_and_set(&cfg->resizing, 0); /* a full barrier */
}

enum resize_result {
  RESIZE_DONE = 0,
  RESIZE_STALE,  /* the bucket changed meanwhile: find it again */
  RESIZE_BUSY,   /* another CPU is resizing: try again */
  RESIZE_WAIT,   /* the image's segment is not there yet: asked for */
  RESIZE_BUDGET, /* no segment will come: refuse */
};

static __always_inline void leaves_add(struct lockd_config *cfg, __u32 depth,
                                       __s64 n) {
  if (depth <= LOCKD_TABLE_MAX_DEPTH)
    __sync_fetch_and_add(&cfg->leaves[depth], n);
}

static __always_inline void seg_live_add(__u32 idx, __s64 n) {
  __u32 seg = idx >> LOCKD_TABLE_SEG_SHIFT;
  __s64 *live = bpf_map_lookup_elem(&table_seg_live, &seg);
  if (!live) return;
  if (__sync_fetch_and_add(live, n) + n == 0)
    event_simple(LOCKD_EVENT_TABLE_SEGMENT_IDLE, seg, 0, 0);
}

/* Splits the full bucket `ref` (depth d) into itself and its image
 * idx + 2^d, both at depth d + 1. */
static __always_inline enum resize_result split_bucket(
    struct lockd_config *cfg, const struct table_ref *ref) {
  __u32 d = ref->depth;
  if (d >= LOCKD_TABLE_MAX_DEPTH) return RESIZE_BUDGET;
  __u32 image = ref->idx | (1u << (d & 31));
  struct lockd_bucket *img = table_bucket(image);
  __u32 *img_state = seg_state(image >> LOCKD_TABLE_SEG_SHIFT);
  if (!img || !img_state || READ_ONCE(*img_state) == LOCKD_SEG_RETIRING) {
    table_ask_segment(image >> LOCKD_TABLE_SEG_SHIFT);
    if (READ_ONCE(cfg->at_budget) & LOCKD_BUDGET_TABLE) return RESIZE_BUDGET;
    return RESIZE_WAIT;
  }
  if (__sync_val_compare_and_swap(&cfg->resizing, 0, 1) != 0) {
    stat_inc(LOCKD_STAT_RESIZE_BUSY);
    return RESIZE_BUSY;
  }
  const __u64 seed = cfg->hash_seed;
  struct lockd_bucket *b = ref->b;
  enum resize_result result = RESIZE_DONE;
  bpf_spin_lock(&b->guard);
  if (b->depth != d || b->index != ref->idx || READ_ONCE(img->depth) != 0) {
    result = RESIZE_STALE;
  } else {
    __u32 moved = 0;
    for (int i = 0; i < LOCKD_BUCKET_SLOTS; i++) {
      if (!(b->used & (1u << i)) ||
          !((table_hash(b->ids[i], seed) >> (d & 31)) & 1))
        continue;
      img->ids[i] = b->ids[i];
      __builtin_memcpy(&img->slots[i], &b->slots[i], sizeof(b->slots[i]));
      moved |= 1u << i;
    }
    __u32 n = popcount8(moved);
    img->used = moved;
    img->count = n;
    img->flags = 0;
    img->fence_floor = b->fence_floor;
    img->index = image;
    img->version++;
    b->used &= ~moved;
    b->count -= n;
    b->depth = d + 1;
    b->version++;
    WRITE_ONCE(img->depth, d + 1); /* last: the image is in use from now */
  }
  bpf_spin_unlock(&b->guard);
  if (result == RESIZE_DONE) {
    leaves_add(cfg, d, -1);
    leaves_add(cfg, d + 1, 2);
    if (READ_ONCE(cfg->min_depth) == d && READ_ONCE(cfg->leaves[d & 31]) == 0)
      WRITE_ONCE(cfg->min_depth, d + 1);
    if (READ_ONCE(cfg->max_depth) < d + 1) WRITE_ONCE(cfg->max_depth, d + 1);
    seg_live_add(image, 1);
    stat_inc(LOCKD_STAT_SPLIT);
  }
  resize_done(cfg);
  return result;
}

/* Splits the full bucket lt_scratch.idx (depth lt_scratch.depth). A global
 * function: the verifier checks it once, apart from its callers. */
__noinline int lt_split(void) {
  struct lockd_config *cfg = config_get();
  struct lt_scratch *scratch = lt_scratch_get();
  if (!cfg || !scratch) return RESIZE_STALE;
  struct table_ref ref = {.idx = READ_ONCE(scratch->idx),
                          .depth = READ_ONCE(scratch->depth)};
  ref.b = table_bucket(ref.idx);
  return ref.b ? split_bucket(cfg, &ref) : RESIZE_STALE;
}

static __always_inline enum resize_result table_split(__u32 idx, __u32 depth) {
  struct lt_scratch *scratch = lt_scratch_get();
  if (!scratch) return RESIZE_STALE;
  scratch->idx = idx;
  scratch->depth = depth;
  return lt_split();
}

/* Merges bucket `b` (depth d, a leaf) with its sibling when both are leaves
 * holding at most cfg_merge_at locks in all: the upper one's locks move to
 * the lower one, which then serves depth d - 1. Best effort: any change
 * under it cancels the merge, nothing is lost. */
static __always_inline void merge_buckets(struct lockd_config *cfg,
                                          struct lockd_bucket *b) {
  __u32 d = READ_ONCE(b->depth);
  if (d <= LOCKD_TABLE_BASE_DEPTH || d > LOCKD_TABLE_MAX_DEPTH) return;
  __u32 half = 1u << ((d - 1) & 31);
  __u32 lo_idx = READ_ONCE(b->index) & ~half;
  __u32 hi_idx = lo_idx | half;
  struct lockd_bucket *lo = table_bucket(lo_idx);
  struct lockd_bucket *hi = table_bucket(hi_idx);
  __u32 zero = 0;
  struct merge_scratch *moving = bpf_map_lookup_elem(&resize_scratch, &zero);
  if (!lo || !hi || !moving) return;
  if (READ_ONCE(lo->depth) != d || READ_ONCE(hi->depth) != d ||
      (__u32)READ_ONCE(lo->count) + READ_ONCE(hi->count) > cfg_merge_at)
    return;
  if (__sync_val_compare_and_swap(&cfg->resizing, 0, 1) != 0) return;

  /* Phase 1: empty the upper bucket into the scratch; from now on it is not
   * in use, and its locks' walks fail until phase 2 (a few hundred ns). */
  bool taken = false;
  bpf_spin_lock(&hi->guard);
  if (hi->depth == d && hi->index == hi_idx &&
      (__u32)hi->count + READ_ONCE(lo->count) <= LOCKD_BUCKET_SLOTS) {
    for (int i = 0; i < LOCKD_BUCKET_SLOTS; i++) {
      moving->ids[i] = hi->ids[i];
      __builtin_memcpy(&moving->slots[i], &hi->slots[i], sizeof(hi->slots[i]));
    }
    moving->used = hi->used;
    moving->count = hi->count;
    moving->fence_floor = hi->fence_floor;
    hi->used = 0;
    hi->count = 0;
    hi->depth = 0;
    hi->version++;
    taken = true;
  }
  bpf_spin_unlock(&hi->guard);
  if (!taken) {
    resize_done(cfg);
    return;
  }

  /* Phase 2: the lower bucket takes them and serves depth d - 1. */
  bool merged = false;
  bpf_spin_lock(&lo->guard);
  if (lo->depth == d && lo->index == lo_idx &&
      (__u32)lo->count + moving->count <= LOCKD_BUCKET_SLOTS) {
    __u32 free = ~(__u32)lo->used & 0xff;
    for (int j = 0; j < LOCKD_BUCKET_SLOTS; j++) {
      if (!(moving->used & (1u << j))) continue;
      for (int k = 0; k < LOCKD_BUCKET_SLOTS; k++) {
        if (!(free & (1u << k))) continue;
        lo->ids[k] = moving->ids[j];
        __builtin_memcpy(&lo->slots[k], &moving->slots[j],
                         sizeof(lo->slots[k]));
        free &= ~(1u << k);
        break;
      }
    }
    lo->used = ~free & 0xff;
    lo->count += moving->count;
    if (moving->fence_floor > lo->fence_floor)
      lo->fence_floor = moving->fence_floor;
    lo->depth = d - 1;
    lo->version++;
    merged = true;
  }
  bpf_spin_unlock(&lo->guard);

  if (!merged) { /* put them back where they were */
    bpf_spin_lock(&hi->guard);
    for (int i = 0; i < LOCKD_BUCKET_SLOTS; i++) {
      hi->ids[i] = moving->ids[i];
      __builtin_memcpy(&hi->slots[i], &moving->slots[i], sizeof(hi->slots[i]));
    }
    hi->used = moving->used;
    hi->count = moving->count;
    hi->version++;
    hi->depth = d;
    bpf_spin_unlock(&hi->guard);
    resize_done(cfg);
    return;
  }
  leaves_add(cfg, d, -2);
  leaves_add(cfg, d - 1, 1);
  if (READ_ONCE(cfg->min_depth) > d - 1) WRITE_ONCE(cfg->min_depth, d - 1);
  if (READ_ONCE(cfg->max_depth) == d && READ_ONCE(cfg->leaves[d & 31]) == 0)
    WRITE_ONCE(cfg->max_depth, d - 1);
  seg_live_add(hi_idx, -1);
  stat_inc(LOCKD_STAT_MERGE);
  resize_done(cfg);
}

/* Merges bucket lt_scratch.idx with its sibling if both are nearly empty
 * (a global function, checked once by the verifier). */
__noinline int lt_merge(void) {
  struct lockd_config *cfg = config_get();
  struct lt_scratch *scratch = lt_scratch_get();
  if (!cfg || !scratch) return 0;
  struct lockd_bucket *b = table_bucket(READ_ONCE(scratch->idx));
  if (b) merge_buckets(cfg, b);
  return 0;
}

/* After a lock left bucket `t` idle: merges it with its sibling if both are
 * nearly empty. */
static __always_inline void table_try_merge(const struct table_ref *t) {
  struct lt_scratch *scratch = lt_scratch_get();
  if (!scratch || READ_ONCE(t->b->count) > cfg_merge_at ||
      READ_ONCE(t->b->depth) <= LOCKD_TABLE_BASE_DEPTH)
    return;
  scratch->idx = t->idx;
  lt_merge();
}

#endif /* LOCKD_BPF_LIB_TABLE_H_ */
