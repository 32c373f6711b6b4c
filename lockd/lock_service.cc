#include "lockd/lock_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

// Runs of one request while the table keeps changing under it (each run
// already retries inside the kernel).
constexpr int kAttempts = 8;

// A request the daemon runs for (lock, txn), with a sequence number of its
// own.
lockd_request DaemonRequest(lockd_opcode opcode, uint64_t lock_id,
                            uint64_t txn_id) {
  lockd_request request{};
  request.opcode = opcode;
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  request.seq = NextDaemonSeq();
  return request;
}

// The daemon's RELEASE for the owner of `acquired` (a call that gave up):
// its client's, with its ticket, and not older than the ACQUIRE, or the
// datapath would take it for a stale copy (RELEASE_DUP) and the wait would
// stay (a signed ACQUIRE carries its client's seq).
lockd_request OwnerRelease(const lockd_request& acquired) {
  lockd_request release =
      DaemonRequest(LOCKD_OP_RELEASE, acquired.lock_id, acquired.txn_id);
  release.ticket = acquired.ticket;
  release.client_id = acquired.client_id;
  release.seq = std::max(release.seq, acquired.seq + 1);
  return release;
}

}  // namespace

class PendingAcquire {
 public:
  explicit PendingAcquire(AcquireDone done) : done_(std::move(done)) {}

  // The request as it was first run: the same seq for every retransmission.
  lockd_request request() const {
    absl::MutexLock lock(&mu_);
    return request_;
  }
  void set_request(const lockd_request& request) {
    absl::MutexLock lock(&mu_);
    request_ = request;
  }
  void set_ticket(uint64_t ticket) {
    absl::MutexLock lock(&mu_);
    request_.ticket = ticket;
  }
  absl::Time since() const { return since_; }

  // Keeps the registration; returns false (and keeps nothing) if the call
  // finished before it was made.
  bool Registered(uint64_t handle) {
    absl::MutexLock lock(&mu_);
    if (!done_) return false;
    registration_ = handle;
    return true;
  }
  // Takes what finishing needs, once: the callback and the registration.
  std::pair<AcquireDone, uint64_t> Take() {
    absl::MutexLock lock(&mu_);
    return {std::exchange(done_, nullptr), std::exchange(registration_, 0)};
  }

 private:
  const absl::Time since_ = absl::Now();
  mutable absl::Mutex mu_;
  lockd_request request_ ABSL_GUARDED_BY(mu_){};
  AcquireDone done_ ABSL_GUARDED_BY(mu_);
  uint64_t registration_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<lockd_reply> LockService::Answer(const lockd_request& request) {
  lockd_request attempt = request;
  for (int i = 0; i < kAttempts; ++i) {
    absl::StatusOr<lockd_ctl> run = dispatcher_->Request(attempt);
    if (!run.ok()) return run.status();
    if (run->result == LOCKD_CTL_OK) return run->reply;
    if (run->result == LOCKD_CTL_MALFORMED)
      return absl::InvalidArgumentError(
          absl::StrCat("lock ", request.lock_id, ": malformed request (opcode ",
                       request.opcode, ", mode ", request.mode, ", policy ",
                       request.policy, ")"));
    if (run->result != LOCKD_CTL_NO_REPLY)
      return absl::InternalError(
          absl::StrCat("the control program refused the request (result ",
                       run->result, ")"));
    // The run may have changed the table before it gave up: ask again as a
    // retransmission, which finds the record it may have made.
    attempt.flags |= LOCKD_FLAG_RETRANSMIT;
  }
  return absl::UnavailableError(absl::StrCat("lock ", request.lock_id,
                                             " kept changing under ", kAttempts,
                                             " attempts; try again"));
}

absl::StatusOr<lockd_reply> LockService::AnswerCaller(
    lockd_request* request, absl::Span<const uint8_t> signed_request) {
  if (signed_request.empty()) return Answer(*request);
  absl::StatusOr<lockd_ctl> run =
      dispatcher_->Wire(signed_request, lockd_endpoint{}, LOCKD_MEMBER_LOCAL);
  if (!run.ok()) return run.status();
  if (run->result == LOCKD_CTL_FORGED)
    return absl::UnauthenticatedError(
        absl::StrCat("lock ", request->lock_id, ", txn ", request->txn_id,
                     ": the signed request failed authentication (unknown "
                     "client, wrong key, or a seq already used)"));
  if (run->result == LOCKD_CTL_MALFORMED)
    return absl::InvalidArgumentError("malformed signed request");
  *request = run->req;  // what the message said, its client included
  request->member_flags = LOCKD_MEMBER_LOCAL;
  if (run->result == LOCKD_CTL_OK) return run->reply;
  // Served as far as the table allowed: go on for this client, as with
  // any request that met a changing table.
  request->flags |= LOCKD_FLAG_RETRANSMIT;
  return Answer(*request);
}

bool LockService::Finish(const std::shared_ptr<PendingAcquire>& pending,
                         absl::StatusOr<lockd_reply> answer) {
  auto [done, registration] = pending->Take();
  if (!done) return false;
  if (registration != 0) calls_->Remove(registration);
  {
    absl::MutexLock lock(&mu_);
    waiting_.erase(pending);
  }
  done(std::move(answer));
  return true;
}

std::shared_ptr<PendingAcquire> LockService::Acquire(const AcquireArgs& args,
                                                     AcquireDone done) {
  counters_->Add(DaemonCounters::kGrpcAcquire);
  lockd_request request =
      DaemonRequest(LOCKD_OP_ACQUIRE, args.lock_id, args.txn_id);
  request.mode = args.mode;
  request.policy = args.policy;
  request.lease_ms = args.lease_ms;
  request.wait_ms = args.wait_ms;
  // A caller's retry of the same (lock, txn) finds the record its first
  // call made, as a UDP retransmission does.
  request.flags = LOCKD_FLAG_RETRANSMIT;
  request.member_flags = LOCKD_MEMBER_LOCAL;
  if (!args.signed_request.empty()) {
    request.seq = args.seq;
    request.client_id = args.client_id;
  }

  auto pending = std::make_shared<PendingAcquire>(std::move(done));
  pending->set_request(request);
  // Registered before the request runs: a grant may come right after it.
  std::weak_ptr<PendingAcquire> weak = pending;
  const uint64_t handle = calls_->Add(
      args.lock_id, args.txn_id, [this, weak](const lockd_reply& reply) {
        if (std::shared_ptr<PendingAcquire> p = weak.lock()) OnNotice(p, reply);
      });
  if (!pending->Registered(handle)) {
    calls_->Remove(handle);
    return pending;
  }
  {
    absl::MutexLock lock(&mu_);
    waiting_.insert(pending);
  }
  absl::StatusOr<lockd_reply> answer =
      AnswerCaller(&request, args.signed_request);
  pending->set_request(request);
  if (answer.ok() && answer->opcode == LOCKD_OP_QUEUED) {
    counters_->Add(DaemonCounters::kGrpcQueued);
    pending->set_ticket(answer->ticket);
    return pending;
  }
  Finish(pending, std::move(answer));
  return pending;
}

void LockService::OnNotice(const std::shared_ptr<PendingAcquire>& pending,
                           const lockd_reply& reply) {
  switch (reply.opcode) {
    case LOCKD_OP_RELEASED:  // a Release cancelled the wait (see Release)
      Finish(pending, absl::CancelledError(absl::StrCat(
                          "txn ", reply.txn_id, " cancelled its wait for lock ",
                          reply.lock_id, " with a Release")));
      return;
    case LOCKD_OP_GRANTED:
    case LOCKD_OP_REJECTED:
      break;
    default:
      return;
  }
  // A notice carries the seq of the ACQUIRE that made the member. Another
  // seq is a member this call found rather than made (a caller's retry), or
  // a notice of an earlier call of the same owner still in flight: the
  // table, asked again, says which.
  const lockd_request request = pending->request();
  if (reply.seq == request.seq) {
    Finish(pending, reply);
    return;
  }
  absl::StatusOr<lockd_reply> answer = Answer(request);
  if (answer.ok() && answer->opcode == LOCKD_OP_QUEUED) return;
  Finish(pending, std::move(answer));
}

void LockService::Cancel(const std::shared_ptr<PendingAcquire>& pending) {
  auto [done, registration] = pending->Take();
  if (!done) return;
  if (registration != 0) calls_->Remove(registration);
  {
    absl::MutexLock lock(&mu_);
    waiting_.erase(pending);
  }
  counters_->Add(DaemonCounters::kGrpcCancelled);
  // Ends the wait, or the hold a grant that raced the cancellation made.
  const lockd_request acquired = pending->request();
  absl::StatusOr<lockd_reply> released = Answer(OwnerRelease(acquired));
  done(absl::CancelledError(absl::StrCat(
      "txn ", acquired.txn_id, " gave up waiting for lock ", acquired.lock_id,
      released.ok()
          ? "; the wait is cancelled"
          : "; cancelling the wait failed: " + released.status().ToString())));
}

absl::StatusOr<lockd_reply> LockService::Release(
    uint64_t lock_id, uint64_t txn_id,
    absl::Span<const uint8_t> signed_request) {
  counters_->Add(DaemonCounters::kGrpcRelease);
  lockd_request request = DaemonRequest(LOCKD_OP_RELEASE, lock_id, txn_id);
  absl::StatusOr<lockd_reply> answer = AnswerCaller(&request, signed_request);
  if (answer.ok() && answer->opcode == LOCKD_OP_RELEASED && answer->fence == 0)
    calls_->Deliver(*answer);  // a wait cancelled: end the call waiting
  return answer;
}

absl::StatusOr<lockd_reply> LockService::Renew(
    uint64_t lock_id, uint64_t txn_id, uint32_t lease_ms,
    absl::Span<const uint8_t> signed_request) {
  counters_->Add(DaemonCounters::kGrpcRenew);
  lockd_request request = DaemonRequest(LOCKD_OP_RENEW, lock_id, txn_id);
  request.lease_ms = lease_ms;
  return AnswerCaller(&request, signed_request);
}

void LockService::Recheck(absl::Duration age) {
  std::vector<std::shared_ptr<PendingAcquire>> old;
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& pending : waiting_)
      if (now - pending->since() >= age) old.push_back(pending);
  }
  for (const auto& pending : old) {
    counters_->Add(DaemonCounters::kGrpcRechecked);
    const lockd_request request = pending->request();
    // Past its wait_ms and a moment more, the expiry's notice was lost:
    // asking again would queue the caller anew.
    if (request.wait_ms != 0 &&
        now - pending->since() > absl::Milliseconds(request.wait_ms) + age) {
      lockd_reply expired{};
      expired.opcode = LOCKD_OP_REJECTED;
      expired.status = LOCKD_STATUS_WAIT_EXPIRED;
      expired.lock_id = request.lock_id;
      expired.txn_id = request.txn_id;
      expired.seq = request.seq;
      if (Finish(pending, expired)) (void)Answer(OwnerRelease(request));
      continue;
    }
    absl::StatusOr<lockd_reply> answer = Answer(request);
    if (answer.ok() && answer->opcode == LOCKD_OP_QUEUED) continue;
    Finish(pending, std::move(answer));
  }
}

size_t LockService::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

}  // namespace lockd
