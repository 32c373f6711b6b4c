#include "model/model_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

lockd_member HolderMember(uint64_t txn_id, const LockModel::Hold& hold) {
  lockd_member m{};
  m.txn_id = txn_id;
  m.fence = hold.fence;
  m.since_ns = hold.since_ns;
  m.expires_ns = hold.lease_expires_ns;
  m.seq = hold.seq;
  m.lease_ms = hold.lease_ms;
  m.addr = hold.endpoint.addr;
  m.port = hold.endpoint.port;
  m.state = LOCKD_MEMBER_HELD;
  m.mode = hold.mode;
  m.policy = hold.policy;
  m.flags = hold.flags;
  return m;
}

lockd_member WaiterMember(const LockModel::Waiter& w) {
  lockd_member m{};
  m.txn_id = w.txn_id;
  m.since_ns = w.enqueued_ns;
  m.expires_ns = w.deadline_ns;
  m.seq = w.seq;
  m.lease_ms = w.lease_ms;
  m.addr = w.endpoint.addr;
  m.port = w.endpoint.port;
  m.state = w.cancelled ? LOCKD_MEMBER_CANCELLED : LOCKD_MEMBER_WAITING;
  m.mode = w.mode;
  m.policy = w.policy;
  m.flags = w.flags;
  return m;
}

}  // namespace

absl::StatusOr<lockd_ctl> ModelTable::Execute(const lockd_ctl& command) {
  absl::MutexLock lock(&mu_);
  return model_.Execute(command, now_ns_);
}

absl::StatusOr<LockView> ModelTable::Read(uint64_t lock_id) const {
  absl::ReaderMutexLock lock(&mu_);
  const LockModel::LockState* state = model_.Find(lock_id);
  if (state == nullptr)
    return absl::NotFoundError(
        absl::StrCat("lock ", lock_id, " has no holders and no waiters"));
  LockView view;
  view.lock_id = lock_id;
  view.state.fence = state->fence;
  view.state.min_txn = state->min_txn;
  view.state.flags = state->min_dirty ? LOCKD_LOCK_MIN_DIRTY : 0;
  view.state.holders = static_cast<uint32_t>(state->holders.size());
  view.state.queue_len = static_cast<uint32_t>(state->queue.size());
  view.state.mode = state->mode;
  for (const auto& [txn_id, hold] : state->holders)
    view.holders.push_back(MemberView{HolderMember(txn_id, hold), 0});
  std::sort(view.holders.begin(), view.holders.end(),
            [](const MemberView& a, const MemberView& b) {
              return a.m.fence < b.m.fence;
            });
  for (const LockModel::Waiter& waiter : state->queue)
    view.queue.push_back(MemberView{WaiterMember(waiter), 0});
  return view;
}

std::vector<LockSummary> ModelTable::Summaries() const {
  std::vector<LockSummary> out;
  for (const auto& [lock_id, state] : model_.locks()) {
    LockSummary s;
    s.lock_id = lock_id;
    s.mode = state.mode;
    s.holders = static_cast<uint32_t>(state.holders.size());
    s.queue_len = static_cast<uint32_t>(state.queue.size());
    s.fence = state.fence;
    // As the kernel's bucket shows it: the first holder inline, any other
    // in the chain.
    if (!state.holders.empty()) {
      s.holder_txn = state.holders.begin()->first;
      s.holder_expires_ns = state.holders.begin()->second.lease_expires_ns;
    }
    s.extra_holders = state.holders.size() > 1;
    out.push_back(s);
  }
  return out;
}

absl::StatusOr<std::vector<LockSummary>> ModelTable::ScanSegment(
    uint32_t segment) const {
  absl::ReaderMutexLock lock(&mu_);
  if (segment != 0) return std::vector<LockSummary>();
  return Summaries();
}

absl::StatusOr<uint64_t> ModelTable::CountLocks() const {
  absl::ReaderMutexLock lock(&mu_);
  return model_.locks().size();
}

absl::StatusOr<uint64_t> ModelTable::ForgetEnded(uint64_t before_ns) {
  absl::MutexLock lock(&mu_);
  return model_.ForgetEnded(before_ns);
}

uint64_t ModelTable::NowNs() const {
  absl::ReaderMutexLock lock(&mu_);
  return now_ns_;
}

void ModelTable::Advance(uint64_t ns) {
  absl::MutexLock lock(&mu_);
  now_ns_ += ns;
}

absl::Status ModelTable::CheckInvariants() const {
  absl::ReaderMutexLock lock(&mu_);
  return model_.CheckInvariants();
}

}  // namespace lockd
