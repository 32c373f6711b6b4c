// lockd stopped while locks are held and waited for, then started again on
// the same instance. Killed (SIGKILL) or stopped (SIGTERM: it hands its
// pinned table to its successor), the next run continues the table: holders,
// queues in order, fences, and the locks are handed down their queues
// afterwards. Stopped with --keep_state=false, the next run starts empty,
// and its fences still start above every fence handed out before.
#include <signal.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "abi/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class RestartTest : public DaemonTest,
                    public ::testing::WithParamInterface<int> {};

// A holder and its waiters, as UDP clients of one lock.
struct Contended {
  std::unique_ptr<UdpLockClient> holder;
  uint64_t holder_fence = 0;
  std::vector<std::unique_ptr<UdpLockClient>> waiters;
};

TEST_P(RestartTest, NextRunContinuesWithHoldersAndQueues) {
  const int stop_signal = GetParam();
  absl::StatusOr<std::unique_ptr<NetnsProcess>> first = StartLockd();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(ready_line(), Not(HasSubstr("continuing")));

  const uint64_t short_queue = LockIdForName("restart-short");
  const uint64_t long_queue = LockIdForName("restart-long");
  Contended a, b;
  for (auto [lock, contended, first_txn, waiters] :
       {std::tuple{short_queue, &a, uint64_t{11}, 2},
        std::tuple{long_queue, &b, uint64_t{21}, 20}}) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> holder =
        OpenClient(lock, first_txn);
    ASSERT_TRUE(holder.ok()) << holder.status();
    absl::StatusOr<Message> granted =
        ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                    LOCKD_OP_GRANTED);
    ASSERT_TRUE(granted.ok()) << granted.status();
    contended->holder = std::move(*holder);
    contended->holder_fence = granted->fence;
    for (int i = 1; i <= waiters; ++i) {
      absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter =
          OpenClient(lock, first_txn + i);
      ASSERT_TRUE(waiter.ok()) << waiter.status();
      absl::StatusOr<Message> queued =
          ExpectReply((*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                      LOCKD_OP_QUEUED);
      ASSERT_TRUE(queued.ok()) << queued.status();
      contended->waiters.push_back(std::move(*waiter));
    }
  }
  std::vector<uint64_t> long_waiters;
  for (uint64_t txn = 22; txn <= 41; ++txn) long_waiters.push_back(txn);
  // Checks what lockctl shows of both locks, before and after the restart.
  auto expect_shown = [&] {
    absl::StatusOr<ShownLock> shown = Show(short_queue);
    ASSERT_TRUE(shown.ok()) << shown.status();
    EXPECT_THAT(shown->holders, ElementsAre(11));
    EXPECT_THAT(shown->queue, ElementsAre(12, 13));
    shown = Show(long_queue);
    ASSERT_TRUE(shown.ok()) << shown.status();
    EXPECT_THAT(shown->holders, ElementsAre(21));
    EXPECT_EQ(shown->queue, long_waiters);
  };
  expect_shown();

  ASSERT_TRUE(IsOk((*first)->Signal(stop_signal)));
  absl::StatusOr<int> stopped = (*first)->Wait(kStopTimeout);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, stop_signal == SIGKILL ? 128 + SIGKILL : 0);

  absl::StatusOr<std::unique_ptr<NetnsProcess>> second = StartLockd();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(ready_line(), HasSubstr("continuing the previous run"));
  expect_shown();

  for (Contended* contended : {&a, &b}) {
    absl::Status handed_down = ReleaseInFifoOrder(
        *contended->holder, contended->holder_fence, contended->waiters);
    EXPECT_TRUE(handed_down.ok())
        << "lock of txn " << contended->holder->txn_id() << ": " << handed_down;
  }
}

INSTANTIATE_TEST_SUITE_P(StopSignals, RestartTest,
                         ::testing::Values(SIGKILL, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == SIGKILL ? "Sigkill"
                                                        : "Sigterm";
                         });

using FreshStartTest = DaemonTest;

TEST_F(FreshStartTest, StateRemovedOnStopAndFencesStillGrow) {
  const uint64_t lock = LockIdForName("fresh");
  uint64_t before = 0;
  {
    absl::StatusOr<std::unique_ptr<NetnsProcess>> first =
        StartLockd({"--keep_state=false"});
    ASSERT_TRUE(first.ok()) << first.status();
    absl::StatusOr<std::unique_ptr<UdpLockClient>> a = OpenClient(lock, 1);
    ASSERT_TRUE(a.ok()) << a.status();
    absl::StatusOr<Message> granted = ExpectReply(
        (*a)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
    ASSERT_TRUE(granted.ok()) << granted.status();
    before = granted->fence;
    ASSERT_TRUE(IsOk((*first)->Signal(SIGTERM)));
    absl::StatusOr<int> stopped = (*first)->Wait(kStopTimeout);
    ASSERT_TRUE(stopped.ok()) << stopped.status();
    EXPECT_EQ(*stopped, 0);
  }
  absl::StatusOr<std::unique_ptr<NetnsProcess>> second = StartLockd();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(ready_line(), Not(HasSubstr("continuing")));
  absl::StatusOr<std::unique_ptr<UdpLockClient>> b = OpenClient(lock, 2);
  ASSERT_TRUE(b.ok()) << b.status();
  absl::StatusOr<Message> granted = ExpectReply(
      (*b)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  // A fresh table's fences start from the clock (CLOCK_TAI, ns).
  EXPECT_GT(granted->fence, before);
}

}  // namespace
}  // namespace lockd::testing
