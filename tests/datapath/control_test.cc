// The control program (lockd_ctl, bpf/lib/control.h) that the daemon runs
// through BPF_PROG_TEST_RUN: takeover and give-back of a lock, lease and
// wait expiry, force-release. Each operation is checked by what the packet
// path does afterwards.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <optional>
#include <tuple>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/fixture.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kLock = 77;

class ControlTest : public ::testing::Test {
 protected:
  void Load(uint32_t default_lease_ms) {
    DatapathOptions options;
    options.default_lease_ms = default_lease_ms;
    absl::StatusOr<std::unique_ptr<Datapath>> datapath =
        Datapath::Load(options);
    ASSERT_TRUE(datapath.ok()) << datapath.status();
    datapath_ = std::move(*datapath);
    absl::StatusOr<Deliverer> deliverer = Deliverer::Create(datapath_.get());
    ASSERT_TRUE(deliverer.ok()) << deliverer.status();
    deliverer_.emplace(std::move(*deliverer));
  }

  void SetUp() override { SKIP_UNLESS_BPF_ALLOWED(); }

  // Sends a request from client `txn` (ClientEndpoint(txn)); the reply.
  Message Send(lockd_opcode opcode, uint64_t txn,
               lockd_mode mode = LOCKD_MODE_NONE, uint32_t wait_ms = 0) {
    Message m;
    m.opcode = opcode;
    m.lock_id = kLock;
    m.txn_id = txn;
    m.mode = mode;
    m.wait_ms = wait_ms;
    m.seq = ++seq_;
    absl::StatusOr<Delivery> d = deliverer_->Deliver(
        BuildFrame(ClientEndpoint(static_cast<int>(txn)), ServerEndpoint(), m));
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return Message();
    last_verdict_ = d->verdict;
    absl::StatusOr<Message> reply = MessageOf(d->out);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : Message();
  }

  lockd_ctl Control(lockd_ctl_op op, uint64_t txn = 0) {
    lockd_ctl ctl{};
    ctl.op = op;
    ctl.lock_id = kLock;
    ctl.txn_id = txn;
    absl::StatusOr<lockd_ctl> done = datapath_->Control(ctl);
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? *done : lockd_ctl{};
  }

  lockd_lock Entry() {
    lockd_lock entry{};
    uint64_t key = kLock;
    EXPECT_EQ(bpf_map_lookup_elem_flags(datapath_->locks_fd(), &key, &entry,
                                        BPF_F_LOCK),
              0);
    return entry;
  }

  static void LetLeasesLapse() { absl::SleepFor(absl::Milliseconds(5)); }

  std::unique_ptr<Datapath> datapath_;
  std::optional<Deliverer> deliverer_;
  uint32_t seq_ = 0;
  uint32_t last_verdict_ = 0;
};

TEST_F(ControlTest, TakeoverHandsEveryRequestToUserSpace) {
  Load(10000);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 1, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_GRANTED);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 2, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_QUEUED);

  lockd_ctl taken = Control(LOCKD_CTL_TAKEOVER);
  ASSERT_EQ(taken.result, LOCKD_CTL_OK);
  EXPECT_EQ(taken.mode, LOCKD_MODE_EXCLUSIVE);
  EXPECT_EQ(taken.holders, 1u);
  EXPECT_EQ(taken.queue_len, 1u);
  EXPECT_NE(taken.head, 0u);
  EXPECT_EQ(taken.fence, 1u);
  const lockd_lock entry = Entry();
  EXPECT_EQ(entry.flags & LOCKD_LOCK_USER_OWNED, LOCKD_LOCK_USER_OWNED);
  EXPECT_EQ(entry.holders, 0u) << "holders move to user space";
  EXPECT_EQ(entry.queue_len, 0u);
  EXPECT_EQ(entry.fence, 1u) << "the fence stays";

  // Every kind of request for it is handed over, changing nothing.
  for (auto [opcode, txn, mode] :
       {std::tuple{LOCKD_OP_ACQUIRE, 3u, LOCKD_MODE_SHARED},
        std::tuple{LOCKD_OP_ACQUIRE, 1u, LOCKD_MODE_EXCLUSIVE},
        std::tuple{LOCKD_OP_RELEASE, 1u, LOCKD_MODE_NONE},
        std::tuple{LOCKD_OP_RENEW, 1u, LOCKD_MODE_NONE}}) {
    Message out = Send(opcode, txn, mode);
    EXPECT_EQ(out.flags, LOCKD_FLAG_HANDOFF) << OpcodeName(opcode);
    EXPECT_EQ(out.status, LOCKD_HANDOFF_USER_OWNED) << OpcodeName(opcode);
    EXPECT_EQ(out.opcode, opcode) << "the request itself goes up";
  }
  EXPECT_EQ(Control(LOCKD_CTL_TAKEOVER).result, LOCKD_CTL_BAD_STATE);
  EXPECT_EQ(Control(LOCKD_CTL_EXPIRE_HOLDER, 1).result, LOCKD_CTL_BAD_STATE);
}

TEST_F(ControlTest, GiveBackReturnsTheLockWithItsHolders) {
  Load(10000);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 1, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_GRANTED);
  lockd_ctl not_flagged{};
  not_flagged.op = LOCKD_CTL_GIVE_BACK;
  not_flagged.lock_id = kLock;
  not_flagged.fence = 1;
  EXPECT_EQ(datapath_->Control(not_flagged)->result, LOCKD_CTL_BAD_STATE);
  ASSERT_EQ(Control(LOCKD_CTL_TAKEOVER).result, LOCKD_CTL_OK);

  // User space served the lock meanwhile: txn 1 released, txn 5 holds S
  // with fence 2. It writes 5's record and gives the lock back.
  lockd_owner_key old_key{kLock, 1};
  bpf_map_delete_elem(datapath_->owners_fd(), &old_key);
  lockd_owner holder{};
  holder.key = {kLock, 5};
  holder.state = LOCKD_OWNER_HELD;
  holder.mode = LOCKD_MODE_SHARED;
  holder.fence = 2;
  holder.seq = 1;
  holder.lease_ms = 10000;
  holder.lease_expires_ns = ~0ull;
  ASSERT_EQ(bpf_map_update_elem(datapath_->owners_fd(), &holder.key, &holder,
                                BPF_NOEXIST),
            0);
  lockd_ctl give{};
  give.op = LOCKD_CTL_GIVE_BACK;
  give.lock_id = kLock;
  give.mode = LOCKD_MODE_SHARED;
  give.holders = 1;
  give.fence = 0;  // behind the kernel's fence: refused
  EXPECT_EQ(datapath_->Control(give)->result, LOCKD_CTL_BAD_STATE);
  give.fence = 2;
  give.min_txn = 5;
  ASSERT_EQ(datapath_->Control(give)->result, LOCKD_CTL_OK);
  const lockd_lock entry = Entry();
  EXPECT_EQ(entry.flags & LOCKD_LOCK_USER_OWNED, 0);
  EXPECT_EQ(entry.mode, LOCKD_MODE_SHARED);
  EXPECT_EQ(entry.holders, 1u);

  // The kernel serves it again: S joins with the next fence, 5 releases.
  Message joined = Send(LOCKD_OP_ACQUIRE, 6, LOCKD_MODE_SHARED);
  EXPECT_EQ(joined.opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ(joined.fence, 3u);
  Message released = Send(LOCKD_OP_RELEASE, 5);
  EXPECT_EQ(released.opcode, LOCKD_OP_RELEASED);
  EXPECT_EQ(released.fence, 2u);
}

TEST_F(ControlTest, ExpireHolderGrantsWaitersAndTellsTheLateHolder) {
  Load(1);  // 1 ms leases
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 1, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_GRANTED);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 2, LOCKD_MODE_SHARED).opcode,
            LOCKD_OP_QUEUED);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 3, LOCKD_MODE_SHARED).opcode,
            LOCKD_OP_QUEUED);
  EXPECT_EQ(Control(LOCKD_CTL_EXPIRE_HOLDER, 9).result, LOCKD_CTL_NOT_FOUND);
  LetLeasesLapse();
  lockd_ctl expired = Control(LOCKD_CTL_EXPIRE_HOLDER, 1);
  ASSERT_EQ(expired.result, LOCKD_CTL_OK);
  EXPECT_EQ(expired.fence, 1u);
  ASSERT_EQ(expired.grants, 2u);
  EXPECT_EQ(expired.kick, 0u);
  for (int i = 0; i < 2; ++i) {
    const lockd_ctl_notice& g = expired.granted[i];
    EXPECT_EQ(g.txn_id, 2u + i);
    EXPECT_EQ(g.fence, 2u + i);
    EXPECT_EQ(g.mode, LOCKD_MODE_SHARED);
    EXPECT_EQ(ntohl(g.addr), ClientEndpoint(2 + i).addr);
    EXPECT_EQ(ntohs(g.port), ClientEndpoint(2 + i).port);
  }
  Message late_release = Send(LOCKD_OP_RELEASE, 1);
  EXPECT_EQ(late_release.opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ(late_release.status, LOCKD_STATUS_LEASE_EXPIRED);
  Message late_renew = Send(LOCKD_OP_RENEW, 1);
  EXPECT_EQ(late_renew.opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ(late_renew.status, LOCKD_STATUS_LEASE_EXPIRED);
}

TEST_F(ControlTest, ExpireHolderWaitsForTheLease) {
  Load(60000);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 1, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_GRANTED);
  EXPECT_EQ(Control(LOCKD_CTL_EXPIRE_HOLDER, 1).result, LOCKD_CTL_NOT_DUE);
  EXPECT_EQ(Send(LOCKD_OP_RENEW, 1).opcode, LOCKD_OP_RENEWED);
}

TEST_F(ControlTest, ExpireWaiterNamesWhomToTell) {
  Load(60000);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 1, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_GRANTED);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 2, LOCKD_MODE_EXCLUSIVE, 1).opcode,
            LOCKD_OP_QUEUED);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 3, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_QUEUED);
  EXPECT_EQ(Control(LOCKD_CTL_EXPIRE_WAITER, 3).result, LOCKD_CTL_NOT_DUE)
      << "a waiter without a deadline never expires";
  LetLeasesLapse();
  lockd_ctl expired = Control(LOCKD_CTL_EXPIRE_WAITER, 2);
  ASSERT_EQ(expired.result, LOCKD_CTL_OK);
  ASSERT_EQ(expired.notified, 1u);
  EXPECT_EQ(expired.waiter.txn_id, 2u);
  EXPECT_EQ(ntohs(expired.waiter.port), ClientEndpoint(2).port);
  EXPECT_EQ(expired.grants, 0u) << "the holder still holds";

  Message late_cancel = Send(LOCKD_OP_RELEASE, 2);
  EXPECT_EQ(late_cancel.opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ(late_cancel.status, LOCKD_STATUS_WAIT_EXPIRED);
  // The cancelled entry no longer blocks: 1's release grants 3.
  Message released = Send(LOCKD_OP_RELEASE, 1);
  EXPECT_EQ(released.opcode, LOCKD_OP_RELEASED);
}

TEST_F(ControlTest, ForceReleaseGrantsTheNextWaiter) {
  Load(60000);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 1, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_GRANTED);
  ASSERT_EQ(Send(LOCKD_OP_ACQUIRE, 2, LOCKD_MODE_EXCLUSIVE).opcode,
            LOCKD_OP_QUEUED);
  lockd_ctl forced = Control(LOCKD_CTL_FORCE_RELEASE, 1);
  ASSERT_EQ(forced.result, LOCKD_CTL_OK);
  ASSERT_EQ(forced.grants, 1u);
  EXPECT_EQ(forced.granted[0].txn_id, 2u);
  EXPECT_EQ(forced.granted[0].fence, 2u);
  Message late = Send(LOCKD_OP_RELEASE, 1);
  EXPECT_EQ(late.opcode, LOCKD_OP_REJECTED);
  EXPECT_EQ(late.status, LOCKD_STATUS_FORCE_RELEASED);
  EXPECT_EQ(Control(LOCKD_CTL_FORCE_RELEASE, 1).result, LOCKD_CTL_NOT_FOUND);
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::CheckBpfAllowed(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
