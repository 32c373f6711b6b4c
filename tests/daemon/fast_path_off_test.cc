// lockd without a fast path (no --interface): the daemon's socket serves
// every request, through the control program on the same kernel table, and
// sends the grants of waiters itself. Exclusion, FIFO hand-down and fences
// hold as on the fast path.
#include <memory>
#include <vector>

#include "abi/codec.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using FastPathOffTest = DaemonTest;

TEST_F(FastPathOffTest, SocketServesTheTableAndSendsGrants) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--interface="});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  EXPECT_NE(ready_line().find("fast path off"), std::string::npos)
      << ready_line();
  const uint64_t lock = LockIdForName("socket-only");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> a = OpenClient(lock, 1);
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> waiters =
      OpenClients(lock, {2, 3, 4});
  ASSERT_TRUE(waiters.ok()) << waiters.status();

  absl::StatusOr<Message> held = ExpectReply(
      (*a)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(held.ok()) << held.status();
  absl::StatusOr<Message> refused =
      ExpectReply((*waiters)[0]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE,
                                      LOCKD_POLICY_NO_WAIT),
                  LOCKD_OP_REJECTED);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->status, LOCKD_STATUS_CONFLICT);
  for (auto& waiter : *waiters)
    ASSERT_TRUE(
        IsOk(ExpectReply(waiter->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                         LOCKD_OP_QUEUED)
                 .status()));
  EXPECT_TRUE(IsOk(ReleaseInFifoOrder(**a, held->fence, *waiters)));

  absl::StatusOr<v1::GetStatsResponse> stats = StatsJson();
  ASSERT_TRUE(stats.ok()) << stats.status();
  // Every request came through the socket; none reached the datapath's
  // programs, which are not attached.
  EXPECT_GE(stats->counters().at("daemon_socket_requests"), 9u);
  EXPECT_EQ(stats->counters().at("daemon_notices_sent"), 3u);
  EXPECT_EQ(stats->counters().at("rx"), 0u);
}

}  // namespace
}  // namespace lockd::testing
