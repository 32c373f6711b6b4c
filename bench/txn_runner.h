// TxnRunner: the sessions of one load generator thread, each running strict
// two-phase-locking transactions through a LockDriver: acquire the
// transaction's locks one after the other in lock id order, and when all
// are held (after an optional hold time) release them all at once; that is
// a commit. A rejected acquire (NO_WAIT conflict, WAIT_DIE death) aborts the
// attempt: the locks held so far are released, and after a random
// exponential backoff the same transaction (same locks, same txn id, so it
// ages under WAIT_DIE) starts again: a retry.
//
// Closed loop: every session starts its next transaction as soon as the
// last one committed. Open loop: transactions arrive at a fixed rate
// (Poisson arrivals), wait for a free session in a bounded queue (arrivals
// finding it full are dropped and counted), and their latency counts from
// arrival, so a slow server is not hidden by a slowed-down generator.
//
// Only events inside the measurement window [start, end) are counted. After
// `end` no transaction starts; the loop is stopped once every session is
// idle (the deadline given to EventLoop::Run bounds that wait).
#ifndef LOCKD_BENCH_TXN_RUNNER_H_
#define LOCKD_BENCH_TXN_RUNNER_H_

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "bench/backoff.h"
#include "bench/event_loop.h"
#include "bench/histogram.h"
#include "bench/lock_driver.h"
#include "bench/workload.h"

namespace lockd::bench {

struct RunConfig {
  int sessions = 64;
  int thread_index = 0;  // part of every txn id: ids are unique per thread
  int64_t epoch = 0;     // txn ids count nanoseconds from here
  int64_t start = 0;     // measurement window, NowNanos
  int64_t end = 0;
  double offered_rate = 0;  // transactions/s of this thread; 0 = closed loop
  int64_t hold_nanos = 0;   // time all locks are held before the release
  Backoff backoff;          // before a retry
  uint64_t seed = 1;
};

struct RunStats {
  LatencyHistogram grant_latency;  // ACQUIRE sent -> GRANTED, per lock
  LatencyHistogram txn_latency;    // start (or arrival) -> commit
  uint64_t grants = 0;
  uint64_t attempts = 0;  // transaction attempts finished: commits + aborts
  uint64_t commits = 0;
  uint64_t aborts = 0;
  uint64_t arrivals = 0;          // open loop
  uint64_t arrivals_dropped = 0;  // open loop, queue full
  std::vector<uint64_t> commits_per_session;

  void Merge(const RunStats& other);
};

// Jain's fairness index of `values`: 1 when all are equal, 1/n when one has
// everything; 1 for an empty or all-zero list.
double JainIndex(const std::vector<uint64_t>& values);

class TxnRunner : public DriverListener {
 public:
  static constexpr int kMaxSessions = 0x10000;

  TxnRunner(const RunConfig& config, const Workload* workload, EventLoop* loop,
            LockDriver* driver);

  // Sets the measurement window (NowNanos).
  void SetWindow(int64_t start, int64_t end);
  // Schedules the start of the run on the loop; then run the loop.
  void Start();
  const RunStats& stats() const { return stats_; }

  void OnReply(int session, int slot, Reply reply) override;

 private:
  struct Session {
    std::vector<LockStep> steps;
    std::vector<int64_t> sent_at;  // per slot: when its ACQUIRE was sent
    size_t granted = 0;            // slots [0, granted) are held
    int releasing = 0;             // RELEASEs outstanding
    bool committing = false;       // releasing after all were granted
    bool busy = false;
    uint64_t txn_id = 0;
    int attempt = 0;
    int64_t txn_start = 0;
  };

  bool InWindow(int64_t now) const {
    return now >= config_.start && now < config_.end;
  }
  void StartTransaction(int session, int64_t arrival);
  void BeginAttempt(int session);
  void AcquireNext(int session);
  void ReleaseHeld(int session, bool commit);
  void Finish(int session);
  void BecomeIdle(int session);
  void ScheduleArrival(int64_t when);
  void MaybeStop();

  RunConfig config_;
  const Workload* workload_;
  EventLoop* loop_;
  LockDriver* driver_;
  std::mt19937_64 rng_;
  std::vector<Session> sessions_;
  std::vector<int> idle_;         // open loop: free sessions
  std::deque<int64_t> arrivals_;  // open loop: waiting arrival times
  int busy_ = 0;
  RunStats stats_;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_TXN_RUNNER_H_
