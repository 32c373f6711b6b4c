// A queue far longer than the kernel's wait-queue pool: lockd runs with a
// 4-block pool, one client holds a lock and 200 queue behind it. The kernel
// hands the lock to the daemon when the pool runs out; the daemon must keep
// strict FIFO order through the takeover and the whole drain, then give the
// lock back, after which the kernel serves it again.
#include <memory>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using ::testing::ElementsAreArray;
using ::testing::Gt;

constexpr int kWaiters = 200;
constexpr uint64_t kHolderTxn = 1;
constexpr uint64_t kFirstWaiterTxn = 1000;
constexpr uint64_t kLateTxn = 5000;

using OverflowTest = DaemonTest;

uint64_t Counter(const v1::GetStatsResponse& stats, const std::string& name) {
  auto it = stats.counters().find(name);
  return it == stats.counters().end() ? 0 : it->second;
}

TEST_F(OverflowTest, WaitersBeyondThePoolSpillToTheDaemonAndDrainInOrder) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--pool_capacity=4"});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("overflow");

  absl::StatusOr<std::unique_ptr<UdpLockClient>> holder =
      OpenClient(lock, kHolderTxn);
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<Message> granted =
      ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();

  // One at a time, so that arrival order is defined.
  std::vector<std::unique_ptr<UdpLockClient>> waiters;
  std::vector<uint64_t> waiter_txns;
  for (int i = 0; i < kWaiters; ++i) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter =
        OpenClient(lock, kFirstWaiterTxn + i);
    ASSERT_TRUE(waiter.ok()) << waiter.status();
    absl::StatusOr<Message> queued =
        ExpectReply((*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                    LOCKD_POLICY_WAIT),
                    LOCKD_OP_QUEUED);
    ASSERT_TRUE(queued.ok()) << "waiter " << i << ": " << queued.status();
    EXPECT_EQ(queued->queue_pos, static_cast<uint32_t>(i));
    waiter_txns.push_back((*waiter)->txn_id());
    waiters.push_back(std::move(*waiter));
  }

  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->served_by, "daemon");
  EXPECT_THAT(shown->holders, ElementsAreArray({kHolderTxn}));
  EXPECT_THAT(shown->queue, ElementsAreArray(waiter_txns));
  absl::StatusOr<v1::GetStatsResponse> spilled = StatsJson();
  ASSERT_TRUE(spilled.ok()) << spilled.status();
  EXPECT_THAT(Counter(*spilled, "handoff_pool_full"), Gt(0u));
  EXPECT_THAT(Counter(*spilled, "daemon_takeovers"), Gt(0u));
  EXPECT_EQ(spilled->pool().user_owned_locks(), 1u);
  EXPECT_EQ(spilled->pool().user_waiters(), static_cast<uint64_t>(kWaiters));

  absl::Status drained = ReleaseInFifoOrder(**holder, granted->fence, waiters);
  ASSERT_TRUE(drained.ok()) << drained;

  // Given back: the kernel serves the lock again.
  absl::StatusOr<v1::GetStatsResponse> before;
  absl::Status given_back = WaitUntil(
      [&]() -> absl::StatusOr<bool> {
        before = StatsJson();
        if (!before.ok()) return before.status();
        return Counter(*before, "daemon_give_backs") > 0;
      },
      kStartTimeout, "daemon_give_backs > 0 after the drain");
  ASSERT_TRUE(given_back.ok()) << given_back;
  EXPECT_EQ(before->pool().user_owned_locks(), 0u);
  EXPECT_EQ(before->pool().user_waiters(), 0u);
  EXPECT_EQ(before->pool().blocks_in_use(), 0u);

  absl::StatusOr<std::unique_ptr<UdpLockClient>> late =
      OpenClient(lock, kLateTxn);
  ASSERT_TRUE(late.ok()) << late.status();
  absl::StatusOr<Message> regranted = ExpectReply(
      (*late)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(regranted.ok()) << regranted.status();
  EXPECT_EQ(regranted->fence, granted->fence + kWaiters + 1);
  absl::StatusOr<v1::GetStatsResponse> after = StatsJson();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Counter(*after, "grant_immediate"),
            Counter(*before, "grant_immediate") + 1);
  shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->served_by, "kernel");
  EXPECT_THAT(shown->holders, ElementsAreArray({kLateTxn}));
}

// Minimal case of the takeover above: with one pool block, the second
// waiter makes the daemon take the lock over (and delete the kernel's owner
// records). The holder it imported must still be able to renew and release:
// the kernel has to hand those requests to the daemon.
TEST_F(OverflowTest, HolderOfATakenOverLockCanRenewAndRelease) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--pool_capacity=1"});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("taken-over");
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> opened =
      OpenClients(lock, {1, 2, 3});
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::vector<std::unique_ptr<UdpLockClient>>& clients = *opened;
  absl::StatusOr<Message> granted =
      ExpectReply(clients[0]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  for (int i : {1, 2}) {
    absl::StatusOr<Message> queued =
        ExpectReply(clients[i]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                    LOCKD_OP_QUEUED);
    ASSERT_TRUE(queued.ok()) << queued.status();
  }
  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  ASSERT_EQ(shown->served_by, "daemon");

  absl::StatusOr<Message> renewed =
      ExpectReply(clients[0]->Call(LOCKD_OP_RENEW), LOCKD_OP_RENEWED);
  EXPECT_TRUE(renewed.ok()) << renewed.status();
  absl::StatusOr<Message> released =
      ExpectReply(clients[0]->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->fence, granted->fence);
  absl::StatusOr<Message> next =
      ExpectReply(clients[1]->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->fence, granted->fence);
}

}  // namespace
}  // namespace lockd::testing
