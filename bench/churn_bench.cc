// churn_bench: the lock table under lock-id churn, in the kernel, without a
// network: a stream of lock ids never seen before, each acquired (XDP ->
// GRANTED) and released once --live newer locks are held (XDP ->
// RELEASED), through BPF_PROG_TEST_RUN. Every 2^16 requests it does what
// the daemon does (serves growth events, tidies idle memory) and samples
// the table: locks in it against locks live, its segments and the pool's.
// Prints a table and, with --json, the same as JSON. A benchmark: it never
// asserts on time; a request that is not answered as expected aborts it.
#include <sched.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/json_writer.h"
#include "tests/datapath/messages.h"
#include "tests/datapath/private_netns.h"
#include "tests/datapath/test_datapath.h"

ABSL_FLAG(uint64_t, distinct, 10'000'000, "Distinct lock ids, in all.");
ABSL_FLAG(uint32_t, live, 10'000, "Locks held at once.");
ABSL_FLAG(uint32_t, merge_at, lockd::DatapathOptions{}.merge_at,
          "Sibling buckets with this many locks in all merge.");
ABSL_FLAG(double, max_seconds, 600, "Stop after this long, whatever is left.");
ABSL_FLAG(std::string, json, "", "Also write the figures as JSON here.");

namespace lockd::bench {
namespace {

using testing::Acquire;
using testing::From;
using testing::Release;
using testing::TestDatapath;

constexpr uint64_t kSampleEvery = 1 << 16;
// How long an idle segment stays (the daemon's --shrink_after_ms).
constexpr absl::Duration kIdleGrace = absl::Seconds(1);

struct Sample {
  uint64_t requests = 0;
  uint64_t live = 0;
  uint64_t in_table = 0;
  MemoryUse memory;
};

// Answered by XDP with `opcode`, or an error saying what came. Unanswered
// (the table waits for a level the daemon has not made yet), the request is
// retransmitted after the daemon's work is done, as a client would; counted
// in *unanswered.
absl::Status Expect(TestDatapath& dp, testing::Deliverer& deliverer,
                    Message request, lockd_opcode opcode,
                    uint64_t* unanswered) {
  absl::StatusOr<testing::Delivery> d = deliverer.RunXdp(From(0, request));
  for (int again = 0; again < 3 && d.ok() && d->verdict == XDP_DROP; ++again) {
    ++*unanswered;
    if (absl::StatusOr<int> served = dp.ServeGrowth(); !served.ok())
      return served.status();
    request.flags = LOCKD_FLAG_RETRANSMIT;
    d = deliverer.RunXdp(From(0, request));
  }
  if (!d.ok()) return d.status();
  absl::StatusOr<Message> reply = testing::MessageOf(d->out);
  if (d->verdict != XDP_TX || !reply.ok() || reply->opcode != opcode)
    return absl::InternalError(
        absl::StrCat(request.ToString(), ": verdict ", d->verdict, ", ",
                     reply.ok() ? reply->ToString() : std::string("no reply")));
  return absl::OkStatus();
}

absl::Status Run() {
  if (absl::Status s = testing::EnterPrivateNetns(); !s.ok()) return s;
  DatapathOptions options;
  options.merge_at = absl::GetFlag(FLAGS_merge_at);
  SegmentOptions segment_options;
  segment_options.idle_grace = kIdleGrace;
  absl::StatusOr<TestDatapath> dp =
      TestDatapath::Create(options, segment_options);
  if (!dp.ok()) return dp.status();
  absl::StatusOr<testing::Deliverer> deliverer =
      testing::Deliverer::Create(dp->datapath.get(), /*capture=*/false);
  if (!deliverer.ok()) return deliverer.status();

  const uint64_t distinct = absl::GetFlag(FLAGS_distinct);
  const uint32_t live_target = absl::GetFlag(FLAGS_live);
  const absl::Time deadline =
      absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_max_seconds));
  std::mt19937_64 ids(20231);
  std::deque<Message> held;
  std::vector<Sample> samples;
  double worst_ratio = 0;
  uint64_t requests = 0, acquired = 0, unanswered = 0;
  auto release_oldest = [&]() {
    const Message& oldest = held.front();
    absl::Status s =
        Expect(*dp, *deliverer, Release(oldest.lock_id, oldest.txn_id),
               LOCKD_OP_RELEASED, &unanswered);
    held.pop_front();
    return s;
  };
  const absl::Time start = absl::Now();
  for (; acquired < distinct && absl::Now() < deadline; ++acquired) {
    const Message take = Acquire(ids(), acquired + 1, LOCKD_MODE_EXCLUSIVE);
    if (absl::Status s =
            Expect(*dp, *deliverer, take, LOCKD_OP_GRANTED, &unanswered);
        !s.ok())
      return s;
    ++requests;
    held.push_back(take);
    if (held.size() > live_target) {
      if (absl::Status s = release_oldest(); !s.ok()) return s;
      ++requests;
    }
    // The daemon serves growth as soon as it is asked (a ring buffer
    // wakeup); every 256 requests is the closest this loop comes.
    if (acquired % 256 == 0) {
      if (absl::StatusOr<int> served = dp->ServeGrowth(); !served.ok())
        return served.status();
    }
    if (acquired % kSampleEvery == 0) {
      if (absl::Status tidied = dp->segments->Tidy(absl::Now()); !tidied.ok())
        return tidied;
      absl::StatusOr<uint64_t> in_table = dp->table->CountLocks();
      if (!in_table.ok()) return in_table.status();
      samples.push_back(
          {requests, held.size(), *in_table, dp->segments->Use()});
      if (!held.empty())
        worst_ratio =
            std::max(worst_ratio, static_cast<double>(*in_table) / held.size());
    }
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const MemoryUse before_drain = dp->segments->Use();
  // The drain: every lock released, then the daemon's tidying for a while.
  while (!held.empty()) {
    if (absl::Status s = release_oldest(); !s.ok()) return s;
  }
  for (int i = 0; i < 4; ++i) {
    absl::SleepFor(kIdleGrace);
    if (absl::Status tidied = dp->segments->Tidy(absl::Now()); !tidied.ok())
      return tidied;
  }
  absl::StatusOr<StatCounters> stats = dp->datapath->ReadStats();
  if (!stats.ok()) return stats.status();
  const StatCounters& c = *stats;
  const MemoryUse end = dp->segments->Use();

  absl::PrintF(
      "churn_bench: %d distinct lock ids, %d held at once, through XDP "
      "(BPF_PROG_TEST_RUN)\n%.1f s, %.0f requests/s (syscall included)\n",
      acquired, live_target, seconds, requests / seconds);
  absl::PrintF("%12s %8s %10s %7s %10s %9s %10s\n", "requests", "live",
               "in table", "ratio", "table MiB", "segments", "pool MiB");
  const size_t step = std::max<size_t>(1, samples.size() / 12);
  for (size_t i = 0; i < samples.size(); i += step) {
    const Sample& s = samples[i];
    absl::PrintF("%12d %8d %10d %7.3f %10.2f %9d %10.2f\n", s.requests, s.live,
                 s.in_table,
                 s.live ? static_cast<double>(s.in_table) / s.live : 0.0,
                 s.memory.table_bytes / 1048576.0, s.memory.table_segments,
                 s.memory.pool_bytes / 1048576.0);
  }
  absl::PrintF(
      "worst locks in table / live: %.3f; created %d, freed %d, splits %d, "
      "merges %d, table_wait %d (requests unanswered until growth: %d), "
      "no_capacity_table %d\nmemory at the end: "
      "%.2f MiB (table %.2f MiB in %d segments, depth %d); before the "
      "drain %.2f MiB (table %.2f MiB in %d segments)\n",
      worst_ratio, c[LOCKD_STAT_LOCK_CREATED], c[LOCKD_STAT_LOCK_FREED],
      c[LOCKD_STAT_SPLIT], c[LOCKD_STAT_MERGE], c[LOCKD_STAT_TABLE_WAIT],
      unanswered, c[LOCKD_STAT_NO_CAPACITY_TABLE], end.total_bytes / 1048576.0,
      end.table_bytes / 1048576.0, end.table_segments, end.table_depth,
      before_drain.total_bytes / 1048576.0,
      before_drain.table_bytes / 1048576.0, before_drain.table_segments);

  std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) return absl::OkStatus();
  JsonWriter json;
  json.BeginObject();
  json.Field("distinct", acquired);
  json.Field("live", static_cast<uint64_t>(live_target));
  json.Field("seconds", seconds);
  json.Field("requests_per_s", requests / seconds);
  json.Field("worst_table_to_live", worst_ratio);
  json.Field("lock_created", c[LOCKD_STAT_LOCK_CREATED]);
  json.Field("lock_freed", c[LOCKD_STAT_LOCK_FREED]);
  json.Field("splits", c[LOCKD_STAT_SPLIT]);
  json.Field("merges", c[LOCKD_STAT_MERGE]);
  json.Field("table_wait", c[LOCKD_STAT_TABLE_WAIT]);
  json.Field("unanswered", unanswered);
  json.Field("no_capacity_table", c[LOCKD_STAT_NO_CAPACITY_TABLE]);
  json.Field("memory_before_drain_bytes", before_drain.total_bytes);
  json.Field("memory_end_bytes", end.total_bytes);
  json.Field("table_end_bytes", end.table_bytes);
  json.Field("table_end_segments", static_cast<uint64_t>(end.table_segments));
  json.EndObject();
  const char* cwd = getenv("BUILD_WORKING_DIRECTORY");
  if (path.front() != '/' && cwd != nullptr)
    path = absl::StrCat(cwd, "/", path);
  std::ofstream(path) << json.str() << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "churn_bench [--distinct=N] [--live=N]: the lock table under lock-id "
      "churn. Needs root.");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = lockd::bench::Run();
  if (!status.ok()) {
    fprintf(stderr, "churn_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
