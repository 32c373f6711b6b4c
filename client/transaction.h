// Transactions: strict two-phase locking over lockd. A transaction takes
// locks one by one with Lock() and holds every one of them until Commit() or
// Abort() releases them all; destroying an open transaction aborts it.
//
// Each granted lock comes with its fencing token (docs/semantics.md): pass it
// to whatever the lock protects, so that a holder whose lease ran out cannot
// write after the next holder. Locking a lock the transaction already holds
// in the same or a stronger mode returns the same fence without asking the
// server; SHARED -> EXCLUSIVE is an upgrade, granted only while no one else
// holds or awaits the lock (ABORTED otherwise), and it changes the fence.
//
// Errors (absl::Status codes; messages name the server, the lock by name and
// id, and the txn):
//   ABORTED             conflict under NO_WAIT, death under WAIT_DIE, refused
//                       upgrade: Restart() (or Abort) and run the
//                       transaction again
//   DEADLINE_EXCEEDED   not granted before the call's deadline; the wait is
//                       cancelled on the server
//   FAILED_PRECONDITION a held lock was lost (its lease ended, it was
//                       force-released): its fence must not be used; or the
//                       transaction is not open
//   UNAVAILABLE         the lock's server answered neither over UDP nor gRPC
//   RESOURCE_EXHAUSTED  the server had no room for the request
//
// Wait-die: a transaction's txn id encodes its start time (smaller = older).
// Under WAIT_DIE an older transaction waits for a younger one and a younger
// one dies (ABORTED). Restart() releases everything but keeps the txn id, so
// the restarted transaction is as old as the first attempt and eventually
// becomes the oldest: it cannot starve. RunTransaction does this loop.
#ifndef LOCKD_CLIENT_TRANSACTION_H_
#define LOCKD_CLIENT_TRANSACTION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace lockd::client {

struct Hold;

struct TransactionOptions {
  // What Lock() does on a conflict unless its LockOptions say otherwise.
  Policy policy = Policy::kWait;
  // Lease asked for each lock, renewed in the background while held;
  // 0 = the server's default (10 s unless the daemon was configured
  // otherwise). Keep it well above ClientOptions::queued_probe_interval:
  // the client counts a lease granted from the queue from its last probe.
  uint32_t lease_ms = 0;
};

struct LockOptions {
  // Overrides the transaction's policy for this call; kNoWait makes the call
  // a try-lock.
  std::optional<Policy> policy;
  // A wait still queued at this time cancels itself (DEADLINE_EXCEEDED).
  absl::Time deadline = absl::InfiniteFuture();
  // Overrides TransactionOptions::lease_ms for this lock; 0 = don't.
  uint32_t lease_ms = 0;
  // Called once, from the client's renewal thread, if the lock is lost while
  // held: the lease ended (the server rejected a renewal, or could not be
  // reached before the lease ran out) or an operator force-released it. It
  // must not block and must not call into the transaction.
  std::function<void(const absl::Status& why)> on_lost;
};

class Transaction {
 public:
  // Transactions come from Client::Begin. The Client must outlive them.
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&& other) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();  // aborts an open transaction

  // Takes the lock named `name` (LockIdForName) or with id `lock_id` in
  // `mode` and returns its fence. The transaction stays open whatever the
  // outcome; a failed Lock leaves the locks held before it held.
  absl::StatusOr<uint64_t> Lock(absl::string_view name, Mode mode,
                                const LockOptions& options = LockOptions());
  absl::StatusOr<uint64_t> Lock(uint64_t lock_id, Mode mode,
                                const LockOptions& options = LockOptions());

  // Releases every lock and closes the transaction. FAILED_PRECONDITION,
  // naming the lock, if any lock was lost while held: the transaction did
  // not hold all its locks until its end, and its fences must not be used.
  // UNAVAILABLE if a lock could not be released (it stays held until its
  // lease runs out).
  absl::Status Commit();
  // Releases every lock and closes the transaction. Only errors releasing
  // are reported (UNAVAILABLE); lost locks are not an error here.
  absl::Status Abort();
  // Releases every lock, as Abort, and opens the transaction again with the
  // same txn id: the way to retry after ABORTED (see wait-die above).
  absl::Status Restart();

  uint64_t txn_id() const { return txn_id_; }
  bool is_open() const { return open_; }
  // Whether a lock held now was lost (see LockOptions::on_lost).
  bool lost() const;

 private:
  friend class Client;
  Transaction(Client::Impl* impl, uint64_t txn_id,
              const TransactionOptions& options);

  absl::StatusOr<uint64_t> LockById(uint64_t lock_id, std::string name,
                                    Mode mode, const LockOptions& options);
  // Releases every hold; the first error, a lost lock first.
  absl::Status ReleaseAll();

  Client::Impl* impl_ = nullptr;  // null once moved from
  uint64_t txn_id_ = 0;
  TransactionOptions options_;
  std::map<uint64_t, std::shared_ptr<Hold>> holds_;  // by lock id
  bool open_ = false;
};

// Runs `body` in a new transaction and commits it. When the body fails
// ABORTED (a conflict, or a death under WAIT_DIE) the transaction releases
// its locks at once and, after a short randomized pause that grows with
// each attempt (1 to 8 ms), runs again with the same txn id, at most
// `max_attempts` times in all. Returns the
// commit's status, the body's first error other than ABORTED (after
// aborting), or ABORTED when every attempt was aborted.
absl::Status RunTransaction(
    Client& client, const TransactionOptions& options,
    const std::function<absl::Status(Transaction& txn)>& body,
    int max_attempts = 100);

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_TRANSACTION_H_
