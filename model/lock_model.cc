#include "model/lock_model.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

constexpr uint64_t kNsPerMs = 1000 * 1000;

bool CanJoinHolders(const LockModel::LockState& lock, uint8_t mode) {
  return lock.holders.empty() ||
         (lock.mode == LOCKD_MODE_SHARED && mode == LOCKD_MODE_SHARED);
}

bool IsIdle(const LockModel::LockState& lock) {
  return lock.holders.empty() && lock.queue.empty();
}

// An idle lock has no members: no bound.
void ResetMinIfIdle(LockModel::LockState& lock) {
  if (!IsIdle(lock)) return;
  lock.min_txn = kIdleMinTxn;
  lock.min_dirty = false;
}

// X covers S and X; S covers S.
bool Covers(uint8_t held_mode, uint8_t asked_mode) {
  return held_mode == LOCKD_MODE_EXCLUSIVE || asked_mode == LOCKD_MODE_SHARED;
}

bool IsExpired(const LockModel::Hold& hold, uint64_t now_ns) {
  return hold.lease_expires_ns < now_ns;
}

// The datapath's request_is_valid (bpf/lib/parse.h).
bool IsWellFormed(const lockd_request& req) {
  if ((req.flags & ~LOCKD_REQUEST_FLAGS) != 0) return false;
  if (req.mode > LOCKD_MODE_EXCLUSIVE || req.policy >= LOCKD_POLICY_COUNT)
    return false;
  switch (req.opcode) {
    case LOCKD_OP_ACQUIRE:
      return req.mode != LOCKD_MODE_NONE;
    case LOCKD_OP_RELEASE:
    case LOCKD_OP_RENEW:
    case LOCKD_OP_KICK:
      return true;
    default:
      return false;
  }
}

LockModel::Waiter* FindLiveWaiter(LockModel::LockState& lock, uint64_t txn_id) {
  for (LockModel::Waiter& waiter : lock.queue)
    if (!waiter.cancelled && waiter.txn_id == txn_id) return &waiter;
  return nullptr;
}

// A RELEASE sent before the ACQUIRE that made the record it would act on.
bool IsStale(uint64_t release_seq, uint64_t record_seq) {
  return release_seq < record_seq;
}

// The reply to `req`: its identifying fields echoed, the rest zero.
lockd_reply ReplyTo(const lockd_request& req, uint8_t opcode, uint8_t status) {
  lockd_reply r{};
  r.lock_id = req.lock_id;
  r.txn_id = req.txn_id;
  r.seq = req.seq;
  r.client_id = req.client_id;
  r.mode = req.mode;
  r.policy = req.policy;
  r.opcode = opcode;
  r.status = status;
  return r;
}

lockd_reply Granted(const lockd_request& req, const LockModel::Hold& hold) {
  lockd_reply r = ReplyTo(req, LOCKD_OP_GRANTED, LOCKD_STATUS_OK);
  r.fence = hold.fence;
  r.lease_ms = hold.lease_ms;
  return r;
}

lockd_reply WithFence(lockd_reply r, uint64_t fence) {
  r.fence = fence;
  return r;
}

}  // namespace

LockModel::LockModel(Config config) : config_(config) {}

LockModel::Outcome LockModel::Apply(const lockd_request& req, uint64_t now_ns) {
  now_ns_ = now_ns;
  Outcome out;
  if (!IsWellFormed(req)) {
    Count(LOCKD_STAT_MALFORMED, &out);
    return out;
  }
  switch (req.opcode) {
    case LOCKD_OP_ACQUIRE:
      Acquire(req, now_ns, &out);
      break;
    case LOCKD_OP_RELEASE:
      Release(req, now_ns, &out);
      break;
    case LOCKD_OP_RENEW:
      Renew(req, now_ns, &out);
      break;
    default: {  // KICK
      if (req.hops >= LOCKD_MAX_KICK_HOPS) break;
      auto it = locks_.find(req.lock_id);
      if (it != locks_.end())
        GrantFromHead(req.lock_id, it->second, now_ns, &out);
      break;
    }
  }
  Settle(req.lock_id, &out);
  return out;
}

LockModel::Outcome LockModel::ApplyWire(const lockd_msg& wire,
                                        const lockd_endpoint& from,
                                        uint64_t now_ns) {
  Outcome out;
  absl::StatusOr<Message> m = DecodeMessage(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(&wire), sizeof(wire)));
  lockd_request req{};
  if (m.ok()) req = ToRequest(*m, from);
  if (!m.ok() || !IsRequest(m->opcode) || !IsWellFormed(req)) {
    Count(wire.version != LOCKD_VERSION ? LOCKD_STAT_BAD_VERSION
                                        : LOCKD_STAT_MALFORMED,
          &out);
    return out;
  }
  std::array<uint64_t, 2> key{};
  if (enum lockd_stat refused = Authenticate(wire, req, &key);
      refused != LOCKD_STAT_COUNT) {
    Count(refused, &out);
    return out;
  }
  return Apply(req, now_ns);
}

uint64_t LockModel::SignedMac(const lockd_reply& reply,
                              const std::array<uint64_t, 2>& key) const {
  return MessageMac(
      Encode(FromReply(reply, lockd_epoch_of(config_.fence_base))),
      {key[0], key[1]});
}

LockModel::LockState& LockModel::Lock(uint64_t lock_id, Outcome* out) {
  auto it = locks_.find(lock_id);
  if (it != locks_.end()) return it->second;
  LockState& lock = locks_[lock_id];
  lock.fence = std::max(config_.fence_base, last_fence_[lock_id]);
  Count(LOCKD_STAT_LOCK_CREATED, out);
  return lock;
}

void LockModel::Settle(uint64_t lock_id, Outcome* out) {
  auto it = locks_.find(lock_id);
  if (it == locks_.end() || !IsIdle(it->second)) return;
  last_fence_[lock_id] = it->second.fence;
  locks_.erase(it);
  Count(LOCKD_STAT_LOCK_FREED, out);
}

void LockModel::Acquire(const lockd_request& req, uint64_t now_ns,
                        Outcome* out) {
  Count(LOCKD_STAT_ACQUIRE, out);
  // Grace (docs/semantics.md, "Restarts"): only reclaims (NO_WAIT, of
  // fences from before this table).
  const bool reclaim = (req.flags & LOCKD_FLAG_RECLAIM) != 0;
  const bool in_grace = now_ns < config_.grace_until_ns;
  if (reclaim && (req.policy != LOCKD_POLICY_NO_WAIT || req.fence == 0 ||
                  req.fence >= config_.fence_base)) {
    Count(LOCKD_STAT_REJECT_RECLAIM, out);
    out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_BAD_REQUEST);
    return;
  }
  if (!reclaim && in_grace) {
    Count(LOCKD_STAT_REJECT_GRACE, out);
    out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_GRACE);
    out->reply->lease_ms = static_cast<uint32_t>(
        (config_.grace_until_ns - now_ns + kNsPerMs - 1) / kNsPerMs);
    return;
  }
  // After grace a reclaim finds its own record (a retransmission) or is
  // refused: its hold was not reclaimed in time.
  auto reject_late_reclaim = [&] {
    Count(LOCKD_STAT_REJECT_RECLAIM, out);
    out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER);
  };
  const bool existed = locks_.count(req.lock_id) != 0;
  const bool at_quota = ClientMembers(req.client_id) >= config_.client_quota;
  auto reject_quota = [&] {
    Count(LOCKD_STAT_REJECT_QUOTA, out);
    out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_QUOTA);
  };
  // On a free lock every request makes a member: refused before the lock
  // is made, as the datapath claims no slot for it.
  if (!existed && at_quota) return reject_quota();
  if (!existed && reclaim && !in_grace) return reject_late_reclaim();
  LockState& lock = Lock(req.lock_id, out);
  const uint64_t txn_id = req.txn_id;

  if (auto held = lock.holders.find(txn_id); held != lock.holders.end()) {
    Hold& hold = held->second;
    if (hold.client_id != req.client_id) {
      ReplyForeign(req, out);
    } else if (IsExpired(hold, now_ns)) {
      Count(LOCKD_STAT_REJECT_EXPIRED, out);
      out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED);
    } else if (Covers(hold.mode, req.mode)) {
      Count(LOCKD_STAT_ACQUIRE_DUP, out);
      out->reply = Granted(req, hold);
    } else if (lock.holders.size() == 1 && lock.queue.empty()) {
      // An upgrade is a new grant: new fence, the lease starts again.
      hold.mode = LOCKD_MODE_EXCLUSIVE;
      lock.mode = LOCKD_MODE_EXCLUSIVE;
      hold.fence = ++lock.fence;
      hold.lease_ms = EffectiveLeaseMs(req.lease_ms);
      hold.lease_expires_ns = now_ns + hold.lease_ms * kNsPerMs;
      Count(LOCKD_STAT_UPGRADE, out);
      out->reply = Granted(req, hold);
    } else {
      Count(LOCKD_STAT_REJECT_UPGRADE, out);
      out->reply =
          ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_UPGRADE_CONFLICT);
    }
    return;
  }
  if (const Waiter* w = FindLiveWaiter(lock, txn_id); w != nullptr) {
    if (w->client_id != req.client_id) {
      ReplyForeign(req, out);
      return;
    }
    Count(LOCKD_STAT_ACQUIRE_DUP, out);
    out->reply = ReplyTo(req, LOCKD_OP_QUEUED, LOCKD_STATUS_OK);
    return;
  }
  if (reclaim && !in_grace) return reject_late_reclaim();

  // A lone holder whose lease ran out does not block a conflicting request
  // on a lock nobody waits for: its hold ends first (not for a client at
  // its quota, which is refused anyway).
  if (existed && !at_quota && lock.holders.size() == 1 && lock.queue.empty() &&
      !CanJoinHolders(lock, req.mode) &&
      IsExpired(lock.holders.begin()->second, now_ns)) {
    EndHold(req.lock_id, lock, lock.holders.begin()->first,
            LOCKD_STATUS_LEASE_EXPIRED, out);
  }

  Waiter request;
  request.txn_id = txn_id;
  request.mode = req.mode;
  request.policy = req.policy;
  request.flags = req.member_flags;
  request.client_id = req.client_id;
  request.seq = req.seq;
  request.lease_ms = EffectiveLeaseMs(req.lease_ms);
  request.enqueued_ns = now_ns;
  request.deadline_ns = req.wait_ms == 0 ? 0 : now_ns + req.wait_ms * kNsPerMs;
  request.endpoint = req.from;

  const bool conflict = !lock.queue.empty() || !CanJoinHolders(lock, req.mode);
  if (!conflict) {
    if (at_quota) return reject_quota();
    AddMember(req.client_id, 1);
    Hold& hold = AddHolder(lock, txn_id, req.mode, request, now_ns);
    if (reclaim) {  // the hold's fence from before; the lock's never lower
      hold.fence = req.fence;
      lock.fence = std::max<uint64_t>(lock.fence, req.fence);
    }
    Count(reclaim ? LOCKD_STAT_RECLAIMED : LOCKD_STAT_GRANT_IMMEDIATE, out);
    out->reply = Granted(req, hold);
    return;
  }
  if (req.policy == LOCKD_POLICY_NO_WAIT) {
    Count(LOCKD_STAT_REJECT_CONFLICT, out);
    out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_CONFLICT);
    return;
  }
  if (req.policy == LOCKD_POLICY_WAIT_DIE) {
    // Waits only if older than every member.
    const uint64_t oldest = OldestMember(lock);
    // Where min_txn alone would refuse, a dirty bound is made exact first
    // (the datapath walks the chain and the queue for it).
    if (!(txn_id < lock.min_txn) && lock.min_dirty) {
      lock.min_txn = oldest;
      lock.min_dirty = false;
    }
    if (!(txn_id < oldest)) {
      Count(LOCKD_STAT_REJECT_DIE, out);
      out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_DIE);
      return;
    }
  }
  if (at_quota) return reject_quota();
  AddMember(req.client_id, 1);
  NoteMember(lock, txn_id);
  lockd_reply queued = ReplyTo(req, LOCKD_OP_QUEUED, LOCKD_STATUS_OK);
  queued.queue_pos = static_cast<uint32_t>(lock.queue.size());
  lock.queue.push_back(request);
  Count(LOCKD_STAT_QUEUED, out);
  out->reply = queued;
}

void LockModel::Release(const lockd_request& req, uint64_t now_ns,
                        Outcome* out) {
  Count(LOCKD_STAT_RELEASE, out);
  if (auto it = locks_.find(req.lock_id); it != locks_.end()) {
    LockState& lock = it->second;
    if (auto held = lock.holders.find(req.txn_id); held != lock.holders.end()) {
      if (held->second.client_id != req.client_id)
        return ReplyForeign(req, out);
      if (IsStale(req.seq, held->second.seq)) {
        Count(LOCKD_STAT_RELEASE_DUP, out);
        out->reply = ReplyTo(req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK);
        return;
      }
      if (IsExpired(held->second, now_ns)) {
        Count(LOCKD_STAT_REJECT_EXPIRED, out);
        out->reply =
            ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED);
        return;
      }
      const uint64_t fence =
          EndHold(req.lock_id, lock, req.txn_id, LOCKD_STATUS_OK, out);
      Count(LOCKD_STAT_RELEASED, out);
      out->reply =
          WithFence(ReplyTo(req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK), fence);
      GrantFromHead(req.lock_id, lock, now_ns, out);
      return;
    }
    if (Waiter* waiter = FindLiveWaiter(lock, req.txn_id)) {
      if (waiter->client_id != req.client_id) return ReplyForeign(req, out);
      if (IsStale(req.seq, waiter->seq)) {
        Count(LOCKD_STAT_RELEASE_DUP, out);
        out->reply = ReplyTo(req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK);
        return;
      }
      waiter->cancelled = true;
      AddMember(waiter->client_id, -1);
      NoteLeave(lock, req.txn_id);
      Count(LOCKD_STAT_CANCELLED, out);
      out->reply = ReplyTo(req, LOCKD_OP_RELEASED, LOCKD_STATUS_OK);
      GrantFromHead(req.lock_id, lock, now_ns, out);
      return;
    }
  }
  ReplyNotMember(req, out);
}

void LockModel::ReplyNotMember(const lockd_request& req, Outcome* out) {
  auto memo = ended_.find({req.lock_id, req.txn_id});
  const uint8_t status =
      memo != ended_.end() && memo->second.client_id == req.client_id
          ? memo->second.status
          : uint8_t{LOCKD_STATUS_NOT_HOLDER};
  Count(status == LOCKD_STATUS_LEASE_EXPIRED ? LOCKD_STAT_REJECT_EXPIRED
                                             : LOCKD_STAT_REJECT_NOT_HOLDER,
        out);
  out->reply = ReplyTo(req, LOCKD_OP_REJECTED, status);
}

void LockModel::Renew(const lockd_request& req, uint64_t now_ns, Outcome* out) {
  Hold* hold = nullptr;
  if (auto it = locks_.find(req.lock_id); it != locks_.end()) {
    auto held = it->second.holders.find(req.txn_id);
    if (held != it->second.holders.end()) hold = &held->second;
  }
  if (hold == nullptr) {
    ReplyNotMember(req, out);
    return;
  }
  if (hold->client_id != req.client_id) return ReplyForeign(req, out);
  if (IsExpired(*hold, now_ns)) {
    Count(LOCKD_STAT_REJECT_EXPIRED, out);
    out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED);
    return;
  }
  hold->lease_ms = EffectiveLeaseMs(req.lease_ms);
  hold->lease_expires_ns = now_ns + hold->lease_ms * kNsPerMs;
  Count(LOCKD_STAT_RENEW, out);
  lockd_reply renewed = ReplyTo(req, LOCKD_OP_RENEWED, LOCKD_STATUS_OK);
  renewed.fence = hold->fence;
  renewed.lease_ms = hold->lease_ms;
  out->reply = renewed;
}

uint64_t LockModel::EndHold(uint64_t lock_id, LockState& lock, uint64_t txn_id,
                            uint8_t reason, Outcome* out) {
  const uint64_t fence = lock.holders.at(txn_id).fence;
  const uint32_t client_id = lock.holders.at(txn_id).client_id;
  AddMember(client_id, -1);
  lock.holders.erase(txn_id);
  if (lock.holders.empty()) lock.mode = LOCKD_MODE_NONE;
  NoteLeave(lock, txn_id);
  Count(LOCKD_STAT_HOLD_ENDED, out);
  if (reason != LOCKD_STATUS_OK) {
    ended_[{lock_id, txn_id}] = Memo{fence, reason, now_ns_, client_id};
    Count(reason == LOCKD_STATUS_LEASE_EXPIRED ? LOCKD_STAT_LEASE_EXPIRED
                                               : LOCKD_STAT_FORCE_RELEASED,
          out);
  }
  return fence;
}

LockModel::Hold& LockModel::AddHolder(LockState& lock, uint64_t txn_id,
                                      uint8_t mode, const Waiter& from,
                                      uint64_t now_ns) {
  NoteMember(lock, txn_id);
  Hold& hold = lock.holders[txn_id];
  hold.mode = mode;
  hold.policy = from.policy;
  hold.flags = from.flags;
  hold.client_id = from.client_id;
  hold.fence = ++lock.fence;
  hold.seq = from.seq;
  hold.lease_ms = from.lease_ms;
  hold.since_ns = now_ns;
  hold.lease_expires_ns = now_ns + from.lease_ms * kNsPerMs;
  hold.endpoint = from.endpoint;
  lock.mode = mode;
  return hold;
}

void LockModel::NoteMember(LockState& lock, uint64_t txn_id) {
  // Every member is at least min_txn: one at or below it is the oldest.
  if (txn_id <= lock.min_txn) {
    lock.min_txn = txn_id;
    lock.min_dirty = false;
  }
}

void LockModel::NoteLeave(LockState& lock, uint64_t txn_id) {
  if (IsIdle(lock)) {
    ResetMinIfIdle(lock);
  } else if (txn_id == lock.min_txn) {
    lock.min_dirty = true;
  }
}

uint64_t LockModel::OldestMember(const LockState& lock) {
  uint64_t oldest =
      lock.holders.empty() ? kIdleMinTxn : lock.holders.begin()->first;
  for (const Waiter& waiter : lock.queue)
    if (!waiter.cancelled) oldest = std::min(oldest, waiter.txn_id);
  return oldest;
}

void LockModel::GrantFromHead(uint64_t lock_id, LockState& lock,
                              uint64_t now_ns, Outcome* out) {
  while (!lock.queue.empty()) {
    const Waiter head = lock.queue.front();
    if (head.cancelled) {
      lock.queue.pop_front();
      ResetMinIfIdle(lock);
      Count(LOCKD_STAT_SKIPPED_CANCELLED, out);
      continue;
    }
    if (!CanJoinHolders(lock, head.mode)) break;
    // Unlinking the last waiter of a lock nobody holds leaves it idle for an
    // instant: the bound restarts from the member being granted.
    lock.queue.pop_front();
    ResetMinIfIdle(lock);
    const Hold& hold = AddHolder(lock, head.txn_id, head.mode, head, now_ns);
    Count(LOCKD_STAT_GRANT_FROM_QUEUE, out);
    lockd_notice n{};
    n.reply.opcode = LOCKD_OP_GRANTED;
    n.reply.lock_id = lock_id;
    n.reply.txn_id = head.txn_id;
    n.reply.fence = hold.fence;
    n.reply.seq = head.seq;
    n.reply.client_id = head.client_id;
    n.reply.lease_ms = hold.lease_ms;
    n.reply.mode = head.mode;
    n.reply.policy = head.policy;
    n.to = head.endpoint;
    n.local = (head.flags & LOCKD_MEMBER_LOCAL) != 0;
    out->notices.push_back(n);
  }
  ResetMinIfIdle(lock);
}

lockd_ctl LockModel::Execute(const lockd_ctl& command, uint64_t now_ns,
                             Counters* counters) {
  now_ns_ = now_ns;
  lockd_ctl ctl = command;
  ctl.notices = 0;
  ctl.kick = 0;
  Outcome out;
  const lockd_request& req = command.req;
  auto add_notice = [&ctl](const lockd_notice& n) {
    if (ctl.notices <= LOCKD_MAX_GRANTS) ctl.notice[ctl.notices++] = n;
  };
  if (command.op == LOCKD_CTL_REQUEST) {
    out = Apply(req, now_ns);
    ctl.result = !IsWellFormed(req) ? LOCKD_CTL_MALFORMED
                 : out.reply        ? LOCKD_CTL_OK
                                    : LOCKD_CTL_NO_REPLY;
    if (out.reply) ctl.reply = *out.reply;
  } else if (command.op == LOCKD_CTL_WIRE) {
    absl::StatusOr<Message> m = DecodeMessage(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(&command.wire), sizeof(command.wire)));
    lockd_request wire_req{};
    if (m.ok()) {
      wire_req = ToRequest(*m, req.from);
      wire_req.member_flags = req.member_flags;
    }
    std::array<uint64_t, 2> key{};
    if (!m.ok() || !IsRequest(m->opcode) || !IsWellFormed(wire_req)) {
      Count(command.wire.version != LOCKD_VERSION ? LOCKD_STAT_BAD_VERSION
                                                  : LOCKD_STAT_MALFORMED,
            &out);
      ctl.result = LOCKD_CTL_MALFORMED;
    } else if (enum lockd_stat refused =
                   Authenticate(command.wire, wire_req, &key);
               refused != LOCKD_STAT_COUNT) {
      Count(refused, &out);
      ctl.result = LOCKD_CTL_FORGED;
    } else {
      ctl.req = wire_req;
      out = Apply(wire_req, now_ns);
      ctl.result = out.reply ? LOCKD_CTL_OK : LOCKD_CTL_NO_REPLY;
      if (out.reply) {
        ctl.reply = *out.reply;
        if (ctl.reply.client_id != LOCKD_CLIENT_NONE)
          ctl.reply.mac = SignedMac(ctl.reply, key);
      }
      for (lockd_notice& n : out.notices) {
        // Every notice is signed with its client's current key, as
        // notice_sign does (whoever sends it).
        auto c = clients_.find(n.reply.client_id);
        if (c == clients_.end() || c->second.key == std::array<uint64_t, 2>{})
          continue;
        n.reply.mac = SignedMac(n.reply, c->second.key);
      }
    }
  } else if (command.op == LOCKD_CTL_SET_KEY) {
    Client& c = clients_[req.client_id];
    const std::array<uint64_t, 2> key = {command.key[0], command.key[1]};
    if (c.key != key) {
      if (c.key[0] || c.key[1]) {
        c.old_key = c.key;
        c.has_old_key = true;
      }
      c.key = key;
    }
    ctl.result = LOCKD_CTL_OK;
  } else if (command.op == LOCKD_CTL_EXPIRE_HOLDER ||
             command.op == LOCKD_CTL_FORCE_RELEASE) {
    auto it = locks_.find(req.lock_id);
    auto held = it == locks_.end() ? decltype(it->second.holders.end()){}
                                   : it->second.holders.find(req.txn_id);
    if (it == locks_.end() || held == it->second.holders.end()) {
      ctl.result = LOCKD_CTL_NOT_FOUND;
    } else if (command.op == LOCKD_CTL_EXPIRE_HOLDER &&
               !IsExpired(held->second, now_ns)) {
      ctl.result = LOCKD_CTL_NOT_DUE;
    } else if (command.op == LOCKD_CTL_FORCE_RELEASE && req.fence != 0 &&
               held->second.fence != req.fence) {
      ctl.result = LOCKD_CTL_FENCE_MISMATCH;
    } else {
      ctl.reply.fence = EndHold(req.lock_id, it->second, req.txn_id,
                                command.op == LOCKD_CTL_EXPIRE_HOLDER
                                    ? LOCKD_STATUS_LEASE_EXPIRED
                                    : LOCKD_STATUS_FORCE_RELEASED,
                                &out);
      GrantFromHead(req.lock_id, it->second, now_ns, &out);
      Settle(req.lock_id, &out);
      ctl.result = LOCKD_CTL_OK;
    }
  } else if (command.op == LOCKD_CTL_EXPIRE_WAITER) {
    auto it = locks_.find(req.lock_id);
    Waiter* waiter =
        it == locks_.end() ? nullptr : FindLiveWaiter(it->second, req.txn_id);
    if (waiter == nullptr) {
      ctl.result = LOCKD_CTL_NOT_FOUND;
    } else if (waiter->deadline_ns == 0 || !(waiter->deadline_ns < now_ns)) {
      ctl.result = LOCKD_CTL_NOT_DUE;
    } else {
      waiter->cancelled = true;
      AddMember(waiter->client_id, -1);
      NoteLeave(it->second, waiter->txn_id);
      ended_[{req.lock_id, req.txn_id}] =
          Memo{0, LOCKD_STATUS_WAIT_EXPIRED, now_ns, waiter->client_id};
      Count(LOCKD_STAT_WAIT_EXPIRED, &out);
      lockd_notice n{};
      n.reply.opcode = LOCKD_OP_REJECTED;
      n.reply.status = LOCKD_STATUS_WAIT_EXPIRED;
      n.reply.lock_id = req.lock_id;
      n.reply.txn_id = waiter->txn_id;
      n.reply.seq = waiter->seq;
      n.reply.client_id = waiter->client_id;
      n.reply.mode = waiter->mode;
      n.reply.policy = waiter->policy;
      n.to = waiter->endpoint;
      n.local = (waiter->flags & LOCKD_MEMBER_LOCAL) != 0;
      add_notice(n);
      GrantFromHead(req.lock_id, it->second, now_ns, &out);
      Settle(req.lock_id, &out);
      ctl.result = LOCKD_CTL_OK;
    }
  } else {
    ctl.result = LOCKD_CTL_BAD_OP;
  }
  for (const lockd_notice& n : out.notices) add_notice(n);
  if (counters != nullptr) *counters = out.counters;
  return ctl;
}

enum lockd_stat LockModel::Authenticate(const lockd_msg& wire,
                                        const lockd_request& req,
                                        std::array<uint64_t, 2>* key) {
  if (req.opcode == LOCKD_OP_KICK) return LOCKD_STAT_FORGED_KICK;
  if (req.client_id == LOCKD_CLIENT_NONE) return LOCKD_STAT_COUNT;
  auto it = clients_.find(req.client_id);
  if (it == clients_.end()) return LOCKD_STAT_AUTH_FAILED;
  Client& c = it->second;
  EncodedMessage bytes;
  std::memcpy(bytes.data(), &wire, sizeof(wire));
  const bool current = MessageMac(bytes, {c.key[0], c.key[1]}) == wire.mac;
  if (!current &&
      !(c.has_old_key &&
        MessageMac(bytes, {c.old_key[0], c.old_key[1]}) == wire.mac))
    return LOCKD_STAT_AUTH_FAILED;
  *key = current ? c.key : c.old_key;
  // The replay window (window_accept in bpf/lib/auth.h).
  const uint64_t seq = req.seq;
  if (seq == 0) return LOCKD_STAT_REPLAYED;
  if (seq > c.seq_top) {
    const uint64_t ahead = seq - c.seq_top;
    c.seq_seen = ahead >= LOCKD_REPLAY_WINDOW ? 1 : (c.seq_seen << ahead) | 1;
    c.seq_top = seq;
  } else {
    const uint64_t behind = c.seq_top - seq;
    if (behind >= LOCKD_REPLAY_WINDOW || (c.seq_seen >> behind & 1))
      return LOCKD_STAT_REPLAYED;
    c.seq_seen |= uint64_t{1} << behind;
  }
  if (current) c.has_old_key = false;
  return LOCKD_STAT_COUNT;
}

void LockModel::AddMember(uint32_t client_id, int delta) {
  if ((members_[client_id] += delta) == 0) members_.erase(client_id);
}

int64_t LockModel::ClientMembers(uint32_t client_id) const {
  auto it = members_.find(client_id);
  return it == members_.end() ? 0 : it->second;
}

void LockModel::ReplyForeign(const lockd_request& req, Outcome* out) {
  Count(LOCKD_STAT_REJECT_NOT_OWNER, out);
  out->reply = ReplyTo(req, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER);
}

uint32_t LockModel::EffectiveLeaseMs(uint32_t asked_ms) const {
  const uint32_t lease_ms = asked_ms == 0 ? config_.default_lease_ms : asked_ms;
  return std::min(lease_ms, config_.max_lease_ms);
}

void LockModel::Count(enum lockd_stat stat, Outcome* out) {
  ++out->counters[stat];
  ++stats_[stat];
}

const LockModel::LockState* LockModel::Find(uint64_t lock_id) const {
  auto it = locks_.find(lock_id);
  return it == locks_.end() ? nullptr : &it->second;
}

size_t LockModel::QueuedBlocks() const {
  size_t blocks = 0;
  for (const auto& [lock_id, lock] : locks_) blocks += lock.queue.size();
  return blocks;
}

absl::Status LockModel::CheckInvariants() const {
  for (const auto& [lock_id, lock] : locks_) {
    if (IsIdle(lock))
      return absl::InternalError(absl::StrCat("lock ", lock_id, " idle"));
    if (absl::Status s = CheckLockInvariants(lock_id, lock); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LockModel::CheckLockInvariants(uint64_t lock_id,
                                            const LockState& lock) {
  auto violation = [lock_id](auto&&... what) {
    return absl::InternalError(absl::StrCat("lock ", lock_id, ": ", what...));
  };
  if (lock.mode > LOCKD_MODE_EXCLUSIVE)
    return violation("unknown mode ", lock.mode);
  if (lock.holders.empty() != (lock.mode == LOCKD_MODE_NONE))
    return violation(lock.holders.size(), " holders in mode ", lock.mode);
  if (lock.mode == LOCKD_MODE_EXCLUSIVE && lock.holders.size() != 1)
    return violation("X held by ", lock.holders.size(), " holders");
  std::set<uint64_t> members;
  std::set<uint64_t> fences;
  for (const auto& [txn_id, hold] : lock.holders) {
    members.insert(txn_id);
    if (hold.mode != lock.mode)
      return violation("holder txn ", txn_id, " in mode ", hold.mode,
                       " of a lock held in mode ", lock.mode);
    if (hold.fence == 0 || hold.fence > lock.fence)
      return violation("holder txn ", txn_id, " has fence ", hold.fence,
                       " above the lock's ", lock.fence);
    if (!fences.insert(hold.fence).second)
      return violation("fence ", hold.fence, " held twice");
  }
  for (const Waiter& waiter : lock.queue) {
    if (waiter.mode != LOCKD_MODE_SHARED && waiter.mode != LOCKD_MODE_EXCLUSIVE)
      return violation("waiter txn ", waiter.txn_id, " waits for mode ",
                       waiter.mode);
    if (!waiter.cancelled && !members.insert(waiter.txn_id).second)
      return violation("owner txn ", waiter.txn_id,
                       " holds or waits more than once");
  }
  if (!lock.queue.empty()) {
    const Waiter& head = lock.queue.front();
    if (head.cancelled)
      return violation("cancelled waiter txn ", head.txn_id,
                       " left at the head");
    if (CanJoinHolders(lock, head.mode))
      return violation("head waiter txn ", head.txn_id, " (mode ", head.mode,
                       ") is compatible with the holders but was not granted");
  }
  if (members.empty()) {
    if (lock.min_txn != kIdleMinTxn || lock.min_dirty)
      return violation("idle with min_txn ", lock.min_txn,
                       lock.min_dirty ? " (dirty)" : "");
  } else if (*members.begin() < lock.min_txn) {
    return violation("member txn ", *members.begin(), " below min_txn ",
                     lock.min_txn);
  } else if (!lock.min_dirty && lock.min_txn != *members.begin()) {
    return violation("min_txn ", lock.min_txn, " not dirty but the oldest ",
                     "member is txn ", *members.begin());
  }
  return absl::OkStatus();
}

bool LockModel::IsModeledCounter(enum lockd_stat stat) {
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
    case LOCKD_STAT_HOLD_ENDED:
    case LOCKD_STAT_LEASE_EXPIRED:
    case LOCKD_STAT_FORCE_RELEASED:
    case LOCKD_STAT_WAIT_EXPIRED:
    case LOCKD_STAT_LOCK_CREATED:
    case LOCKD_STAT_LOCK_FREED:
    case LOCKD_STAT_REJECT_GRACE:
    case LOCKD_STAT_RECLAIMED:
    case LOCKD_STAT_REJECT_RECLAIM:
    case LOCKD_STAT_AUTH_FAILED:
    case LOCKD_STAT_REPLAYED:
    case LOCKD_STAT_FORGED_KICK:
    case LOCKD_STAT_REJECT_NOT_OWNER:
    case LOCKD_STAT_REJECT_QUOTA:
      return true;
    default:
      return false;
  }
}

size_t LockModel::ForgetEnded(uint64_t before_ns) {
  size_t forgotten = 0;
  for (auto it = ended_.begin(); it != ended_.end();) {
    if (it->second.time_ns < before_ns) {
      it = ended_.erase(it);
      ++forgotten;
    } else {
      ++it;
    }
  }
  return forgotten;
}

}  // namespace lockd
