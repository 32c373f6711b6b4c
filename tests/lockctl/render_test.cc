// lockctl's output for fixed AdminService answers: the exact tables people
// read, and JSON that scripts can parse back into the same message.
#include "lockctl/render.h"

#include <string>

#include "abi/codec.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/lockd.pb.h"

namespace lockd::lockctl {
namespace {

using ::testing::HasSubstr;

// Lock 0x2a held in S by two transactions, one of them past its lease, with
// an X waiter, a cancelled waiter and an S waiter behind them.
v1::GetLockResponse BusyLock() {
  v1::GetLockResponse lock;
  v1::LockSummary& summary = *lock.mutable_summary();
  summary.set_lock_id(0x2a);
  summary.set_mode(v1::MODE_SHARED);
  summary.set_holders(2);
  summary.set_queue_len(3);
  summary.set_fence(9);
  v1::Holder& first = *lock.add_holders();
  first.set_txn_id(100);
  first.set_mode(v1::MODE_SHARED);
  first.set_fence(8);
  first.set_lease_left_ms(4250);
  first.set_client_address("198.18.0.2:40000");
  v1::Holder& second = *lock.add_holders();
  second.set_txn_id(101);
  second.set_mode(v1::MODE_SHARED);
  second.set_fence(9);
  second.set_lease_left_ms(-30);
  second.set_client_address("grpc");
  v1::Waiter& writer = *lock.add_queue();
  writer.set_txn_id(102);
  writer.set_mode(v1::MODE_EXCLUSIVE);
  writer.set_policy(v1::POLICY_WAIT_DIE);
  writer.set_wait_time_ms(1500);
  writer.set_client_address("198.18.0.3:40001");
  v1::Waiter& gone = *lock.add_queue();
  gone.set_txn_id(103);
  gone.set_mode(v1::MODE_EXCLUSIVE);
  gone.set_wait_time_ms(900);
  gone.set_cancelled(true);
  gone.set_client_address("grpc");
  v1::Waiter& reader = *lock.add_queue();
  reader.set_txn_id(104);
  reader.set_mode(v1::MODE_SHARED);
  reader.set_wait_time_ms(12);
  reader.set_client_address("grpc");
  return lock;
}

TEST(ParseLockArgumentTest, ReadsDecimalAndHexIdsAndHashesNames) {
  absl::StatusOr<LockArgument> decimal = ParseLockArgument("42");
  absl::StatusOr<LockArgument> hex = ParseLockArgument("0x2A");
  absl::StatusOr<LockArgument> name = ParseLockArgument("orders/42");

  ASSERT_TRUE(decimal.ok()) << decimal.status();
  EXPECT_EQ(decimal->id, 42u);
  EXPECT_EQ(decimal->name, "");
  ASSERT_TRUE(hex.ok()) << hex.status();
  EXPECT_EQ(hex->id, 42u);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->id, LockIdForName("orders/42"));
  EXPECT_EQ(name->name, "orders/42");
  // Not a hex number after all: a name.
  EXPECT_EQ(ParseLockArgument("0xorders")->id, LockIdForName("0xorders"));
  EXPECT_FALSE(ParseLockArgument("").ok());
}

TEST(RenderTest, LocksTable) {
  v1::ListLocksResponse locks;
  *locks.add_locks() = BusyLock().summary();
  v1::LockSummary& other = *locks.add_locks();
  other.set_lock_id(0xfeedface12345678);
  other.set_mode(v1::MODE_EXCLUSIVE);
  other.set_holders(1);
  other.set_fence(1234);

  EXPECT_EQ(RenderLocksTable(locks),
            "LOCK                MODE       HOLDERS  WAITERS  FENCE\n"
            "0x000000000000002a  SHARED     2        3        9\n"
            "0xfeedface12345678  EXCLUSIVE  1        0        1234\n");
}

TEST(RenderTest, LockWithHoldersAndQueueInOrder) {
  EXPECT_EQ(RenderLock(BusyLock(), "orders/42"),
            "lock 0x000000000000002a (\"orders/42\")\n"
            "mode SHARED, fence 9\n"
            "\n"
            "holders:\n"
            "TXN  MODE    FENCE  LEASE LEFT        CLIENT\n"
            "100  SHARED  8      4.25s             198.18.0.2:40000\n"
            "101  SHARED  9      expired 30ms ago  grpc\n"
            "\n"
            "queue (head first):\n"
            "POS  TXN              MODE       POLICY    WAITED  CLIENT\n"
            "1    102              EXCLUSIVE  WAIT_DIE  1.5s    "
            "198.18.0.3:40001\n"
            "2    103 (cancelled)  EXCLUSIVE  WAIT      900ms   grpc\n"
            "3    104              SHARED     WAIT      12ms    grpc\n");
}

TEST(RenderTest, StatsListsCountersByNameThenTheMemory) {
  v1::GetStatsResponse stats;
  (*stats.mutable_counters())["rx"] = 10;
  (*stats.mutable_counters())["acquire"] = 7;
  (*stats.mutable_counters())["daemon_ctl_runs"] = 2;
  v1::MemoryUsage& memory = *stats.mutable_memory();
  memory.set_budget_bytes(256 << 20);
  memory.set_total_bytes(3 << 20);
  memory.set_fixed_bytes(512 << 10);
  memory.set_table_bytes(2 << 20);
  memory.set_table_segments(2);
  memory.set_table_depth(9);
  memory.set_pool_bytes(512 << 10);
  memory.set_pool_segments(1);
  memory.set_pool_capacity_blocks(1024);
  memory.set_pool_live_blocks(256);
  memory.set_locks(3);
  memory.set_pool_at_budget(true);

  EXPECT_EQ(RenderStats(stats),
            "COUNTER          VALUE\n"
            "acquire          7\n"
            "daemon_ctl_runs  2\n"
            "rx               10\n"
            "\n"
            "MEMORY           USE\n"
            "total            3.0 MiB of 256.0 MiB budget\n"
            "lock table       2.0 MiB in 2 segments (depth 9)\n"
            "wait-queue pool  512.0 KiB in 1 segments, at budget\n"
            "pool blocks      256 / 1024 (25.0%)\n"
            "fixed maps       512.0 KiB\n"
            "locks            3\n");
}

TEST(RenderTest, Health) {
  v1::HealthResponse health;
  health.set_serving(true);
  health.set_datapath_attached(true);
  health.set_interface("eth0");
  health.set_xdp_mode("native");
  health.set_udp_port(20231);
  health.set_uptime_ms(61000);
  health.set_restored(true);
  health.set_epoch(7);

  EXPECT_EQ(RenderHealth(health),
            "HEALTH\n"
            "serving                         yes\n"
            "fast path                       on (eth0, XDP native)\n"
            "udp port                        20231\n"
            "uptime                          1m1s\n"
            "restored from the previous run  yes\n"
            "epoch                           7\n"
            "grace period left               none (serving every request)\n");
  health.set_restored(false);
  health.set_grace_left_ms(4500);
  EXPECT_THAT(RenderHealth(health),
              ::testing::HasSubstr("grace period left               4.5s\n"));
}

TEST(RenderTest, ClientsByIdWithoutKeys) {
  v1::ListClientsResponse clients;
  v1::ClientSummary* none = clients.add_clients();
  none->set_client_id(0);
  v1::ClientSummary* seven = clients.add_clients();
  seven->set_client_id(7);
  seven->set_members(3);
  seven->set_rotating(true);
  seven->set_last_seq(42);

  EXPECT_EQ(RenderClients(clients),
            "CLIENT               HOLDS+WAITS  KEY       LAST SEQ\n"
            "0 (unauthenticated)  0            -         0\n"
            "7                    3            rotating  42\n");
}

TEST(RenderTest, JsonHasProtoFieldNamesAndParsesBack) {
  const v1::GetLockResponse lock = BusyLock();

  absl::StatusOr<std::string> json = RenderJson(lock);

  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"lease_left_ms\": \"-30\""));
  EXPECT_THAT(*json, HasSubstr("\"policy\": \"POLICY_WAIT_DIE\""));
  v1::GetLockResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, lock))
      << parsed.DebugString();
}

TEST(RenderTest, JsonPrintsZeroFieldsToo) {
  absl::StatusOr<std::string> json = RenderJson(v1::HealthResponse());

  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"serving\": false"));
  EXPECT_THAT(*json, HasSubstr("\"restored\": false"));
}

}  // namespace
}  // namespace lockd::lockctl
