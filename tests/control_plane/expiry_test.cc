// Expiry over the reference model: leases and wait deadlines end what they
// must and nothing before its time; a watched queue is settled when its
// first lease ends; the sweep frees uncontended expired holds; remembered
// endings are forgotten after their TTL.
#include "lockd/expiry.h"

#include "gtest/gtest.h"
#include "tests/control_plane/fixture.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kLock = 7;

using ExpiryTest = ControlPlaneTest;

TEST_F(ExpiryTest, WatchedQueueIsGrantedWhenTheHoldersLeaseEnds) {
  const uint64_t first = Hold(kLock, 1, /*lease_ms=*/1000);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  expiry_->Watch(kLock, 0, table_.NowNs());
  EXPECT_EQ(expiry_->watched(), 1u);
  // Not before the lease's end.
  const uint64_t due = expiry_->RunDue(table_.NowNs());
  ASSERT_GT(due, table_.NowNs());
  table_.Advance(due - table_.NowNs() - 1);
  expiry_->RunDue(table_.NowNs());
  EXPECT_FALSE(waiter.Get().has_value());
  table_.Advance(1);
  expiry_->RunDue(table_.NowNs());
  auto got = waiter.Get();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->status();
  EXPECT_EQ((*got)->opcode, LOCKD_OP_GRANTED);
  EXPECT_GT((*got)->fence, first);
  EXPECT_EQ(Counter(DaemonCounters::kLeasesExpired), 1u);
  // The old holder learns why.
  absl::StatusOr<lockd_reply> late = service_->Release(kLock, 1);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->status, LOCKD_STATUS_LEASE_EXPIRED);
  // Nobody waits any more: the lock is no longer watched.
  EXPECT_EQ(expiry_->watched(), 0u);
}

TEST_F(ExpiryTest, RenewedLeaseIsNotEnded) {
  Hold(kLock, 1, /*lease_ms=*/1000);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  expiry_->Watch(kLock, 0, table_.NowNs());
  table_.Advance(900 * kMs);
  ASSERT_TRUE(service_->Renew(kLock, 1, 1000).ok());
  table_.Advance(200 * kMs);
  expiry_->RunDue(table_.NowNs());
  EXPECT_FALSE(waiter.Get().has_value());
  EXPECT_EQ(Counter(DaemonCounters::kLeasesExpired), 0u);
  table_.Advance(1000 * kMs);
  expiry_->RunDue(table_.NowNs());
  ASSERT_TRUE(waiter.Get().has_value());
}

TEST_F(ExpiryTest, SweepFreesAnUncontendedExpiredHold) {
  Hold(kLock, 1, /*lease_ms=*/100);
  ASSERT_TRUE(expiry_->Sweep(table_.NowNs()).ok());
  EXPECT_TRUE(table_.Read(kLock).ok()) << "ended before its time";
  table_.Advance(101 * kMs);
  ASSERT_TRUE(expiry_->Sweep(table_.NowNs()).ok());
  EXPECT_TRUE(absl::IsNotFound(table_.Read(kLock).status()));
  EXPECT_EQ(Counter(DaemonCounters::kLeasesExpired), 1u);
  EXPECT_EQ(Counter(DaemonCounters::kSweptSegments), 2u);
}

TEST_F(ExpiryTest, SweepWatchesAQueueWhoseEventWasLost) {
  Hold(kLock, 1, /*lease_ms=*/100);
  Answer waiter;
  service_->Acquire(Exclusive(kLock, 2), waiter.Callback());
  ASSERT_TRUE(expiry_->Sweep(table_.NowNs()).ok());  // no Watch before
  EXPECT_EQ(expiry_->watched(), 1u);
  table_.Advance(101 * kMs);
  expiry_->RunDue(table_.NowNs());
  ASSERT_TRUE(waiter.Get().has_value());
}

TEST_F(ExpiryTest, EndingsAreForgottenAfterTheirTtl) {
  Hold(kLock, 1, /*lease_ms=*/100);
  table_.Advance(101 * kMs);
  ASSERT_TRUE(expiry_->Sweep(table_.NowNs()).ok());
  ASSERT_TRUE(expiry_->ForgetOldMemos(table_.NowNs()).ok());
  absl::StatusOr<lockd_reply> told = service_->Renew(kLock, 1, 100);
  ASSERT_TRUE(told.ok());
  EXPECT_EQ(told->status, LOCKD_STATUS_LEASE_EXPIRED);

  table_.Advance(absl::ToInt64Nanoseconds(ExpiryOptions{}.memo_ttl) + kMs);
  ASSERT_TRUE(expiry_->ForgetOldMemos(table_.NowNs()).ok());
  EXPECT_EQ(Counter(DaemonCounters::kMemosForgotten), 1u);
  absl::StatusOr<lockd_reply> forgotten = service_->Renew(kLock, 1, 100);
  ASSERT_TRUE(forgotten.ok());
  EXPECT_EQ(forgotten->status, LOCKD_STATUS_NOT_HOLDER);
}

}  // namespace
}  // namespace lockd::testing
