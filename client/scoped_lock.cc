#include "client/scoped_lock.h"

#include <utility>

namespace lockd::client {

template <typename LockKey>
absl::StatusOr<ScopedLock> ScopedLock::AcquireKey(Client& client,
                                                  const LockKey& key, Mode mode,
                                                  const LockOptions& options) {
  Transaction txn = client.Begin();
  absl::StatusOr<uint64_t> fence = txn.Lock(key, mode, options);
  if (!fence.ok()) return fence.status();
  return ScopedLock(std::move(txn), *fence);
}

absl::StatusOr<ScopedLock> ScopedLock::Acquire(Client& client,
                                               absl::string_view name,
                                               Mode mode,
                                               const LockOptions& options) {
  return AcquireKey(client, name, mode, options);
}

absl::StatusOr<ScopedLock> ScopedLock::Acquire(Client& client, uint64_t lock_id,
                                               Mode mode,
                                               const LockOptions& options) {
  return AcquireKey(client, lock_id, mode, options);
}

}  // namespace lockd::client
