// lockd without a fast path (no --interface): the daemon's engine serves
// every lock over the same UDP protocol. Its sweep must never hand such a
// lock "back" to a kernel that does not serve it (that lost the holders and
// granted the lock twice).
#include <memory>

#include "abi/codec.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

class FastPathOffTest : public DaemonTest {};

TEST_F(FastPathOffTest, HoldersSurviveSweepsAndExcludeOthers) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--interface="});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  EXPECT_NE(ready_line().find("fast path off"), std::string::npos)
      << ready_line();
  const uint64_t lock = LockIdForName("engine-only");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> a = OpenClient(lock, 1);
  absl::StatusOr<std::unique_ptr<UdpLockClient>> b = OpenClient(lock, 2);
  ASSERT_TRUE(a.ok() && b.ok());

  absl::StatusOr<Message> held = ExpectReply(
      (*a)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(held.ok()) << held.status();
  // Let the sweep (every 20 ms) run many times while A holds.
  absl::SleepFor(absl::Milliseconds(300));
  absl::StatusOr<Message> refused = ExpectReply(
      (*b)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE, LOCKD_POLICY_NO_WAIT),
      LOCKD_OP_REJECTED);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->status, LOCKD_STATUS_CONFLICT);

  absl::StatusOr<Message> released =
      ExpectReply((*a)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->fence, held->fence);
  absl::StatusOr<Message> next = ExpectReply(
      (*b)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->fence, held->fence);
}

}  // namespace
}  // namespace lockd::testing
