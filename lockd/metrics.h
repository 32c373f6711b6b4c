// lockd's metrics in the Prometheus text exposition format (version 0.0.4),
// for lockd's own /metrics endpoint (metrics_http.h) and `lockctl metrics`.
// It works on the GetStats message, so any client of the AdminService can
// render them. Families (each with # HELP and # TYPE):
//   lockd_datapath_outcomes_total{outcome}  counters of abi/lockd_abi.h
//   lockd_daemon_operations_total{operation} the daemon's (daemon_counters.h)
//   lockd_locks, lockd_holders, lockd_waiters  live, from the counters
//   lockd_queue_wait_seconds                 histogram: enqueue to grant
//   lockd_memory_bytes{part}, lockd_memory_budget_bytes, lockd_segments{map},
//   lockd_pool_blocks, lockd_pool_capacity_blocks, lockd_at_budget{map}
//   lockd_segments_added_total{map}, lockd_segments_removed_total{map},
//   lockd_growth_refused_total
#ifndef LOCKD_LOCKD_METRICS_H_
#define LOCKD_LOCKD_METRICS_H_

#include <string>

#include "proto/lockd.pb.h"

namespace lockd {

std::string RenderPrometheus(const v1::GetStatsResponse& stats);

}  // namespace lockd

#endif  // LOCKD_LOCKD_METRICS_H_
