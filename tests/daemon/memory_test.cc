// Memory follows use, end to end: a queue far longer than the pool's first
// segment grows the pool segment by segment (strict FIFO throughout), and
// after the drain the pool shrinks back to its smallest segment. At the
// memory budget, a waiter that needs more is refused with NO_CAPACITY,
// nothing queued before is lost, and room comes back as the queue drains.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

constexpr uint32_t kPoolMinBlocks = 16;
constexpr int kWaiters = 200;

using MemoryTest = DaemonTest;

uint64_t Counter(const v1::GetStatsResponse& stats, const std::string& name) {
  auto it = stats.counters().find(name);
  return it == stats.counters().end() ? 0 : it->second;
}

TEST_F(MemoryTest, LongQueueGrowsThePoolAndItShrinksAfterTheDrain) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({absl::StrCat("--pool_min_blocks=", kPoolMinBlocks),
                  "--shrink_after_ms=100"});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("long-queue");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> holder = OpenClient(lock, 1);
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<Message> granted =
      ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  // One at a time, so that arrival order is defined.
  std::vector<std::unique_ptr<UdpLockClient>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter =
        OpenClient(lock, 1000 + i);
    ASSERT_TRUE(waiter.ok()) << waiter.status();
    absl::StatusOr<Message> queued =
        ExpectReply((*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                    LOCKD_OP_QUEUED);
    ASSERT_TRUE(queued.ok()) << "waiter " << i << ": " << queued.status();
    EXPECT_EQ(queued->queue_pos, static_cast<uint32_t>(i));
    waiters.push_back(std::move(*waiter));
  }

  absl::StatusOr<v1::GetStatsResponse> grown = StatsJson();
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_GE(grown->memory().pool_segments_added(),
            4u);  // 16, 32, 64, 128 blocks
  EXPECT_EQ(grown->memory().pool_live_blocks(),
            static_cast<uint64_t>(kWaiters));
  EXPECT_GE(grown->memory().pool_capacity_blocks(),
            static_cast<uint64_t>(kWaiters));
  EXPECT_EQ(Counter(*grown, "no_capacity_pool"), 0u);

  ASSERT_TRUE(IsOk(ReleaseInFifoOrder(**holder, granted->fence, waiters)));

  absl::Status shrunk = WaitUntil(
      [&]() -> absl::StatusOr<bool> {
        absl::StatusOr<v1::GetStatsResponse> stats = StatsJson();
        if (!stats.ok()) return stats.status();
        const v1::MemoryUsage& m = stats->memory();
        return m.locks() == 0 && m.pool_live_blocks() == 0 &&
               m.pool_segments() == 1 &&
               m.pool_capacity_blocks() == kPoolMinBlocks;
      },
      kStartTimeout, "the pool back to one smallest segment");
  ASSERT_TRUE(shrunk.ok()) << shrunk;
  absl::StatusOr<v1::GetStatsResponse> after = StatsJson();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(after->memory().pool_bytes(), grown->memory().pool_bytes());
}

TEST_F(MemoryTest, AtTheBudgetWaitersAreRefusedAndRoomComesBack) {
  const std::string pool_flag =
      absl::StrCat("--pool_min_blocks=", kPoolMinBlocks);
  // What a fresh server takes, measured: the budget is exactly that.
  uint64_t fresh_bytes = 0;
  {
    absl::StatusOr<std::unique_ptr<NetnsProcess>> probe =
        StartLockd({pool_flag, "--keep_state=false"});
    ASSERT_TRUE(probe.ok()) << probe.status();
    absl::StatusOr<v1::GetStatsResponse> stats = StatsJson();
    ASSERT_TRUE(stats.ok()) << stats.status();
    fresh_bytes = stats->memory().total_bytes();
    ASSERT_TRUE(IsOk((*probe)->Signal(SIGTERM)));
    ASSERT_TRUE((*probe)->Wait(kStopTimeout).ok());
  }
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({pool_flag, absl::StrCat("--memory_budget=", fresh_bytes)});
  ASSERT_TRUE(lockd.ok()) << lockd.status();

  const uint64_t lock = LockIdForName("budget");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> holder = OpenClient(lock, 1);
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<Message> granted =
      ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  // Waiters until one is refused: the pool's one segment holds at most
  // kPoolMinBlocks of them.
  std::vector<std::unique_ptr<UdpLockClient>> waiters;
  std::unique_ptr<UdpLockClient> refused;
  for (uint64_t txn = 100; txn < 100 + 2 * kPoolMinBlocks; ++txn) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter =
        OpenClient(lock, txn);
    ASSERT_TRUE(waiter.ok()) << waiter.status();
    absl::StatusOr<Message> reply =
        (*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE);
    ASSERT_TRUE(reply.ok()) << reply.status();
    if (reply->opcode == LOCKD_OP_REJECTED) {
      EXPECT_EQ(reply->status, LOCKD_STATUS_NO_CAPACITY) << *reply;
      refused = std::move(*waiter);
      break;
    }
    ASSERT_EQ(reply->opcode, LOCKD_OP_QUEUED) << *reply;
    waiters.push_back(std::move(*waiter));
  }
  ASSERT_NE(refused, nullptr) << "no waiter was refused at the budget";
  EXPECT_LE(waiters.size(), kPoolMinBlocks);
  absl::StatusOr<v1::GetStatsResponse> stats = StatsJson();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GE(Counter(*stats, "no_capacity_pool"), 1u);
  EXPECT_TRUE(stats->memory().pool_at_budget());
  EXPECT_LE(stats->memory().total_bytes(), fresh_bytes);

  // Everyone queued before the refusal is granted in order.
  ASSERT_TRUE(IsOk(ReleaseInFifoOrder(**holder, granted->fence, waiters)));
  // Room again: the refused client queues now.
  absl::StatusOr<std::unique_ptr<UdpLockClient>> next = OpenClient(lock, 2);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*next)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_GRANTED)
               .status()));
  ASSERT_TRUE(
      IsOk(ExpectReply(refused->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_QUEUED)
               .status()));
}

}  // namespace
}  // namespace lockd::testing
