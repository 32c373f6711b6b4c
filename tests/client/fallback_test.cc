// (c) The UDP fast path is cut mid-run: a workload of increments under one
// exclusive lock continues through the daemon's gRPC LockService, correctly,
// and returns to UDP once the cut is lifted, as the client's own counters
// show.
//
// Where the cut goes: lockd's XDP program answers in the server's driver,
// before netfilter sees the packet, so an nftables rule in the server
// namespace cannot stop the fast path. The rule drops the client's datagrams
// to port 20231 on their way out of the client namespace instead.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "client/scoped_lock.h"
#include "client/transaction.h"
#include "gtest/gtest.h"
#include "tests/client/client_fixture.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/netns/test_network.h"

namespace lockd::client::testing {
namespace {

using lockd::testing::WaitUntil;

constexpr int kWorkers = 3;
// Progress each phase must show before the next begins.
constexpr uint64_t kIncrementsPerPhase = 200;
constexpr char kCutTable[] = "lockd_client_test";
// Tests run with a minimal PATH, without /usr/sbin.
constexpr char kNft[] = "/usr/sbin/nft";

class FallbackTest : public ClientTest {
 protected:
  absl::Status Nft(const std::string& commands) {
    absl::StatusOr<netns::CommandResult> result =
        netns::ExecIn(ClientNetns(), commands);
    if (!result.ok()) return result.status();
    if (result->exit_code != 0)
      return absl::InternalError(absl::StrCat("`", commands, "` exited with ",
                                              result->exit_code, ": ",
                                              result->output));
    return absl::OkStatus();
  }

  absl::Status CutUdp() {
    return Nft(absl::StrCat(
        kNft, " add table ip ", kCutTable, " && ", kNft, " add chain ip ",
        kCutTable, " out '{ type filter hook output priority 0; }' && ", kNft,
        " add rule ip ", kCutTable, " out udp dport 20231 drop"));
  }

  absl::Status RestoreUdp() {
    return Nft(absl::StrCat(kNft, " delete table ip ", kCutTable));
  }
};

TEST_F(FallbackTest, WorkloadContinuesOverGrpcWhileUdpIsCut) {
  absl::Status started = StartServersAndClient(1);
  ASSERT_TRUE(started.ok()) << started;

  // The counter and the last fence are kept by the lock alone: the atomics
  // are relaxed and every update is a separate load and store.
  std::atomic<uint64_t> counter{0};
  std::atomic<uint64_t> last_fence{0};
  std::atomic<bool> stop{false};
  std::vector<uint64_t> done(kWorkers, 0);
  std::vector<absl::Status> results(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(SpawnInClient([&, w] {
      while (!stop) {
        absl::StatusOr<ScopedLock> lock =
            ScopedLock::Acquire(*client_, "fallback-counter", Mode::kExclusive);
        if (!lock.ok()) {
          results[w] = lock.status();
          return;
        }
        if (lock->fence() <= last_fence.load(std::memory_order_relaxed)) {
          results[w] = absl::InternalError(
              absl::StrCat("fence ", lock->fence(), " after fence ",
                           last_fence.load(std::memory_order_relaxed)));
          return;
        }
        last_fence.store(lock->fence(), std::memory_order_relaxed);
        counter.store(counter.load(std::memory_order_relaxed) + 1,
                      std::memory_order_relaxed);
        ++done[w];
        if (absl::Status released = lock->Release(); !released.ok()) {
          results[w] = released;
          return;
        }
      }
    }));
  }
  // Whatever fails below, the workers stop before the test returns.
  absl::Cleanup stop_workers = [&] {
    stop = true;
    for (std::thread& worker : workers)
      if (worker.joinable()) worker.join();
  };
  auto progressed_by = [&](uint64_t from) {
    return [&counter, from] { return counter >= from + kIncrementsPerPhase; };
  };

  // Over UDP.
  absl::Status udp_phase =
      WaitUntil(progressed_by(0), kPatience, "increments over UDP");
  EXPECT_TRUE(udp_phase.ok()) << udp_phase;
  const ClientStats before_cut = client_->Stats();
  EXPECT_EQ(before_cut.total.grpc_requests, 0u);

  // UDP cut: gRPC carries the workload.
  absl::Status cut = CutUdp();
  ASSERT_TRUE(cut.ok()) << cut;
  const uint64_t at_cut = counter;
  absl::Status grpc_phase = WaitUntil(
      [&] {
        return counter >= at_cut + kIncrementsPerPhase &&
               client_->Stats().total.grpc_requests >= kIncrementsPerPhase;
      },
      kPatience, "increments over gRPC");
  EXPECT_TRUE(grpc_phase.ok()) << grpc_phase;
  const ClientStats during_cut = client_->Stats();
  EXPECT_GE(during_cut.total.udp_fallbacks, 1u);

  // UDP back: the client returns to it.
  absl::Status restored = RestoreUdp();
  ASSERT_TRUE(restored.ok()) << restored;
  const uint64_t at_restore = counter;
  const ClientStats before_return = client_->Stats();
  absl::Status return_phase = WaitUntil(
      [&] {
        const ClientStats now = client_->Stats();
        return counter >= at_restore + kIncrementsPerPhase &&
               now.total.udp_path_up &&
               now.total.udp_replies >=
                   before_return.total.udp_replies + kIncrementsPerPhase;
      },
      kPatience, "increments over UDP again");
  EXPECT_TRUE(return_phase.ok()) << return_phase;

  std::move(stop_workers).Invoke();
  uint64_t total = 0;
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_TRUE(results[w].ok()) << "worker " << w << ": " << results[w];
    total += done[w];
  }
  EXPECT_EQ(counter, total);
  const ClientStats end = client_->Stats();
  RecordProperty("udp_requests", end.total.udp_requests);
  RecordProperty("grpc_requests", end.total.grpc_requests);
  RecordProperty("udp_fallbacks", end.total.udp_fallbacks);
}

// A server in its grace period (started without state) refuses ordinary
// requests over gRPC too: with UDP cut, the client's gRPC call is refused
// GRACE, asked again, and granted once grace ends; gRPC answers carry the
// server's epoch, as UDP replies do.
TEST_F(FallbackTest, GrpcCallsWaitOutTheGracePeriod) {
  absl::Status started = StartServersAndClient(1, {"--grace_ms=2500"});
  ASSERT_TRUE(started.ok()) << started;
  absl::Status cut = CutUdp();
  ASSERT_TRUE(cut.ok()) << cut;
  absl::Cleanup restore = [&] { RestoreUdp().IgnoreError(); };
  absl::StatusOr<uint64_t> fence;
  RunInClient(1, [&](int) {
    absl::StatusOr<ScopedLock> lock =
        ScopedLock::Acquire(*client_, "grace-over-grpc", Mode::kExclusive);
    if (!lock.ok()) {
      fence = lock.status();
      return;
    }
    fence = lock->fence();
    lock->Release().IgnoreError();
  });
  ASSERT_TRUE(fence.ok()) << fence.status();
  const ServerStats stats = client_->Stats().total;
  EXPECT_GE(stats.grpc_requests, 2u);  // refused, then granted
  EXPECT_GE(stats.grace_retries, 1u);
  EXPECT_NE(client_->Stats().servers[0].epoch, 0u);
}

}  // namespace
}  // namespace lockd::client::testing
