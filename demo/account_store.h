// The bank demo's store: one file per account under a directory, holding the
// balance and the fencing token of the lock holder that wrote it last
// ("<balance> <fence>\n"). It stands for any storage that honours lockd's
// fencing tokens: a write whose fence is not above the stored one comes
// from a holder whose lock has since passed to someone else (its lease ran
// out, an operator force-released it), and is refused.
//
// The store does not serialize a read-compute-write of its callers: only the
// lockd lock on the account does. Each single Read or Write is atomic (an
// flock(2) on the file for its duration), as one conditional write to a real
// store is.
#ifndef LOCKD_DEMO_ACCOUNT_STORE_H_
#define LOCKD_DEMO_ACCOUNT_STORE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lockd::demo {

struct AccountRecord {
  int64_t balance = 0;
  uint64_t fence = 0;  // of the last write; 0 after Create
};

class AccountStore {
 public:
  explicit AccountStore(std::string directory)
      : directory_(std::move(directory)) {}

  // Creates the directory if it is missing, and accounts 0 .. accounts - 1
  // with `balance` and fence 0 (replacing what was there).
  absl::Status Create(int accounts, int64_t balance) const;

  absl::StatusOr<AccountRecord> Read(int account) const;

  // Stores `balance` written under `fence`. FailedPrecondition, changing
  // nothing, unless `fence` is above the stored fence.
  absl::Status Write(int account, int64_t balance, uint64_t fence) const;

  // "<directory>/account-007".
  std::string PathOf(int account) const;

 private:
  const std::string directory_;
};

}  // namespace lockd::demo

#endif  // LOCKD_DEMO_ACCOUNT_STORE_H_
