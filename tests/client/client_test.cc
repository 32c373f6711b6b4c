// The client library against the real lockd over the UDP fast path: mutual
// exclusion across threads and processes, wait-die against deadlocks, lock
// semantics as a transaction sees them, and lease loss. Every test has its
// own network and daemon; none of them needs gRPC (see client_fixture.h).
#include "client/client.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "abi/codec.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/scoped_lock.h"
#include "client/transaction.h"
#include "gtest/gtest.h"
#include "tests/client/client_fixture.h"
#include "tests/daemon/daemon_harness.h"

namespace lockd::client::testing {
namespace {

using lockd::testing::NetnsProcess;

std::string TmpPath(absl::string_view name) {
  const char* tmpdir = getenv("TEST_TMPDIR");
  return absl::StrCat(tmpdir == nullptr ? "/tmp" : tmpdir, "/", name);
}

class ClientE2eTest : public ClientTest {
 protected:
  void StartServerAndClient() {
    absl::Status started = StartServersAndClient(1);
    ASSERT_TRUE(started.ok()) << started;
  }
};

// (a) Threads of this process and of two worker processes, each with its
// own Client, increment a counter file under one exclusive lock; the file
// also refuses any write whose fence is not above the last one.
TEST_F(ClientE2eTest, ExclusiveLockKeepsAFileCounterExact) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  constexpr int kWorkerProcesses = 2;
  constexpr int kThreadsPerProcess = 2;
  constexpr int kIncrementsPerThread = 1700;
  constexpr int kTotal =
      (kWorkerProcesses + 1) * kThreadsPerProcess * kIncrementsPerThread;
  static_assert(kTotal >= 10000);
  const std::string path = TmpPath("counter");
  FencedCounterFile counter(path);
  ASSERT_TRUE(counter.Reset().ok());
  const std::string lock_name = "counter-file";

  const ServerConfig server = Options().servers[0];
  std::vector<std::unique_ptr<NetnsProcess>> workers;
  for (int i = 0; i < kWorkerProcesses; ++i) {
    absl::StatusOr<std::unique_ptr<NetnsProcess>> worker = NetnsProcess::Start(
        ClientNetns(),
        {"/proc/self/exe", "--counter_worker", server.udp_address,
         server.grpc_address, path, lock_name, absl::StrCat(kThreadsPerProcess),
         absl::StrCat(kIncrementsPerThread),
         absl::StrCat(lockd::testing::NextTestClientId())});
    ASSERT_TRUE(worker.ok()) << worker.status();
    workers.push_back(std::move(*worker));
  }
  std::vector<absl::Status> results(kThreadsPerProcess);
  RunInClient(kThreadsPerProcess, [&](int i) {
    results[i] =
        IncrementUnderLock(*client_, lock_name, counter, kIncrementsPerThread);
  });
  for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
  for (std::unique_ptr<NetnsProcess>& worker : workers) {
    absl::StatusOr<std::string> line =
        worker->ReadLineContaining("counter worker", kPatience);
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(*line, "counter worker done");
    absl::StatusOr<int> exit_code = worker->Wait(kPatience);
    ASSERT_TRUE(exit_code.ok()) << exit_code.status();
    EXPECT_EQ(*exit_code, 0);
  }
  absl::StatusOr<uint64_t> value = counter.Value();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, uint64_t{kTotal});
  EXPECT_EQ(client_->Stats().total.grpc_requests, 0u)
      << "the fast path should have served everything";
}

// (b) Transfers between two accounts, half of the transactions locking them
// in one order and half in the other: without wait-die they would deadlock.
// Every transaction finishes (dying ones restart with their txn id) and the
// sum of the balances is what it was.
TEST_F(ClientE2eTest, WaitDieResolvesOppositeLockOrders) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  constexpr int kThreads = 4;
  constexpr int kTransfersPerThread = 150;
  constexpr int64_t kInitialBalance = 1000;
  // Relaxed atomics: the locks, not the atomics, must keep the separate
  // load and store of each update from interleaving with another's.
  std::atomic<int64_t> balances[2] = {kInitialBalance, kInitialBalance};
  std::atomic<int> attempts{0};
  std::vector<absl::Status> results(kThreads);
  TransactionOptions options;
  options.policy = Policy::kWaitDie;
  RunInClient(kThreads, [&](int thread) {
    const int first = thread % 2;
    for (int i = 0; i < kTransfersPerThread && results[thread].ok(); ++i) {
      results[thread] = RunTransaction(
          *client_, options,
          [&](Transaction& txn) -> absl::Status {
            ++attempts;
            for (int account : {first, 1 - first}) {
              absl::StatusOr<uint64_t> fence =
                  txn.Lock(absl::StrCat("account/", account), Mode::kExclusive);
              if (!fence.ok()) return fence.status();
            }
            const int64_t amount = thread + 1;
            balances[first].store(
                balances[first].load(std::memory_order_relaxed) - amount,
                std::memory_order_relaxed);
            balances[1 - first].store(
                balances[1 - first].load(std::memory_order_relaxed) + amount,
                std::memory_order_relaxed);
            return absl::OkStatus();
          },
          /*max_attempts=*/1000);
    }
  });
  for (const absl::Status& result : results) EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(balances[0] + balances[1], 2 * kInitialBalance);
  EXPECT_GE(attempts, kThreads * kTransfersPerThread);
  RecordProperty("restarts", attempts - kThreads * kTransfersPerThread);
}

// (b) The two-lock deadlock step by step: the younger transaction dies, the
// older one gets its lock once the younger restarts, and the restarted one
// keeps its txn id.
TEST_F(ClientE2eTest, YoungerTransactionDiesAndRestartKeepsItsId) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  TransactionOptions options;
  options.policy = Policy::kWaitDie;
  Transaction older = client_->Begin(options);
  Transaction younger = client_->Begin(options);
  ASSERT_LT(older.txn_id(), younger.txn_id());
  const uint64_t younger_id = younger.txn_id();
  ASSERT_TRUE(older.Lock("left", Mode::kExclusive).ok());
  ASSERT_TRUE(younger.Lock("right", Mode::kExclusive).ok());

  absl::StatusOr<uint64_t> older_right = absl::UnknownError("not run");
  std::thread waiter = SpawnInClient(
      [&] { older_right = older.Lock("right", Mode::kExclusive); });
  absl::StatusOr<uint64_t> died = younger.Lock("left", Mode::kExclusive);
  EXPECT_TRUE(absl::IsAborted(died.status())) << died.status();
  EXPECT_TRUE(absl::StrContains(died.status().message(), "DIE"))
      << died.status();
  EXPECT_TRUE(absl::StrContains(died.status().message(), "\"left\""))
      << died.status();
  EXPECT_TRUE(absl::StrContains(died.status().message(), "server \"server\""))
      << died.status();

  ASSERT_TRUE(younger.Restart().ok());
  waiter.join();
  EXPECT_TRUE(older_right.ok()) << older_right.status();
  EXPECT_EQ(younger.txn_id(), younger_id);
  ASSERT_TRUE(older.Commit().ok());
  EXPECT_TRUE(younger.Lock("left", Mode::kExclusive).ok());
  EXPECT_TRUE(younger.Lock("right", Mode::kExclusive).ok());
  EXPECT_TRUE(younger.Commit().ok());
}

// (b') Issue #11: the oldest transaction, restarted, waits and is granted
// while younger readers keep its lock busy. Its first wait ends (its
// deadline passes, as a restart would end it) while the lock stays held: a
// WAIT_DIE bound that still counted the ended wait would make every retry
// die for as long as the readers keep coming.
TEST_F(ClientE2eTest, RestartedOldestTransactionIsGrantedUnderContention) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  constexpr int kReaders = 3;
  TransactionOptions wait_die;
  wait_die.policy = Policy::kWaitDie;
  Transaction oldest = client_->Begin(wait_die);
  const uint64_t oldest_id = oldest.txn_id();
  // Younger (WAIT) readers: one holds "hot" throughout the first attempt and
  // the start of the retry, the others take it in turns meanwhile.
  Transaction anchor = client_->Begin();
  ASSERT_LT(oldest_id, anchor.txn_id());
  ASSERT_TRUE(anchor.Lock("hot", Mode::kShared).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::vector<absl::Status> readers_done(kReaders);
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.push_back(SpawnInClient([&, i] {
      while (!stop && readers_done[i].ok()) {
        Transaction reader = client_->Begin();
        absl::StatusOr<uint64_t> fence = reader.Lock("hot", Mode::kShared);
        if (!fence.ok()) {
          readers_done[i] = fence.status();
          break;
        }
        absl::SleepFor(absl::Milliseconds(20));
        readers_done[i] = reader.Commit();
        ++reads;
      }
    }));
  }

  LockOptions soon;
  soon.deadline = absl::Now() + absl::Milliseconds(300);
  absl::StatusOr<uint64_t> first = oldest.Lock("hot", Mode::kExclusive, soon);
  ASSERT_TRUE(absl::IsDeadlineExceeded(first.status())) << first.status();
  ASSERT_TRUE(oldest.Restart().ok());
  EXPECT_EQ(oldest.txn_id(), oldest_id);

  absl::Status anchor_done;
  std::thread anchor_leaves = SpawnInClient([&] {
    absl::SleepFor(absl::Milliseconds(300));
    anchor_done = anchor.Commit();
  });
  LockOptions patient;
  patient.deadline = absl::Now() + kPatience;
  absl::StatusOr<uint64_t> retried =
      oldest.Lock("hot", Mode::kExclusive, patient);
  EXPECT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(oldest.Commit().ok());
  anchor_leaves.join();
  EXPECT_TRUE(anchor_done.ok()) << anchor_done;
  EXPECT_GT(reads.load(), 0) << "the readers never got the lock";
  stop = true;
  for (std::thread& reader : readers) reader.join();
  for (const absl::Status& done : readers_done) EXPECT_TRUE(done.ok()) << done;
}

TEST_F(ClientE2eTest, RelockKeepsTheFenceAndUpgradeTakesANewOne) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  Transaction txn = client_->Begin();
  absl::StatusOr<uint64_t> shared = txn.Lock("doc", Mode::kShared);
  ASSERT_TRUE(shared.ok()) << shared.status();
  absl::StatusOr<uint64_t> again = txn.Lock("doc", Mode::kShared);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *shared);

  absl::StatusOr<uint64_t> upgraded = txn.Lock("doc", Mode::kExclusive);
  ASSERT_TRUE(upgraded.ok()) << upgraded.status();
  EXPECT_GT(*upgraded, *shared);
  absl::StatusOr<uint64_t> weaker = txn.Lock("doc", Mode::kShared);
  ASSERT_TRUE(weaker.ok()) << weaker.status();
  EXPECT_EQ(*weaker, *upgraded);

  // Held exclusively now: another transaction's try-lock fails at once.
  Transaction other = client_->Begin();
  LockOptions try_lock;
  try_lock.policy = Policy::kNoWait;
  absl::StatusOr<uint64_t> refused = other.Lock("doc", Mode::kShared, try_lock);
  EXPECT_TRUE(absl::IsAborted(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "CONFLICT"))
      << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                absl::StrFormat("txn 0x%016x", other.txn_id())))
      << refused.status();
  EXPECT_TRUE(txn.Commit().ok());
  EXPECT_TRUE(other.Lock("doc", Mode::kShared, try_lock).ok());
}

TEST_F(ClientE2eTest, UpgradeIsRefusedWhileAnotherTransactionShares) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  Transaction first = client_->Begin();
  Transaction second = client_->Begin();
  ASSERT_TRUE(first.Lock("shared-doc", Mode::kShared).ok());
  ASSERT_TRUE(second.Lock("shared-doc", Mode::kShared).ok());
  absl::StatusOr<uint64_t> upgrade = first.Lock("shared-doc", Mode::kExclusive);
  EXPECT_TRUE(absl::IsAborted(upgrade.status())) << upgrade.status();
  EXPECT_TRUE(absl::StrContains(upgrade.status().message(), "UPGRADE_CONFLICT"))
      << upgrade.status();
  // The shared hold survives the refused upgrade.
  EXPECT_FALSE(first.lost());
  EXPECT_TRUE(first.Commit().ok());
  EXPECT_TRUE(second.Commit().ok());
}

// A wait past its deadline cancels itself: when the holder leaves, the lock
// is free for a try-lock, not granted to the waiter that gave up.
TEST_F(ClientE2eTest, WaitPastItsDeadlineIsCancelled) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  Transaction holder = client_->Begin();
  ASSERT_TRUE(holder.Lock("busy", Mode::kExclusive).ok());
  Transaction impatient = client_->Begin();
  LockOptions soon;
  soon.deadline = absl::Now() + absl::Milliseconds(200);
  absl::StatusOr<uint64_t> waited =
      impatient.Lock("busy", Mode::kExclusive, soon);
  EXPECT_TRUE(absl::IsDeadlineExceeded(waited.status())) << waited.status();
  EXPECT_TRUE(absl::StrContains(waited.status().message(), "\"busy\""))
      << waited.status();
  ASSERT_TRUE(holder.Commit().ok());

  Transaction next = client_->Begin();
  LockOptions try_lock;
  try_lock.policy = Policy::kNoWait;
  EXPECT_TRUE(next.Lock("busy", Mode::kExclusive, try_lock).ok());
}

TEST_F(ClientE2eTest, ScopedLockAndAbandonedTransactionsRelease) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  LockOptions try_lock;
  try_lock.policy = Policy::kNoWait;
  {
    absl::StatusOr<ScopedLock> scoped =
        ScopedLock::Acquire(*client_, "scoped", Mode::kExclusive);
    ASSERT_TRUE(scoped.ok()) << scoped.status();
    EXPECT_GT(scoped->fence(), 0u);
    EXPECT_FALSE(
        ScopedLock::Acquire(*client_, "scoped", Mode::kExclusive, try_lock)
            .ok());
  }
  {
    Transaction abandoned = client_->Begin();
    ASSERT_TRUE(abandoned.Lock("scoped", Mode::kExclusive).ok());
  }
  absl::StatusOr<ScopedLock> after =
      ScopedLock::Acquire(*client_, "scoped", Mode::kExclusive, try_lock);
  EXPECT_TRUE(after.ok()) << after.status();
}

// (d) A renewed lease outlives its length many times over; with renewals
// paused it runs out, the holder is told, cannot commit, and the next
// holder's fence is larger.
TEST_F(ClientE2eTest, LeaseIsRenewedUntilRenewalsStopThenLost) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndClient());
  constexpr uint32_t kLeaseMs = 1200;
  TransactionOptions short_lease;
  short_lease.lease_ms = kLeaseMs;
  Transaction holder = client_->Begin(short_lease);
  absl::Notification lost;
  absl::Status lost_why;
  LockOptions watch;
  watch.on_lost = [&](const absl::Status& why) {
    lost_why = why;
    lost.Notify();
  };
  absl::StatusOr<uint64_t> fence =
      holder.Lock("leased", Mode::kExclusive, watch);
  ASSERT_TRUE(fence.ok()) << fence.status();

  // Five renewals, one every third of the lease: held for well over a lease.
  absl::Status renewed = lockd::testing::WaitUntil(
      [&] { return client_->Stats().total.renewals >= 5; }, kPatience,
      "five lease renewals");
  ASSERT_TRUE(renewed.ok()) << renewed;
  EXPECT_FALSE(holder.lost());
  Transaction next = client_->Begin();
  LockOptions try_lock;
  try_lock.policy = Policy::kNoWait;
  absl::StatusOr<uint64_t> refused =
      next.Lock("leased", Mode::kExclusive, try_lock);
  EXPECT_TRUE(absl::IsAborted(refused.status())) << refused.status();

  client_->PauseRenewalsForTesting(true);
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(kPatience));
  EXPECT_TRUE(absl::IsFailedPrecondition(lost_why)) << lost_why;
  EXPECT_TRUE(holder.lost());
  EXPECT_EQ(client_->Stats().total.leases_lost, 1u);

  // The daemon's sweep ends the hold; the waiter gets a larger fence.
  absl::StatusOr<uint64_t> next_fence = next.Lock("leased", Mode::kExclusive);
  ASSERT_TRUE(next_fence.ok()) << next_fence.status();
  EXPECT_GT(*next_fence, *fence);
  client_->PauseRenewalsForTesting(false);

  absl::Status committed = holder.Commit();
  EXPECT_TRUE(absl::IsFailedPrecondition(committed)) << committed;
  EXPECT_TRUE(absl::StrContains(committed.message(), "\"leased\""))
      << committed;
  EXPECT_TRUE(next.Commit().ok());
}

}  // namespace
}  // namespace lockd::client::testing
