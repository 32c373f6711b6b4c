// The Prometheus text of lockd's metrics from a fixed GetStats answer: one
// labeled family per counter list, live gauges derived from the counters,
// the queue wait histogram cumulative, memory as gauges. (tests/daemon's
// metrics_test scrapes a real lockd and runs promtool on it.)
#include "lockd/metrics.h"

#include <string>

#include "abi/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lockd.pb.h"

namespace lockd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::GetStatsResponse Stats() {
  v1::GetStatsResponse stats;
  auto& c = *stats.mutable_counters();
  for (absl::string_view name : StatNames()) c[std::string(name)] = 0;
  c["lock_created"] = 10;
  c["lock_freed"] = 7;
  c["grant_immediate"] = 9;
  c["grant_from_queue"] = 4;
  c["hold_ended"] = 10;
  c["queued"] = 8;
  c["cancelled"] = 1;
  c["wait_expired"] = 1;
  c["daemon_ctl_runs"] = 5;
  v1::QueueWait& wait = *stats.mutable_queue_wait();
  for (double bound : {0.001, 0.01}) wait.add_upper_seconds(bound);
  for (uint64_t n : {1, 2, 1}) wait.add_counts(n);
  wait.set_sum_seconds(0.5);
  stats.mutable_memory()->set_table_bytes(4096);
  stats.mutable_memory()->set_pool_at_budget(true);
  return stats;
}

TEST(RenderPrometheusTest, CountersAreLabeledFamilies) {
  const std::string text = RenderPrometheus(Stats());
  EXPECT_THAT(text,
              HasSubstr("# TYPE lockd_datapath_outcomes_total counter\n"));
  EXPECT_THAT(
      text, HasSubstr("lockd_datapath_outcomes_total{outcome=\"queued\"} 8\n"));
  EXPECT_THAT(text,
              HasSubstr("lockd_daemon_operations_total{operation=\"ctl_runs\"} "
                        "5\n"));
  // One family per list, not one per counter.
  EXPECT_THAT(text, Not(HasSubstr("lockd_queued_total")));
  for (absl::string_view name : StatNames())
    EXPECT_THAT(text, HasSubstr(absl::StrCat("{outcome=\"", name, "\"}")));
}

TEST(RenderPrometheusTest, LiveGaugesFollowTheCounters) {
  const std::string text = RenderPrometheus(Stats());
  EXPECT_THAT(text, HasSubstr("\nlockd_locks 3\n"));    // 10 created - 7 freed
  EXPECT_THAT(text, HasSubstr("\nlockd_holders 3\n"));  // 9 + 4 - 10
  EXPECT_THAT(text, HasSubstr("\nlockd_waiters 2\n"));  // 8 - 4 - 1 - 1
}

TEST(RenderPrometheusTest, QueueWaitIsACumulativeHistogram) {
  const std::string text = RenderPrometheus(Stats());
  EXPECT_THAT(text,
              HasSubstr("# TYPE lockd_queue_wait_seconds histogram\n"
                        "lockd_queue_wait_seconds_bucket{le=\"0.001\"} 1\n"
                        "lockd_queue_wait_seconds_bucket{le=\"0.01\"} 3\n"
                        "lockd_queue_wait_seconds_bucket{le=\"+Inf\"} 4\n"
                        "lockd_queue_wait_seconds_sum 0.5\n"
                        "lockd_queue_wait_seconds_count 4\n"));
}

TEST(RenderPrometheusTest, MemoryIsGauges) {
  const std::string text = RenderPrometheus(Stats());
  EXPECT_THAT(text, HasSubstr("lockd_memory_bytes{part=\"table\"} 4096\n"));
  EXPECT_THAT(text, HasSubstr("lockd_at_budget{map=\"pool\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE lockd_segments_added_total counter\n"));
}

}  // namespace
}  // namespace lockd
