// A holder that goes silent loses the lock when its lease runs out: the
// daemon's sweep ends the hold and the waiter is granted with a larger
// fence; the old holder's late RELEASE and RENEW are told LEASE_EXPIRED
// (docs/semantics.md, RELEASE rule 5 and RENEW) whether the kernel or the
// daemon serves the lock, and after the daemon gave it back to the kernel.
#include <memory>
#include <vector>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

constexpr uint32_t kShortLeaseMs = 300;
// Leases of every client but the one that goes silent: never run out here.
constexpr uint32_t kLongLeaseMs = 600000;
constexpr uint32_t kPoolBlocks = 4;

// A's late RELEASE and RENEW are both told LEASE_EXPIRED.
void ExpectLeaseExpired(UdpLockClient& a) {
  absl::StatusOr<Message> late_release =
      ExpectReply(a.Call(LOCKD_OP_RELEASE), LOCKD_OP_REJECTED);
  ASSERT_TRUE(late_release.ok()) << late_release.status();
  EXPECT_EQ(late_release->status, LOCKD_STATUS_LEASE_EXPIRED) << *late_release;
  absl::StatusOr<Message> late_renew =
      ExpectReply(a.Call(LOCKD_OP_RENEW), LOCKD_OP_REJECTED);
  ASSERT_TRUE(late_renew.ok()) << late_renew.status();
  EXPECT_EQ(late_renew->status, LOCKD_STATUS_LEASE_EXPIRED) << *late_renew;
}

class LeaseTest : public DaemonTest {
 protected:
  // The daemon and the clients go before the network and the pins do.
  void TearDown() override {
    a_.reset();
    b_.reset();
    filler_.clear();
    lockd_.reset();
    DaemonTest::TearDown();
  }

  // lockd with short default leases and a small pool, which the waiters of
  // another lock fill. Then A takes the lock under test with the default
  // lease, and B's request for it finds the pool full: the daemon takes the
  // lock over (A's hold with it) and queues B. A goes silent until its lease
  // has run out and B is granted.
  void StartAndLetTheDaemonExpireA() {
    absl::StatusOr<std::unique_ptr<NetnsProcess>> started =
        StartLockd({absl::StrCat("--default_lease_ms=", kShortLeaseMs),
                    absl::StrCat("--pool_capacity=", kPoolBlocks)});
    ASSERT_TRUE(started.ok()) << started.status();
    lockd_ = std::move(*started);

    absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> filler =
        OpenClients(LockIdForName("pool-filler"), {100, 101, 102, 103, 104});
    ASSERT_TRUE(filler.ok()) << filler.status();
    filler_ = std::move(*filler);
    for (size_t i = 0; i < filler_.size(); ++i) {
      absl::StatusOr<Message> reply =
          ExpectReply(filler_[i]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                       LOCKD_POLICY_WAIT, kLongLeaseMs),
                      i == 0 ? LOCKD_OP_GRANTED : LOCKD_OP_QUEUED);
      ASSERT_TRUE(reply.ok()) << reply.status();
    }

    lock_ = LockIdForName("lease-daemon");
    absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> clients =
        OpenClients(lock_, {1, 2});
    ASSERT_TRUE(clients.ok()) << clients.status();
    a_ = std::move((*clients)[0]);
    b_ = std::move((*clients)[1]);
    absl::StatusOr<Message> a_granted = ExpectReply(
        a_->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
    ASSERT_TRUE(a_granted.ok()) << a_granted.status();
    ASSERT_TRUE(
        IsOk(ExpectReply(b_->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                  LOCKD_POLICY_WAIT, kLongLeaseMs),
                         LOCKD_OP_QUEUED)
                 .status()));
    absl::StatusOr<ShownLock> shown = Show(lock_);
    ASSERT_TRUE(shown.ok()) << shown.status();
    ASSERT_EQ(shown->served_by, "daemon");

    absl::StatusOr<Message> b_granted =
        ExpectReply(b_->Receive(), LOCKD_OP_GRANTED);
    ASSERT_TRUE(b_granted.ok()) << b_granted.status();
    EXPECT_GT(b_granted->fence, a_granted->fence);
  }

  // The filler's waiters cancel, which empties the pool: the daemon gives
  // the lock under test (queue empty, B holding) back to the kernel.
  void LetTheDaemonGiveTheLockBack() {
    for (size_t i = 1; i < filler_.size(); ++i) {
      ASSERT_TRUE(IsOk(
          ExpectReply(filler_[i]->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED)
              .status()));
    }
    absl::Status given_back = WaitUntil(
        [&]() -> absl::StatusOr<bool> {
          absl::StatusOr<ShownLock> shown = Show(lock_);
          if (!shown.ok()) return shown.status();
          return shown->served_by == "kernel";
        },
        kStartTimeout, "the lock given back to the kernel");
    ASSERT_TRUE(given_back.ok()) << given_back;
  }

  std::unique_ptr<NetnsProcess> lockd_;
  std::vector<std::unique_ptr<UdpLockClient>> filler_;
  uint64_t lock_ = 0;
  std::unique_ptr<UdpLockClient> a_;
  std::unique_ptr<UdpLockClient> b_;
};

TEST_F(LeaseTest, SilentHoldersLeaseExpiresAndTheWaiterIsGranted) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({absl::StrCat("--default_lease_ms=", kShortLeaseMs)});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> clients =
      OpenClients(LockIdForName("lease"), {1, 2});
  ASSERT_TRUE(clients.ok()) << clients.status();
  UdpLockClient& a = *(*clients)[0];
  UdpLockClient& b = *(*clients)[1];

  absl::StatusOr<Message> a_granted = ExpectReply(
      a.Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(a_granted.ok()) << a_granted.status();
  EXPECT_EQ(a_granted->lease_ms, kShortLeaseMs);
  ASSERT_TRUE(IsOk(ExpectReply(b.Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                               LOCKD_OP_QUEUED)
                       .status()));

  // A says nothing more until B has the lock.
  absl::StatusOr<Message> b_granted =
      ExpectReply(b.Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(b_granted.ok()) << b_granted.status();
  EXPECT_GT(b_granted->fence, a_granted->fence);
  ExpectLeaseExpired(a);
}

TEST_F(LeaseTest, HolderIsToldItsLeaseExpiredWhileTheDaemonServesTheLock) {
  ASSERT_NO_FATAL_FAILURE(StartAndLetTheDaemonExpireA());
  ExpectLeaseExpired(*a_);
}

TEST_F(LeaseTest, HolderIsToldItsLeaseExpiredAfterTheLockWasGivenBack) {
  ASSERT_NO_FATAL_FAILURE(StartAndLetTheDaemonExpireA());
  ASSERT_NO_FATAL_FAILURE(LetTheDaemonGiveTheLockBack());
  ExpectLeaseExpired(*a_);
}

}  // namespace
}  // namespace lockd::testing
