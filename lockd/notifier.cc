#include "lockd/notifier.h"

#include <utility>

namespace lockd {

uint64_t LocalCalls::Add(uint64_t lock_id, uint64_t txn_id, Callback callback) {
  absl::MutexLock lock(&mu_);
  const uint64_t handle = next_handle_++;
  const Owner owner{lock_id, txn_id};
  by_owner_[owner].emplace(handle, std::move(callback));
  owner_of_.emplace(handle, owner);
  return handle;
}

void LocalCalls::Remove(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = owner_of_.find(handle);
  if (it == owner_of_.end()) return;
  auto calls = by_owner_.find(it->second);
  calls->second.erase(handle);
  if (calls->second.empty()) by_owner_.erase(calls);
  owner_of_.erase(it);
}

bool LocalCalls::Deliver(const lockd_reply& reply) {
  std::vector<Callback> callbacks;
  {
    absl::MutexLock lock(&mu_);
    auto calls = by_owner_.find(Owner{reply.lock_id, reply.txn_id});
    if (calls != by_owner_.end())
      for (const auto& [handle, callback] : calls->second)
        callbacks.push_back(callback);
  }
  for (Callback& callback : callbacks) callback(reply);
  return !callbacks.empty();
}

void Notifier::Deliver(const lockd_notice& notice) {
  if (notice.to.addr != 0) {
    if (socket_->Send(notice.to, notice.reply).ok())
      counters_->Add(DaemonCounters::kNoticesSent);
    else
      counters_->Add(DaemonCounters::kNoticeSendFailed);
    return;
  }
  if (calls_->Deliver(notice.reply))
    counters_->Add(DaemonCounters::kNoticesLocal);
  else
    counters_->Add(DaemonCounters::kNoticesOrphaned);
}

}  // namespace lockd
