#include "client/transaction.h"

#include <random>
#include <string>
#include <utility>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "client/backoff.h"
#include "client/client_impl.h"

namespace lockd::client {
namespace {

lockd_mode WireMode(Mode mode) {
  return mode == Mode::kShared ? LOCKD_MODE_SHARED : LOCKD_MODE_EXCLUSIVE;
}

lockd_policy WirePolicy(Policy policy) {
  switch (policy) {
    case Policy::kWait:
      return LOCKD_POLICY_WAIT;
    case Policy::kNoWait:
      return LOCKD_POLICY_NO_WAIT;
    case Policy::kWaitDie:
      return LOCKD_POLICY_WAIT_DIE;
  }
  return LOCKD_POLICY_WAIT;
}

}  // namespace

Transaction::Transaction(Client::Impl* impl, uint64_t txn_id,
                         const TransactionOptions& options)
    : impl_(impl), txn_id_(txn_id), options_(options), open_(true) {}

Transaction::Transaction(Transaction&& other) noexcept
    : impl_(std::exchange(other.impl_, nullptr)),
      txn_id_(other.txn_id_),
      options_(other.options_),
      holds_(std::move(other.holds_)),
      open_(std::exchange(other.open_, false)) {}

Transaction& Transaction::operator=(Transaction&& other) noexcept {
  if (this != &other) {
    if (open_) Abort().IgnoreError();
    impl_ = std::exchange(other.impl_, nullptr);
    txn_id_ = other.txn_id_;
    options_ = other.options_;
    holds_ = std::move(other.holds_);
    open_ = std::exchange(other.open_, false);
  }
  return *this;
}

Transaction::~Transaction() {
  // An error here has no one to go to; the leases end the holds anyway.
  if (open_) Abort().IgnoreError();
}

absl::StatusOr<uint64_t> Transaction::Lock(absl::string_view name, Mode mode,
                                           const LockOptions& options) {
  return LockById(LockIdForName(name), std::string(name), mode, options);
}

absl::StatusOr<uint64_t> Transaction::Lock(uint64_t lock_id, Mode mode,
                                           const LockOptions& options) {
  return LockById(lock_id, "", mode, options);
}

absl::StatusOr<uint64_t> Transaction::LockById(uint64_t lock_id,
                                               std::string name, Mode mode,
                                               const LockOptions& options) {
  if (!open_)
    return absl::FailedPreconditionError(absl::StrCat(
        Client::Impl::DescribeTxn(txn_id_), " locking ",
        Client::Impl::DescribeLock(LockTarget{0, lock_id, std::move(name)}),
        ": the transaction has ended (committed or aborted)"));
  const lockd_policy policy =
      WirePolicy(options.policy.value_or(options_.policy));
  if (auto held = holds_.find(lock_id); held != holds_.end()) {
    Hold& hold = *held->second;
    {
      absl::MutexLock lock(&hold.mu);
      if (!hold.lost.ok()) return hold.lost;
      // EXCLUSIVE covers both modes; SHARED covers SHARED.
      if (hold.mode == LOCKD_MODE_EXCLUSIVE || mode == Mode::kShared)
        return hold.fence;
    }
    return impl_->Upgrade(hold, policy, options.deadline);
  }
  absl::StatusOr<std::shared_ptr<Hold>> hold = impl_->Acquire(
      impl_->Target(lock_id, std::move(name)), txn_id_, WireMode(mode), policy,
      options.lease_ms != 0 ? options.lease_ms : options_.lease_ms,
      options.deadline, options.on_lost);
  if (!hold.ok()) return hold.status();
  uint64_t fence;
  {
    absl::MutexLock lock(&(*hold)->mu);
    fence = (*hold)->fence;
  }
  holds_[lock_id] = *std::move(hold);
  return fence;
}

absl::Status Transaction::ReleaseAll() {
  absl::Status result;
  for (const auto& [lock_id, hold] : holds_) {
    absl::Status released = impl_->Release(hold);
    if (result.ok() || (absl::IsFailedPrecondition(released) &&
                        !absl::IsFailedPrecondition(result)))
      result = released;
  }
  holds_.clear();
  return result;
}

absl::Status Transaction::Commit() {
  if (!open_)
    return absl::FailedPreconditionError(
        absl::StrCat(Client::Impl::DescribeTxn(txn_id_),
                     ": cannot commit: the transaction has ended"));
  open_ = false;
  return ReleaseAll();
}

absl::Status Transaction::Abort() {
  open_ = false;
  absl::Status released = ReleaseAll();
  return absl::IsFailedPrecondition(released) ? absl::OkStatus() : released;
}

absl::Status Transaction::Restart() {
  absl::Status aborted = Abort();
  open_ = impl_ != nullptr;
  return aborted;
}

bool Transaction::lost() const {
  for (const auto& [lock_id, hold] : holds_) {
    absl::MutexLock lock(&hold->mu);
    if (!hold->lost.ok()) return true;
  }
  return false;
}

absl::Status RunTransaction(
    Client& client, const TransactionOptions& options,
    const std::function<absl::Status(Transaction& txn)>& body,
    int max_attempts) {
  Transaction txn = client.Begin(options);
  std::minstd_rand random(static_cast<uint32_t>(txn.txn_id()));
  absl::Status outcome;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    if (attempt > 0) {
      // Release first: others wait for the locks of the attempt that died
      // (or die on them) as long as it keeps them. Then pause: the
      // transaction that won is still finishing, and retrying at once would
      // most likely die again.
      if (absl::Status restarted = txn.Restart(); !restarted.ok())
        return restarted;
      absl::SleepFor(RetryPause(attempt, (random() % 1000) / 1000.0));
    }
    outcome = body(txn);
    if (outcome.ok()) return txn.Commit();
    if (!absl::IsAborted(outcome)) {
      txn.Abort().IgnoreError();  // the body's error is the one to report
      return outcome;
    }
  }
  // The last attempt's message names the txn, the lock and the server.
  return absl::AbortedError(
      absl::StrCat("aborted in all ", max_attempts,
                   " attempts; the last: ", outcome.message()));
}

}  // namespace lockd::client
