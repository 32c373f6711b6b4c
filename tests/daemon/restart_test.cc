// lockd killed with SIGKILL while locks are held and waited for, then
// started again on the same instance: it continues the previous run. One
// lock is kernel-owned (its queue fits the pool), the other user-owned (its
// queue overflowed a 4-block pool); both keep their holders, their queues in
// order and their fences, and are handed down their queues afterwards.
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

using RestartTest = DaemonTest;

// A holder and its waiters, as UDP clients of one lock.
struct Contended {
  std::unique_ptr<UdpLockClient> holder;
  uint64_t holder_fence = 0;
  std::vector<std::unique_ptr<UdpLockClient>> waiters;
};

TEST_F(RestartTest, SigkillThenRestartContinuesWithHoldersAndQueues) {
  const std::vector<std::string> flags = {"--pool_capacity=4"};
  absl::StatusOr<std::unique_ptr<NetnsProcess>> first = StartLockd(flags);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(ready_line(), Not(HasSubstr("continuing")));

  // kernel: 2 waiters, 2 pool blocks. user: its third waiter finds the
  // pool full, and the daemon takes the lock over.
  const uint64_t kernel_lock = LockIdForName("restart-kernel");
  const uint64_t user_lock = LockIdForName("restart-user");
  Contended kernel, user;
  for (auto [lock, contended, first_txn, waiters] :
       {std::tuple{kernel_lock, &kernel, uint64_t{11}, 2},
        std::tuple{user_lock, &user, uint64_t{21}, 4}}) {
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
  // Checks what lockctl shows of both locks, before and after the restart.
  auto expect_shown = [&] {
    absl::StatusOr<ShownLock> shown = Show(kernel_lock);
    ASSERT_TRUE(shown.ok()) << shown.status();
    EXPECT_EQ(shown->served_by, "kernel");
    EXPECT_THAT(shown->holders, ElementsAre(11));
    EXPECT_THAT(shown->queue, ElementsAre(12, 13));
    shown = Show(user_lock);
    ASSERT_TRUE(shown.ok()) << shown.status();
    EXPECT_EQ(shown->served_by, "daemon");
    EXPECT_THAT(shown->holders, ElementsAre(21));
    EXPECT_THAT(shown->queue, ElementsAre(22, 23, 24, 25));
  };
  expect_shown();

  ASSERT_TRUE(IsOk((*first)->Signal(SIGKILL)));
  absl::StatusOr<int> killed = (*first)->Wait(kStopTimeout);
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(*killed, 128 + SIGKILL);

  absl::StatusOr<std::unique_ptr<NetnsProcess>> second = StartLockd(flags);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(ready_line(), HasSubstr("continuing the previous run"));
  expect_shown();

  for (Contended* contended : {&kernel, &user}) {
    absl::Status handed_down = ReleaseInFifoOrder(
        *contended->holder, contended->holder_fence, contended->waiters);
    EXPECT_TRUE(handed_down.ok())
        << "lock of txn " << contended->holder->txn_id() << ": " << handed_down;
  }
}

}  // namespace
}  // namespace lockd::testing
