// A lock server restarts while clients hold and wait (issue #12): a clean
// restart (SIGTERM: the next run continues the pinned table), a restart
// with all its state removed (SIGKILL, then the pins deleted, as a reboot
// loses them), and the loss of the machine (its link goes down) with a
// replacement started at another address, which the clients learn from
// their server list file while they run. A store that checks fencing tokens
// records what the applications do under their locks: no lock is ever used
// by two holders at once, each new holder's fence is above every fence used
// before on that lock, every holder alive keeps its hold (reclaimed with its
// fence after the state loss, during the server's grace period) and every
// waiter is granted.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/transaction.h"
#include "gtest/gtest.h"
#include "lockd/files.h"
#include "tests/client/client_fixture.h"

namespace lockd::client::testing {
namespace {

// What a store that checks fencing tokens sees of the holders of each lock:
// who uses it now, and the fences used on it in order.
class FencedStore {
 public:
  // `txn` starts using `lock` with `fence`.
  void Enter(const std::string& lock, uint64_t txn, uint64_t fence) {
    absl::MutexLock l(&mu_);
    Entry& e = locks_[lock];
    if (e.user != 0)
      violations_.push_back(absl::StrCat(lock, ": txn ", txn, " (fence ", fence,
                                         ") while txn ", e.user, " uses it"));
    if (!e.fences.empty() && fence <= e.fences.back())
      violations_.push_back(absl::StrCat(lock, ": fence ", fence,
                                         " after fence ", e.fences.back()));
    e.user = txn;
    e.fences.push_back(fence);
  }
  // A write by the user of `lock`: its fence must still be the newest.
  void Write(const std::string& lock, uint64_t txn, uint64_t fence) {
    absl::MutexLock l(&mu_);
    Entry& e = locks_[lock];
    if (e.user != txn || e.fences.back() != fence)
      violations_.push_back(absl::StrCat(lock, ": stale write of txn ", txn,
                                         " with fence ", fence));
  }
  void Exit(const std::string& lock, uint64_t txn) {
    absl::MutexLock l(&mu_);
    Entry& e = locks_[lock];
    if (e.user == txn) e.user = 0;
  }
  std::vector<std::string> violations() {
    absl::MutexLock l(&mu_);
    return violations_;
  }
  std::vector<uint64_t> fences(const std::string& lock) {
    absl::MutexLock l(&mu_);
    return locks_[lock].fences;
  }

 private:
  struct Entry {
    uint64_t user = 0;
    std::vector<uint64_t> fences;
  };
  absl::Mutex mu_;
  std::map<std::string, Entry> locks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> violations_ ABSL_GUARDED_BY(mu_);
};

// How the server restarts: keeping its pinned table, losing it, or
// replaced by another machine.
enum class Restart { kClean, kStateLost, kReplaced };

class RestartTest : public ClientTest,
                    public ::testing::WithParamInterface<Restart> {
 protected:
  // Holds and waits, restarts the server, and checks the outcome (on a
  // thread in the client namespace).
  void CheckRestart(Restart restart);
  // The client's server list file: server "lock1" at `server`'s address.
  void WriteServerList(size_t server);

  std::string server_list_;
};

constexpr int kLocks = 3;
constexpr int kWaitersPerLock = 2;
constexpr uint32_t kLeaseMs = 5000;
// The longest lease, and the grace period after a state loss.
const std::vector<std::string> kFlags = {"--default_lease_ms=5000",
                                         "--max_lease_ms=6000"};

void RestartTest::WriteServerList(size_t server) {
  const std::string& ip = net_->links()[server].server.ipv4;
  absl::Status written = WriteFileAtomically(
      server_list_,
      absl::StrCat("lock1=", ip, ":20231/", ip, ":", kGrpcPort, "\n"));
  ASSERT_TRUE(written.ok()) << written;
}

void RestartTest::CheckRestart(Restart restart) {
  const bool state_lost = restart != Restart::kClean;
  const size_t after_server = restart == Restart::kReplaced ? 1 : 0;
  absl::StatusOr<v1::HealthResponse> before =
      DaemonAdmin(net_->links()[0].server.ipv4).Health();
  ASSERT_TRUE(before.ok()) << before.status();

  FencedStore store;
  TransactionOptions options;
  options.lease_ms = kLeaseMs;
  absl::Notification release;
  std::vector<std::string> errors;
  absl::Mutex errors_mu;
  auto fail = [&](const std::string& what, const absl::Status& status) {
    absl::MutexLock l(&errors_mu);
    errors.push_back(absl::StrCat(what, ": ", status.ToString()));
  };
  // Uses `lock` as the store sees it, then releases it.
  auto use_and_release = [&](Transaction& txn, const std::string& lock,
                             uint64_t fence) {
    store.Write(lock, txn.txn_id(), fence);
    if (txn.lost()) fail(absl::StrCat(lock, " lost"), absl::OkStatus());
    store.Exit(lock, txn.txn_id());
    if (absl::Status s = txn.Commit(); !s.ok()) fail(lock, s);
  };

  std::vector<std::thread> threads;
  std::vector<uint64_t> holder_txns(kLocks), holder_fences(kLocks);
  absl::Notification held[kLocks];
  for (int i = 0; i < kLocks; ++i) {
    threads.push_back(SpawnInClient([&, i] {
      const std::string lock = absl::StrCat("restart-", i);
      Transaction txn = client_->Begin(options);
      absl::StatusOr<uint64_t> fence = txn.Lock(lock, Mode::kExclusive);
      if (!fence.ok()) {
        fail(lock, fence.status());
        held[i].Notify();
        return;
      }
      store.Enter(lock, txn.txn_id(), *fence);
      holder_txns[i] = txn.txn_id();
      holder_fences[i] = *fence;
      held[i].Notify();
      release.WaitForNotification();
      use_and_release(txn, lock, *fence);
    }));
  }
  for (auto& h : held) h.WaitForNotification();
  for (int i = 0; i < kLocks; ++i) {
    for (int w = 0; w < kWaitersPerLock; ++w) {
      threads.push_back(SpawnInClient([&, i] {
        const std::string lock = absl::StrCat("restart-", i);
        Transaction txn = client_->Begin(options);
        LockOptions wait;
        wait.deadline = absl::Now() + kPatience;
        absl::StatusOr<uint64_t> fence = txn.Lock(lock, Mode::kExclusive, wait);
        if (!fence.ok()) return fail(lock, fence.status());
        store.Enter(lock, txn.txn_id(), *fence);
        use_and_release(txn, lock, *fence);
      }));
    }
  }
  // Every waiter is queued before the restart.
  DaemonAdmin first(net_->links()[0].server.ipv4);
  for (int i = 0; i < kLocks; ++i) {
    const std::string lock = absl::StrCat("restart-", i);
    EXPECT_TRUE(Eventually([&] {
      absl::StatusOr<v1::GetLockResponse> shown = first.Lock(lock);
      return shown.ok() && shown->queue_size() == kWaitersPerLock;
    })) << lock;
  }

  std::vector<std::string> restarted_flags = kFlags;
  const absl::Time down = absl::Now();
  if (restart == Restart::kClean) {
    ASSERT_TRUE(StopDaemon(0).ok());
  } else {
    ASSERT_TRUE(KillDaemon(0).ok());
    // A reboot loses the pins; a lost machine is unreachable.
    const absl::Status lost =
        restart == Restart::kStateLost ? RemoveState(0) : LinkDown(0);
    ASSERT_TRUE(lost.ok()) << lost;
    restarted_flags.push_back("--grace_ms=-1");  // the default: max lease
  }
  absl::Status started = StartDaemon(after_server, restarted_flags);
  ASSERT_TRUE(started.ok()) << started;
  const absl::Time up = absl::Now();
  if (restart == Restart::kReplaced) WriteServerList(after_server);
  DaemonAdmin admin(net_->links()[after_server].server.ipv4);
  // The admin channel reconnects to the new daemon.
  absl::StatusOr<v1::HealthResponse> after;
  ASSERT_TRUE(Eventually([&] { return (after = admin.Health()).ok(); }))
      << after.status();
  EXPECT_EQ(after->restored(), !state_lost);
  if (state_lost) {
    EXPECT_NE(after->epoch(), before->epoch());
    EXPECT_GT(after->grace_left_ms(), 0u);
  } else {
    EXPECT_EQ(after->epoch(), before->epoch());
    EXPECT_EQ(after->grace_left_ms(), 0u);
  }

  // Every holder holds again on the server, with its fence: kept by the
  // pinned table, or reclaimed by the client in the grace period.
  for (int i = 0; i < kLocks; ++i) {
    const std::string lock = absl::StrCat("restart-", i);
    EXPECT_TRUE(Eventually([&] {
      absl::StatusOr<v1::GetLockResponse> shown = admin.Lock(lock);
      return shown.ok() && shown->holders_size() == 1 &&
             shown->holders(0).txn_id() == holder_txns[i] &&
             shown->holders(0).fence() == holder_fences[i];
    })) << lock;
  }
  const absl::Time reclaimed = absl::Now();
  const ServerStats stats = client_->Stats().total;
  EXPECT_EQ(stats.reclaims, state_lost ? kLocks : 0);
  EXPECT_EQ(stats.epoch_changes, state_lost ? 1u : 0u);
  EXPECT_EQ(stats.leases_lost, 0u);

  release.Notify();
  for (std::thread& t : threads) t.join();
  // What the restart cost, for docs/operations.md (not asserted: timing).
  std::printf(
      "restart %s: server down %s, every hold held again on the server %s "
      "after it was up, every waiter granted %s after it was up\n",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(),
      absl::FormatDuration(up - down).c_str(),
      absl::FormatDuration(reclaimed - up).c_str(),
      absl::FormatDuration(absl::Now() - up).c_str());
  EXPECT_TRUE(errors.empty()) << absl::StrJoin(errors, "\n");
  EXPECT_TRUE(store.violations().empty())
      << absl::StrJoin(store.violations(), "\n");
  // Each lock went to its holder and then to both waiters, fences rising.
  for (int i = 0; i < kLocks; ++i) {
    const std::vector<uint64_t> fences =
        store.fences(absl::StrCat("restart-", i));
    EXPECT_EQ(fences.size(), 1u + kWaitersPerLock);
    EXPECT_EQ(fences.front(), holder_fences[i]);
  }
  // After a state loss the waiters found the server in its grace period,
  // and were served once it ended.
  if (state_lost) {
    EXPECT_GT(client_->Stats().total.grace_retries, 0u);
  }
}

TEST_P(RestartTest, HoldersKeepTheirHoldsAndWaitersAreGranted) {
  const bool replaced = GetParam() == Restart::kReplaced;
  // A replacement machine is a second server link; the client knows one
  // server name, lock1, from its list file.
  absl::Status started = StartNetwork(replaced ? 2 : 1);
  ASSERT_TRUE(started.ok()) << started;
  started = StartDaemon(0, kFlags);
  ASSERT_TRUE(started.ok()) << started;
  server_list_ = absl::StrCat(::testing::TempDir(), "/servers-", getpid());
  WriteServerList(0);
  ClientOptions options = Options();
  options.servers.clear();
  options.server_list_file = server_list_;
  absl::StatusOr<std::unique_ptr<Client>> client = NewClient(options);
  ASSERT_TRUE(client.ok()) << client.status();
  client_ = std::move(*client);
  // The daemons' admin services are reached from the client namespace.
  RunInClient(1, [&](int) { CheckRestart(GetParam()); });
}

INSTANTIATE_TEST_SUITE_P(Restarts, RestartTest,
                         ::testing::Values(Restart::kClean, Restart::kStateLost,
                                           Restart::kReplaced),
                         [](const ::testing::TestParamInfo<Restart>& info) {
                           switch (info.param) {
                             case Restart::kClean:
                               return "Clean";
                             case Restart::kStateLost:
                               return "StateLost";
                             case Restart::kReplaced:
                               return "Replaced";
                           }
                           return "";
                         });

}  // namespace
}  // namespace lockd::client::testing
