// lockctl against a real lockd that UDP clients hold and queue on: `show`
// lists exactly the holders and the queue, in order, as tables and as JSON;
// and what a stop without --keep_state leaves behind.
#include <signal.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using LockctlEndToEndTest = DaemonTest;

std::vector<uint64_t> HolderTxns(const v1::GetLockResponse& lock) {
  std::vector<uint64_t> txns;
  for (const v1::Holder& holder : lock.holders())
    txns.push_back(holder.txn_id());
  return txns;
}

std::vector<uint64_t> QueueTxns(const v1::GetLockResponse& lock) {
  std::vector<uint64_t> txns;
  for (const v1::Waiter& waiter : lock.queue()) txns.push_back(waiter.txn_id());
  return txns;
}

TEST_F(LockctlEndToEndTest, ShowListsHoldersAndQueueInOrder) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("lockctl-show");
  // Two shared holders; then X, S, X waiters (the S waiter may not overtake
  // the X waiter ahead of it).
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> clients =
      OpenClients(lock, {101, 102, 201, 202, 203});
  ASSERT_TRUE(clients.ok()) << clients.status();
  UdpLockClient& h1 = *(*clients)[0];
  UdpLockClient& h2 = *(*clients)[1];
  UdpLockClient& w1 = *(*clients)[2];
  UdpLockClient& w2 = *(*clients)[3];
  UdpLockClient& w3 = *(*clients)[4];
  for (UdpLockClient* holder : {&h1, &h2}) {
    absl::StatusOr<Message> granted = ExpectReply(
        holder->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_SHARED), LOCKD_OP_GRANTED);
    ASSERT_TRUE(granted.ok()) << granted.status();
  }
  uint32_t position = 0;
  for (auto [waiter, mode] :
       {std::pair{&w1, LOCKD_MODE_EXCLUSIVE}, std::pair{&w2, LOCKD_MODE_SHARED},
        std::pair{&w3, LOCKD_MODE_EXCLUSIVE}}) {
    absl::StatusOr<Message> queued =
        ExpectReply(waiter->Call(LOCKD_OP_ACQUIRE, mode), LOCKD_OP_QUEUED);
    ASSERT_TRUE(queued.ok()) << queued.status();
    EXPECT_EQ(queued->queue_pos, position++);
  }

  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(101, 102));
  EXPECT_THAT(shown->queue, ElementsAre(201, 202, 203));
  EXPECT_THAT(shown->header, HasSubstr("mode SHARED"));

  absl::StatusOr<v1::GetLockResponse> json = ShowJson(lock);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->summary().lock_id(), lock);
  EXPECT_EQ(json->summary().mode(), v1::MODE_SHARED);
  EXPECT_EQ(json->summary().holders(), 2u);
  EXPECT_EQ(json->summary().queue_len(), 3u);
  EXPECT_THAT(HolderTxns(*json), ElementsAre(101, 102));
  EXPECT_THAT(QueueTxns(*json), ElementsAre(201, 202, 203));
  ASSERT_EQ(json->queue_size(), 3);
  EXPECT_EQ(json->queue(0).mode(), v1::MODE_EXCLUSIVE);
  EXPECT_EQ(json->queue(1).mode(), v1::MODE_SHARED);
  EXPECT_EQ(json->queue(2).mode(), v1::MODE_EXCLUSIVE);

  // The last shared holder's release grants the X head alone.
  for (UdpLockClient* holder : {&h1, &h2}) {
    absl::StatusOr<Message> released =
        ExpectReply(holder->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED);
    ASSERT_TRUE(released.ok()) << released.status();
  }
  absl::StatusOr<Message> granted = ExpectReply(w1.Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(201));
  EXPECT_THAT(shown->queue, ElementsAre(202, 203));
  json = ShowJson(lock);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(HolderTxns(*json), ElementsAre(201));
  EXPECT_THAT(QueueTxns(*json), ElementsAre(202, 203));

  absl::StatusOr<Message> released =
      ExpectReply(w1.Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED);
  ASSERT_TRUE(released.ok()) << released.status();
  granted = ExpectReply(w2.Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(202));
  EXPECT_THAT(shown->queue, ElementsAre(203));
}

// proto/lockd.proto: ListLocks lists the locks that have holders or
// waiters, and GetLock of an idle lock is NOT_FOUND: the last release frees
// its slot in the table.
TEST_F(LockctlEndToEndTest, IdleLockIsNeitherListedNorShown) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t busy_lock = LockIdForName("lockctl-busy");
  const uint64_t idle_lock = LockIdForName("lockctl-idle");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> busy =
      OpenClient(busy_lock, 1);
  ASSERT_TRUE(busy.ok()) << busy.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> idle =
      OpenClient(idle_lock, 2);
  ASSERT_TRUE(idle.ok()) << idle.status();
  for (UdpLockClient* client : {busy->get(), idle->get()}) {
    ASSERT_TRUE(
        IsOk(ExpectReply(client->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                         LOCKD_OP_GRANTED)
                 .status()));
  }
  ASSERT_TRUE(
      IsOk(ExpectReply((*idle)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED)
               .status()));

  absl::StatusOr<std::string> locks = LockctlOutput({"locks"});
  ASSERT_TRUE(locks.ok()) << locks.status();
  EXPECT_THAT(*locks, HasSubstr(absl::StrFormat("0x%016x", busy_lock)));
  EXPECT_THAT(*locks, Not(HasSubstr(absl::StrFormat("0x%016x", idle_lock))));
  absl::StatusOr<netns::CommandResult> shown =
      Lockctl({"show", absl::StrCat(idle_lock)});
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->exit_code, 1) << shown->output;
  EXPECT_THAT(shown->output, HasSubstr("NOT_FOUND"));
}

TEST_F(LockctlEndToEndTest, SigtermWithoutKeepStateStopsCleanly) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--keep_state=false"});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  absl::StatusOr<std::string> health = LockctlOutput({"health"});
  ASSERT_TRUE(health.ok()) << health.status();

  ASSERT_TRUE(IsOk((*lockd)->Signal(SIGTERM)));
  absl::StatusOr<int> exit_code = (*lockd)->Wait(kStopTimeout);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << (*lockd)->output();
  EXPECT_TRUE(!std::filesystem::exists(pin_dir()) ||
              std::filesystem::is_empty(pin_dir()))
      << "a stop without --keep_state leaves no pins";
  absl::StatusOr<netns::CommandResult> link = netns::ExecIn(
      net_->server_netns(), "ip link show dev " + net_->link().server.name);
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_THAT(link->output, Not(HasSubstr("xdp"))) << "programs detached";

  absl::StatusOr<netns::CommandResult> stopped = Lockctl({"health"});
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->exit_code, 2) << stopped->output;
  EXPECT_THAT(stopped->output, HasSubstr("cannot reach lockd"));
}

}  // namespace
}  // namespace lockd::testing
