// The daemon dies in the middle of a growth: the datapath asked for the next
// table level and a new pool segment (its events are in the ring), nobody
// served them, requests that needed the room went unanswered, and the
// process is gone, its pins left behind. The next start adopts the pinned
// table, carries out the growth it finds asked for, and every lock, holder
// and waiter is still there; the unanswered requests, retransmitted, are
// served.
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/test_datapath.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kQueueLock = 1;
constexpr uint64_t kFirstLock = 1000;
constexpr int kMaxLocks = 20000;
constexpr uint32_t kPoolMinBlocks = 16;

lockd_ctl Acquire(uint64_t lock, uint64_t txn, uint32_t seq, bool again) {
  lockd_ctl ctl{};
  ctl.op = LOCKD_CTL_REQUEST;
  ctl.req.opcode = LOCKD_OP_ACQUIRE;
  ctl.req.mode = LOCKD_MODE_EXCLUSIVE;
  ctl.req.lock_id = lock;
  ctl.req.txn_id = txn;
  ctl.req.seq = seq;
  if (again) ctl.req.flags = LOCKD_FLAG_RETRANSMIT;
  return ctl;
}

class GrowthRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat("/sys/fs/bpf/lockd-growthtest-", getpid());
    options_.pin_dir = root_ + "/p";
    options_.split_at = 2;
    options_.merge_at = 1;
    segments_.pool_min_blocks = kPoolMinBlocks;
  }
  void TearDown() override {
    if (dp_) dp_->datapath->Unpin();
    dp_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  absl::Status Start() {
    absl::StatusOr<TestDatapath> dp = TestDatapath::Create(options_, segments_);
    if (!dp.ok()) return dp.status();
    dp_ = std::make_unique<TestDatapath>(std::move(*dp));
    return absl::OkStatus();
  }

  uint64_t Stat(lockd_stat s) {
    absl::StatusOr<StatCounters> stats = dp_->datapath->ReadStats();
    return stats.ok() ? (*stats)[s] : 0;
  }

  std::string root_;
  DatapathOptions options_;
  SegmentOptions segments_;
  std::unique_ptr<TestDatapath> dp_;
};

TEST_F(GrowthRestartTest, NextStartFinishesTheGrowthAndLosesNothing) {
  ASSERT_TRUE(Start().ok());
  // Locks until one finds no room: its bucket must split into a level that
  // was asked for and never made.
  std::vector<uint64_t> held;
  uint64_t refused_lock = 0;
  for (int i = 0; i < kMaxLocks && refused_lock == 0; ++i) {
    const uint64_t lock = kFirstLock + i;
    absl::StatusOr<lockd_ctl> run =
        dp_->table->Execute(Acquire(lock, lock, 1, false));
    ASSERT_TRUE(run.ok()) << run.status();
    if (run->result == LOCKD_CTL_NO_REPLY) {
      refused_lock = lock;
    } else {
      ASSERT_EQ(run->reply.opcode, LOCKD_OP_GRANTED);
      held.push_back(lock);
    }
  }
  ASSERT_NE(refused_lock, 0u) << "no split ever waited for a segment";
  EXPECT_GT(Stat(LOCKD_STAT_TABLE_WAIT), 0u);
  // Waiters until the pool's first segment is full.
  std::vector<uint64_t> queued;
  uint64_t refused_waiter = 0;
  ASSERT_TRUE(dp_->table->Execute(Acquire(kQueueLock, 1, 1, false)).ok());
  for (uint64_t txn = 2; txn < 2 + 2 * kPoolMinBlocks && !refused_waiter;
       ++txn) {
    absl::StatusOr<lockd_ctl> run =
        dp_->table->Execute(Acquire(kQueueLock, txn, 1, false));
    ASSERT_TRUE(run.ok()) << run.status();
    if (run->result == LOCKD_CTL_NO_REPLY) {
      refused_waiter = txn;
    } else {
      ASSERT_EQ(run->reply.opcode, LOCKD_OP_QUEUED);
      queued.push_back(txn);
    }
  }
  ASSERT_NE(refused_waiter, 0u) << "the pool never ran out";
  EXPECT_GT(Stat(LOCKD_STAT_POOL_WAIT), 0u);
  const MemoryUse before = dp_->segments->Use();

  // The daemon dies: nothing served, nothing unpinned.
  dp_.reset();
  ASSERT_TRUE(Start().ok());
  ASSERT_TRUE(dp_->datapath->reused_pins());
  const MemoryUse after = dp_->segments->Use();
  EXPECT_GT(after.table_segments, before.table_segments);
  EXPECT_GT(after.pool_capacity, before.pool_capacity);

  for (uint64_t lock : held) {
    absl::StatusOr<LockView> view = dp_->table->Read(lock);
    ASSERT_TRUE(view.ok()) << "lock " << lock << ": " << view.status();
    ASSERT_EQ(view->holders.size(), 1u);
    EXPECT_EQ(view->holders[0].m.txn_id, lock);
  }
  absl::StatusOr<LockView> queue = dp_->table->Read(kQueueLock);
  ASSERT_TRUE(queue.ok()) << queue.status();
  std::vector<uint64_t> shown;
  for (const MemberView& w : queue->queue) shown.push_back(w.m.txn_id);
  EXPECT_EQ(shown, queued);

  // The clients retransmit what went unanswered, while the new daemon
  // serves what the table asks (a split may need one segment more): served.
  auto again = [&](const lockd_ctl& request) -> absl::StatusOr<lockd_ctl> {
    for (int attempt = 0; attempt < 8; ++attempt) {
      absl::StatusOr<lockd_ctl> run = dp_->table->Execute(request);
      if (!run.ok() || run->result != LOCKD_CTL_NO_REPLY) return run;
      if (absl::StatusOr<int> served = dp_->ServeGrowth(); !served.ok())
        return served.status();
    }
    return absl::DeadlineExceededError("never answered");
  };
  absl::StatusOr<lockd_ctl> lock_again =
      again(Acquire(refused_lock, refused_lock, 1, true));
  ASSERT_TRUE(lock_again.ok()) << lock_again.status();
  ASSERT_EQ(lock_again->result, LOCKD_CTL_OK);
  EXPECT_EQ(lock_again->reply.opcode, LOCKD_OP_GRANTED);
  absl::StatusOr<lockd_ctl> wait_again =
      again(Acquire(kQueueLock, refused_waiter, 1, true));
  ASSERT_TRUE(wait_again.ok()) << wait_again.status();
  ASSERT_EQ(wait_again->result, LOCKD_CTL_OK);
  EXPECT_EQ(wait_again->reply.opcode, LOCKD_OP_QUEUED);
  absl::StatusOr<uint64_t> locks = dp_->table->CountLocks();
  ASSERT_TRUE(locks.ok());
  EXPECT_EQ(*locks, held.size() + 2);
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
