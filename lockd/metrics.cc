#include "lockd/metrics.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace lockd {
namespace {

constexpr absl::string_view kDaemonPrefix = "daemon_";

class Writer {
 public:
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help) {
    absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  }
  void Sample(absl::string_view name, absl::string_view labels, double value) {
    absl::StrAppend(&out_, name, labels.empty() ? "" : "{", labels,
                    labels.empty() ? "" : "}", " ",
                    absl::StrFormat("%.17g", value), "\n");
  }
  // One family, one sample per label value.
  void Labeled(absl::string_view name, absl::string_view type,
               absl::string_view help, absl::string_view label,
               const std::vector<std::pair<std::string, double>>& values) {
    Family(name, type, help);
    for (const auto& [value_of_label, value] : values)
      Sample(name, absl::StrCat(label, "=\"", value_of_label, "\""), value);
  }
  void Single(absl::string_view name, absl::string_view type,
              absl::string_view help, double value) {
    Family(name, type, help);
    Sample(name, "", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

uint64_t Get(const std::map<std::string, uint64_t>& counters,
             const std::string& name) {
  auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

// a - b, never below 0 (the counters are read one by one while they move).
double Live(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

std::string RenderPrometheus(const v1::GetStatsResponse& stats) {
  // A protobuf map has no order; scrapes are easier to diff with one.
  const std::map<std::string, uint64_t> counters(stats.counters().begin(),
                                                 stats.counters().end());
  std::vector<std::pair<std::string, double>> datapath, daemon;
  for (const auto& [name, value] : counters) {
    if (absl::StartsWith(name, kDaemonPrefix))
      daemon.emplace_back(name.substr(kDaemonPrefix.size()), value);
    else
      datapath.emplace_back(name, value);
  }
  Writer w;
  w.Labeled("lockd_datapath_outcomes_total", "counter",
            "What the lock table did, by outcome (LOCKD_STATS in "
            "abi/lockd_abi.h; docs/architecture.md section 6).",
            "outcome", datapath);
  w.Labeled("lockd_daemon_operations_total", "counter",
            "What the control plane did, by operation "
            "(lockd/daemon_counters.h).",
            "operation", daemon);

  w.Single("lockd_locks", "gauge", "Locks with holders or waiters.",
           Live(Get(counters, "lock_created"), Get(counters, "lock_freed")));
  w.Single(
      "lockd_holders", "gauge", "Holds of locks, all locks together.",
      Live(Get(counters, "grant_immediate") + Get(counters, "grant_from_queue"),
           Get(counters, "hold_ended")));
  w.Single("lockd_waiters", "gauge",
           "Waiters in the locks' queues, cancelled ones not counted.",
           Live(Get(counters, "queued"), Get(counters, "grant_from_queue") +
                                             Get(counters, "cancelled") +
                                             Get(counters, "wait_expired")));

  const v1::QueueWait& wait = stats.queue_wait();
  w.Family("lockd_queue_wait_seconds", "histogram",
           "How long waiters waited, from joining the queue to the grant.");
  uint64_t cumulative = 0;
  for (int i = 0; i < wait.counts_size(); ++i) {
    cumulative += wait.counts(i);
    const std::string le = i < wait.upper_seconds_size()
                               ? absl::StrFormat("%g", wait.upper_seconds(i))
                               : "+Inf";
    w.Sample("lockd_queue_wait_seconds_bucket", absl::StrCat("le=\"", le, "\""),
             cumulative);
  }
  w.Sample("lockd_queue_wait_seconds_sum", "", wait.sum_seconds());
  w.Sample("lockd_queue_wait_seconds_count", "", cumulative);

  const v1::MemoryUsage& m = stats.memory();
  w.Labeled("lockd_memory_bytes", "gauge",
            "Kernel memory of the datapath's maps, by part.", "part",
            {{"fixed", m.fixed_bytes()},
             {"table", m.table_bytes()},
             {"pool", m.pool_bytes()}});
  w.Single(
      "lockd_memory_budget_bytes", "gauge",
      "Kernel memory the table and the pool may grow to (--memory_budget).",
      m.budget_bytes());
  w.Labeled("lockd_segments", "gauge", "Segments of the growing maps.", "map",
            {{"table", m.table_segments()}, {"pool", m.pool_segments()}});
  w.Single("lockd_pool_blocks", "gauge",
           "Pool blocks in use: waiters, and holders beyond a lock's first.",
           m.pool_live_blocks());
  w.Single("lockd_pool_capacity_blocks", "gauge",
           "Pool blocks the pool's segments hold.", m.pool_capacity_blocks());
  w.Labeled("lockd_at_budget", "gauge",
            "1 while the budget has no room for the map's next segment.", "map",
            {{"table", m.table_at_budget() ? 1 : 0},
             {"pool", m.pool_at_budget() ? 1 : 0}});
  w.Labeled(
      "lockd_segments_added_total", "counter",
      "Segments added since the daemon started.", "map",
      {{"table", m.table_segments_added()}, {"pool", m.pool_segments_added()}});
  w.Labeled("lockd_segments_removed_total", "counter",
            "Segments given back since the daemon started.", "map",
            {{"table", m.table_segments_removed()},
             {"pool", m.pool_segments_removed()}});
  w.Single("lockd_growth_refused_total", "counter",
           "Segments the memory budget had no room for.", m.growth_refused());
  return w.Take();
}

}  // namespace lockd
