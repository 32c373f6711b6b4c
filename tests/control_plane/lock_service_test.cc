// LockService (the gRPC callers' path) over the reference model: grants,
// waits that end by a grant, a cancellation, a Release or a lost notice,
// and that a caller who goes away leaves nothing held or queued, whichever
// way the race with its grant goes.
#include "lockd/lock_service.h"

#include "gtest/gtest.h"
#include "tests/control_plane/fixture.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kLock = 42;

using LockServiceTest = ControlPlaneTest;

TEST_F(LockServiceTest, FreeLockIsGrantedBeforeAcquireReturns) {
  Answer answer;
  service_->Acquire(Exclusive(kLock, 1), answer.Callback());
  auto got = answer.Get();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->status();
  EXPECT_EQ((*got)->opcode, LOCKD_OP_GRANTED);
  EXPECT_GT((*got)->fence, 0u);
  EXPECT_EQ(service_->waiting(), 0u);
  EXPECT_EQ(Counter(DaemonCounters::kGrpcAcquire), 1u);
}

TEST_F(LockServiceTest, QueuedCallIsGrantedByTheHoldersRelease) {
  const uint64_t first = Hold(kLock, 1);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  EXPECT_FALSE(waiter.Get().has_value());
  EXPECT_EQ(service_->waiting(), 1u);

  absl::StatusOr<lockd_reply> released = service_->Release(kLock, 1);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->opcode, LOCKD_OP_RELEASED);
  EXPECT_EQ(released->fence, first);
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->status();
  EXPECT_EQ((*got)->opcode, LOCKD_OP_GRANTED);
  EXPECT_GT((*got)->fence, first);
  EXPECT_EQ(Counter(DaemonCounters::kNoticesLocal), 1u);
  EXPECT_EQ(service_->waiting(), 0u);
}

TEST_F(LockServiceTest, CancelledCallLeavesNothingQueued) {
  Hold(kLock, 1);
  Answer waiter;
  auto pending = service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  service_->Cancel(pending);
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(absl::IsCancelled(got->status())) << got->status();
  ASSERT_TRUE(service_->Release(kLock, 1).ok());
  // The cancelled entry went with the holder's release: the lock is idle.
  EXPECT_TRUE(absl::IsNotFound(table_.Read(kLock).status()));
  service_->Cancel(pending);  // again: nothing happens
  EXPECT_EQ(Counter(DaemonCounters::kGrpcCancelled), 1u);
}

// The grant happens, but its notice never reaches the call (lost with a
// full event ring): the caller gives up, and the hold it never learned of
// is released with its wait.
TEST_F(LockServiceTest, GrantThatRacedACancellationIsReleased) {
  Hold(kLock, 1);
  Answer waiter;
  auto pending = service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  lockd_ctl release{};
  release.op = LOCKD_CTL_REQUEST;
  release.req.opcode = LOCKD_OP_RELEASE;
  release.req.lock_id = kLock;
  release.req.txn_id = 1;
  release.req.seq = NextDaemonSeq();
  ASSERT_TRUE(table_.Execute(release).ok());  // its notice is dropped
  absl::StatusOr<LockView> granted = table_.Read(kLock);
  ASSERT_TRUE(granted.ok());
  ASSERT_EQ(granted->holders.size(), 1u);
  EXPECT_EQ(granted->holders[0].m.txn_id, 2u);

  service_->Cancel(pending);
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(absl::IsCancelled(got->status()));
  EXPECT_TRUE(absl::IsNotFound(table_.Read(kLock).status()));
}

TEST_F(LockServiceTest, LostNoticeIsRecoveredByTheRecheck) {
  const uint64_t first = Hold(kLock, 1);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  lockd_ctl release{};
  release.op = LOCKD_CTL_REQUEST;
  release.req.opcode = LOCKD_OP_RELEASE;
  release.req.lock_id = kLock;
  release.req.txn_id = 1;
  release.req.seq = NextDaemonSeq();
  ASSERT_TRUE(table_.Execute(release).ok());  // its notice is dropped
  EXPECT_FALSE(waiter.Get().has_value());

  service_->Recheck(absl::ZeroDuration());
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->status();
  EXPECT_EQ((*got)->opcode, LOCKD_OP_GRANTED);
  EXPECT_GT((*got)->fence, first);
  EXPECT_EQ(Counter(DaemonCounters::kGrpcRechecked), 1u);
}

TEST_F(LockServiceTest, ReleaseByTheWaiterEndsItsWaitingCall) {
  Hold(kLock, 1);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  absl::StatusOr<lockd_reply> cancelled = service_->Release(kLock, 2);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->opcode, LOCKD_OP_RELEASED);
  EXPECT_EQ(cancelled->fence, 0u);
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(absl::IsCancelled(got->status())) << got->status();
}

TEST_F(LockServiceTest, WaitDeadlineEndsTheCallWithWaitExpired) {
  Hold(kLock, 1);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2, 0, /*wait_ms=*/100), waiter.Callback());
  table_.Advance(200 * kMs);
  ASSERT_TRUE(expiry_->Sweep(table_.NowNs()).ok());
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->status();
  EXPECT_EQ((*got)->opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ((*got)->status, LOCKD_STATUS_WAIT_EXPIRED);
  EXPECT_EQ(Counter(DaemonCounters::kWaitsExpired), 1u);
}

// A caller's retry of a call still waiting (same lock and txn) finds the
// record the first made: both end with the one grant.
TEST_F(LockServiceTest, RetryOfAWaitingCallSharesItsGrant) {
  Hold(kLock, 1);
  Answer first, retry;
  service_->Acquire(Exclusive(kLock, 2), first.Callback());
  service_->Acquire(Exclusive(kLock, 2), retry.Callback());
  absl::StatusOr<LockView> view = table_.Read(kLock);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->queue.size(), 1u);
  ASSERT_TRUE(service_->Release(kLock, 1).ok());
  auto a = first.Get(), b = retry.Get();
  ASSERT_TRUE(a.has_value() && b.has_value());
  ASSERT_TRUE(a->ok() && b->ok());
  EXPECT_EQ((*a)->opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ((*b)->opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ((*a)->fence, (*b)->fence);
}

TEST_F(LockServiceTest, RejectionsAreAnswersNotErrors) {
  Hold(kLock, 1);
  Answer no_wait;
  AcquireArgs args = Exclusive(kLock, 2);
  args.policy = LOCKD_POLICY_NO_WAIT;
  service_->Acquire(args, no_wait.Callback());
  auto got = no_wait.Get();
  ASSERT_TRUE(got.has_value() && got->ok());
  EXPECT_EQ((*got)->opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ((*got)->status, LOCKD_STATUS_CONFLICT);
  absl::StatusOr<lockd_reply> renew = service_->Renew(kLock, 3, 1000);
  ASSERT_TRUE(renew.ok());
  EXPECT_EQ(renew->opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ(renew->status, LOCKD_STATUS_NOT_HOLDER);
}

}  // namespace
}  // namespace lockd::testing
