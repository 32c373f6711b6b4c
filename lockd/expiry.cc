#include "lockd/expiry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

// A lock that kept changing while it was read is looked at again after
// this long.
constexpr uint64_t kRetryNs = 1000000;  // 1 ms

}  // namespace

void Expiry::Schedule(uint64_t lock_id, uint64_t due_ns) {
  auto [it, fresh] = due_.try_emplace(lock_id, due_ns);
  if (!fresh) {
    if (it->second <= due_ns) return;  // an earlier entry settles it
    it->second = due_ns;
  }
  heap_.emplace(due_ns, lock_id);
}

void Expiry::Watch(uint64_t lock_id, uint64_t deadline_ns, uint64_t now_ns) {
  if (!due_.contains(lock_id)) {
    Settle(lock_id, now_ns);
  } else if (deadline_ns != 0) {
    Schedule(lock_id, deadline_ns + 1);  // kept only if earlier
  }
}

uint64_t Expiry::RunDue(uint64_t now_ns) {
  while (!heap_.empty() && heap_.top().first <= now_ns) {
    const auto [due, lock_id] = heap_.top();
    heap_.pop();
    auto it = due_.find(lock_id);
    if (it == due_.end() || it->second != due) continue;  // superseded
    due_.erase(it);
    Settle(lock_id, now_ns);
  }
  return heap_.empty() ? 0 : heap_.top().first;
}

bool Expiry::End(lockd_ctl_op op, uint64_t lock_id, const MemberView& member) {
  lockd_ctl command{};
  command.op = op;
  command.req.lock_id = lock_id;
  command.req.txn_id = member.m.txn_id;
  command.req.ticket = member.ticket;
  absl::StatusOr<lockd_ctl> run = dispatcher_->Run(command);
  if (!run.ok() || run->result != LOCKD_CTL_OK) return false;
  counters_->Add(op == LOCKD_CTL_EXPIRE_HOLDER ? DaemonCounters::kLeasesExpired
                                               : DaemonCounters::kWaitsExpired);
  return true;
}

void Expiry::Settle(uint64_t lock_id, uint64_t now_ns) {
  counters_->Add(DaemonCounters::kExpiryChecks);
  LockTable* table = dispatcher_->table();
  absl::StatusOr<LockView> view = table->Read(lock_id);
  if (absl::IsNotFound(view.status())) return;
  if (!view.ok()) {
    Schedule(lock_id, now_ns + kRetryNs);
    return;
  }
  bool ended = false;
  for (const MemberView& holder : view->holders)
    if (holder.m.expires_ns < now_ns)
      ended |= End(LOCKD_CTL_EXPIRE_HOLDER, lock_id, holder);
  for (const MemberView& waiter : view->queue)
    if (waiter.m.state == LOCKD_MEMBER_WAITING && waiter.m.expires_ns != 0 &&
        waiter.m.expires_ns < now_ns)
      ended |= End(LOCKD_CTL_EXPIRE_WAITER, lock_id, waiter);
  if (ended) {
    view = table->Read(lock_id);
    if (absl::IsNotFound(view.status())) return;
    if (!view.ok()) {
      Schedule(lock_id, now_ns + kRetryNs);
      return;
    }
  }
  if (view->queue.empty()) return;  // nobody waits: lazy expiry and sweep
  if (view->holders.empty()) {
    // Waiters and no holder: a grant was left undone (a KICK lost).
    (void)dispatcher_->Kick(lock_id);
    Schedule(lock_id, now_ns + kRetryNs);
    return;
  }
  uint64_t next = UINT64_MAX;
  for (const MemberView& holder : view->holders)
    next = std::min<uint64_t>(next, holder.m.expires_ns);
  for (const MemberView& waiter : view->queue)
    if (waiter.m.state == LOCKD_MEMBER_WAITING && waiter.m.expires_ns != 0)
      next = std::min<uint64_t>(next, waiter.m.expires_ns);
  // Ended strictly after its time (the datapath compares so).
  Schedule(lock_id, std::max(next + 1, now_ns + 1));
}

absl::Status Expiry::Sweep(uint64_t now_ns) {
  return SweepSegments(now_ns, options_.segments_per_sweep);
}

absl::Status Expiry::SweepAll(uint64_t now_ns) {
  return SweepSegments(now_ns, dispatcher_->table()->SegmentCount());
}

absl::Status Expiry::SweepSegments(uint64_t now_ns, uint32_t limit) {
  LockTable* table = dispatcher_->table();
  const uint32_t count = table->SegmentCount();
  // Segments not in use cost nothing.
  uint32_t scanned = 0;
  for (uint32_t i = 0; i < count && scanned < limit; ++i) {
    if (next_segment_ >= count) next_segment_ = 0;
    const uint32_t segment = next_segment_++;
    if (!table->SegmentInUse(segment)) continue;
    absl::StatusOr<std::vector<LockSummary>> locks =
        table->ScanSegment(segment);
    if (!locks.ok()) return locks.status();
    ++scanned;
    counters_->Add(DaemonCounters::kSweptSegments);
    for (const LockSummary& lock : *locks) {
      const bool expired_holder =
          lock.holder_expires_ns != 0 && lock.holder_expires_ns < now_ns;
      if (expired_holder && lock.queue_len == 0 && !lock.extra_holders) {
        // A lone holder: ended without reading the lock first.
        MemberView holder;
        holder.m.txn_id = lock.holder_txn;
        holder.ticket = LOCKD_TICKET_INLINE;
        End(LOCKD_CTL_EXPIRE_HOLDER, lock.lock_id, holder);
      } else if ((lock.queue_len > 0 && !due_.contains(lock.lock_id)) ||
                 expired_holder || lock.extra_holders) {
        Settle(lock.lock_id, now_ns);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Expiry::ForgetOldMemos(uint64_t now_ns) {
  const uint64_t ttl_ns = absl::ToInt64Nanoseconds(options_.memo_ttl);
  if (now_ns < ttl_ns) return absl::OkStatus();
  absl::StatusOr<uint64_t> forgotten =
      dispatcher_->table()->ForgetEnded(now_ns - ttl_ns);
  if (!forgotten.ok()) return forgotten.status();
  counters_->Add(DaemonCounters::kMemosForgotten, *forgotten);
  return absl::OkStatus();
}

}  // namespace lockd
