#include "bench/txn_runner.h"

#include <algorithm>
#include <utility>

namespace lockd::bench {

void RunStats::Merge(const RunStats& other) {
  grant_latency.Merge(other.grant_latency);
  txn_latency.Merge(other.txn_latency);
  grants += other.grants;
  attempts += other.attempts;
  commits += other.commits;
  aborts += other.aborts;
  arrivals += other.arrivals;
  arrivals_dropped += other.arrivals_dropped;
  commits_per_session.insert(commits_per_session.end(),
                             other.commits_per_session.begin(),
                             other.commits_per_session.end());
}

double JainIndex(const std::vector<uint64_t>& values) {
  double sum = 0;
  double squares = 0;
  for (uint64_t value : values) {
    sum += static_cast<double>(value);
    squares += static_cast<double>(value) * static_cast<double>(value);
  }
  if (squares == 0) return 1;
  return sum * sum / (static_cast<double>(values.size()) * squares);
}

TxnRunner::TxnRunner(const RunConfig& config, const Workload* workload,
                     EventLoop* loop, LockDriver* driver)
    : config_(config),
      workload_(workload),
      loop_(loop),
      driver_(driver),
      rng_(config.seed),
      sessions_(std::min(config.sessions, kMaxSessions)) {
  stats_.commits_per_session.assign(sessions_.size(), 0);
}

void TxnRunner::SetWindow(int64_t start, int64_t end) {
  config_.start = start;
  config_.end = end;
}

void TxnRunner::Start() {
  const int64_t now = NowNanos();
  loop_->At(config_.end, [this] { MaybeStop(); });
  if (config_.offered_rate <= 0) {
    for (size_t s = 0; s < sessions_.size(); ++s) {
      sessions_[s].busy = true;
      ++busy_;
      StartTransaction(static_cast<int>(s), now);
    }
    return;
  }
  for (int s = static_cast<int>(sessions_.size()) - 1; s >= 0; --s) {
    idle_.push_back(s);
  }
  ScheduleArrival(now);
}

void TxnRunner::ScheduleArrival(int64_t when) {
  loop_->At(when, [this, when] {
    if (when >= config_.end) return;
    if (InWindow(when)) ++stats_.arrivals;
    if (!idle_.empty()) {
      const int session = idle_.back();
      idle_.pop_back();
      sessions_[session].busy = true;
      ++busy_;
      StartTransaction(session, when);
    } else if (arrivals_.size() < sessions_.size() * 16) {
      arrivals_.push_back(when);
    } else if (InWindow(when)) {
      ++stats_.arrivals_dropped;
    }
    std::exponential_distribution<double> gap(config_.offered_rate);
    ScheduleArrival(when + static_cast<int64_t>(gap(rng_) * 1e9) + 1);
  });
}

void TxnRunner::StartTransaction(int session, int64_t arrival) {
  Session& s = sessions_[session];
  const int64_t now = NowNanos();
  s.txn_start = arrival;
  s.attempt = 0;
  s.txn_id = (static_cast<uint64_t>(now - config_.epoch) << 24) |
             (static_cast<uint64_t>(config_.thread_index & 0xff) << 16) |
             static_cast<uint64_t>(session);
  workload_->NextTransaction(rng_, s.steps);
  s.sent_at.assign(s.steps.size(), 0);
  BeginAttempt(session);
}

void TxnRunner::BeginAttempt(int session) {
  Session& s = sessions_[session];
  s.granted = 0;
  s.releasing = 0;
  s.committing = false;
  AcquireNext(session);
}

void TxnRunner::AcquireNext(int session) {
  Session& s = sessions_[session];
  if (s.granted < s.steps.size()) {
    s.sent_at[s.granted] = NowNanos();
    driver_->Acquire(session, static_cast<int>(s.granted), s.txn_id,
                     s.steps[s.granted].lock_id, s.steps[s.granted].mode);
    return;
  }
  if (config_.hold_nanos > 0) {
    loop_->At(NowNanos() + config_.hold_nanos,
              [this, session] { ReleaseHeld(session, true); });
  } else {
    ReleaseHeld(session, true);
  }
}

void TxnRunner::OnReply(int session, int slot, Reply reply) {
  if (session < 0 || session >= static_cast<int>(sessions_.size())) return;
  Session& s = sessions_[session];
  switch (reply) {
    case Reply::kGranted: {
      if (static_cast<size_t>(slot) != s.granted || s.releasing > 0) return;
      const int64_t now = NowNanos();
      if (InWindow(now)) {
        stats_.grant_latency.Record(now - s.sent_at[slot]);
        ++stats_.grants;
      }
      ++s.granted;
      AcquireNext(session);
      return;
    }
    case Reply::kRejected:
      if (static_cast<size_t>(slot) == s.granted && s.releasing == 0) {
        ReleaseHeld(session, false);
      }
      return;
    case Reply::kReleased:
      if (s.releasing > 0 && --s.releasing == 0) Finish(session);
      return;
  }
}

void TxnRunner::ReleaseHeld(int session, bool commit) {
  Session& s = sessions_[session];
  s.committing = commit;
  s.releasing = static_cast<int>(s.granted);
  if (s.granted == 0) {
    Finish(session);
    return;
  }
  for (size_t slot = 0; slot < s.granted; ++slot) {
    driver_->Release(session, static_cast<int>(slot), s.txn_id,
                     s.steps[slot].lock_id);
  }
}

void TxnRunner::Finish(int session) {
  Session& s = sessions_[session];
  const int64_t now = NowNanos();
  if (InWindow(now)) {
    ++stats_.attempts;
    if (s.committing) {
      ++stats_.commits;
      ++stats_.commits_per_session[session];
      stats_.txn_latency.Record(now - s.txn_start);
    } else {
      ++stats_.aborts;
    }
  }
  if (s.committing || now >= config_.end) {
    BecomeIdle(session);
    return;
  }
  ++s.attempt;
  loop_->At(now + config_.backoff.Draw(rng_, s.attempt),
            [this, session] { BeginAttempt(session); });
}

void TxnRunner::BecomeIdle(int session) {
  const int64_t now = NowNanos();
  if (now < config_.end) {
    if (config_.offered_rate <= 0) {
      StartTransaction(session, now);
      return;
    }
    if (!arrivals_.empty()) {
      const int64_t arrival = arrivals_.front();
      arrivals_.pop_front();
      StartTransaction(session, arrival);
      return;
    }
  }
  sessions_[session].busy = false;
  --busy_;
  idle_.push_back(session);
  MaybeStop();
}

void TxnRunner::MaybeStop() {
  if (NowNanos() >= config_.end && busy_ == 0) loop_->Stop();
}

}  // namespace lockd::bench
