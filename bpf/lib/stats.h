/* Per-CPU outcome counters (enum lockd_stat in the ABI header). */
#ifndef LOCKD_BPF_LIB_STATS_H_
#define LOCKD_BPF_LIB_STATS_H_

#include "bpf/lib/maps.h"

static __always_inline void stat_add(__u32 stat, __u64 n) {
  __u64 *counter = bpf_map_lookup_elem(&stats, &stat);
  if (counter) *counter += n;
}

static __always_inline void stat_inc(__u32 stat) { stat_add(stat, 1); }

#endif /* LOCKD_BPF_LIB_STATS_H_ */
