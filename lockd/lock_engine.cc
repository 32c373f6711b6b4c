#include "lockd/lock_engine.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

constexpr uint64_t kNsPerMs = 1000 * 1000;

// Whether a request for `mode` may join the current holders of `lock`.
bool CanJoinHolders(const LockEngine::LockState& lock, uint8_t mode) {
  return lock.holders.empty() ||
         (lock.mode == LOCKD_MODE_SHARED && mode == LOCKD_MODE_SHARED);
}

bool IsIdle(const LockEngine::LockState& lock) {
  return lock.holders.empty() && lock.queue.empty();
}

// X covers S and X; S covers S.
bool Covers(uint8_t held_mode, uint8_t asked_mode) {
  return held_mode == LOCKD_MODE_EXCLUSIVE || asked_mode == LOCKD_MODE_SHARED;
}

bool IsExpired(const LockEngine::Hold& hold, uint64_t now_ns) {
  return hold.lease_expires_ns < now_ns;
}

bool IsWellFormed(const LockEngine::Request& request) {
  switch (request.opcode) {
    case LOCKD_OP_ACQUIRE:
      if (request.mode == LOCKD_MODE_NONE) return false;
      break;
    case LOCKD_OP_RELEASE:
    case LOCKD_OP_RENEW:
    case LOCKD_OP_KICK:
      break;
    default:
      return false;
  }
  return request.mode <= LOCKD_MODE_EXCLUSIVE &&
         request.policy < LOCKD_POLICY_COUNT;
}

// The owner's live (not cancelled) queue entry, if it waits.
LockEngine::Waiter* FindLiveWaiter(LockEngine::LockState& lock,
                                   uint64_t txn_id) {
  for (LockEngine::Waiter& waiter : lock.queue) {
    if (!waiter.cancelled && waiter.txn_id == txn_id) return &waiter;
  }
  return nullptr;
}

// Lowers min_txn for a new member (an idle lock's is kIdleMinTxn).
void AdmitMember(LockEngine::LockState& lock, uint64_t txn_id) {
  lock.min_txn = std::min(lock.min_txn, txn_id);
}

// A RELEASE sent before the ACQUIRE that created the record it would act on.
bool IsStale(uint32_t release_seq, uint32_t record_seq) {
  return static_cast<int32_t>(release_seq - record_seq) < 0;
}

LockEngine::Reply MakeReply(uint8_t opcode, uint8_t status) {
  LockEngine::Reply reply;
  reply.opcode = opcode;
  reply.status = status;
  return reply;
}

LockEngine::Reply Granted(const LockEngine::Hold& hold) {
  LockEngine::Reply reply = MakeReply(LOCKD_OP_GRANTED, LOCKD_STATUS_OK);
  reply.fence = hold.fence;
  reply.lease_ms = hold.lease_ms;
  return reply;
}

LockEngine::Reply Queued(uint32_t queue_pos) {
  LockEngine::Reply reply = MakeReply(LOCKD_OP_QUEUED, LOCKD_STATUS_OK);
  reply.queue_pos = queue_pos;
  return reply;
}

LockEngine::Reply Released(uint64_t fence) {
  LockEngine::Reply reply = MakeReply(LOCKD_OP_RELEASED, LOCKD_STATUS_OK);
  reply.fence = fence;
  return reply;
}

LockEngine::Reply Rejected(uint8_t status) {
  return MakeReply(LOCKD_OP_REJECTED, status);
}

}  // namespace

LockEngine::LockEngine(Config config) : config_(config) {}

LockEngine::Outcome LockEngine::Apply(const Request& request, uint64_t now_ns) {
  Outcome outcome;
  if (!IsWellFormed(request)) {
    Count(LOCKD_STAT_MALFORMED, &outcome);
    return outcome;
  }
  switch (request.opcode) {
    case LOCKD_OP_ACQUIRE:
      Acquire(request, now_ns, &outcome);
      break;
    case LOCKD_OP_RELEASE:
      Release(request, now_ns, &outcome);
      break;
    case LOCKD_OP_RENEW:
      Renew(request, now_ns, &outcome);
      break;
    case LOCKD_OP_KICK: {
      // Without a batch limit nothing is ever left to continue, so a KICK
      // finds the head incompatible (or the queue empty) and changes nothing;
      // running the loop anyway keeps it honest if that ever stops holding.
      auto it = locks_.find(request.lock_id);
      if (it != locks_.end()) {
        GrantFromHead(request.lock_id, it->second, now_ns, &outcome);
      }
      break;
    }
  }
  return outcome;
}

void LockEngine::Acquire(const Request& request, uint64_t now_ns,
                         Outcome* outcome) {
  Count(LOCKD_STAT_ACQUIRE, outcome);
  LockState& lock = locks_[request.lock_id];
  const uint64_t txn_id = request.txn_id;

  if (auto held = lock.holders.find(txn_id); held != lock.holders.end()) {
    Hold& hold = held->second;
    if (IsExpired(hold, now_ns)) {
      Count(LOCKD_STAT_REJECT_EXPIRED, outcome);
      outcome->reply = Rejected(LOCKD_STATUS_LEASE_EXPIRED);
    } else if (Covers(hold.mode, request.mode)) {
      Count(LOCKD_STAT_ACQUIRE_DUP, outcome);
      outcome->reply = Granted(hold);
    } else if (lock.holders.size() == 1 && lock.queue.empty()) {
      hold.mode = LOCKD_MODE_EXCLUSIVE;
      lock.mode = LOCKD_MODE_EXCLUSIVE;
      hold.fence = ++lock.fence;
      hold.lease_ms = EffectiveLeaseMs(request.lease_ms);
      hold.lease_expires_ns = now_ns + hold.lease_ms * kNsPerMs;
      Count(LOCKD_STAT_UPGRADE, outcome);
      outcome->reply = Granted(hold);
    } else {
      Count(LOCKD_STAT_REJECT_UPGRADE, outcome);
      outcome->reply = Rejected(LOCKD_STATUS_UPGRADE_CONFLICT);
    }
    return;
  }

  if (FindLiveWaiter(lock, txn_id) != nullptr) {
    Count(LOCKD_STAT_ACQUIRE_DUP, outcome);
    outcome->reply = Queued(0);
    return;
  }

  const bool conflict =
      !lock.queue.empty() || !CanJoinHolders(lock, request.mode);
  if (!conflict) {
    AdmitMember(lock, txn_id);
    const Hold& hold = AddHolder(lock, txn_id, request.mode, request.seq,
                                 EffectiveLeaseMs(request.lease_ms), now_ns);
    Count(LOCKD_STAT_GRANT_IMMEDIATE, outcome);
    outcome->reply = Granted(hold);
    return;
  }

  if (request.policy == LOCKD_POLICY_NO_WAIT) {
    Count(LOCKD_STAT_REJECT_CONFLICT, outcome);
    outcome->reply = Rejected(LOCKD_STATUS_CONFLICT);
    return;
  }
  // The lock is busy here (it conflicts), so min_txn bounds every member.
  if (request.policy == LOCKD_POLICY_WAIT_DIE && !(txn_id < lock.min_txn)) {
    Count(LOCKD_STAT_REJECT_DIE, outcome);
    outcome->reply = Rejected(LOCKD_STATUS_DIE);
    return;
  }

  AdmitMember(lock, txn_id);
  Waiter waiter;
  waiter.txn_id = txn_id;
  waiter.mode = request.mode;
  waiter.policy = request.policy;
  waiter.seq = request.seq;
  waiter.lease_ms = EffectiveLeaseMs(request.lease_ms);
  waiter.enqueued_ns = now_ns;
  waiter.deadline_ns =
      request.wait_ms == 0 ? 0 : now_ns + request.wait_ms * kNsPerMs;
  waiter.queue_pos = static_cast<uint32_t>(lock.queue.size());
  lock.queue.push_back(waiter);
  Count(LOCKD_STAT_QUEUED, outcome);
  outcome->reply = Queued(waiter.queue_pos);
}

void LockEngine::Release(const Request& request, uint64_t now_ns,
                         Outcome* outcome) {
  Count(LOCKD_STAT_RELEASE, outcome);
  const OwnerKey owner(request.lock_id, request.txn_id);

  if (auto it = locks_.find(request.lock_id); it != locks_.end()) {
    LockState& lock = it->second;
    if (auto held = lock.holders.find(request.txn_id);
        held != lock.holders.end()) {
      if (IsStale(request.seq, held->second.seq)) {
        Count(LOCKD_STAT_RELEASE_DUP, outcome);
        outcome->reply = Released(0);
        return;
      }
      if (IsExpired(held->second, now_ns)) {
        Count(LOCKD_STAT_REJECT_EXPIRED, outcome);
        outcome->reply = Rejected(LOCKD_STATUS_LEASE_EXPIRED);
        return;
      }
      const uint64_t fence = held->second.fence;
      RemoveHolder(lock, request.txn_id);
      released_[owner] = Memo{fence, LOCKD_STATUS_OK};
      Count(LOCKD_STAT_RELEASED, outcome);
      outcome->reply = Released(fence);
      GrantFromHead(request.lock_id, lock, now_ns, outcome);
      return;
    }
    if (Waiter* waiter = FindLiveWaiter(lock, request.txn_id)) {
      if (IsStale(request.seq, waiter->seq)) {
        Count(LOCKD_STAT_RELEASE_DUP, outcome);
        outcome->reply = Released(0);
        return;
      }
      waiter->cancelled = true;
      released_[owner] = Memo{0, LOCKD_STATUS_OK};
      Count(LOCKD_STAT_CANCELLED, outcome);
      outcome->reply = Released(0);
      GrantFromHead(request.lock_id, lock, now_ns, outcome);
      return;
    }
  }

  if (auto memo = released_.find(owner); memo != released_.end()) {
    if (memo->second.status == LOCKD_STATUS_LEASE_EXPIRED) {
      Count(LOCKD_STAT_REJECT_EXPIRED, outcome);
      outcome->reply = Rejected(LOCKD_STATUS_LEASE_EXPIRED);
    } else if (memo->second.status != LOCKD_STATUS_OK) {
      Count(LOCKD_STAT_REJECT_NOT_HOLDER, outcome);
      outcome->reply = Rejected(memo->second.status);
    } else {
      Count(LOCKD_STAT_RELEASE_DUP, outcome);
      outcome->reply = Released(memo->second.fence);
    }
    return;
  }
  Count(LOCKD_STAT_REJECT_NOT_HOLDER, outcome);
  outcome->reply = Rejected(LOCKD_STATUS_NOT_HOLDER);
}

void LockEngine::Renew(const Request& request, uint64_t now_ns,
                       Outcome* outcome) {
  auto it = locks_.find(request.lock_id);
  Hold* hold = nullptr;
  if (it != locks_.end()) {
    auto held = it->second.holders.find(request.txn_id);
    if (held != it->second.holders.end()) hold = &held->second;
  }
  if (hold == nullptr) {
    // A holder whose hold the daemon ended learns why.
    auto memo = released_.find({request.lock_id, request.txn_id});
    const uint8_t status =
        memo != released_.end() && memo->second.status != LOCKD_STATUS_OK
            ? memo->second.status
            : uint8_t{LOCKD_STATUS_NOT_HOLDER};
    Count(status == LOCKD_STATUS_LEASE_EXPIRED ? LOCKD_STAT_REJECT_EXPIRED
                                               : LOCKD_STAT_REJECT_NOT_HOLDER,
          outcome);
    outcome->reply = Rejected(status);
    return;
  }
  if (IsExpired(*hold, now_ns)) {
    Count(LOCKD_STAT_REJECT_EXPIRED, outcome);
    outcome->reply = Rejected(LOCKD_STATUS_LEASE_EXPIRED);
    return;
  }
  hold->lease_ms = EffectiveLeaseMs(request.lease_ms);
  hold->lease_expires_ns = now_ns + hold->lease_ms * kNsPerMs;
  Count(LOCKD_STAT_RENEW, outcome);
  Reply reply = MakeReply(LOCKD_OP_RENEWED, LOCKD_STATUS_OK);
  reply.fence = hold->fence;
  reply.lease_ms = hold->lease_ms;
  outcome->reply = reply;
}

absl::StatusOr<LockEngine::Outcome> LockEngine::ExpireHolder(uint64_t lock_id,
                                                             uint64_t txn_id,
                                                             uint64_t now_ns) {
  return EndHold(lock_id, txn_id, now_ns, LOCKD_STATUS_LEASE_EXPIRED);
}

absl::StatusOr<LockEngine::Outcome> LockEngine::ForceRelease(uint64_t lock_id,
                                                             uint64_t txn_id,
                                                             uint64_t now_ns) {
  return EndHold(lock_id, txn_id, now_ns, LOCKD_STATUS_FORCE_RELEASED);
}

absl::StatusOr<LockEngine::Outcome> LockEngine::EndHold(uint64_t lock_id,
                                                        uint64_t txn_id,
                                                        uint64_t now_ns,
                                                        uint8_t reason) {
  auto it = locks_.find(lock_id);
  if (it == locks_.end() || it->second.holders.count(txn_id) == 0) {
    return absl::NotFoundError(
        absl::StrCat("lock ", lock_id, " has no holder txn ", txn_id));
  }
  LockState& lock = it->second;
  if (reason == LOCKD_STATUS_LEASE_EXPIRED &&
      !IsExpired(lock.holders.at(txn_id), now_ns)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease of txn ", txn_id, " on lock ", lock_id, " has not expired"));
  }
  Outcome outcome;
  released_[{lock_id, txn_id}] = Memo{lock.holders.at(txn_id).fence, reason};
  RemoveHolder(lock, txn_id);
  GrantFromHead(lock_id, lock, now_ns, &outcome);
  return outcome;
}

std::vector<std::pair<uint64_t, uint64_t>> LockEngine::DueHolders(
    uint64_t now_ns) const {
  std::vector<std::pair<uint64_t, uint64_t>> due;
  for (const auto& [lock_id, lock] : locks_)
    for (const auto& [txn_id, hold] : lock.holders)
      if (IsExpired(hold, now_ns)) due.emplace_back(lock_id, txn_id);
  return due;
}

std::vector<std::pair<uint64_t, uint64_t>> LockEngine::DueWaiters(
    uint64_t now_ns) const {
  std::vector<std::pair<uint64_t, uint64_t>> due;
  for (const auto& [lock_id, lock] : locks_)
    for (const Waiter& w : lock.queue)
      if (!w.cancelled && w.deadline_ns != 0 && w.deadline_ns < now_ns)
        due.emplace_back(lock_id, w.txn_id);
  return due;
}

void LockEngine::Install(uint64_t lock_id, LockState state) {
  locks_[lock_id] = std::move(state);
}

std::optional<LockEngine::LockState> LockEngine::Remove(uint64_t lock_id) {
  auto it = locks_.find(lock_id);
  if (it == locks_.end()) return std::nullopt;
  LockState state = std::move(it->second);
  locks_.erase(it);
  return state;
}

std::vector<uint64_t> LockEngine::LockIds() const {
  std::vector<uint64_t> ids;
  for (const auto& [lock_id, lock] : locks_) ids.push_back(lock_id);
  return ids;
}

absl::StatusOr<LockEngine::Outcome> LockEngine::ExpireWaiter(uint64_t lock_id,
                                                             uint64_t txn_id,
                                                             uint64_t now_ns) {
  auto it = locks_.find(lock_id);
  Waiter* waiter =
      it == locks_.end() ? nullptr : FindLiveWaiter(it->second, txn_id);
  if (waiter == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("lock ", lock_id, " has no waiter txn ", txn_id));
  }
  if (waiter->deadline_ns == 0 || !(waiter->deadline_ns < now_ns)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "wait of txn ", txn_id, " on lock ", lock_id, " has not expired"));
  }
  Outcome outcome;
  waiter->cancelled = true;
  released_[{lock_id, txn_id}] = Memo{0, LOCKD_STATUS_WAIT_EXPIRED};
  GrantFromHead(lock_id, it->second, now_ns, &outcome);
  return outcome;
}

LockEngine::Hold& LockEngine::AddHolder(LockState& lock, uint64_t txn_id,
                                        uint8_t mode, uint32_t seq,
                                        uint32_t lease_ms, uint64_t now_ns) {
  Hold& hold = lock.holders[txn_id];
  hold.mode = mode;
  hold.fence = ++lock.fence;
  hold.seq = seq;
  hold.lease_ms = lease_ms;
  hold.lease_expires_ns = now_ns + lease_ms * kNsPerMs;
  lock.mode = mode;
  return hold;
}

void LockEngine::RemoveHolder(LockState& lock, uint64_t txn_id) {
  lock.holders.erase(txn_id);
  if (lock.holders.empty()) lock.mode = LOCKD_MODE_NONE;
}

void LockEngine::GrantFromHead(uint64_t lock_id, LockState& lock,
                               uint64_t now_ns, Outcome* outcome) {
  while (!lock.queue.empty()) {
    const Waiter head = lock.queue.front();
    if (head.cancelled) {
      lock.queue.pop_front();
      if (IsIdle(lock)) lock.min_txn = kIdleMinTxn;
      Count(LOCKD_STAT_SKIPPED_CANCELLED, outcome);
      continue;
    }
    if (!CanJoinHolders(lock, head.mode)) break;
    // Unlinking the last waiter of a lock nobody holds leaves it idle for an
    // instant: the bound restarts from the member being granted, which
    // tightens it (fewer needless WAIT_DIE deaths) and keeps it a bound.
    lock.queue.pop_front();
    if (IsIdle(lock)) lock.min_txn = kIdleMinTxn;
    AdmitMember(lock, head.txn_id);
    const Hold& hold = AddHolder(lock, head.txn_id, head.mode, head.seq,
                                 head.lease_ms, now_ns);
    Count(LOCKD_STAT_GRANT_FROM_QUEUE, outcome);
    Grant grant;
    grant.lock_id = lock_id;
    grant.txn_id = head.txn_id;
    grant.fence = hold.fence;
    grant.seq = head.seq;
    grant.mode = head.mode;
    grant.lease_ms = hold.lease_ms;
    outcome->grants.push_back(grant);
  }
  if (IsIdle(lock)) lock.min_txn = kIdleMinTxn;
}

uint32_t LockEngine::EffectiveLeaseMs(uint32_t asked_ms) const {
  const uint32_t lease_ms = asked_ms == 0 ? config_.default_lease_ms : asked_ms;
  return std::min(lease_ms, config_.max_lease_ms);
}

void LockEngine::Count(enum lockd_stat stat, Outcome* outcome) {
  ++outcome->counters[stat];
  ++stats_[stat];
}

const LockEngine::LockState* LockEngine::Find(uint64_t lock_id) const {
  auto it = locks_.find(lock_id);
  return it == locks_.end() ? nullptr : &it->second;
}

size_t LockEngine::QueuedBlocks() const {
  size_t blocks = 0;
  for (const auto& [lock_id, lock] : locks_) blocks += lock.queue.size();
  return blocks;
}

absl::Status LockEngine::CheckInvariants() const {
  for (const auto& [lock_id, lock] : locks_) {
    absl::Status status = CheckLockInvariants(lock_id, lock);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status LockEngine::CheckLockInvariants(uint64_t lock_id,
                                             const LockState& lock) {
  auto violation = [lock_id](auto&&... what) {
    return absl::InternalError(absl::StrCat("lock ", lock_id, ": ", what...));
  };

  if (lock.mode > LOCKD_MODE_EXCLUSIVE) {
    return violation("unknown mode ", lock.mode);
  }
  if (lock.holders.empty() != (lock.mode == LOCKD_MODE_NONE)) {
    return violation(lock.holders.size(), " holders in mode ", lock.mode);
  }
  if (lock.mode == LOCKD_MODE_EXCLUSIVE && lock.holders.size() != 1) {
    return violation("X held by ", lock.holders.size(), " holders");
  }

  std::set<uint64_t> members;
  std::set<uint64_t> fences;
  for (const auto& [txn_id, hold] : lock.holders) {
    members.insert(txn_id);
    if (hold.mode != lock.mode) {
      return violation("holder txn ", txn_id, " in mode ", hold.mode,
                       " of a lock held in mode ", lock.mode);
    }
    if (hold.fence == 0 || hold.fence > lock.fence) {
      return violation("holder txn ", txn_id, " has fence ", hold.fence,
                       " outside 1..", lock.fence);
    }
    if (!fences.insert(hold.fence).second) {
      return violation("fence ", hold.fence, " held twice");
    }
  }
  for (const Waiter& waiter : lock.queue) {
    if (waiter.mode != LOCKD_MODE_SHARED &&
        waiter.mode != LOCKD_MODE_EXCLUSIVE) {
      return violation("waiter txn ", waiter.txn_id, " waits for mode ",
                       waiter.mode);
    }
    if (!waiter.cancelled && !members.insert(waiter.txn_id).second) {
      return violation("owner txn ", waiter.txn_id,
                       " holds or waits more than once");
    }
  }

  if (!lock.queue.empty()) {
    const Waiter& head = lock.queue.front();
    if (head.cancelled) {
      return violation("cancelled waiter txn ", head.txn_id,
                       " left at the head");
    }
    if (CanJoinHolders(lock, head.mode)) {
      return violation("head waiter txn ", head.txn_id, " (mode ", head.mode,
                       ") is compatible with the holders but was not granted");
    }
  }

  if (members.empty()) {
    // Idle (cancelled entries cannot remain: the head is never cancelled).
    if (lock.min_txn != kIdleMinTxn) {
      return violation("idle with min_txn ", lock.min_txn);
    }
  } else if (*members.begin() < lock.min_txn) {
    return violation("member txn ", *members.begin(), " below min_txn ",
                     lock.min_txn);
  }
  return absl::OkStatus();
}

bool LockEngine::IsModeledCounter(enum lockd_stat stat) {
  switch (stat) {
    case LOCKD_STAT_MALFORMED:
    case LOCKD_STAT_ACQUIRE:
    case LOCKD_STAT_GRANT_IMMEDIATE:
    case LOCKD_STAT_QUEUED:
    case LOCKD_STAT_REJECT_CONFLICT:
    case LOCKD_STAT_REJECT_DIE:
    case LOCKD_STAT_REJECT_UPGRADE:
    case LOCKD_STAT_ACQUIRE_DUP:
    case LOCKD_STAT_UPGRADE:
    case LOCKD_STAT_RELEASE:
    case LOCKD_STAT_RELEASED:
    case LOCKD_STAT_RELEASE_DUP:
    case LOCKD_STAT_CANCELLED:
    case LOCKD_STAT_REJECT_NOT_HOLDER:
    case LOCKD_STAT_REJECT_EXPIRED:
    case LOCKD_STAT_RENEW:
    case LOCKD_STAT_GRANT_FROM_QUEUE:
    case LOCKD_STAT_SKIPPED_CANCELLED:
      return true;
    default:
      return false;
  }
}

bool operator==(const LockEngine::Reply& a, const LockEngine::Reply& b) {
  return a.opcode == b.opcode && a.status == b.status && a.fence == b.fence &&
         a.queue_pos == b.queue_pos && a.lease_ms == b.lease_ms;
}

bool operator==(const LockEngine::Grant& a, const LockEngine::Grant& b) {
  return a.lock_id == b.lock_id && a.txn_id == b.txn_id && a.fence == b.fence &&
         a.seq == b.seq && a.mode == b.mode && a.lease_ms == b.lease_ms;
}

std::ostream& operator<<(std::ostream& os, const LockEngine::Reply& reply) {
  return os << "Reply{opcode=0x" << std::hex << int{reply.opcode} << std::dec
            << " status=" << int{reply.status} << " fence=" << reply.fence
            << " queue_pos=" << reply.queue_pos
            << " lease_ms=" << reply.lease_ms << "}";
}

std::ostream& operator<<(std::ostream& os, const LockEngine::Grant& grant) {
  return os << "Grant{lock=" << grant.lock_id << " txn=" << grant.txn_id
            << " fence=" << grant.fence << " seq=" << grant.seq
            << " mode=" << int{grant.mode} << " lease_ms=" << grant.lease_ms
            << "}";
}

}  // namespace lockd
