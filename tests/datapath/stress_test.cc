// Multi-CPU stress test of the real datapath: one thread per CPU, each
// pinned, drives lockd_xdp and lockd_tc through BPF_PROG_TEST_RUN at once,
// while another thread does the daemon's part (growing the table and the
// pool when the datapath asks, giving memory back). The table splits a
// bucket as soon as a second lock needs it and merges any pair holding one,
// and clients churn through thousands of lock ids, so locks are created,
// deleted, moved between buckets and re-created on both CPUs at once.
// At least 1,000,000 operations; checked:
//  - no two incompatible holders, ever (live, on what clients learn; and on
//    consistent snapshots during the run);
//  - fences never repeat or go back: a grant requested after a release of
//    the same lock was answered carries a larger fence, across the lock's
//    deletion and re-creation;
//  - no lost waiter: every accepted ACQUIRE is held or still queued, and a
//    drain from every CPU grants every waiter;
//  - no leaked block: pool blocks in use equal queue entries plus chained
//    holders, and none is left after the drain, nor any lock entry, nor
//    any hold or wait counted for the client's quota;
//  - WAIT_DIE's min_txn is at most the oldest member, and equal to it
//    unless flagged MIN_DIRTY (on the snapshots).
// A second test starts the table in a grace period, as after a restart
// without state: clients on every CPU reclaim holds (each with a fence of
// its own, below the table's base) on a few hot locks at once, then grace
// ends under load and ordinary requests mix with late reclaims; the same
// invariants hold, reclaimed holds keep their fences, and no request but a
// reclaim is granted in grace.
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
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/test_datapath.h"

namespace lockd::testing {
namespace {

constexpr int kHotLocks = 16;
constexpr uint64_t kHotBase = 7000;
constexpr int kChurnLocks = 2000;
constexpr uint64_t kChurnBase = 1'000'000;
constexpr uint64_t kTotalOperations = 1'000'000;
constexpr int kClientsPerThread = 48;
constexpr absl::Duration kMaxRunTime = absl::Seconds(300);
constexpr int kMaxDrainRounds = 200'000;

enum class Belief { kNone, kQueued, kHeld };

struct Client {
  Endpoint endpoint;
  uint64_t txn = 0;
  uint64_t lock = 0;
  lockd_mode mode = LOCKD_MODE_NONE;
  uint32_t acquire_seq = 0;
  uint64_t fence = 0;
  uint64_t ticket = 0;
  // The largest fence of this lock released before this ACQUIRE was sent:
  // its grant must carry a larger one.
  uint64_t fence_floor = 0;
  Belief belief = Belief::kNone;
  // The current ACQUIRE reclaims a hold of an earlier table with this
  // fence (0: an ordinary ACQUIRE).
  uint64_t reclaim_fence = 0;
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
    if (c.fence <= c.fence_floor)
      Violation(absl::StrCat("lock ", c.lock, ": txn ", c.txn,
                             " granted fence ", c.fence, ", not above ",
                             c.fence_floor, " released before it asked"));
  }
  // Called before the RELEASE is sent: from then on another may be granted.
  void Releasing(const Client& c) {
    absl::MutexLock hold(&mu_);
    Lock& lock = locks_[c.lock];
    (c.mode == LOCKD_MODE_EXCLUSIVE ? lock.exclusive : lock.shared)--;
  }
  void Released(uint64_t lock_id, uint64_t fence) {
    absl::MutexLock hold(&mu_);
    uint64_t& floor = locks_[lock_id].released;
    floor = std::max(floor, fence);
  }
  uint64_t ReleasedFloor(uint64_t lock_id) {
    absl::MutexLock hold(&mu_);
    return locks_[lock_id].released;
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
    uint64_t released = 0;
  };
  absl::Mutex mu_;
  std::map<uint64_t, Lock> locks_ ABSL_GUARDED_BY(mu_);
  absl::Mutex violations_mu_;
  std::vector<std::string> violations_ ABSL_GUARDED_BY(violations_mu_);
  size_t violation_count_ ABSL_GUARDED_BY(violations_mu_) = 0;
};

class Worker {
 public:
  Worker(int index, const Datapath* datapath, Invariants* invariants,
         std::atomic<uint64_t>* next_txn,
         std::atomic<uint64_t>* next_reclaim_fence = nullptr)
      : index_(index),
        datapath_(datapath),
        invariants_(invariants),
        next_txn_(next_txn),
        next_reclaim_fence_(next_reclaim_fence),
        rng_(0x10cd + index) {
    for (int c = 0; c < kClientsPerThread; ++c)
      clients_.push_back({ClientEndpoint(index * kClientsPerThread + c)});
  }

  // `reclaim_percent` of new ACQUIREs are reclaims (NO_WAIT, a fence of
  // their own from next_reclaim_fence).
  absl::Status Run(uint64_t operations, absl::Time deadline,
                   uint32_t reclaim_percent = 0) {
    reclaim_percent_ = reclaim_percent;
    const uint64_t until = operations_ + operations;
    absl::Status status = Start();
    while (status.ok() && operations_ < until && absl::Now() < deadline)
      status = Step(clients_[rng_() % clients_.size()]);
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
  uint64_t operations() const { return operations_; }
  uint64_t silent() const { return silent_; }

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

  // Sends one request; nullopt when the datapath answered nothing (decided
  // on the other CPU meanwhile, or the table was busy: retransmit).
  absl::StatusOr<std::optional<Message>> Exchange(const Client& c,
                                                  const Message& request) {
    ++operations_;
    absl::StatusOr<Delivery> d =
        deliverer_->Deliver(BuildFrame(c.endpoint, ServerEndpoint(), request));
    if (!d.ok()) return d.status();
    if (!Answered(*d)) {
      ++silent_;
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
      c.lock = rng_() % 4 == 0 ? kHotBase + rng_() % kHotLocks
                               : kChurnBase + rng_() % kChurnLocks;
      c.mode = rng_() % 10 < 7 ? LOCKD_MODE_SHARED : LOCKD_MODE_EXCLUSIVE;
      c.acquire_seq = ++seq_;
      c.ticket = 0;
      c.fence_floor = invariants_->ReleasedFloor(c.lock);
      c.reclaim_fence = rng_() % 100 < reclaim_percent_
                            ? next_reclaim_fence_->fetch_add(1)
                            : 0;
      // A reclaimed hold's fence is its own, from before the table.
      if (c.reclaim_fence) c.fence_floor = 0;
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
    m.seq = c.acquire_seq;
    if (retransmit) {
      m.policy = LOCKD_POLICY_WAIT;  // the same request again
      m.flags = LOCKD_FLAG_RETRANSMIT;
      // Sometimes the client lost the reply that carried its ticket.
      m.ticket = rng_() % 4 == 0 ? 0 : c.ticket;
    }
    if (c.reclaim_fence) {
      m.policy = LOCKD_POLICY_NO_WAIT;
      m.flags |= LOCKD_FLAG_RECLAIM;
      m.fence = c.reclaim_fence;
    }
    absl::StatusOr<std::optional<Message>> reply = Exchange(c, m);
    if (!reply.ok()) return reply.status();
    if (!reply->has_value()) return absl::OkStatus();
    const Message& r = **reply;
    if (r.opcode == LOCKD_OP_GRANTED) {
      c.ticket = r.ticket;
      if (c.belief == Belief::kHeld) {
        if (r.fence != c.fence)
          invariants_->Violation(absl::StrCat("txn ", c.txn,
                                              " re-granted with fence ",
                                              r.fence, " not ", c.fence));
        return absl::OkStatus();
      }
      if (c.reclaim_fence && r.fence != c.reclaim_fence)
        invariants_->Violation(absl::StrCat("txn ", c.txn, " reclaimed fence ",
                                            c.reclaim_fence, " granted ",
                                            r.fence));
      c.fence = r.fence;
      c.belief = Belief::kHeld;
      invariants_->Granted(c);
    } else if (r.opcode == LOCKD_OP_QUEUED) {
      c.ticket = r.ticket;
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
    m.ticket = c.ticket;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      absl::StatusOr<std::optional<Message>> reply = Exchange(c, m);
      if (!reply.ok()) return reply.status();
      if (!reply->has_value()) {  // retransmit, flagged
        m.flags = LOCKD_FLAG_RETRANSMIT;
        continue;
      }
      const Message& r = **reply;
      // A retransmission whose first copy was served finds nothing left.
      const bool already = m.flags != 0 && r.opcode == LOCKD_OP_REJECTED &&
                           r.status == LOCKD_STATUS_NOT_HOLDER;
      if (r.opcode != LOCKD_OP_RELEASED && !already)
        return absl::InternalError(absl::StrCat(
            "release by txn ", c.txn, " (believed ", static_cast<int>(c.belief),
            ") answered ", r.ToString()));
      if (c.belief == Belief::kHeld && !already) {
        if (r.fence != c.fence)
          invariants_->Violation(absl::StrCat("txn ", c.txn, " released fence ",
                                              r.fence, ", held ", c.fence));
      }
      if (c.belief == Belief::kHeld) invariants_->Released(c.lock, c.fence);
      c.belief = Belief::kNone;
      return absl::OkStatus();
    }
    return absl::InternalError(
        absl::StrCat("release by txn ", c.txn, " never answered"));
  }

  int index_;
  const Datapath* datapath_;
  Invariants* invariants_;
  std::atomic<uint64_t>* next_txn_;
  std::atomic<uint64_t>* next_reclaim_fence_;
  uint32_t reclaim_percent_ = 0;
  std::mt19937_64 rng_;
  std::vector<Client> clients_;
  uint32_t seq_ = 0;
  uint64_t operations_ = 0;
  uint64_t silent_ = 0;
  std::optional<Deliverer> deliverer_;
};

// Checks one snapshot of every lock in the table: a lock's own view is
// consistent (KernelTable::Read), and must be sane.
void CheckSnapshot(const KernelTable& table, Invariants* invariants) {
  absl::StatusOr<std::vector<LockSummary>> locks = table.ListAll();
  if (!locks.ok()) {
    invariants->Violation(std::string(locks.status().message()));
    return;
  }
  for (const LockSummary& s : *locks) {
    absl::StatusOr<LockView> view = table.Read(s.lock_id);
    if (absl::IsNotFound(view.status()) || absl::IsAborted(view.status()))
      continue;  // gone, or changing too fast to catch: the next one
    if (!view.ok()) {
      invariants->Violation(std::string(view.status().message()));
      continue;
    }
    const lockd_lock& l = view->state;
    if ((l.mode == LOCKD_MODE_EXCLUSIVE && l.holders != 1) ||
        (l.mode == LOCKD_MODE_NONE) != (l.holders == 0) ||
        l.holders != view->holders.size() || l.queue_len != view->queue.size())
      invariants->Violation(absl::StrCat(
          "lock ", view->lock_id, ": mode ", l.mode, " with ", l.holders,
          " holders, ", view->holders.size(), " found; queue_len ", l.queue_len,
          ", ", view->queue.size(), " linked"));
    std::set<uint64_t> members;
    for (const MemberView& h : view->holders) members.insert(h.m.txn_id);
    for (const MemberView& w : view->queue) {
      if (w.m.state == LOCKD_MEMBER_CANCELLED) continue;
      if (!members.insert(w.m.txn_id).second)
        invariants->Violation(absl::StrCat("lock ", view->lock_id, ": txn ",
                                           w.m.txn_id, " is a member twice"));
    }
    // WAIT_DIE's bound: at most the oldest member, equal unless dirty.
    const uint64_t oldest = members.empty() ? ~uint64_t{0} : *members.begin();
    const bool dirty = (l.flags & LOCKD_LOCK_MIN_DIRTY) != 0;
    if (l.min_txn > oldest || (!dirty && l.min_txn != oldest))
      invariants->Violation(absl::StrCat("lock ", view->lock_id, ": min_txn ",
                                         l.min_txn, dirty ? " (dirty)" : "",
                                         " for the oldest member ", oldest));
  }
}

// Blocks the locks link (queue entries and chained holders), and the locks.
struct Census {
  uint64_t locks = 0;
  uint64_t blocks = 0;
};

absl::StatusOr<Census> TakeCensus(const KernelTable& table) {
  absl::StatusOr<std::vector<LockSummary>> locks = table.ListAll();
  if (!locks.ok()) return locks.status();
  Census census{locks->size(), 0};
  for (const LockSummary& s : *locks) {
    absl::StatusOr<LockView> view = table.Read(s.lock_id);
    if (!view.ok()) return view.status();
    census.blocks += view->queue.size();
    for (const MemberView& h : view->holders)
      if (h.ticket != LOCKD_TICKET_INLINE) ++census.blocks;
  }
  return census;
}

class StressTest : public ::testing::Test {
 protected:
  void SetUp() override { Create(DatapathOptions()); }

  // `options` with the test's leases and resizing thresholds.
  void Create(DatapathOptions options) {
    options.default_lease_ms = 3600 * 1000;  // leases never lapse here
    options.max_lease_ms = options.default_lease_ms;
    options.split_at = 1;  // split at the second lock of a bucket
    options.merge_at = 1;  // merge pairs down to one lock
    SegmentOptions segments;
    segments.pool_min_blocks = 64;
    segments.idle_grace = absl::ZeroDuration();
    absl::StatusOr<TestDatapath> dp = TestDatapath::Create(options, segments);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::make_unique<TestDatapath>(std::move(*dp));
    // Grants and KICKs leave TC by lo; KICKs come back in and are served.
    ASSERT_TRUE(dp_->datapath->AttachTc(1).ok());
  }

  // The daemon's part, until `stop`: growth when asked, memory given back.
  void Serve(std::atomic<bool>* stop, absl::Status* result) {
    while (!*stop && result->ok()) {
      absl::StatusOr<int> n = dp_->ServeGrowth();
      if (!n.ok()) {
        *result = n.status();
        return;
      }
      *result = dp_->segments->Tidy(absl::Now());
      absl::SleepFor(absl::Milliseconds(2));
    }
  }

  // Runs `operations` in all on every worker's CPU at once, checking
  // snapshots meanwhile; returns the snapshots taken.
  int RunAll(const std::vector<std::unique_ptr<Worker>>& workers,
             uint64_t operations, uint32_t reclaim_percent,
             Invariants* invariants) {
    const int threads = static_cast<int>(workers.size());
    std::vector<absl::Status> results(threads);
    std::atomic<int> running{threads};
    std::vector<std::thread> pool;
    const absl::Time deadline = absl::Now() + kMaxRunTime;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        results[t] =
            workers[t]->Run(operations / threads, deadline, reclaim_percent);
        --running;
      });
    int snapshots = 0;
    while (running > 0 && snapshots < 2000) {
      CheckSnapshot(*dp_->table, invariants);
      ++snapshots;
    }
    for (std::thread& th : pool) th.join();
    for (const absl::Status& r : results) EXPECT_TRUE(r.ok()) << r;
    return snapshots;
  }

  // Every worker drains its clients at once.
  void DrainAll(const std::vector<std::unique_ptr<Worker>>& workers) {
    std::vector<absl::Status> results(workers.size());
    std::vector<std::thread> pool;
    for (size_t t = 0; t < workers.size(); ++t)
      pool.emplace_back([&, t] { results[t] = workers[t]->Drain(); });
    for (std::thread& th : pool) th.join();
    for (const absl::Status& r : results) EXPECT_TRUE(r.ok()) << r;
  }

  // The daemon's part runs on a thread of its own until DrainAndFinish.
  void StartServing() {
    server_ = std::thread([this] { Serve(&stop_serving_, &serving_); });
  }

  // Drains every worker, stops the daemon's part, expects nothing left,
  // and returns the datapath's counters.
  StatCounters DrainAndFinish(
      const std::vector<std::unique_ptr<Worker>>& workers) {
    DrainAll(workers);
    absl::SleepFor(absl::Milliseconds(100));  // looped-back KICKs land
    stop_serving_ = true;
    server_.join();
    EXPECT_TRUE(serving_.ok()) << serving_;
    ExpectEmpty();
    absl::StatusOr<StatCounters> stats = dp_->datapath->ReadStats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (!stats.ok()) return StatCounters{};
    EXPECT_EQ((*stats)[LOCKD_STAT_POOL_ALLOC], (*stats)[LOCKD_STAT_POOL_FREE]);
    EXPECT_EQ((*stats)[LOCKD_STAT_LOCK_CREATED],
              (*stats)[LOCKD_STAT_LOCK_FREED]);
    return *stats;
  }

  // After a drain: no lock, no block, no member counted for any client.
  void ExpectEmpty() {
    absl::StatusOr<Census> census = TakeCensus(*dp_->table);
    ASSERT_TRUE(census.ok()) << census.status();
    EXPECT_EQ(census->locks, 0u) << "lock entries left after the drain";
    EXPECT_EQ(dp_->PoolBlocks(), 0u) << "leaked pool blocks";
    // Every member counted for the client's quota was counted out again.
    absl::StatusOr<std::vector<ClientInfo>> clients = dp_->clients->List();
    ASSERT_TRUE(clients.ok()) << clients.status();
    ASSERT_FALSE(clients->empty());
    for (const ClientInfo& c : *clients)
      EXPECT_EQ(c.members, 0)
          << "client " << c.client_id << "'s holds + waits after the drain";
  }

  std::unique_ptr<TestDatapath> dp_;
  std::atomic<bool> stop_serving_{false};
  absl::Status serving_;
  std::thread server_;
};

TEST_F(StressTest, InvariantsHoldUnderConcurrency) {
  const int threads = std::max(2u, std::thread::hardware_concurrency());
  Invariants invariants;
  std::atomic<uint64_t> next_txn{1};
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t)
    workers.push_back(std::make_unique<Worker>(t, dp_->datapath.get(),
                                               &invariants, &next_txn));
  StartServing();

  // Phase 1: load from every CPU, observed by snapshots.
  const int snapshots = RunAll(workers, kTotalOperations, 0, &invariants);
  ASSERT_FALSE(HasFailure());
  uint64_t operations = 0, silent = 0;
  for (const auto& w : workers) {
    operations += w->operations();
    silent += w->silent();
  }
  printf("phase 1: %d threads, %lu operations, %lu unanswered, %d snapshots\n",
         threads, operations, silent, snapshots);
  EXPECT_GE(operations, kTotalOperations);

  // Quiescent: every holder and live waiter is someone told GRANTED or
  // QUEUED, everyone told so is one, and every block belongs to a lock.
  absl::SleepFor(absl::Milliseconds(100));  // let looped-back KICKs land
  std::map<std::pair<uint64_t, uint64_t>, Belief> told;
  for (const auto& w : workers)
    for (const Client& c : w->clients())
      if (c.belief != Belief::kNone) told[{c.lock, c.txn}] = c.belief;
  absl::StatusOr<std::vector<LockSummary>> locks = dp_->table->ListAll();
  ASSERT_TRUE(locks.ok()) << locks.status();
  std::set<std::pair<uint64_t, uint64_t>> holding, waiting;
  for (const LockSummary& s : *locks) {
    absl::StatusOr<LockView> view = dp_->table->Read(s.lock_id);
    ASSERT_TRUE(view.ok()) << view.status();
    for (const MemberView& h : view->holders) {
      EXPECT_TRUE(told.count({s.lock_id, h.m.txn_id}))
          << "holder txn " << h.m.txn_id << " of lock " << s.lock_id
          << " was never told GRANTED or QUEUED";
      holding.insert({s.lock_id, h.m.txn_id});
    }
    for (const MemberView& w : view->queue) {
      if (w.m.state == LOCKD_MEMBER_CANCELLED) continue;
      EXPECT_TRUE(told[std::make_pair(s.lock_id, w.m.txn_id)] ==
                  Belief::kQueued)
          << "waiter txn " << w.m.txn_id << " of lock " << s.lock_id
          << " was not told QUEUED";
      waiting.insert({s.lock_id, w.m.txn_id});
    }
  }
  for (const auto& [owner, belief] : told)
    EXPECT_TRUE(belief == Belief::kHeld
                    ? holding.count(owner) != 0
                    : holding.count(owner) + waiting.count(owner) != 0)
        << "txn " << owner.second << " on lock " << owner.first
        << " was accepted but is neither holding nor queued";
  absl::StatusOr<Census> census = TakeCensus(*dp_->table);
  ASSERT_TRUE(census.ok()) << census.status();
  EXPECT_EQ(dp_->PoolBlocks(), census->blocks)
      << "pool blocks against queue entries and chained holders";

  // Phase 2: drain from every CPU; nothing may be left.
  const StatCounters s = DrainAndFinish(workers);
  EXPECT_EQ(s[LOCKD_STAT_GRANT_FROM_QUEUE], s[LOCKD_STAT_GRANT_SENT]);
  EXPECT_EQ(s[LOCKD_STAT_GRANT_SEND_FAILED], 0u);
  EXPECT_EQ(s[LOCKD_STAT_KICK_SEND_FAILED], 0u);
  EXPECT_EQ(s[LOCKD_STAT_KICK_SENT],
            s[LOCKD_STAT_KICK] + s[LOCKD_STAT_KICK_DROPPED]);
  EXPECT_GT(s[LOCKD_STAT_SPLIT], 0u);
  EXPECT_GT(s[LOCKD_STAT_MERGE], 0u);
  EXPECT_GT(s[LOCKD_STAT_LOCK_FREED], 0u);
  printf(
      "locks created %lu, splits %lu, merges %lu, resize busy %lu, grants "
      "from queue %lu, kicks %lu, retries %lu, contended %lu, searches %lu, "
      "WAIT_DIE walks %lu, table waits %lu, pool waits %lu, growth requests "
      "%lu\n",
      s[LOCKD_STAT_LOCK_CREATED], s[LOCKD_STAT_SPLIT], s[LOCKD_STAT_MERGE],
      s[LOCKD_STAT_RESIZE_BUSY], s[LOCKD_STAT_GRANT_FROM_QUEUE],
      s[LOCKD_STAT_KICK], s[LOCKD_STAT_RETRY], s[LOCKD_STAT_CONTENDED],
      s[LOCKD_STAT_MEMBER_SEARCH], s[LOCKD_STAT_MIN_WALK],
      s[LOCKD_STAT_TABLE_WAIT], s[LOCKD_STAT_POOL_WAIT], dp_->growth_requests);

  for (const std::string& v : invariants.violations()) ADD_FAILURE() << v;
}

// A table started without its predecessor's state, in its grace period.
class StressGraceTest : public StressTest {
 protected:
  static constexpr uint64_t kFenceBase = uint64_t{1} << 40;
  void SetUp() override {
    DatapathOptions options;
    options.fence_base = kFenceBase;
    options.grace_ms = LOCKD_MAX_LEASE_MS;  // ended by the test
    Create(options);
  }
};

TEST_F(StressGraceTest, ReclaimsInGraceThenOrdinaryRequests) {
  const int threads = std::max(2u, std::thread::hardware_concurrency());
  Invariants invariants;
  std::atomic<uint64_t> next_txn{1};
  std::atomic<uint64_t> next_reclaim_fence{1};
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t)
    workers.push_back(std::make_unique<Worker>(
        t, dp_->datapath.get(), &invariants, &next_txn, &next_reclaim_fence));
  StartServing();

  // Grace: most new ACQUIREs reclaim, on every CPU at once (hot locks see
  // conflicting reclaims); the others are refused GRACE.
  RunAll(workers, kTotalOperations / 4, 80, &invariants);
  absl::StatusOr<StatCounters> in_grace = dp_->datapath->ReadStats();
  ASSERT_TRUE(in_grace.ok());
  EXPECT_EQ((*in_grace)[LOCKD_STAT_GRANT_IMMEDIATE], 0u)
      << "an ordinary ACQUIRE was granted in grace";
  EXPECT_EQ((*in_grace)[LOCKD_STAT_QUEUED], 0u)
      << "an ACQUIRE was queued in grace";
  // Grace ends under load (as lockctl end-grace or its deadline does):
  // ordinary requests, and a few late reclaims, which are refused.
  __atomic_store_n(&dp_->datapath->config()->grace_until_ns, 0,
                   __ATOMIC_RELAXED);
  RunAll(workers, kTotalOperations / 4, 5, &invariants);
  const StatCounters s = DrainAndFinish(workers);
  for (lockd_stat stat :
       {LOCKD_STAT_RECLAIMED, LOCKD_STAT_REJECT_GRACE,
        LOCKD_STAT_REJECT_RECLAIM, LOCKD_STAT_REJECT_CONFLICT,
        LOCKD_STAT_GRANT_IMMEDIATE, LOCKD_STAT_GRANT_FROM_QUEUE})
    EXPECT_GT(s[stat], 0u) << StatName(stat) << " never happened";
  printf(
      "%d threads: reclaimed %lu, refused in grace %lu, late reclaims %lu, "
      "conflicts %lu, then granted %lu at once and %lu from the queue\n",
      threads, s[LOCKD_STAT_RECLAIMED], s[LOCKD_STAT_REJECT_GRACE],
      s[LOCKD_STAT_REJECT_RECLAIM], s[LOCKD_STAT_REJECT_CONFLICT],
      s[LOCKD_STAT_GRANT_IMMEDIATE], s[LOCKD_STAT_GRANT_FROM_QUEUE]);
  for (const std::string& v : invariants.violations()) ADD_FAILURE() << v;
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
