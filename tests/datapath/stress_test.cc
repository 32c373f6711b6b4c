// Multi-CPU stress test of the real datapath: one thread per CPU, each
// pinned, drives lockd_xdp and lockd_tc through BPF_PROG_TEST_RUN at once, so
// the kernel runs the lock table on every CPU concurrently. At least
// 1,000,000 operations on 16 locks; then the invariants are checked:
//  - no two incompatible holders, ever (checked live on what clients learn,
//    on consistent snapshots taken during the run, and at the end);
//  - every fencing token is handed out once;
//  - every accepted ACQUIRE is held or still queued: each owner record
//    belongs to a client that was told GRANTED or QUEUED, and each queued
//    waiter is queued exactly once;
//  - pool blocks in use equal queue entries (no leaked block);
//  - draining (holders release, waiters retransmit) grants every waiter and
//    leaves the table, owners and pool empty: no lost wake-up.
// KICKs that continue long grant runs loop back through lo, where lockd_tc
// is attached for real in this test's private network namespace.
#include <linux/pkt_cls.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lockd/table_reader.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/fixture.h"

namespace lockd::testing {
namespace {

constexpr int kLocks = 16;
constexpr uint64_t kLockBase = 7000;
constexpr uint64_t kTotalOperations = 1'000'000;
constexpr int kClientsPerThread = 12;
constexpr absl::Duration kMaxRunTime = absl::Seconds(240);
constexpr int kMaxDrainRounds = 200'000;

enum class Belief { kNone, kQueued, kHeld };

struct Client {
  Endpoint endpoint;
  uint64_t txn = 0;
  uint64_t lock = 0;
  lockd_mode mode = LOCKD_MODE_NONE;
  uint32_t acquire_seq = 0;
  uint64_t fence = 0;
  Belief belief = Belief::kNone;
};

// What clients have been told, checked as they learn it.
class Invariants {
 public:
  void Granted(const Client& c) {
    absl::MutexLock hold(&mu_);
    Lock& lock = locks_[c.lock];
    if (c.mode == LOCKD_MODE_EXCLUSIVE ? lock.exclusive + lock.shared > 0
                                       : lock.exclusive > 0)
      Violation(absl::StrCat("lock ", c.lock, ": txn ", c.txn, " granted ",
                             c.mode, " while ", lock.exclusive, " X and ",
                             lock.shared, " S holders are known"));
    (c.mode == LOCKD_MODE_EXCLUSIVE ? lock.exclusive : lock.shared)++;
    if (!lock.fences.insert(c.fence).second)
      Violation(absl::StrCat("lock ", c.lock, ": fence ", c.fence,
                             " handed out twice"));
  }
  void Releasing(const Client& c) {
    absl::MutexLock hold(&mu_);
    Lock& lock = locks_[c.lock];
    (c.mode == LOCKD_MODE_EXCLUSIVE ? lock.exclusive : lock.shared)--;
  }
  void Violation(std::string what) {
    absl::MutexLock hold(&violations_mu_);
    if (violations_.size() < 20) violations_.push_back(std::move(what));
    ++violation_count_;
  }
  std::vector<std::string> violations() {
    absl::MutexLock hold(&violations_mu_);
    std::vector<std::string> v = violations_;
    if (violation_count_ > v.size())
      v.push_back(absl::StrCat("... ", violation_count_, " in all"));
    return v;
  }

 private:
  struct Lock {
    int exclusive = 0;
    int shared = 0;
    std::set<uint64_t> fences;
  };
  absl::Mutex mu_;
  std::map<uint64_t, Lock> locks_ ABSL_GUARDED_BY(mu_);
  absl::Mutex violations_mu_;
  std::vector<std::string> violations_ ABSL_GUARDED_BY(violations_mu_);
  size_t violation_count_ ABSL_GUARDED_BY(violations_mu_) = 0;
};

struct Tally {
  uint64_t operations = 0;
  uint64_t silent = 0;    // no answer (decided on another CPU): retried
  uint64_t handoffs = 0;  // would go to the daemon
};

class Worker {
 public:
  Worker(int index, Datapath* datapath, Invariants* invariants,
         std::atomic<uint64_t>* next_txn)
      : index_(index),
        datapath_(datapath),
        invariants_(invariants),
        next_txn_(next_txn),
        rng_(0x10cd + index) {
    for (int c = 0; c < kClientsPerThread; ++c)
      clients_.push_back({ClientEndpoint(index * kClientsPerThread + c)});
  }

  absl::Status Run(uint64_t operations, absl::Time deadline) {
    absl::Status status = Start();
    while (status.ok() && tally_.operations < operations &&
           absl::Now() < deadline) {
      status = Step(clients_[rng_() % clients_.size()]);
    }
    return status;
  }

  // Releases what is held and retransmits until every waiter was granted
  // (and then released). Returns an error naming any client left waiting.
  absl::Status Drain() {
    absl::Status status = Start();
    for (int round = 0; status.ok() && round < kMaxDrainRounds; ++round) {
      bool busy = false;
      for (Client& c : clients_) {
        if (c.belief == Belief::kHeld) {
          status.Update(Release(c));
          busy = true;
        } else if (c.belief == Belief::kQueued) {
          status.Update(Acquire(c, /*retransmit=*/true));
          busy = true;
        }
      }
      if (!busy) return status;
    }
    for (const Client& c : clients_)
      if (c.belief != Belief::kNone)
        return absl::InternalError(
            absl::StrCat("lost waiter: txn ", c.txn, " on lock ", c.lock,
                         " still not granted after draining"));
    return status;
  }

  const std::vector<Client>& clients() const { return clients_; }
  const Tally& tally() const { return tally_; }

 private:
  absl::Status Start() {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(index_ % std::thread::hardware_concurrency(), &cpus);
    if (pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus) != 0)
      return absl::InternalError("pinning a worker to its CPU");
    if (deliverer_) return absl::OkStatus();
    absl::StatusOr<Deliverer> d = Deliverer::Create(datapath_, false);
    if (!d.ok()) return d.status();
    deliverer_.emplace(std::move(*d));
    return absl::OkStatus();
  }

  absl::Status Step(Client& c) {
    uint32_t dice = rng_() % 100;
    switch (c.belief) {
      case Belief::kNone:
        return Acquire(c, /*retransmit=*/false);
      case Belief::kQueued:
        return dice < 85 ? Acquire(c, /*retransmit=*/true) : Release(c);
      case Belief::kHeld:
        return dice < 60 ? Release(c) : Acquire(c, /*retransmit=*/true);
    }
    return absl::OkStatus();
  }

  // Sends one request; nullopt when the datapath answered nothing.
  absl::StatusOr<std::optional<Message>> Exchange(const Client& c,
                                                  const Message& request) {
    ++tally_.operations;
    absl::StatusOr<Delivery> d =
        deliverer_->Deliver(BuildFrame(c.endpoint, ServerEndpoint(), request));
    if (!d.ok()) return d.status();
    bool answered = d->hook == Hook::kXdp ? d->verdict == XDP_TX
                                          : d->verdict == TC_ACT_REDIRECT;
    if (!answered) {
      bool handed_off = d->hook == Hook::kXdp ? d->verdict == XDP_PASS
                                              : d->verdict == TC_ACT_OK;
      ++(handed_off ? tally_.handoffs : tally_.silent);
      return std::optional<Message>();
    }
    absl::StatusOr<Message> reply = MessageOf(d->out);
    if (!reply.ok()) return reply.status();
    if (reply->lock_id != request.lock_id || reply->txn_id != request.txn_id ||
        reply->seq != request.seq)
      return absl::InternalError(absl::StrCat("reply ", reply->ToString(),
                                              " does not answer ",
                                              request.ToString()));
    return std::optional<Message>(*reply);
  }

  absl::Status Acquire(Client& c, bool retransmit) {
    if (!retransmit) {
      c.txn = next_txn_->fetch_add(1);
      c.lock = kLockBase + rng_() % kLocks;
      c.mode = rng_() % 10 < 7 ? LOCKD_MODE_SHARED : LOCKD_MODE_EXCLUSIVE;
      c.acquire_seq = ++seq_;
    }
    uint32_t dice = rng_() % 10;
    Message m;
    m.opcode = LOCKD_OP_ACQUIRE;
    m.lock_id = c.lock;
    m.txn_id = c.txn;
    m.mode = c.mode;
    m.policy = dice < 8   ? LOCKD_POLICY_WAIT
               : dice < 9 ? LOCKD_POLICY_NO_WAIT
                          : LOCKD_POLICY_WAIT_DIE;
    if (retransmit) m.policy = LOCKD_POLICY_WAIT;  // same request again
    m.seq = c.acquire_seq;
    absl::StatusOr<std::optional<Message>> reply = Exchange(c, m);
    if (!reply.ok()) return reply.status();
    if (!reply->has_value()) return absl::OkStatus();
    const Message& r = **reply;
    if (r.opcode == LOCKD_OP_GRANTED) {
      if (c.belief == Belief::kHeld) {
        if (r.fence != c.fence)
          invariants_->Violation(absl::StrCat("txn ", c.txn,
                                              " re-granted with fence ",
                                              r.fence, " not ", c.fence));
        return absl::OkStatus();
      }
      c.fence = r.fence;
      c.belief = Belief::kHeld;
      invariants_->Granted(c);
    } else if (r.opcode == LOCKD_OP_QUEUED) {
      if (c.belief == Belief::kHeld)
        invariants_->Violation(
            absl::StrCat("txn ", c.txn, " told QUEUED after GRANTED"));
      c.belief = Belief::kQueued;
    } else if (r.opcode == LOCKD_OP_REJECTED) {
      if (c.belief != Belief::kNone)
        invariants_->Violation(absl::StrCat("txn ", c.txn, " rejected (status ",
                                            r.status,
                                            ") after being accepted"));
    }
    return absl::OkStatus();
  }

  absl::Status Release(Client& c) {
    if (c.belief == Belief::kHeld) invariants_->Releasing(c);
    Message m;
    m.opcode = LOCKD_OP_RELEASE;
    m.lock_id = c.lock;
    m.txn_id = c.txn;
    m.seq = ++seq_;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      absl::StatusOr<std::optional<Message>> reply = Exchange(c, m);
      if (!reply.ok()) return reply.status();
      if (!reply->has_value()) continue;  // in flight elsewhere: retransmit
      const Message& r = **reply;
      if (r.opcode != LOCKD_OP_RELEASED)
        return absl::InternalError(absl::StrCat(
            "release by txn ", c.txn, " (believed ", static_cast<int>(c.belief),
            ") answered ", r.ToString()));
      if (c.belief == Belief::kHeld && r.fence != c.fence)
        invariants_->Violation(absl::StrCat("txn ", c.txn, " released fence ",
                                            r.fence, ", held ", c.fence));
      c.belief = Belief::kNone;
      return absl::OkStatus();
    }
    return absl::InternalError(
        absl::StrCat("release by txn ", c.txn, " never answered"));
  }

  int index_;
  Datapath* datapath_;
  Invariants* invariants_;
  std::atomic<uint64_t>* next_txn_;
  std::mt19937_64 rng_;
  std::vector<Client> clients_;
  uint32_t seq_ = 0;
  Tally tally_;
  std::optional<Deliverer> deliverer_;
};

// Checks one consistent snapshot of every lock.
void CheckSnapshot(const TableReader& reader, Invariants* invariants,
                   uint64_t* queue_entries) {
  *queue_entries = 0;
  for (int l = 0; l < kLocks; ++l) {
    absl::StatusOr<LockView> view = reader.Read(kLockBase + l);
    if (absl::IsNotFound(view.status())) continue;
    if (!view.ok()) {
      invariants->Violation(std::string(view.status().message()));
      continue;
    }
    const lockd_lock& s = view->state;
    if ((s.mode == LOCKD_MODE_EXCLUSIVE && s.holders != 1) ||
        (s.mode == LOCKD_MODE_NONE) != (s.holders == 0))
      invariants->Violation(absl::StrCat("lock ", view->lock_id, ": mode ",
                                         s.mode, " with ", s.holders,
                                         " holders"));
    std::set<uint64_t> members;
    for (const HolderView& h : view->holders) members.insert(h.txn_id);
    for (const WaiterView& w : view->queue) {
      if (w.waiter.cancelled) continue;
      if (!members.insert(w.waiter.txn_id).second)
        invariants->Violation(absl::StrCat("lock ", view->lock_id, ": txn ",
                                           w.waiter.txn_id,
                                           " is a member twice"));
    }
    *queue_entries += s.queue_len;
  }
}

class StressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_BPF_ALLOWED();
    DatapathOptions options;
    options.default_lease_ms = 3600 * 1000;  // leases never lapse here
    options.max_lease_ms = options.default_lease_ms;
    absl::StatusOr<std::unique_ptr<Datapath>> datapath =
        Datapath::Load(options);
    ASSERT_TRUE(datapath.ok()) << datapath.status();
    datapath_ = std::move(*datapath);
    // Grants and KICKs leave TC by lo; KICKs come back in and are served.
    ASSERT_TRUE(datapath_->AttachTc(1).ok());
  }

  std::unique_ptr<Datapath> datapath_;
};

TEST_F(StressTest, InvariantsHoldUnderConcurrency) {
  const int threads = std::max(2u, std::thread::hardware_concurrency());
  Invariants invariants;
  std::atomic<uint64_t> next_txn{1};
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t)
    workers.push_back(
        std::make_unique<Worker>(t, datapath_.get(), &invariants, &next_txn));
  TableReader reader(
      {datapath_->locks_fd(), datapath_->owners_fd(), datapath_->pool_fd()});

  // Phase 1: load from every CPU, observed by consistent snapshots.
  std::vector<absl::Status> results(threads);
  std::atomic<int> running{threads};
  std::vector<std::thread> pool;
  const absl::Time deadline = absl::Now() + kMaxRunTime;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      results[t] = workers[t]->Run(kTotalOperations / threads, deadline);
      --running;
    });
  int snapshots = 0;
  uint64_t ignored;
  while (running > 0 && snapshots < 10000) {
    CheckSnapshot(reader, &invariants, &ignored);
    ++snapshots;
  }
  for (std::thread& th : pool) th.join();
  for (const absl::Status& r : results) ASSERT_TRUE(r.ok()) << r;

  Tally total;
  for (const auto& w : workers) {
    total.operations += w->tally().operations;
    total.silent += w->tally().silent;
    total.handoffs += w->tally().handoffs;
  }
  printf(
      "phase 1: %d threads, %lu operations, %lu unanswered, %lu handed "
      "off, %d snapshots\n",
      threads, total.operations, total.silent, total.handoffs, snapshots);
  EXPECT_GE(total.operations, kTotalOperations);

  // Quiescent: every owner record is someone told GRANTED or QUEUED, and
  // the pool holds exactly one block per queue entry.
  absl::SleepFor(absl::Milliseconds(100));  // let looped-back KICKs land
  uint64_t queue_entries = 0;
  CheckSnapshot(reader, &invariants, &queue_entries);
  std::map<std::pair<uint64_t, uint64_t>, Belief> told;
  for (const auto& w : workers)
    for (const Client& c : w->clients())
      if (c.belief != Belief::kNone) told[{c.lock, c.txn}] = c.belief;
  for (int l = 0; l < kLocks; ++l) {
    absl::StatusOr<LockView> view = reader.Read(kLockBase + l);
    if (!view.ok()) continue;
    for (const HolderView& h : view->holders)
      EXPECT_TRUE(told.count({view->lock_id, h.txn_id}))
          << "holder txn " << h.txn_id << " of lock " << view->lock_id
          << " was never told GRANTED or QUEUED";
    for (const WaiterView& w : view->queue) {
      if (w.waiter.cancelled) continue;
      EXPECT_TRUE(told[std::make_pair(view->lock_id, w.waiter.txn_id)] ==
                  Belief::kQueued)
          << "waiter txn " << w.waiter.txn_id << " of lock " << view->lock_id
          << " was not told QUEUED";
    }
  }
  for (const auto& [owner, belief] : told) {
    absl::StatusOr<LockView> view = reader.Read(owner.first);
    ASSERT_TRUE(view.ok()) << view.status();
    bool holds = false, waits = false;
    for (const HolderView& h : view->holders) holds |= h.txn_id == owner.second;
    for (const WaiterView& w : view->queue)
      waits |= !w.waiter.cancelled && w.waiter.txn_id == owner.second;
    EXPECT_TRUE(belief == Belief::kHeld ? holds : holds || waits)
        << "txn " << owner.second << " on lock " << owner.first
        << " was accepted but is neither holding nor queued";
  }
  absl::StatusOr<uint64_t> blocks = reader.CountPoolBlocks();
  ASSERT_TRUE(blocks.ok());
  EXPECT_EQ(*blocks, queue_entries) << "pool blocks vs queue entries";
  absl::StatusOr<StatCounters> stats = datapath_->ReadStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[LOCKD_STAT_POOL_ALLOC] - (*stats)[LOCKD_STAT_POOL_FREE],
            *blocks);

  // Phase 2: drain from every CPU; nothing may be left.
  pool.clear();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { results[t] = workers[t]->Drain(); });
  for (std::thread& th : pool) th.join();
  for (const absl::Status& r : results) EXPECT_TRUE(r.ok()) << r;
  absl::SleepFor(absl::Milliseconds(100));
  for (int l = 0; l < kLocks; ++l) {
    absl::StatusOr<LockView> view = reader.Read(kLockBase + l);
    if (!view.ok()) continue;
    EXPECT_EQ(view->state.holders, 0u) << "lock " << view->lock_id;
    EXPECT_EQ(view->state.queue_len, 0u) << "lock " << view->lock_id;
  }
  blocks = reader.CountPoolBlocks();
  absl::StatusOr<uint64_t> owners = reader.CountOwners();
  ASSERT_TRUE(blocks.ok() && owners.ok());
  EXPECT_EQ(*blocks, 0u) << "leaked pool blocks";
  EXPECT_EQ(*owners, 0u) << "leaked owner records";
  stats = datapath_->ReadStats();
  ASSERT_TRUE(stats.ok());
  const StatCounters& s = *stats;
  EXPECT_EQ(s[LOCKD_STAT_POOL_ALLOC], s[LOCKD_STAT_POOL_FREE]);
  EXPECT_EQ(s[LOCKD_STAT_GRANT_FROM_QUEUE], s[LOCKD_STAT_GRANT_SENT]);
  EXPECT_EQ(s[LOCKD_STAT_GRANT_SEND_FAILED], 0u);
  EXPECT_EQ(s[LOCKD_STAT_KICK_SEND_FAILED], 0u);
  EXPECT_EQ(s[LOCKD_STAT_KICK_SENT],
            s[LOCKD_STAT_KICK] + s[LOCKD_STAT_KICK_DROPPED]);
  printf(
      "grants from queue %lu, kicks %lu, retries %lu, in-flight drops "
      "%lu, contended hand-offs %lu\n",
      s[LOCKD_STAT_GRANT_FROM_QUEUE], s[LOCKD_STAT_KICK], s[LOCKD_STAT_RETRY],
      s[LOCKD_STAT_ACQUIRE_INFLIGHT], s[LOCKD_STAT_HANDOFF_CONTENDED]);

  for (const std::string& v : invariants.violations()) ADD_FAILURE() << v;
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::CheckBpfAllowed(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
