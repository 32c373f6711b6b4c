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
    const v1::PoolUsage& pool) {
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
    absl::string_view type;
    absl::string_view help;
    uint64_t value;
  } pool_metrics[] = {
      {"lockd_pool_blocks_in_use", "gauge",
       "Wait-queue blocks in use in the datapath's pool.",
       pool.blocks_in_use()},
      {"lockd_pool_block_capacity", "gauge",
       "Wait-queue blocks the pool can hold.", pool.block_capacity()},
      {"lockd_pool_bytes_per_block", "gauge", "Size of one pool block.",
       pool.bytes_per_block()},
      {"lockd_pool_blocks_allocated_total", "counter",
       "Pool blocks allocated since the maps were created.",
       pool.allocated_total()},
      {"lockd_pool_blocks_freed_total", "counter",
       "Pool blocks freed since the maps were created.", pool.freed_total()},
      {"lockd_pool_table_entries", "gauge",
       "Entries in the datapath's lock table.", pool.table_entries()},
      {"lockd_pool_table_capacity", "gauge",
       "Entries the datapath's lock table can hold.", pool.table_capacity()},
      {"lockd_pool_owners_entries", "gauge",
       "Owner records (holders and waiters) in the datapath.",
       pool.owners_entries()},
      {"lockd_pool_owners_capacity", "gauge",
       "Owner records the datapath can hold.", pool.owners_capacity()},
      {"lockd_pool_user_owned_locks", "gauge",
       "Locks the daemon serves itself instead of the datapath.",
       pool.user_owned_locks()},
      {"lockd_pool_user_waiters", "gauge",
       "Waiters queued in the daemon's lock engine.", pool.user_waiters()},
  };
  for (const auto& metric : pool_metrics) {
    AppendMetric(metric.name, metric.type, metric.help, metric.value, out);
  }
  return out;
}

}  // namespace lockd
