// Endings nobody asks for, end to end: a holder that goes silent loses the
// lock when its lease runs out (the waiter is granted with a larger fence),
// an uncontended expired hold is swept away with its memory, and a waiter
// whose wait_ms passes is told WAIT_EXPIRED. Each owner's late RELEASE and
// RENEW learn why (docs/semantics.md, RELEASE rule 5 and RENEW).
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
// Leases that never run out here.
constexpr uint32_t kLongLeaseMs = 600000;

// The client's late RELEASE and RENEW are both rejected with `why`.
void ExpectEnded(UdpLockClient& client, lockd_status why) {
  absl::StatusOr<Message> late_release =
      ExpectReply(client.Call(LOCKD_OP_RELEASE), LOCKD_OP_REJECTED);
  ASSERT_TRUE(late_release.ok()) << late_release.status();
  EXPECT_EQ(late_release->status, why) << *late_release;
  absl::StatusOr<Message> late_renew =
      ExpectReply(client.Call(LOCKD_OP_RENEW), LOCKD_OP_REJECTED);
  ASSERT_TRUE(late_renew.ok()) << late_renew.status();
  EXPECT_EQ(late_renew->status, why) << *late_renew;
}

using LeaseTest = DaemonTest;

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
  ASSERT_TRUE(IsOk(ExpectReply(b.Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                      LOCKD_POLICY_WAIT, kLongLeaseMs),
                               LOCKD_OP_QUEUED)
                       .status()));

  // A says nothing more until B has the lock.
  absl::StatusOr<Message> b_granted =
      ExpectReply(b.Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(b_granted.ok()) << b_granted.status();
  EXPECT_GT(b_granted->fence, a_granted->fence);
  ExpectEnded(a, LOCKD_STATUS_LEASE_EXPIRED);
  absl::StatusOr<ShownLock> shown = Show(LockIdForName("lease"));
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->holders, std::vector<uint64_t>{2});
}

TEST_F(LeaseTest, UncontendedExpiredHoldIsSweptAway) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({absl::StrCat("--default_lease_ms=", kShortLeaseMs)});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("swept");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> a = OpenClient(lock, 1);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*a)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_GRANTED)
               .status()));
  // Nobody contends: only the sweep ends the hold, and the lock, idle
  // then, leaves the table.
  absl::Status gone = WaitUntil(
      [&]() -> absl::StatusOr<bool> {
        absl::StatusOr<netns::CommandResult> shown =
            Lockctl({"show", absl::StrCat(lock)});
        if (!shown.ok()) return shown.status();
        return shown->exit_code != 0;
      },
      kStartTimeout, "the expired lock gone from the table");
  ASSERT_TRUE(gone.ok()) << gone;
  absl::StatusOr<v1::GetStatsResponse> stats = StatsJson();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->counters().at("daemon_leases_expired"), 1u);
  EXPECT_EQ(stats->memory().locks(), 0u);
  ExpectEnded(**a, LOCKD_STATUS_LEASE_EXPIRED);
}

TEST_F(LeaseTest, WaiterIsToldItsWaitExpired) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("wait-deadline");
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> clients =
      OpenClients(lock, {1, 2});
  ASSERT_TRUE(clients.ok()) << clients.status();
  UdpLockClient& a = *(*clients)[0];
  UdpLockClient& b = *(*clients)[1];
  ASSERT_TRUE(IsOk(ExpectReply(a.Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                      LOCKD_POLICY_WAIT, kLongLeaseMs),
                               LOCKD_OP_GRANTED)
                       .status()));
  ASSERT_TRUE(IsOk(ExpectReply(b.Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                      LOCKD_POLICY_WAIT, kLongLeaseMs,
                                      /*wait_ms=*/200),
                               LOCKD_OP_QUEUED)
                       .status()));
  absl::StatusOr<Message> expired = ExpectReply(b.Receive(), LOCKD_OP_REJECTED);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->status, LOCKD_STATUS_WAIT_EXPIRED) << *expired;
  ExpectEnded(b, LOCKD_STATUS_WAIT_EXPIRED);
  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->holders, std::vector<uint64_t>{1});
  EXPECT_TRUE(shown->queue.empty());
}

}  // namespace
}  // namespace lockd::testing
