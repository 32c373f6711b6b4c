#include "lockd/metrics.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace lockd {
namespace {

void AppendMetric(absl::string_view name, absl::string_view type,
                  absl::string_view help, uint64_t value, std::string& out) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n", "# TYPE ", name, " ",
                  type, "\n", name, " ", value, "\n");
}

}  // namespace

std::string RenderPrometheus(
    const google::protobuf::Map<std::string, uint64_t>& counters,
    const v1::MemoryUsage& memory) {
  // A protobuf map has no order; scrapes are easier to diff with one.
  std::vector<std::pair<std::string, uint64_t>> sorted(counters.begin(),
                                                       counters.end());
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (const auto& [name, value] : sorted) {
    AppendMetric(absl::StrCat("lockd_", name, "_total"), "counter",
                 absl::StrCat("lockd counter \"", name,
                              "\": LOCKD_STATS in abi/lockd_abi.h, or the "
                              "daemon's own for daemon_*."),
                 value, out);
  }
  const struct {
    absl::string_view name;
    absl::string_view help;
    uint64_t value;
  } gauges[] = {
      {"lockd_memory_budget_bytes",
       "Kernel memory the table and the pool may grow to.",
       memory.budget_bytes()},
      {"lockd_memory_bytes", "Kernel memory of the datapath's maps now.",
       memory.total_bytes()},
      {"lockd_memory_table_bytes", "Memory of the lock table's segments.",
       memory.table_bytes()},
      {"lockd_memory_pool_bytes", "Memory of the Kerby pool's segments.",
       memory.pool_bytes()},
      {"lockd_table_segments", "Lock table segments (256 buckets each).",
       memory.table_segments()},
      {"lockd_pool_segments", "Kerby pool segments.", memory.pool_segments()},
      {"lockd_pool_capacity_blocks", "Blocks the pool's segments hold.",
       memory.pool_capacity_blocks()},
      {"lockd_pool_live_blocks",
       "Pool blocks in use: waiters and holders beyond a lock's first.",
       memory.pool_live_blocks()},
      {"lockd_locks", "Locks with holders or waiters.", memory.locks()},
      {"lockd_table_at_budget",
       "1 when the budget has no room for the next table level.",
       memory.table_at_budget() ? 1u : 0u},
      {"lockd_pool_at_budget",
       "1 when the budget has no room for the next pool segment.",
       memory.pool_at_budget() ? 1u : 0u},
  };
  for (const auto& gauge : gauges)
    AppendMetric(gauge.name, "gauge", gauge.help, gauge.value, out);
  const struct {
    absl::string_view name;
    absl::string_view help;
    uint64_t value;
  } totals[] = {
      {"lockd_table_segments_added_total",
       "Lock table segments added since the daemon started.",
       memory.table_segments_added()},
      {"lockd_table_segments_removed_total",
       "Lock table segments given back since the daemon started.",
       memory.table_segments_removed()},
      {"lockd_pool_segments_added_total",
       "Pool segments added since the daemon started.",
       memory.pool_segments_added()},
      {"lockd_pool_segments_removed_total",
       "Pool segments given back since the daemon started.",
       memory.pool_segments_removed()},
      {"lockd_growth_refused_total",
       "Segments the memory budget had no room for.",
       memory.growth_refused()},
  };
  for (const auto& total : totals)
    AppendMetric(total.name, "counter", total.help, total.value, out);
  return out;
}

}  // namespace lockd
