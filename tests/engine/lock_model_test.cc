#include "lockd/lock_engine.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Config = LockEngine::Config;
using Counters = LockEngine::Counters;
using Grant = LockEngine::Grant;
using LockState = LockEngine::LockState;
using Outcome = LockEngine::Outcome;
using Reply = LockEngine::Reply;
using Request = LockEngine::Request;

constexpr uint8_t kS = LOCKD_MODE_SHARED;
constexpr uint8_t kX = LOCKD_MODE_EXCLUSIVE;
constexpr uint8_t kWait = LOCKD_POLICY_WAIT;
constexpr uint8_t kNoWait = LOCKD_POLICY_NO_WAIT;
constexpr uint8_t kWaitDie = LOCKD_POLICY_WAIT_DIE;
constexpr uint64_t kMs = 1000 * 1000;
constexpr uint64_t kT0 = 1000 * kMs;  // any start; CLOCK_MONOTONIC is not 0
constexpr uint32_t kDefaultLeaseMs = 1000;
constexpr uint32_t kMaxLeaseMs = 5000;
constexpr uint64_t kLock = 1;

constexpr const char* kStatNames[] = {
#define LOCKD_STAT_NAME(suffix, name) name,
    LOCKD_STATS(LOCKD_STAT_NAME)
#undef LOCKD_STAT_NAME
};

// "acquire=1 grant_immediate=1": the non-zero counters in ABI order, so that a
// mismatch shows by name and any unexpected bump fails the comparison.
std::string Bumped(const Counters& counters) {
  std::vector<std::string> parts;
  for (size_t stat = 0; stat < counters.size(); ++stat) {
    if (counters[stat] != 0) {
      parts.push_back(absl::StrCat(kStatNames[stat], "=", counters[stat]));
    }
  }
  return absl::StrJoin(parts, " ");
}

// Sequence numbers differ per transaction so that echoing the wrong one shows.
uint32_t SeqOf(uint64_t txn_id) { return static_cast<uint32_t>(1000 + txn_id); }

Request Acquire(uint64_t lock_id, uint64_t txn_id, uint8_t mode,
                uint8_t policy = kWait, uint32_t lease_ms = 0,
                uint32_t wait_ms = 0) {
  Request request;
  request.opcode = LOCKD_OP_ACQUIRE;
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  request.mode = mode;
  request.policy = policy;
  request.seq = SeqOf(txn_id);
  request.lease_ms = lease_ms;
  request.wait_ms = wait_ms;
  return request;
}

Request Release(uint64_t lock_id, uint64_t txn_id) {
  Request request;
  request.opcode = LOCKD_OP_RELEASE;
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  request.seq = SeqOf(txn_id);
  return request;
}

Request Renew(uint64_t lock_id, uint64_t txn_id, uint32_t lease_ms) {
  Request request;
  request.opcode = LOCKD_OP_RENEW;
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  request.seq = SeqOf(txn_id);
  request.lease_ms = lease_ms;
  return request;
}

Reply GrantedReply(uint64_t fence, uint32_t lease_ms = kDefaultLeaseMs) {
  return Reply{LOCKD_OP_GRANTED, LOCKD_STATUS_OK, fence, 0, lease_ms};
}
Reply QueuedReply(uint32_t queue_pos) {
  return Reply{LOCKD_OP_QUEUED, LOCKD_STATUS_OK, 0, queue_pos, 0};
}
Reply ReleasedReply(uint64_t fence) {
  return Reply{LOCKD_OP_RELEASED, LOCKD_STATUS_OK, fence, 0, 0};
}
Reply RenewedReply(uint64_t fence, uint32_t lease_ms) {
  return Reply{LOCKD_OP_RENEWED, LOCKD_STATUS_OK, fence, 0, lease_ms};
}
Reply RejectedReply(uint8_t status) {
  return Reply{LOCKD_OP_REJECTED, status, 0, 0, 0};
}

Grant GrantTo(uint64_t txn_id, uint64_t fence, uint8_t mode,
              uint32_t lease_ms = kDefaultLeaseMs) {
  return Grant{kLock, txn_id, fence, SeqOf(txn_id), mode, lease_ms};
}

std::vector<uint64_t> HolderTxns(const LockState& lock) {
  std::vector<uint64_t> txns;
  for (const auto& [txn_id, hold] : lock.holders) txns.push_back(txn_id);
  return txns;
}

// Every linked entry, head first; cancelled ones as their negated txn.
std::vector<int64_t> QueueEntries(const LockState& lock) {
  std::vector<int64_t> entries;
  for (const LockEngine::Waiter& waiter : lock.queue) {
    const auto txn_id = static_cast<int64_t>(waiter.txn_id);
    entries.push_back(waiter.cancelled ? -txn_id : txn_id);
  }
  return entries;
}

class LockEngineTest : public ::testing::Test {
 protected:
  // Applies a request at the current time; the invariants must hold after
  // every request.
  Outcome Do(const Request& request) {
    Outcome outcome = model_.Apply(request, now_);
    const absl::Status invariants = model_.CheckInvariants();
    EXPECT_TRUE(invariants.ok()) << invariants;
    return outcome;
  }

  const LockState& Lock(uint64_t lock_id = kLock) {
    const LockState* lock = model_.Find(lock_id);
    EXPECT_NE(lock, nullptr);
    static const LockState kMissing;
    return lock == nullptr ? kMissing : *lock;
  }

  LockEngine model_{Config{kDefaultLeaseMs, kMaxLeaseMs}};
  uint64_t now_ = kT0;
};

TEST_F(LockEngineTest, SharedHoldersShareTheLock) {
  Outcome a = Do(Acquire(kLock, 10, kS));
  EXPECT_EQ(a.reply, GrantedReply(1));
  EXPECT_THAT(a.grants, IsEmpty());
  EXPECT_EQ(Bumped(a.counters), "acquire=1 grant_immediate=1");

  now_ += 5 * kMs;
  Outcome b = Do(Acquire(kLock, 20, kS));
  EXPECT_EQ(b.reply, GrantedReply(2));
  EXPECT_EQ(Bumped(b.counters), "acquire=1 grant_immediate=1");

  const LockState& lock = Lock();
  EXPECT_EQ(lock.mode, kS);
  EXPECT_THAT(HolderTxns(lock), ElementsAre(10, 20));
  EXPECT_EQ(lock.holders.at(10).fence, 1u);
  EXPECT_EQ(lock.holders.at(10).seq, SeqOf(10));
  EXPECT_EQ(lock.holders.at(10).lease_expires_ns, kT0 + kDefaultLeaseMs * kMs);
  EXPECT_EQ(lock.holders.at(20).fence, 2u);
  EXPECT_EQ(lock.holders.at(20).lease_expires_ns, now_ + kDefaultLeaseMs * kMs);
  EXPECT_THAT(lock.queue, IsEmpty());
  EXPECT_EQ(lock.fence, 2u);
  EXPECT_EQ(lock.min_txn, 10u);
  EXPECT_EQ(Bumped(model_.stats()), "acquire=2 grant_immediate=2");
}

TEST_F(LockEngineTest, ExclusiveHolderConflictsWithEveryMode) {
  Do(Acquire(kLock, 10, kX));

  Outcome s = Do(Acquire(kLock, 20, kS));
  EXPECT_EQ(s.reply, QueuedReply(0));
  EXPECT_EQ(Bumped(s.counters), "acquire=1 queued=1");
  Outcome x = Do(Acquire(kLock, 30, kX));
  EXPECT_EQ(x.reply, QueuedReply(1));
  EXPECT_EQ(Bumped(x.counters), "acquire=1 queued=1");

  const LockState& lock = Lock();
  EXPECT_EQ(lock.mode, kX);
  EXPECT_THAT(HolderTxns(lock), ElementsAre(10));
  EXPECT_THAT(QueueEntries(lock), ElementsAre(20, 30));
  EXPECT_EQ(lock.queue[0].mode, kS);
  EXPECT_EQ(lock.queue[0].seq, SeqOf(20));
  EXPECT_EQ(lock.queue[1].mode, kX);
  EXPECT_EQ(lock.fence, 1u);
  EXPECT_EQ(model_.QueuedBlocks(), 2u);
}

TEST_F(LockEngineTest, ExclusiveRequestConflictsWithSharedHolders) {
  Do(Acquire(kLock, 10, kS));
  Outcome x = Do(Acquire(kLock, 20, kX));
  EXPECT_EQ(x.reply, QueuedReply(0));
  EXPECT_EQ(Bumped(x.counters), "acquire=1 queued=1");
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(20));
}

TEST_F(LockEngineTest, SharedRequestWaitsBehindQueuedExclusive) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kX));

  // Compatible with the S holder, but nobody overtakes a waiter.
  Outcome s = Do(Acquire(kLock, 30, kS));
  EXPECT_EQ(s.reply, QueuedReply(1));
  EXPECT_EQ(Bumped(s.counters), "acquire=1 queued=1");
  Outcome no_wait = Do(Acquire(kLock, 40, kS, kNoWait));
  EXPECT_EQ(no_wait.reply, RejectedReply(LOCKD_STATUS_CONFLICT));

  const LockState& lock = Lock();
  EXPECT_THAT(HolderTxns(lock), ElementsAre(10));
  EXPECT_THAT(QueueEntries(lock), ElementsAre(20, 30));
}

TEST_F(LockEngineTest, ReleaseGrantsSharedRunAtHeadThenExclusivesInOrder) {
  Do(Acquire(kLock, 10, kX));
  Do(Acquire(kLock, 20, kS));
  Do(Acquire(kLock, 30, kS));
  Do(Acquire(kLock, 40, kX));
  Do(Acquire(kLock, 50, kS));
  Do(Acquire(kLock, 60, kX));
  Do(Acquire(kLock, 70, kX));
  ASSERT_THAT(QueueEntries(Lock()), ElementsAre(20, 30, 40, 50, 60, 70));

  now_ += 7 * kMs;
  Outcome first = Do(Release(kLock, 10));
  EXPECT_EQ(first.reply, ReleasedReply(1));
  EXPECT_THAT(first.grants,
              ElementsAre(GrantTo(20, 2, kS), GrantTo(30, 3, kS)));
  EXPECT_EQ(Bumped(first.counters), "release=1 released=1 grant_from_queue=2");
  EXPECT_EQ(Lock().mode, kS);
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(20, 30));
  // A waiter's lease starts when it is granted.
  EXPECT_EQ(Lock().holders.at(20).lease_expires_ns,
            now_ + kDefaultLeaseMs * kMs);
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(40, 50, 60, 70));

  Outcome one_of_two = Do(Release(kLock, 30));
  EXPECT_EQ(one_of_two.reply, ReleasedReply(3));
  EXPECT_THAT(one_of_two.grants, IsEmpty());
  EXPECT_EQ(Bumped(one_of_two.counters), "release=1 released=1");

  Outcome last_shared = Do(Release(kLock, 20));
  EXPECT_EQ(last_shared.reply, ReleasedReply(2));
  EXPECT_THAT(last_shared.grants, ElementsAre(GrantTo(40, 4, kX)));
  EXPECT_EQ(Bumped(last_shared.counters),
            "release=1 released=1 grant_from_queue=1");

  // The S behind an X is granted alone when the X leaves; the X behind it
  // stops the run.
  EXPECT_THAT(Do(Release(kLock, 40)).grants, ElementsAre(GrantTo(50, 5, kS)));
  EXPECT_THAT(Do(Release(kLock, 50)).grants, ElementsAre(GrantTo(60, 6, kX)));
  EXPECT_THAT(Do(Release(kLock, 60)).grants, ElementsAre(GrantTo(70, 7, kX)));
  Outcome idle = Do(Release(kLock, 70));
  EXPECT_THAT(idle.grants, IsEmpty());

  const LockState& lock = Lock();
  EXPECT_EQ(lock.mode, LOCKD_MODE_NONE);
  EXPECT_THAT(lock.holders, IsEmpty());
  EXPECT_THAT(lock.queue, IsEmpty());
  EXPECT_EQ(lock.fence, 7u);
  EXPECT_EQ(lock.min_txn, kIdleMinTxn);
  EXPECT_EQ(model_.QueuedBlocks(), 0u);
}

TEST_F(LockEngineTest, NoWaitRejectsConflictAndChangesNothing) {
  Do(Acquire(kLock, 10, kX));
  Outcome rejected = Do(Acquire(kLock, 5, kS, kNoWait));
  EXPECT_EQ(rejected.reply, RejectedReply(LOCKD_STATUS_CONFLICT));
  EXPECT_EQ(Bumped(rejected.counters), "acquire=1 reject_conflict=1");
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(10));
  EXPECT_THAT(Lock().queue, IsEmpty());
  EXPECT_EQ(Lock().fence, 1u);
  EXPECT_EQ(Lock().min_txn, 10u);  // a rejected request never was a member

  Do(Release(kLock, 10));
  Outcome granted = Do(Acquire(kLock, 5, kS, kNoWait));
  EXPECT_EQ(granted.reply, GrantedReply(2));
  EXPECT_EQ(Bumped(granted.counters), "acquire=1 grant_immediate=1");
}

TEST_F(LockEngineTest, WaitDieOlderWaitsYoungerDies) {
  Do(Acquire(kLock, 50, kX));
  EXPECT_EQ(Lock().min_txn, 50u);

  Outcome older = Do(Acquire(kLock, 40, kX, kWaitDie));
  EXPECT_EQ(older.reply, QueuedReply(0));
  EXPECT_EQ(Bumped(older.counters), "acquire=1 queued=1");
  EXPECT_EQ(Lock().min_txn, 40u);

  Outcome younger = Do(Acquire(kLock, 60, kX, kWaitDie));
  EXPECT_EQ(younger.reply, RejectedReply(LOCKD_STATUS_DIE));
  EXPECT_EQ(Bumped(younger.counters), "acquire=1 reject_die=1");
  // Older than the holder but younger than a waiter: it would wait for it.
  Outcome between = Do(Acquire(kLock, 45, kS, kWaitDie));
  EXPECT_EQ(between.reply, RejectedReply(LOCKD_STATUS_DIE));

  EXPECT_EQ(Do(Acquire(kLock, 30, kS, kWaitDie)).reply, QueuedReply(1));
  EXPECT_EQ(Lock().min_txn, 30u);
  // Plain WAIT ignores age; a younger member does not raise the bound.
  EXPECT_EQ(Do(Acquire(kLock, 70, kX, kWait)).reply, QueuedReply(2));
  EXPECT_EQ(Lock().min_txn, 30u);
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(40, 30, 70));

  // min_txn never rises while the lock is busy, even as members leave.
  EXPECT_THAT(Do(Release(kLock, 50)).grants, ElementsAre(GrantTo(40, 2, kX)));
  EXPECT_EQ(Lock().min_txn, 30u);
  EXPECT_THAT(Do(Release(kLock, 40)).grants, ElementsAre(GrantTo(30, 3, kS)));
  // The last waiter left the queue of a lock nobody held: for that instant
  // the lock was idle, so the bound restarted from the member granted.
  EXPECT_THAT(Do(Release(kLock, 30)).grants, ElementsAre(GrantTo(70, 4, kX)));
  EXPECT_EQ(Lock().min_txn, 70u);
  // 35 is older than every member (70): it waits.
  EXPECT_EQ(Do(Acquire(kLock, 35, kS, kWaitDie)).reply, QueuedReply(0));
  EXPECT_THAT(Do(Release(kLock, 70)).grants, ElementsAre(GrantTo(35, 5, kS)));
  EXPECT_EQ(Lock().min_txn, 35u);

  // Idle resets it, so the next members start a fresh bound.
  Do(Release(kLock, 35));
  EXPECT_EQ(Lock().min_txn, kIdleMinTxn);
  Do(Acquire(kLock, 90, kX));
  EXPECT_EQ(Lock().min_txn, 90u);
  Outcome waits = Do(Acquire(kLock, 80, kX, kWaitDie));
  EXPECT_EQ(waits.reply, QueuedReply(0));
  EXPECT_EQ(Lock().min_txn, 80u);
}

TEST_F(LockEngineTest, MinTxnFollowsEveryMemberIncludingImmediateGrants) {
  Do(Acquire(kLock, 50, kS));
  // No conflict: WAIT_DIE does not apply, and the younger joins.
  EXPECT_EQ(Do(Acquire(kLock, 60, kS, kWaitDie)).reply, GrantedReply(2));
  EXPECT_EQ(Lock().min_txn, 50u);
  EXPECT_EQ(Do(Acquire(kLock, 20, kS, kNoWait)).reply, GrantedReply(3));
  EXPECT_EQ(Lock().min_txn, 20u);
}

TEST_F(LockEngineTest, SoleSharedHolderUpgradesToExclusive) {
  Do(Acquire(kLock, 10, kS));
  now_ += 10 * kMs;
  Outcome upgrade = Do(Acquire(kLock, 10, kX, kWait, 3000));
  // A new grant: next fence, and the lease restarts with the asked lease.
  EXPECT_EQ(upgrade.reply, GrantedReply(2, 3000));
  EXPECT_EQ(Bumped(upgrade.counters), "acquire=1 upgrade=1");

  const LockState& lock = Lock();
  EXPECT_EQ(lock.mode, kX);
  EXPECT_THAT(HolderTxns(lock), ElementsAre(10));
  EXPECT_EQ(lock.holders.at(10).mode, kX);
  EXPECT_EQ(lock.holders.at(10).fence, 2u);
  EXPECT_EQ(lock.holders.at(10).lease_expires_ns, now_ + 3000 * kMs);
  EXPECT_EQ(lock.fence, 2u);
  EXPECT_EQ(Do(Acquire(kLock, 20, kS)).reply, QueuedReply(0));
}

TEST_F(LockEngineTest, UpgradeWithOtherHoldersIsRefused) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kS));
  Outcome refused = Do(Acquire(kLock, 10, kX));
  EXPECT_EQ(refused.reply, RejectedReply(LOCKD_STATUS_UPGRADE_CONFLICT));
  EXPECT_EQ(Bumped(refused.counters), "acquire=1 reject_upgrade=1");

  const LockState& lock = Lock();
  EXPECT_EQ(lock.mode, kS);
  EXPECT_EQ(lock.holders.at(10).mode, kS);
  EXPECT_EQ(lock.holders.at(10).fence, 1u);
  EXPECT_EQ(lock.fence, 2u);
}

TEST_F(LockEngineTest, UpgradeWithWaitersIsRefused) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kX));
  Outcome refused = Do(Acquire(kLock, 10, kX));
  EXPECT_EQ(refused.reply, RejectedReply(LOCKD_STATUS_UPGRADE_CONFLICT));
  EXPECT_EQ(Bumped(refused.counters), "acquire=1 reject_upgrade=1");
  EXPECT_EQ(Lock().mode, kS);
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(20));
}

TEST_F(LockEngineTest, DuplicateAcquireOfHolderRepeatsTheGrant) {
  Do(Acquire(kLock, 10, kX, kWait, 2000));
  now_ += 100 * kMs;
  Outcome again = Do(Acquire(kLock, 10, kX, kWait, 2000));
  EXPECT_EQ(again.reply, GrantedReply(1, 2000));
  EXPECT_EQ(Bumped(again.counters), "acquire=1 acquire_dup=1");
  // X covers S; the asked lease and policy do not matter.
  Outcome weaker = Do(Acquire(kLock, 10, kS, kNoWait, 300));
  EXPECT_EQ(weaker.reply, GrantedReply(1, 2000));
  EXPECT_EQ(Bumped(weaker.counters), "acquire=1 acquire_dup=1");
  // Once the lease ran out the grant is no longer repeated.
  now_ += 5000 * kMs;
  Outcome expired = Do(Acquire(kLock, 10, kX));
  EXPECT_EQ(expired.reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
  EXPECT_EQ(Bumped(expired.counters), "acquire=1 reject_expired=1");

  EXPECT_EQ(Lock().fence, 1u);
  EXPECT_EQ(Lock().holders.at(10).lease_expires_ns, kT0 + 2000 * kMs);
}

TEST_F(LockEngineTest, DuplicateAcquireOfSharedHolderRepeatsTheGrant) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kS));
  Outcome again = Do(Acquire(kLock, 20, kS));
  EXPECT_EQ(again.reply, GrantedReply(2));
  EXPECT_EQ(Bumped(again.counters), "acquire=1 acquire_dup=1");
}

TEST_F(LockEngineTest, DuplicateAcquireOfWaiterRepeatsQueuedReply) {
  Do(Acquire(kLock, 10, kX));
  Do(Acquire(kLock, 20, kS));
  Do(Acquire(kLock, 30, kX));

  // The first reply said the position; a repeat says QUEUED with 0.
  Outcome again = Do(Acquire(kLock, 30, kX));
  EXPECT_EQ(again.reply, QueuedReply(0));
  EXPECT_EQ(Bumped(again.counters), "acquire=1 acquire_dup=1");
  // Another mode or policy changes nothing either.
  EXPECT_EQ(Do(Acquire(kLock, 30, kS, kNoWait)).reply, QueuedReply(0));
  EXPECT_EQ(Lock().queue[1].mode, kX);

  Do(Release(kLock, 20));
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(30));
  EXPECT_EQ(Do(Acquire(kLock, 30, kX)).reply, QueuedReply(0));
  EXPECT_EQ(model_.QueuedBlocks(), 1u);
}

TEST_F(LockEngineTest, DuplicateReleaseRepeatsTheFence) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kS));
  Outcome released = Do(Release(kLock, 20));
  EXPECT_EQ(released.reply, ReleasedReply(2));
  EXPECT_EQ(Bumped(released.counters), "release=1 released=1");

  now_ += 60 * 1000 * kMs;
  Outcome again = Do(Release(kLock, 20));
  EXPECT_EQ(again.reply, ReleasedReply(2));
  EXPECT_EQ(Bumped(again.counters), "release=1 release_dup=1");
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(10));
  EXPECT_EQ(Lock().fence, 2u);
}

TEST_F(LockEngineTest, ReleaseOrRenewByNonHolderIsRefused) {
  Do(Acquire(kLock, 10, kX));
  Outcome stranger = Do(Release(kLock, 20));
  EXPECT_EQ(stranger.reply, RejectedReply(LOCKD_STATUS_NOT_HOLDER));
  EXPECT_EQ(Bumped(stranger.counters), "release=1 reject_not_holder=1");
  Outcome renew = Do(Renew(kLock, 20, 100));
  EXPECT_EQ(renew.reply, RejectedReply(LOCKD_STATUS_NOT_HOLDER));
  EXPECT_EQ(Bumped(renew.counters), "reject_not_holder=1");
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(10));

  // A lock nobody ever asked for is not created by a RELEASE or RENEW.
  EXPECT_EQ(Do(Release(99, 10)).reply, RejectedReply(LOCKD_STATUS_NOT_HOLDER));
  EXPECT_EQ(Do(Renew(99, 10, 0)).reply, RejectedReply(LOCKD_STATUS_NOT_HOLDER));
  EXPECT_EQ(model_.Find(99), nullptr);
}

TEST_F(LockEngineTest, CancelledWaiterStaysLinkedUntilItReachesTheHead) {
  Do(Acquire(kLock, 10, kX));
  Do(Acquire(kLock, 20, kX));
  Do(Acquire(kLock, 30, kS));
  Do(Acquire(kLock, 40, kS));

  Outcome cancel = Do(Release(kLock, 30));
  EXPECT_EQ(cancel.reply, ReleasedReply(0));
  EXPECT_THAT(cancel.grants, IsEmpty());
  EXPECT_EQ(Bumped(cancel.counters), "release=1 cancelled=1");
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(20, -30, 40));
  EXPECT_EQ(model_.QueuedBlocks(), 3u);
  // Entries ahead count cancelled ones: they still occupy the queue.
  EXPECT_EQ(Do(Acquire(kLock, 50, kX)).reply, QueuedReply(3));

  // Once 20 is granted the cancelled entry is at the head: the same loop
  // unlinks it and stops at the incompatible S behind it.
  Outcome skip = Do(Release(kLock, 10));
  EXPECT_THAT(skip.grants, ElementsAre(GrantTo(20, 2, kX)));
  EXPECT_EQ(Bumped(skip.counters),
            "release=1 released=1 grant_from_queue=1 skipped_cancelled=1");
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(40, 50));
  EXPECT_EQ(model_.QueuedBlocks(), 2u);

  EXPECT_THAT(Do(Release(kLock, 20)).grants, ElementsAre(GrantTo(40, 3, kS)));
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(50));
  EXPECT_EQ(model_.QueuedBlocks(), 1u);
}

TEST_F(LockEngineTest, CancelledExclusiveHeadUnblocksSharedWaiters) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kX));
  Do(Acquire(kLock, 30, kS));
  Do(Acquire(kLock, 40, kS));
  Do(Acquire(kLock, 50, kX));

  Outcome cancel = Do(Release(kLock, 20));
  EXPECT_EQ(cancel.reply, ReleasedReply(0));
  EXPECT_THAT(cancel.grants,
              ElementsAre(GrantTo(30, 2, kS), GrantTo(40, 3, kS)));
  EXPECT_EQ(Bumped(cancel.counters),
            "release=1 cancelled=1 grant_from_queue=2 skipped_cancelled=1");
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(10, 30, 40));
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(50));
  EXPECT_EQ(model_.QueuedBlocks(), 1u);
}

TEST_F(LockEngineTest, CancelIsRememberedWithFenceZero) {
  Do(Acquire(kLock, 10, kX));
  Do(Acquire(kLock, 20, kX));
  EXPECT_EQ(Do(Release(kLock, 20)).reply, ReleasedReply(0));
  Outcome again = Do(Release(kLock, 20));
  EXPECT_EQ(again.reply, ReleasedReply(0));
  EXPECT_EQ(Bumped(again.counters), "release=1 release_dup=1");
}

TEST_F(LockEngineTest, ReleaseAndRenewAfterLeaseExpiryAreRefused) {
  Do(Acquire(kLock, 10, kX, kWait, 100));
  Do(Acquire(2, 10, kX, kWait, 100));

  // Expired means lease_expires_ns < now: the last nanosecond still counts.
  now_ = kT0 + 100 * kMs;
  EXPECT_EQ(Do(Release(2, 10)).reply, ReleasedReply(1));

  now_ += 1;
  Outcome release = Do(Release(kLock, 10));
  EXPECT_EQ(release.reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
  EXPECT_EQ(Bumped(release.counters), "release=1 reject_expired=1");
  Outcome renew = Do(Renew(kLock, 10, 1000));
  EXPECT_EQ(renew.reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
  EXPECT_EQ(Bumped(renew.counters), "reject_expired=1");

  // Still held until the sweep frees it.
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(10));
  EXPECT_EQ(Lock().holders.at(10).lease_expires_ns, kT0 + 100 * kMs);
}

TEST_F(LockEngineTest, RenewExtendsTheLeaseFromNow) {
  Do(Acquire(kLock, 10, kX, kWait, 100));
  now_ = kT0 + 50 * kMs;
  Outcome renew = Do(Renew(kLock, 10, 300));
  EXPECT_EQ(renew.reply, RenewedReply(1, 300));
  EXPECT_EQ(Bumped(renew.counters), "renew=1");
  EXPECT_EQ(Lock().holders.at(10).lease_ms, 300u);
  EXPECT_EQ(Lock().holders.at(10).lease_expires_ns, now_ + 300 * kMs);

  // Past the first lease, within the renewed one.
  now_ = kT0 + 200 * kMs;
  EXPECT_EQ(Do(Acquire(kLock, 10, kX)).reply, GrantedReply(1, 300));
  EXPECT_EQ(Do(Release(kLock, 10)).reply, ReleasedReply(1));
}

TEST_F(LockEngineTest, RenewOfWaiterIsRefused) {
  Do(Acquire(kLock, 10, kX));
  Do(Acquire(kLock, 20, kX));
  EXPECT_EQ(Do(Renew(kLock, 20, 0)).reply,
            RejectedReply(LOCKD_STATUS_NOT_HOLDER));
}

TEST_F(LockEngineTest, LeasesDefaultAndClampEverywhere) {
  EXPECT_EQ(Do(Acquire(kLock, 10, kS, kWait, 0)).reply, GrantedReply(1, 1000));
  EXPECT_EQ(Do(Acquire(kLock, 20, kS, kWait, 9000)).reply,
            GrantedReply(2, kMaxLeaseMs));
  EXPECT_EQ(Lock().holders.at(20).lease_expires_ns, now_ + kMaxLeaseMs * kMs);
  EXPECT_EQ(Do(Renew(kLock, 10, 0)).reply, RenewedReply(1, 1000));
  EXPECT_EQ(Do(Renew(kLock, 10, 7000)).reply, RenewedReply(1, kMaxLeaseMs));
  EXPECT_EQ(Do(Renew(kLock, 10, 20)).reply, RenewedReply(1, 20));

  Do(Acquire(kLock, 30, kX, kWait, 0));
  Do(Acquire(kLock, 40, kX, kWait, 6000));
  EXPECT_EQ(Lock().queue[0].lease_ms, kDefaultLeaseMs);
  Do(Release(kLock, 10));
  now_ += 10 * kMs;
  EXPECT_THAT(Do(Release(kLock, 20)).grants, ElementsAre(GrantTo(30, 3, kX)));
  EXPECT_EQ(Lock().holders.at(30).lease_expires_ns,
            now_ + kDefaultLeaseMs * kMs);
  EXPECT_THAT(Do(Release(kLock, 30)).grants,
              ElementsAre(GrantTo(40, 4, kX, kMaxLeaseMs)));
}

TEST_F(LockEngineTest, FencesGrowPerLockAcrossIdlePeriods) {
  EXPECT_EQ(Do(Acquire(kLock, 10, kS)).reply.value().fence, 1u);
  EXPECT_EQ(Do(Acquire(2, 10, kX)).reply.value().fence, 1u);  // own sequence
  EXPECT_EQ(Do(Acquire(kLock, 10, kX)).reply.value().fence, 2u);  // upgrade
  Do(Acquire(kLock, 20, kS));
  Do(Release(kLock, 10));  // grants 20
  Do(Release(kLock, 20));  // idle
  EXPECT_EQ(Lock().fence, 3u);
  EXPECT_EQ(Do(Acquire(kLock, 20, kS)).reply.value().fence, 4u);
  EXPECT_EQ(Lock(2).fence, 1u);
}

TEST_F(LockEngineTest, ExpireHolderFreesTheLockAndTellsTheLateRelease) {
  Do(Acquire(kLock, 10, kX));
  Do(Release(kLock, 10));  // remembered with fence 1
  Do(Acquire(kLock, 10, kX, kWait, 100));
  Do(Acquire(kLock, 20, kS));
  Do(Acquire(kLock, 30, kS));

  const uint64_t expiry = kT0 + 100 * kMs;
  EXPECT_EQ(model_.ExpireHolder(kLock, 10, expiry).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(model_.ExpireHolder(kLock, 20, expiry + 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(model_.ExpireHolder(7, 10, expiry + 1).status().code(),
            absl::StatusCode::kNotFound);

  now_ = expiry + 1;
  absl::StatusOr<Outcome> expired = model_.ExpireHolder(kLock, 10, now_);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->reply, std::nullopt);
  EXPECT_THAT(expired->grants,
              ElementsAre(GrantTo(20, 3, kS), GrantTo(30, 4, kS)));
  EXPECT_EQ(Bumped(expired->counters), "grant_from_queue=2");
  EXPECT_TRUE(model_.CheckInvariants().ok());
  EXPECT_THAT(HolderTxns(Lock()), ElementsAre(20, 30));

  // The swept holder's late release learns its lease ran out.
  Outcome late = Do(Release(kLock, 10));
  EXPECT_EQ(late.reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
  EXPECT_EQ(Bumped(late.counters), "release=1 reject_expired=1");
}

TEST_F(LockEngineTest, ExpireWaiterCancelsItsWait) {
  Do(Acquire(kLock, 10, kS));
  Do(Acquire(kLock, 20, kX, kWait, 0, 100));
  Do(Acquire(kLock, 30, kS));
  EXPECT_EQ(Lock().queue[0].deadline_ns, kT0 + 100 * kMs);
  EXPECT_EQ(Lock().queue[1].deadline_ns, 0u);

  const uint64_t deadline = kT0 + 100 * kMs;
  EXPECT_EQ(model_.ExpireWaiter(kLock, 20, deadline).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(model_.ExpireWaiter(kLock, 30, deadline + 1).status().code(),
            absl::StatusCode::kFailedPrecondition);  // waits without limit
  EXPECT_EQ(model_.ExpireWaiter(kLock, 10, deadline + 1).status().code(),
            absl::StatusCode::kNotFound);

  now_ = deadline + 1;
  absl::StatusOr<Outcome> expired = model_.ExpireWaiter(kLock, 20, now_);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->reply, std::nullopt);
  EXPECT_THAT(expired->grants, ElementsAre(GrantTo(30, 2, kS)));
  EXPECT_EQ(Bumped(expired->counters),
            "grant_from_queue=1 skipped_cancelled=1");
  EXPECT_TRUE(model_.CheckInvariants().ok());
  EXPECT_EQ(model_.QueuedBlocks(), 0u);
  // The late cancel learns why its wait ended.
  EXPECT_EQ(Do(Release(kLock, 20)).reply,
            RejectedReply(LOCKD_STATUS_WAIT_EXPIRED));
}

TEST_F(LockEngineTest, MalformedRequestsAreDroppedUncounted) {
  Request reply_opcode = Acquire(kLock, 10, kS);
  reply_opcode.opcode = LOCKD_OP_GRANTED;
  Request unknown_opcode = Acquire(kLock, 10, kS);
  unknown_opcode.opcode = 0x05;
  Request unknown_mode = Acquire(kLock, 10, kS);
  unknown_mode.mode = 3;
  Request unknown_policy = Acquire(kLock, 10, kS);
  unknown_policy.policy = LOCKD_POLICY_COUNT;
  Request release_unknown_mode = Release(kLock, 10);
  release_unknown_mode.mode = 7;
  const Request no_mode = Acquire(kLock, 10, LOCKD_MODE_NONE);

  for (const Request& request :
       {reply_opcode, unknown_opcode, unknown_mode, unknown_policy,
        release_unknown_mode, no_mode}) {
    Outcome dropped = Do(request);
    EXPECT_EQ(dropped.reply, std::nullopt);
    EXPECT_THAT(dropped.grants, IsEmpty());
    EXPECT_EQ(Bumped(dropped.counters), "malformed=1");
  }
  EXPECT_EQ(model_.Find(kLock), nullptr);
}

TEST_F(LockEngineTest, KickFindsNothingLeftToGrant) {
  Do(Acquire(kLock, 10, kX));
  Do(Acquire(kLock, 20, kS));
  Request kick;
  kick.opcode = LOCKD_OP_KICK;
  kick.lock_id = kLock;
  Outcome outcome = Do(kick);
  EXPECT_EQ(outcome.reply, std::nullopt);
  EXPECT_THAT(outcome.grants, IsEmpty());
  EXPECT_EQ(Bumped(outcome.counters), "");
  EXPECT_THAT(QueueEntries(Lock()), ElementsAre(20));
}

// A valid state with every kind of member; each case breaks one rule.
LockState ValidState() {
  LockState lock;
  lock.mode = kS;
  lock.holders[10] = LockEngine::Hold{kS, 3, 0, 1000, kT0};
  lock.holders[20] = LockEngine::Hold{kS, 5, 0, 1000, kT0};
  lock.fence = 6;
  lock.min_txn = 5;
  LockEngine::Waiter x;
  x.txn_id = 30;
  x.mode = kX;
  LockEngine::Waiter cancelled = x;
  cancelled.txn_id = 40;
  cancelled.cancelled = true;
  LockEngine::Waiter s = x;
  s.txn_id = 40;  // re-queued after cancelling: allowed
  s.mode = kS;
  lock.queue = {x, cancelled, s};
  return lock;
}

TEST(CheckLockInvariantsTest, AcceptsValidState) {
  const absl::Status status = LockEngine::CheckLockInvariants(1, ValidState());
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_TRUE(LockEngine::CheckLockInvariants(1, LockState{}).ok());
}

TEST(CheckLockInvariantsTest, ReportsEachViolation) {
  const std::vector<std::pair<std::function<void(LockState&)>, std::string>>
      cases = {
          {[](LockState& l) { l.mode = 3; }, "unknown mode"},
          {[](LockState& l) { l.mode = LOCKD_MODE_NONE; }, "2 holders in mode"},
          {[](LockState& l) {
             l.mode = kX;
             for (auto& [txn, hold] : l.holders) hold.mode = kX;
           },
           "X held by 2"},
          {[](LockState& l) { l.holders.at(20).mode = kX; }, "in mode 2"},
          {[](LockState& l) { l.holders.at(20).fence = 7; }, "fence 7 outside"},
          {[](LockState& l) { l.holders.at(20).fence = 0; }, "fence 0 outside"},
          {[](LockState& l) { l.holders.at(20).fence = 3; }, "fence 3 held"},
          {[](LockState& l) { l.queue[0].txn_id = 20; }, "owner txn 20"},
          {[](LockState& l) { l.queue[2].txn_id = 30; }, "owner txn 30"},
          {[](LockState& l) { l.queue[2].mode = LOCKD_MODE_NONE; },
           "waits for mode 0"},
          {[](LockState& l) { l.queue[0].cancelled = true; },
           "cancelled waiter txn 30 left at the head"},
          {[](LockState& l) { l.queue[0].mode = kS; },
           "head waiter txn 30 (mode 1) is compatible"},
          {[](LockState& l) {
             l.holders.clear();
             l.mode = LOCKD_MODE_NONE;
           },
           "head waiter txn 30 (mode 2) is compatible"},
          {[](LockState& l) { l.min_txn = 11; }, "member txn 10 below min_txn"},
          {[](LockState& l) {
             l.holders.clear();
             l.mode = LOCKD_MODE_NONE;
             l.queue.clear();
           },
           "idle with min_txn 5"},
      };
  for (const auto& [corrupt, message] : cases) {
    LockState lock = ValidState();
    corrupt(lock);
    const absl::Status status = LockEngine::CheckLockInvariants(7, lock);
    EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << message;
    EXPECT_THAT(std::string(status.message()), HasSubstr("lock 7: "));
    EXPECT_THAT(std::string(status.message()), HasSubstr(message));
  }
}

// ---------------------------------------------------------------------------
// Randomized self-check: the model against the contract, seen from outside.

using OwnerKey = std::pair<uint64_t, uint64_t>;  // lock_id, txn_id

enum class Role { kNone, kQueued, kHeld };

// What a client knows about its own record, learned only from replies and
// grants.
struct OwnerView {
  Role role = Role::kNone;
  uint8_t mode = LOCKD_MODE_NONE;
  uint64_t fence = 0;             // kHeld
  uint32_t lease_ms = 0;          // kHeld: granted; kQueued: to be granted
  uint64_t lease_expires_ns = 0;  // kHeld
  uint32_t seq = 0;               // of the ACQUIRE that created the record
  uint32_t queue_pos = 0;         // kQueued: from the QUEUED reply
  uint64_t deadline_ns = 0;       // kQueued
  // What a late RELEASE is told once the record is gone, and its counter.
  std::optional<std::pair<Reply, lockd_stat>> late_release;
};

// A lock as the union of its clients' knowledge.
struct LockView {
  std::set<uint64_t> holders;
  std::deque<uint64_t> waiting;  // live waiters, oldest first
  uint64_t fence = 0;            // last fence handed out
  uint64_t blocks = 0;           // queue entries, cancelled ones included
};

// The contract as one sentence per rule, checked against each outcome. It
// predicts replies, grants and counters from what the clients were told so
// far, never from the model's state, and so also checks that no waiter is
// lost: a waiter stays queued until a grant names it, grants go to the oldest
// waiters in order, and after every step the oldest waiter left must be
// incompatible with the holders.
class Observer {
 public:
  explicit Observer(Config config) : config_(config) {}

  void OnApply(const Request& request, uint64_t now_ns,
               const Outcome& outcome) {
    Counters expected{};
    if (IsMalformed(request) || request.opcode == LOCKD_OP_KICK) {
      expected[LOCKD_STAT_MALFORMED] = IsMalformed(request) ? 1 : 0;
      EXPECT_EQ(outcome.reply, std::nullopt);
      EXPECT_THAT(outcome.grants, IsEmpty());
      EXPECT_EQ(Bumped(outcome.counters), Bumped(expected));
      return;
    }
    ASSERT_TRUE(outcome.reply.has_value());
    const OwnerKey key(request.lock_id, request.txn_id);
    switch (request.opcode) {
      case LOCKD_OP_ACQUIRE:
        ExpectAcquire(request, now_ns, *outcome.reply, expected);
        break;
      case LOCKD_OP_RELEASE:
        ExpectRelease(request, now_ns, *outcome.reply, expected);
        break;
      case LOCKD_OP_RENEW:
        ExpectRenew(request, now_ns, *outcome.reply, expected);
        break;
    }
    TakeGrants(request.lock_id, now_ns, outcome, expected);
  }

  void OnExpireHolder(const OwnerKey& key, uint64_t now_ns,
                      const Outcome& outcome) {
    const OwnerView& owner = owners_[key];
    EXPECT_EQ(owner.role, Role::kHeld);
    EXPECT_LT(owner.lease_expires_ns, now_ns);
    Leave(key);
    owners_[key].late_release = {RejectedReply(LOCKD_STATUS_LEASE_EXPIRED),
                                 LOCKD_STAT_REJECT_EXPIRED};
    EXPECT_EQ(outcome.reply, std::nullopt);
    TakeGrants(key.first, now_ns, outcome, Counters{});
  }

  void OnExpireWaiter(const OwnerKey& key, uint64_t now_ns,
                      const Outcome& outcome) {
    const OwnerView& owner = owners_[key];
    EXPECT_EQ(owner.role, Role::kQueued);
    EXPECT_NE(owner.deadline_ns, 0u);
    EXPECT_LT(owner.deadline_ns, now_ns);
    Leave(key);
    owners_[key].late_release = {RejectedReply(LOCKD_STATUS_WAIT_EXPIRED),
                                 LOCKD_STAT_REJECT_NOT_HOLDER};
    EXPECT_EQ(outcome.reply, std::nullopt);
    TakeGrants(key.first, now_ns, outcome, Counters{});
  }

  // The model's holders (with fences and leases) and live waiters (in FIFO
  // order) of the lock are exactly those the clients were told about.
  void ExpectMatches(const LockEngine& model, uint64_t lock_id) {
    const LockView& view = locks_[lock_id];
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> holders;
    for (const uint64_t txn_id : view.holders) {
      const OwnerView& owner = owners_[{lock_id, txn_id}];
      holders[txn_id] = {owner.fence, owner.lease_expires_ns};
    }
    const std::vector<uint64_t> waiters(view.waiting.begin(),
                                        view.waiting.end());

    const LockState* lock = model.Find(lock_id);
    if (lock == nullptr) {
      EXPECT_THAT(holders, IsEmpty());
      EXPECT_THAT(waiters, IsEmpty());
      return;
    }
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> model_holders;
    for (const auto& [txn_id, hold] : lock->holders) {
      model_holders[txn_id] = {hold.fence, hold.lease_expires_ns};
    }
    std::vector<uint64_t> model_waiters;
    for (const LockEngine::Waiter& waiter : lock->queue) {
      if (!waiter.cancelled) model_waiters.push_back(waiter.txn_id);
    }
    EXPECT_EQ(model_holders, holders) << "lock " << lock_id;
    EXPECT_EQ(model_waiters, waiters) << "lock " << lock_id;
    EXPECT_EQ(lock->queue.size(), view.blocks) << "lock " << lock_id;
    EXPECT_EQ(lock->fence, view.fence) << "lock " << lock_id;
  }

  const OwnerView& View(const OwnerKey& key) { return owners_[key]; }

  std::vector<OwnerKey> Holders() const {
    std::vector<OwnerKey> keys;
    for (const auto& [lock_id, lock] : locks_) {
      for (const uint64_t txn_id : lock.holders)
        keys.emplace_back(lock_id, txn_id);
    }
    return keys;
  }

  std::vector<OwnerKey> Waiters() const {
    std::vector<OwnerKey> keys;
    for (const auto& [lock_id, lock] : locks_) {
      for (const uint64_t txn_id : lock.waiting)
        keys.emplace_back(lock_id, txn_id);
    }
    return keys;
  }

  // Queue entries that the clients' requests created and that grants and
  // counted skips have not freed yet: the pool blocks the datapath would use.
  uint64_t Blocks() const {
    uint64_t total = 0;
    for (const auto& [lock_id, lock] : locks_) total += lock.blocks;
    return total;
  }

  uint64_t wait_die_queued() const { return wait_die_queued_; }
  size_t most_grants_at_once() const { return most_grants_at_once_; }

 private:
  static bool IsMalformed(const Request& request) {
    const bool known_opcode =
        request.opcode >= LOCKD_OP_ACQUIRE && request.opcode <= LOCKD_OP_KICK;
    return !known_opcode || request.mode > kX ||
           request.policy >= LOCKD_POLICY_COUNT ||
           (request.opcode == LOCKD_OP_ACQUIRE &&
            request.mode == LOCKD_MODE_NONE);
  }

  uint32_t Lease(uint32_t asked_ms) const {
    return std::min(asked_ms == 0 ? config_.default_lease_ms : asked_ms,
                    config_.max_lease_ms);
  }

  bool CanJoinHolders(const LockView& lock, uint64_t lock_id,
                      uint8_t mode) const {
    for (const uint64_t txn_id : lock.holders) {
      if (mode == kX || owners_.at({lock_id, txn_id}).mode == kX) return false;
    }
    return true;
  }

  // Forgets the owner's hold or wait; what a late RELEASE is told stays.
  void Leave(const OwnerKey& key) {
    OwnerView& owner = owners_[key];
    LockView& lock = locks_[key.first];
    if (owner.role == Role::kHeld) lock.holders.erase(key.second);
    if (owner.role == Role::kQueued) {
      lock.waiting.erase(
          std::find(lock.waiting.begin(), lock.waiting.end(), key.second));
    }
    owner = OwnerView{{}, {}, {}, {}, {}, {}, {}, {}, owner.late_release};
  }

  // A new hold, created by the ACQUIRE numbered `seq`: the owner must not
  // hold or wait already.
  void Hold(const OwnerKey& key, uint8_t mode, uint32_t lease_ms,
            uint64_t now_ns, uint32_t seq) {
    LockView& lock = locks_[key.first];
    OwnerView& owner = owners_[key];
    owner = OwnerView{{}, {}, {}, {}, {}, {}, {}, {}, owner.late_release};
    owner.role = Role::kHeld;
    owner.seq = seq;
    owner.mode = mode;
    owner.fence = ++lock.fence;
    owner.lease_ms = lease_ms;
    owner.lease_expires_ns = now_ns + lease_ms * kMs;
    lock.holders.insert(key.second);
  }

  void ExpectAcquire(const Request& request, uint64_t now_ns,
                     const Reply& reply, Counters& expected) {
    const OwnerKey key(request.lock_id, request.txn_id);
    OwnerView& owner = owners_[key];
    LockView& lock = locks_[request.lock_id];
    expected[LOCKD_STAT_ACQUIRE] = 1;
    if (owner.role == Role::kHeld) {
      if (owner.lease_expires_ns < now_ns) {
        expected[LOCKD_STAT_REJECT_EXPIRED] = 1;
        EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
      } else if (owner.mode == kX || request.mode == kS) {
        expected[LOCKD_STAT_ACQUIRE_DUP] = 1;
        EXPECT_EQ(reply, GrantedReply(owner.fence, owner.lease_ms));
      } else if (lock.holders.size() == 1 && lock.waiting.empty()) {
        expected[LOCKD_STAT_UPGRADE] = 1;
        const uint32_t seq = owner.seq;
        Leave(key);
        Hold(key, kX, Lease(request.lease_ms), now_ns, seq);
        EXPECT_EQ(reply, GrantedReply(owner.fence, owner.lease_ms));
      } else {
        expected[LOCKD_STAT_REJECT_UPGRADE] = 1;
        EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_UPGRADE_CONFLICT));
      }
      return;
    }
    if (owner.role == Role::kQueued) {
      expected[LOCKD_STAT_ACQUIRE_DUP] = 1;
      EXPECT_EQ(reply, QueuedReply(0));
      return;
    }

    const bool conflict = !lock.waiting.empty() ||
                          !CanJoinHolders(lock, request.lock_id, request.mode);
    if (!conflict) {
      expected[LOCKD_STAT_GRANT_IMMEDIATE] = 1;
      Hold(key, request.mode, Lease(request.lease_ms), now_ns, request.seq);
      EXPECT_EQ(reply, GrantedReply(owner.fence, owner.lease_ms));
      return;
    }
    if (request.policy == kNoWait) {
      expected[LOCKD_STAT_REJECT_CONFLICT] = 1;
      EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_CONFLICT));
      return;
    }
    // Whether WAIT_DIE may wait depends on min_txn, a bound over members
    // long gone; what the contract guarantees is that it never waits behind
    // an older transaction.
    if (reply.opcode == LOCKD_OP_REJECTED) {
      expected[LOCKD_STAT_REJECT_DIE] = 1;
      EXPECT_EQ(request.policy, kWaitDie);
      EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_DIE));
      return;
    }
    if (request.policy == kWaitDie) {
      for (const uint64_t holder : lock.holders) {
        EXPECT_LT(request.txn_id, holder) << "WAIT_DIE waits for an older";
      }
      for (const uint64_t waiter : lock.waiting) {
        EXPECT_LT(request.txn_id, waiter) << "WAIT_DIE waits for an older";
      }
      ++wait_die_queued_;
    }
    expected[LOCKD_STAT_QUEUED] = 1;
    // Every linked entry is ahead, cancelled ones included.
    EXPECT_EQ(reply, QueuedReply(static_cast<uint32_t>(lock.blocks)));
    owner = OwnerView{{}, {}, {}, {}, {}, {}, {}, {}, owner.late_release};
    owner.role = Role::kQueued;
    owner.mode = request.mode;
    owner.seq = request.seq;
    owner.lease_ms = Lease(request.lease_ms);
    owner.queue_pos = reply.queue_pos;
    owner.deadline_ns =
        request.wait_ms == 0 ? 0 : now_ns + request.wait_ms * kMs;
    lock.waiting.push_back(request.txn_id);
    ++lock.blocks;
  }

  void ExpectRelease(const Request& request, uint64_t now_ns,
                     const Reply& reply, Counters& expected) {
    const OwnerKey key(request.lock_id, request.txn_id);
    OwnerView& owner = owners_[key];
    expected[LOCKD_STAT_RELEASE] = 1;
    if (owner.role != Role::kNone &&
        static_cast<int32_t>(request.seq - owner.seq) < 0) {
      expected[LOCKD_STAT_RELEASE_DUP] = 1;  // stale: sent before the ACQUIRE
      EXPECT_EQ(reply, ReleasedReply(0));
      return;
    }
    switch (owner.role) {
      case Role::kHeld:
        if (owner.lease_expires_ns < now_ns) {
          expected[LOCKD_STAT_REJECT_EXPIRED] = 1;
          EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
        } else {
          expected[LOCKD_STAT_RELEASED] = 1;
          EXPECT_EQ(reply, ReleasedReply(owner.fence));
          const uint64_t fence = owner.fence;
          Leave(key);
          owner.late_release = {ReleasedReply(fence), LOCKD_STAT_RELEASE_DUP};
        }
        return;
      case Role::kQueued:
        expected[LOCKD_STAT_CANCELLED] = 1;
        EXPECT_EQ(reply, ReleasedReply(0));
        Leave(key);
        owner.late_release = {ReleasedReply(0), LOCKD_STAT_RELEASE_DUP};
        return;
      case Role::kNone:
        if (owner.late_release.has_value()) {
          expected[owner.late_release->second] = 1;
          EXPECT_EQ(reply, owner.late_release->first);
        } else {
          expected[LOCKD_STAT_REJECT_NOT_HOLDER] = 1;
          EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_NOT_HOLDER));
        }
        return;
    }
  }

  void ExpectRenew(const Request& request, uint64_t now_ns, const Reply& reply,
                   Counters& expected) {
    OwnerView& owner = owners_[{request.lock_id, request.txn_id}];
    if (owner.role != Role::kHeld && owner.late_release.has_value() &&
        owner.late_release->first.opcode == LOCKD_OP_REJECTED) {
      // The daemon ended its hold or wait: the renew learns why.
      expected[owner.late_release->second] = 1;
      EXPECT_EQ(reply, owner.late_release->first);
    } else if (owner.role != Role::kHeld) {
      expected[LOCKD_STAT_REJECT_NOT_HOLDER] = 1;
      EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_NOT_HOLDER));
    } else if (owner.lease_expires_ns < now_ns) {
      expected[LOCKD_STAT_REJECT_EXPIRED] = 1;
      EXPECT_EQ(reply, RejectedReply(LOCKD_STATUS_LEASE_EXPIRED));
    } else {
      expected[LOCKD_STAT_RENEW] = 1;
      owner.lease_ms = Lease(request.lease_ms);
      owner.lease_expires_ns = now_ns + owner.lease_ms * kMs;
      EXPECT_EQ(reply, RenewedReply(owner.fence, owner.lease_ms));
    }
  }

  // Grants must go to the oldest live waiters, in order, each compatible
  // with the holders before it, with the next fence; afterwards the oldest
  // waiter left must be blocked, or a wake-up was lost.
  void TakeGrants(uint64_t lock_id, uint64_t now_ns, const Outcome& outcome,
                  Counters expected) {
    LockView& lock = locks_[lock_id];
    most_grants_at_once_ =
        std::max(most_grants_at_once_, outcome.grants.size());
    for (const Grant& grant : outcome.grants) {
      ASSERT_FALSE(lock.waiting.empty()) << grant << " with nobody waiting";
      const OwnerKey key(lock_id, lock.waiting.front());
      ASSERT_EQ(grant.txn_id, key.second)
          << grant << " overtakes the oldest waiter";
      const OwnerView waiter = owners_[key];
      EXPECT_TRUE(CanJoinHolders(lock, lock_id, waiter.mode)) << grant;
      Leave(key);
      Hold(key, waiter.mode, waiter.lease_ms, now_ns, waiter.seq);
      EXPECT_EQ(grant, (Grant{lock_id, key.second, lock.fence, waiter.seq,
                              waiter.mode, waiter.lease_ms}));
    }
    if (!lock.waiting.empty()) {
      const uint64_t oldest = lock.waiting.front();
      EXPECT_FALSE(
          CanJoinHolders(lock, lock_id, owners_.at({lock_id, oldest}).mode))
          << "lost wake-up: txn " << oldest << " on lock " << lock_id;
    }

    // Cancelled entries are invisible from outside: take the model's count
    // of skips, which the block accounting (QueuedBlocks, queue_pos) checks.
    const uint64_t skipped = outcome.counters[LOCKD_STAT_SKIPPED_CANCELLED];
    expected[LOCKD_STAT_GRANT_FROM_QUEUE] = outcome.grants.size();
    expected[LOCKD_STAT_SKIPPED_CANCELLED] = skipped;
    if (outcome.counters != expected) {
      ADD_FAILURE() << "counters " << Bumped(outcome.counters) << ", expected "
                    << Bumped(expected);
    }
    lock.blocks -= outcome.grants.size() + skipped;
  }

  Config config_;
  std::map<OwnerKey, OwnerView> owners_;
  std::map<uint64_t, LockView> locks_;
  uint64_t wait_die_queued_ = 0;
  size_t most_grants_at_once_ = 0;
};

template <typename T, size_t N>
T Pick(std::mt19937_64& random, const T (&choices)[N]) {
  return choices[random() % N];
}

// A request a client in `role` might send: mostly what such a client does
// next, sometimes a stray one (a RELEASE it does not owe, a RENEW while it
// waits), so that every rule is reached.
Request RandomRequest(std::mt19937_64& random, Role role, uint64_t lock_id,
                      uint64_t txn_id, uint32_t seq) {
  constexpr uint8_t kAcq = LOCKD_OP_ACQUIRE;
  constexpr uint8_t kRel = LOCKD_OP_RELEASE;
  constexpr uint8_t kRen = LOCKD_OP_RENEW;
  static constexpr uint8_t kIdleOpcodes[] = {kAcq, kAcq, kAcq, kAcq, kAcq,
                                             kAcq, kAcq, kAcq, kRel, kRen};
  static constexpr uint8_t kWaitingOpcodes[] = {kAcq, kAcq, kRel, kRen};
  static constexpr uint8_t kHoldingOpcodes[] = {kRel, kRel, kRel, kRel, kRel,
                                                kRen, kRen, kAcq, kAcq, kAcq};
  static constexpr uint8_t kModes[] = {kS, kS, kS, kX, kX};
  static constexpr uint8_t kPolicies[] = {kWait, kNoWait, kWaitDie};
  // Default, short enough to expire between requests, long, clamped.
  static constexpr uint32_t kLeasesMs[] = {0, 30, 300, 3000, 100000};
  static constexpr uint32_t kWaitsMs[] = {0, 0, 50, 500};
  Request request;
  switch (role) {
    case Role::kNone:
      request.opcode = Pick(random, kIdleOpcodes);
      break;
    case Role::kQueued:
      request.opcode = Pick(random, kWaitingOpcodes);
      break;
    case Role::kHeld:
      request.opcode = Pick(random, kHoldingOpcodes);
      break;
  }
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  request.seq = seq;
  if (request.opcode == LOCKD_OP_ACQUIRE) {
    request.mode = Pick(random, kModes);
    request.policy = Pick(random, kPolicies);
    request.wait_ms = Pick(random, kWaitsMs);
  }
  if (request.opcode != LOCKD_OP_RELEASE) {
    request.lease_ms = Pick(random, kLeasesMs);
  }
  return request;
}

// One field a datapath must refuse, or a KICK.
Request OddRequest(std::mt19937_64& random, Request request) {
  switch (random() % 5) {
    case 0:
      request.opcode = static_cast<uint8_t>(
          Pick(random, {0x00, 0x05, 0x7f, 0x81, 0x84, 0xff}));
      break;
    case 1:
      request.mode = static_cast<uint8_t>(3 + random() % 253);
      break;
    case 2:
      request.policy = static_cast<uint8_t>(LOCKD_POLICY_COUNT + random() % 8);
      break;
    case 3:
      request.opcode = LOCKD_OP_ACQUIRE;
      request.mode = LOCKD_MODE_NONE;
      break;
    case 4:
      request.opcode = LOCKD_OP_KICK;
      break;
  }
  return request;
}

TEST(LockEngineRandomTest, InvariantsHoldAndNoWaiterIsLost) {
  constexpr int kOperations = 200000;
  constexpr uint64_t kClients = 64;
  constexpr uint64_t kLocks = 4;
  constexpr int kSweepEvery = 97;
  // Phases with few active clients let locks go idle (min_txn resets) and
  // WAIT_DIE requests wait; phases with all of them build long queues.
  constexpr uint64_t kActiveClients[] = {1, 2, 4, 16, kClients};
  constexpr int kPhaseLength = 1000;
  const Config config{500, 5000};

  LockEngine model(config);
  Observer observer(config);
  std::mt19937_64 random(20240611);
  uint64_t now_ns = kT0;
  uint64_t active_clients = kClients;
  std::vector<uint32_t> next_seq(kClients + 1, 1);
  std::map<OwnerKey, Request> last_request;
  Counters totals{};
  auto add = [&totals](const Counters& counters) {
    for (size_t stat = 0; stat < totals.size(); ++stat) {
      totals[stat] += counters[stat];
    }
  };

  auto expire_holders = [&](uint64_t at_ns) {
    for (const OwnerKey& key : observer.Holders()) {
      // A holder granted by an earlier expiry in this pass has a fresh lease.
      const OwnerView& owner = observer.View(key);
      if (owner.role != Role::kHeld || !(owner.lease_expires_ns < at_ns)) {
        continue;
      }
      absl::StatusOr<Outcome> outcome =
          model.ExpireHolder(key.first, key.second, at_ns);
      ASSERT_TRUE(outcome.ok()) << outcome.status();
      observer.OnExpireHolder(key, at_ns, *outcome);
      add(outcome->counters);
    }
  };
  auto expire_waiters = [&](uint64_t at_ns) {
    for (const OwnerKey& key : observer.Waiters()) {
      const OwnerView& owner = observer.View(key);
      if (owner.role != Role::kQueued || owner.deadline_ns == 0 ||
          !(owner.deadline_ns < at_ns)) {
        continue;
      }
      absl::StatusOr<Outcome> outcome =
          model.ExpireWaiter(key.first, key.second, at_ns);
      ASSERT_TRUE(outcome.ok()) << outcome.status();
      observer.OnExpireWaiter(key, at_ns, *outcome);
      add(outcome->counters);
    }
  };
  // After each step: the invariants, and the touched lock matches what the
  // clients were told (the others did not change).
  auto expect_consistent = [&](int operation, uint64_t first_lock,
                               uint64_t last_lock) {
    const absl::Status invariants = model.CheckInvariants();
    ASSERT_TRUE(invariants.ok())
        << invariants << " after operation " << operation;
    for (uint64_t lock_id = first_lock; lock_id <= last_lock; ++lock_id) {
      observer.ExpectMatches(model, lock_id);
    }
    EXPECT_EQ(model.QueuedBlocks(), observer.Blocks());
  };

  for (int operation = 0; operation < kOperations; ++operation) {
    if (operation % kPhaseLength == 0) {
      active_clients = Pick(random, kActiveClients);
    }
    now_ns += random() % kMs;
    if (operation % kSweepEvery == 0) {
      expire_holders(now_ns);
      expire_waiters(now_ns);
      expect_consistent(operation, 1, kLocks);
    }

    // Half of the time a holder acts (it ends its critical section, renews,
    // upgrades), or the queues would only grow; otherwise anyone does.
    const std::vector<OwnerKey> holders = observer.Holders();
    const OwnerKey key =
        !holders.empty() && random() % 2 == 0
            ? holders[random() % holders.size()]
            : OwnerKey(1 + random() % kLocks, 1 + random() % active_clients);
    const auto [lock_id, txn_id] = key;
    Request request;
    const uint64_t dice = random() % 100;
    if (dice < 10 && last_request.count(key) != 0) {
      request = last_request[key];  // a retransmission
    } else {
      request = RandomRequest(random, observer.View(key).role, lock_id, txn_id,
                              next_seq[txn_id]++);
      if (dice == 99) {
        request = OddRequest(random, request);
      } else {
        last_request[key] = request;
      }
    }

    const Outcome outcome = model.Apply(request, now_ns);
    observer.OnApply(request, now_ns, outcome);
    add(outcome.counters);
    expect_consistent(operation, lock_id, lock_id);
    if (::testing::Test::HasFailure()) {
      FAIL() << "stopped at operation " << operation;
    }
  }

  // Drain: only lease expiries from now on and no waiter gives up, so every
  // accepted ACQUIRE still waiting must be granted in turn.
  for (int round = 0; !observer.Holders().empty(); ++round) {
    ASSERT_LT(round, 1000) << "the queues do not drain";
    now_ns += 2 * config.max_lease_ms * kMs;
    expire_holders(now_ns);
    expect_consistent(kOperations + round, 1, kLocks);
    ASSERT_FALSE(::testing::Test::HasFailure());
  }
  EXPECT_THAT(observer.Waiters(), IsEmpty());
  EXPECT_EQ(model.QueuedBlocks(), 0u);
  for (uint64_t lock_id = 1; lock_id <= kLocks; ++lock_id) {
    const LockState* lock = model.Find(lock_id);
    ASSERT_NE(lock, nullptr);
    EXPECT_EQ(lock->mode, LOCKD_MODE_NONE);
    EXPECT_EQ(lock->min_txn, kIdleMinTxn);
  }

  // The run reached every rule: each modeled counter moved, no other did, and
  // the per-outcome counters add up to the totals.
  EXPECT_EQ(totals, model.stats());
  for (size_t stat = 0; stat < totals.size(); ++stat) {
    if (LockEngine::IsModeledCounter(static_cast<lockd_stat>(stat))) {
      EXPECT_GT(totals[stat], 0u) << kStatNames[stat];
    } else {
      EXPECT_EQ(totals[stat], 0u) << kStatNames[stat];
    }
  }
  EXPECT_GT(observer.wait_die_queued(), 0u);
  EXPECT_GT(observer.most_grants_at_once(), 2u);
  std::cout << "counters: " << Bumped(totals) << "\n"
            << "WAIT_DIE requests that waited: " << observer.wait_die_queued()
            << "\nmost grants by one step: " << observer.most_grants_at_once()
            << "\n";
}

}  // namespace
}  // namespace lockd
