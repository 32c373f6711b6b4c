// ScopedLock: one lock held for a C++ scope, for code that needs a single
// lock rather than a transaction.
//
//   absl::StatusOr<ScopedLock> lock =
//       ScopedLock::Acquire(*client, "jobs/nightly", Mode::kExclusive);
//   if (!lock.ok()) return lock.status();
//   RunJob(lock->fence());
//   return lock->Release();  // or let the destructor release it
//
// It is a one-lock Transaction (client/transaction.h): same errors, leases
// renewed in the background, lost() and LockOptions::on_lost when the lease
// is lost.
#ifndef LOCKD_CLIENT_SCOPED_LOCK_H_
#define LOCKD_CLIENT_SCOPED_LOCK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "client/transaction.h"

namespace lockd::client {

class ScopedLock {
 public:
  // Waits (LockOptions::policy defaults to kWait) until granted, rejected or
  // past options.deadline. The Client must outlive the ScopedLock.
  static absl::StatusOr<ScopedLock> Acquire(
      Client& client, absl::string_view name, Mode mode,
      const LockOptions& options = LockOptions());
  static absl::StatusOr<ScopedLock> Acquire(
      Client& client, uint64_t lock_id, Mode mode,
      const LockOptions& options = LockOptions());

  ScopedLock(ScopedLock&&) = default;
  ScopedLock& operator=(ScopedLock&&) = default;
  ~ScopedLock() = default;  // the transaction's destructor releases

  uint64_t fence() const { return fence_; }
  // The lease was lost: the fence must not be used any more.
  bool lost() const { return txn_.lost(); }
  // Releases now. FAILED_PRECONDITION if the lock had been lost.
  absl::Status Release() { return txn_.Commit(); }

 private:
  ScopedLock(Transaction txn, uint64_t fence)
      : txn_(std::move(txn)), fence_(fence) {}

  template <typename LockKey>
  static absl::StatusOr<ScopedLock> AcquireKey(Client& client,
                                               const LockKey& key, Mode mode,
                                               const LockOptions& options);

  Transaction txn_;
  uint64_t fence_;
};

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_SCOPED_LOCK_H_
