// The Prometheus text format of lockd's counters and pool.
#include "lockd/metrics.h"

#include <map>
#include <string>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lockd.pb.h"

namespace lockd {
namespace {

using ::testing::HasSubstr;

TEST(RenderPrometheusTest, CounterHasHelpTypeAndSample) {
  google::protobuf::Map<std::string, uint64_t> counters;
  counters["grant_immediate"] = 12;

  EXPECT_THAT(RenderPrometheus(counters, v1::MemoryUsage()),
              HasSubstr("# HELP lockd_grant_immediate_total lockd counter "
                        "\"grant_immediate\": LOCKD_STATS in "
                        "abi/lockd_abi.h, or the daemon's own for daemon_*.\n"
                        "# TYPE lockd_grant_immediate_total counter\n"
                        "lockd_grant_immediate_total 12\n"));
}

TEST(RenderPrometheusTest, EveryCounterOnceInNameOrder) {
  google::protobuf::Map<std::string, uint64_t> counters;
  for (absl::string_view name : StatNames()) counters[std::string(name)] = 1;
  counters["daemon_ctl_runs"] = 3;

  const std::string text = RenderPrometheus(counters, v1::MemoryUsage());

  size_t previous = 0;
  for (const auto& [name, value] :
       std::map<std::string, uint64_t>(counters.begin(), counters.end())) {
    const std::string sample =
        absl::StrCat("\nlockd_", name, "_total ", value, "\n");
    const size_t at = text.find(sample);
    ASSERT_NE(at, std::string::npos) << sample;
    EXPECT_GT(at, previous) << name << " out of order";
    EXPECT_EQ(text.find(sample, at + 1), std::string::npos) << name;
    previous = at;
  }
}

TEST(RenderPrometheusTest, MemoryIsGauges) {
  v1::MemoryUsage memory;
  memory.set_total_bytes(4096);
  memory.set_pool_live_blocks(16);
  memory.set_pool_at_budget(true);

  const std::string text = RenderPrometheus({}, memory);

  EXPECT_THAT(text, HasSubstr("# TYPE lockd_memory_bytes gauge\n"
                              "lockd_memory_bytes 4096\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE lockd_pool_live_blocks gauge\n"
                              "lockd_pool_live_blocks 16\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE lockd_pool_at_budget gauge\n"
                              "lockd_pool_at_budget 1\n"));
}

}  // namespace
}  // namespace lockd
