/* Per-CPU outcome counters (enum lockd_stat in the ABI header). */
#ifndef LOCKD_BPF_LIB_STATS_H_
#define LOCKD_BPF_LIB_STATS_H_

#include "bpf/lib/maps.h"

static __always_inline void stat_add(__u32 stat, __u64 n) {
  __u64 *counter = bpf_map_lookup_elem(&stats, &stat);
  if (counter) *counter += n;
}

static __always_inline void stat_inc(__u32 stat) { stat_add(stat, 1); }

/* A waiter granted after waiting `ns`: its bucket of the histogram. */
static __always_inline void stat_wait(__u64 ns) {
  __u64 us = ns / 1000;
  __u32 bucket = 0;
#pragma unroll
  for (int i = 0; i < LOCKD_WAIT_BUCKETS - 1; i++)
    if (us >= ((__u64)LOCKD_WAIT_BUCKET0_US << (2 * i))) bucket = i + 1;
  stat_inc(LOCKD_STAT_WAIT_FIRST + bucket);
  stat_add(LOCKD_STAT_WAIT_SUM_NS, ns);
}

#endif /* LOCKD_BPF_LIB_STATS_H_ */
