// The lock service for callers inside the daemon's process (the gRPC
// LockService is a thin adapter over it): their requests run through the
// control program on the one lock table, as LOCAL members, so they share
// every lock and FIFO queue with the UDP clients of the fast path.
//
// An Acquire that queues waits without a thread: its call is registered in
// LocalCalls before the request runs, and the notice that ends the wait
// (GRANTED, or REJECTED/WAIT_EXPIRED) completes it, from whichever thread
// delivers the notice. A caller that goes away cancels: the wait is
// released in the table (a grant that raced the cancellation is released
// with it), so nothing is left held for a caller that is gone.
#ifndef LOCKD_LOCKD_LOCK_SERVICE_H_
#define LOCKD_LOCKD_LOCK_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lockd/daemon_counters.h"
#include "lockd/dispatcher.h"
#include "lockd/notifier.h"

namespace lockd {

struct AcquireArgs {
  uint64_t lock_id = 0;
  uint64_t txn_id = 0;
  lockd_mode mode = LOCKD_MODE_EXCLUSIVE;
  lockd_policy policy = LOCKD_POLICY_WAIT;
  uint32_t lease_ms = 0;  // 0 = the server's default
  uint32_t wait_ms = 0;   // 0 = no limit
  // The request as a signed wire message (docs/security.md), whose fields
  // the ones above and below repeat; empty: an unauthenticated caller
  // (LOCKD_CLIENT_NONE), whom the adapter let in from an open subnet.
  std::vector<uint8_t> signed_request;
  // A signed request's client and seq, known before it runs: a notice for
  // the member it makes may come at once.
  uint32_t client_id = LOCKD_CLIENT_NONE;
  uint64_t seq = 0;
};

// The end of an Acquire: the reply (GRANTED, or REJECTED with its status),
// or an error: Cancelled when the caller cancelled or a Release cancelled
// the wait, Unavailable when the table kept changing under every attempt.
using AcquireDone = std::function<void(absl::StatusOr<lockd_reply>)>;

class PendingAcquire;

class LockService {
 public:
  // All must outlive the service.
  LockService(Dispatcher* dispatcher, LocalCalls* calls,
              DaemonCounters* counters)
      : dispatcher_(dispatcher), calls_(calls), counters_(counters) {}

  // Starts an acquire. `done` runs exactly once: before Acquire returns
  // when the answer is immediate, or later, on the thread that delivers the
  // notice. The handle cancels it.
  std::shared_ptr<PendingAcquire> Acquire(const AcquireArgs& args,
                                          AcquireDone done);
  // The caller went away: unless `done` ran already, the wait is released
  // in the table and `done` runs with Cancelled.
  void Cancel(const std::shared_ptr<PendingAcquire>& pending);

  // RELEASED (fence 0 when it cancelled a wait), or REJECTED with why.
  // `signed_request` as in AcquireArgs.
  absl::StatusOr<lockd_reply> Release(
      uint64_t lock_id, uint64_t txn_id,
      absl::Span<const uint8_t> signed_request = {});
  // RENEWED with the lease granted, or REJECTED with why.
  absl::StatusOr<lockd_reply> Renew(
      uint64_t lock_id, uint64_t txn_id, uint32_t lease_ms,
      absl::Span<const uint8_t> signed_request = {});

  // Asks the table again for every call that has waited longer than `age`
  // (a retransmission: a notice lost with a full event ring must not leave
  // a granted caller waiting). Calls whose wait_ms passed end with
  // WAIT_EXPIRED here if their notice never came.
  void Recheck(absl::Duration age);

  // Calls waiting now.
  size_t waiting() const;

 private:
  // Runs `request`, again while the table says it kept changing.
  absl::StatusOr<lockd_reply> Answer(const lockd_request& request);
  // Runs a caller's request: `request` as is when unsigned; else the
  // signed message, authenticated by the control program, after which
  // *request is what it parsed (its client id included). Unauthenticated
  // when the message fails.
  absl::StatusOr<lockd_reply> AnswerCaller(
      lockd_request* request, absl::Span<const uint8_t> signed_request);
  void OnNotice(const std::shared_ptr<PendingAcquire>& pending,
                const lockd_reply& reply);
  // Unregisters and finishes `pending` with `answer` (false if it had
  // finished already).
  bool Finish(const std::shared_ptr<PendingAcquire>& pending,
              absl::StatusOr<lockd_reply> answer);

  Dispatcher* const dispatcher_;
  LocalCalls* const calls_;
  DaemonCounters* const counters_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::shared_ptr<PendingAcquire>> waiting_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_LOCK_SERVICE_H_
