// Grant latency and goodput through the client library (client/client.h),
// as an application sees them: threads run one-lock transactions (WAIT,
// EXCLUSIVE) on a few hot locks, so that most grants come from a queue, for
// a bounded time and number of transactions. The grant latency of a lock is
// the time Transaction::Lock took: from the ACQUIRE's first transmission to
// the GRANTED the library took, retransmissions, probes of a queued request
// and any gRPC fallback included. bench/loss_latency.sh runs it under packet
// loss.
//
// Prints one JSON object: the settings, committed transactions and their
// rate, grant latency percentiles (microseconds) and the client's counters.
// Exit status 0 only if no transaction failed.
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/histogram.h"
#include "client/client.h"
#include "client/server_list.h"
#include "client/transaction.h"
#include "lockctl/server_list.h"

ABSL_FLAG(std::string, lock_servers, lockd::lockctl::DefaultServerList(),
          lockd::lockctl::kLockServersHelp);
ABSL_FLAG(uint32_t, client_id, LOCKD_CLIENT_NONE,
          "client id to sign requests as; 0: unsigned");
ABSL_FLAG(std::string, key_file, "", "key file holding --client_id's key");
ABSL_FLAG(int, threads, 8, "threads, each running one transaction at a time");
ABSL_FLAG(int, locks, 4, "hot locks the transactions pick from at random");
ABSL_FLAG(absl::Duration, hold, absl::Microseconds(100),
          "how long a transaction holds its lock");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "how long threads run");
ABSL_FLAG(int, max_txns, 1000000, "transactions per thread at most");

namespace lockd::bench {
namespace {

struct Tally {
  LatencyHistogram grant_latency;
  uint64_t commits = 0;
  uint64_t errors = 0;
  std::string first_error;
};

Tally Work(client::Client& client, absl::Time deadline, int max_txns, int locks,
           absl::Duration hold) {
  Tally tally;
  std::mt19937_64 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(0, locks - 1);
  for (int i = 0; i < max_txns && absl::Now() < deadline; ++i) {
    client::Transaction txn = client.Begin();
    const absl::Time start = absl::Now();
    absl::StatusOr<uint64_t> fence =
        txn.Lock(absl::StrFormat("bench/hot-%d", pick(random)),
                 client::Mode::kExclusive);
    absl::Status done = fence.status();
    if (done.ok()) {
      tally.grant_latency.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
      absl::SleepFor(hold);
      done = txn.Commit();
    }
    if (!done.ok()) {
      ++tally.errors;
      tally.first_error = done.ToString();
      break;
    }
    ++tally.commits;
  }
  return tally;
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int locks = absl::GetFlag(FLAGS_locks);
  if (threads < 1 || locks < 1) {
    fprintf(stderr, "client_latency: needs --threads >= 1 and --locks >= 1\n");
    return 2;
  }
  absl::StatusOr<std::vector<client::ServerConfig>> servers =
      client::ParseServerList(absl::GetFlag(FLAGS_lock_servers));
  if (!servers.ok()) {
    fprintf(stderr, "client_latency: %s\n",
            servers.status().ToString().c_str());
    return 2;
  }
  client::ClientOptions options;
  options.servers = *servers;
  if (absl::Status keyed = options.UseKey(absl::GetFlag(FLAGS_client_id),
                                          absl::GetFlag(FLAGS_key_file));
      !keyed.ok()) {
    fprintf(stderr, "client_latency: %s\n", keyed.ToString().c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<client::Client>> client =
      client::Client::Create(options);
  if (!client.ok()) {
    fprintf(stderr, "client_latency: %s\n", client.status().ToString().c_str());
    return 2;
  }

  absl::Mutex mu;
  Tally total;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::GetFlag(FLAGS_duration);
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      Tally mine = Work(**client, deadline, absl::GetFlag(FLAGS_max_txns),
                        locks, absl::GetFlag(FLAGS_hold));
      absl::MutexLock lock(&mu);
      total.grant_latency.Merge(mine.grant_latency);
      total.commits += mine.commits;
      total.errors += mine.errors;
      if (total.first_error.empty()) total.first_error = mine.first_error;
    });
  }
  for (std::thread& worker : workers) worker.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  const client::ServerStats stats = (*client)->Stats().total;
  const auto us = [&](double fraction) {
    return total.grant_latency.Percentile(fraction) / 1e3;
  };
  printf(
      "{\"threads\": %d, \"locks\": %d, \"hold_us\": %.1f, "
      "\"commits\": %" PRIu64
      ", \"seconds\": %.3f, \"commits_per_s\": %.1f, \"errors\": %" PRIu64
      ", \"grant_p50_us\": %.1f, \"grant_p99_us\": %.1f, "
      "\"grant_p999_us\": %.1f, \"grant_max_us\": %.1f, "
      "\"udp_requests\": %" PRIu64 ", \"udp_retransmissions\": %" PRIu64
      ", \"udp_fallbacks\": %" PRIu64 "}\n",
      threads, locks, absl::ToDoubleMicroseconds(absl::GetFlag(FLAGS_hold)),
      total.commits, seconds, total.commits / seconds, total.errors, us(0.5),
      us(0.99), us(0.999), us(1.0), stats.udp_requests,
      stats.udp_retransmissions, stats.udp_fallbacks);
  if (total.errors > 0) {
    fprintf(stderr, "client_latency: %" PRIu64 " failed; the first: %s\n",
            total.errors, total.first_error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "client_latency [--lock_servers=LIST] [--threads=8] [--locks=4] "
      "[--duration=5s]: grant latency and goodput through the client library");
  absl::ParseCommandLine(argc, argv);
  return lockd::bench::Run();
}
