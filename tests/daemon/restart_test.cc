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
                           return info.param == SIGKILL ? "Sigkill" : "Sigterm";
                         });

// gRPC callers through a SIGKILL: the call that was waiting fails with
// UNAVAILABLE, every hold stays valid (a gRPC holder releases it after the
// restart with its fence), the FIFO order of UDP and gRPC waiters is kept,
// and the caller that retries its Acquire finds its place in the queue.
TEST_F(RestartTest, GrpcCallersKeepTheirHoldsAndPlacesThroughASigkill) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> first = StartLockd();
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t lock = LockIdForName("restart-grpc");
  auto grpc_client = [&](uint64_t txn) {
    return StartGrpcLockClient(
        {absl::StrCat("--lock_id=", lock), absl::StrCat("--txn_id=", txn)});
  };
  auto queue_is = [&](size_t length) {
    return WaitUntil(
        [&]() -> absl::StatusOr<bool> {
          absl::StatusOr<ShownLock> shown = Show(lock);
          if (!shown.ok()) return shown.status();
          return shown->queue.size() == length;
        },
        kStartTimeout, absl::StrCat("a queue of ", length));
  };
  absl::StatusOr<std::unique_ptr<NetnsProcess>> g1 = grpc_client(1);
  ASSERT_TRUE(g1.ok()) << g1.status();
  absl::StatusOr<std::string> granted =
      (*g1)->ReadLineContaining("granted", kReplyTimeout);
  ASSERT_TRUE(granted.ok()) << granted.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> u2 = OpenClient(lock, 2);
  ASSERT_TRUE(u2.ok()) << u2.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*u2)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_QUEUED)
               .status()));
  absl::StatusOr<std::unique_ptr<NetnsProcess>> g3 = grpc_client(3);
  ASSERT_TRUE(g3.ok()) << g3.status();
  ASSERT_TRUE(IsOk(queue_is(2)));
  absl::StatusOr<std::unique_ptr<UdpLockClient>> u4 = OpenClient(lock, 4);
  ASSERT_TRUE(u4.ok()) << u4.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*u4)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_QUEUED)
               .status()));

  ASSERT_TRUE(IsOk((*first)->Signal(SIGKILL)));
  ASSERT_TRUE((*first)->Wait(kStopTimeout).ok());
  // The waiting call ends with UNAVAILABLE (grpc::StatusCode 14).
  absl::StatusOr<std::string> failed =
      (*g3)->ReadLineContaining("failed", kReplyTimeout);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(*failed, "failed 14");

  absl::StatusOr<std::unique_ptr<NetnsProcess>> second = StartLockd();
  ASSERT_TRUE(second.ok()) << second.status();
  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(1));
  EXPECT_THAT(shown->queue, ElementsAre(2, 3, 4));

  // Txn 3 asks again: the same place, not a new one.
  absl::StatusOr<std::unique_ptr<NetnsProcess>> g3_again = grpc_client(3);
  ASSERT_TRUE(g3_again.ok()) << g3_again.status();
  // The gRPC holder's hold is still its: releasing it hands the lock on.
  ASSERT_TRUE(IsOk((*g1)->WriteLine("release")));
  absl::StatusOr<std::string> released =
      (*g1)->ReadLineContaining("released", kReplyTimeout);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->substr(9), granted->substr(8)) << "the same fence";
  absl::StatusOr<Message> u2_granted =
      ExpectReply((*u2)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(u2_granted.ok()) << u2_granted.status();
  ASSERT_TRUE(IsOk(
      ExpectReply((*u2)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED).status()));
  absl::StatusOr<std::string> g3_granted =
      (*g3_again)->ReadLineContaining("granted", kReplyTimeout);
  ASSERT_TRUE(g3_granted.ok()) << g3_granted.status();
  ASSERT_TRUE(IsOk((*g3_again)->WriteLine("release")));
  absl::StatusOr<Message> u4_granted =
      ExpectReply((*u4)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(u4_granted.ok()) << u4_granted.status();
  EXPECT_GT(u4_granted->fence, u2_granted->fence);
}

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
