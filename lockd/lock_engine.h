// The user-space lock engine: docs/semantics.md as plain C++. It has two
// jobs, which is why it is written for clarity rather than speed:
// - the daemon's slow path: it serves the locks user space owns (taken over
//   from the kernel when a queue overflows the pool, a table is full, or a
//   gRPC client joins; or every lock when the fast path is off);
// - the reference the BPF datapath is checked against: the randomized
//   differential test (tests/datapath) sends one request stream to both and
//   compares every reply, grant, counter and state.
//
// Where it is unbounded, the datapath is bounded:
// - "Recently released" memory is an unbounded map. The datapath keeps it in
//   an LRU ("released" map); the differential test must keep the number of
//   distinct owners below that LRU's capacity, or the two legitimately differ
//   (the datapath forgets, answers NOT_HOLDER where the engine says RELEASED).
// - Grant from the head has no per-run batch limit: one Apply() returns every
//   grant a release causes. The datapath grants at most LOCKD_MAX_GRANTS per
//   run and continues with KICKs; the differential test drains those kicks
//   before it compares.
// - There is no hand-off: the engine never runs out of room.
// - Lock records are only removed by Remove() (a lock handed back to the
//   kernel), so a lock's fence keeps growing across idle periods.
//
// Decisions where semantics.md leaves room (the datapath must do the same):
// - Reply fields that a reply does not define are zero: `fence` is set only
//   by GRANTED, RENEWED and RELEASED, `lease_ms` only by GRANTED and RENEWED,
//   `queue_pos` only by QUEUED.
// - GRANTED and RENEWED carry the lease actually granted (after defaulting
//   and clamping); a retransmitted ACQUIRE of a holder gets the hold's
//   current lease_ms (the last one granted or renewed).
// - An S->X upgrade is a new grant: new fence, and the lease restarts at the
//   upgrade with the upgrade request's lease_ms.
// - A retransmitted ACQUIRE of a holder whose lease ran out (not yet swept)
//   is REJECTED/LEASE_EXPIRED, like its RELEASE and RENEW.
// - A retransmitted ACQUIRE of a waiter gets QUEUED with queue_pos 0: the
//   datapath keeps no position per waiter, and the first reply said it.
// - queue_pos counts every linked entry ahead, cancelled ones included (it
//   is the datapath's queue_len at enqueue).
// - A queue whose entries are all cancelled cannot exist: every cancellation
//   is followed by grant from the head, which unlinks cancelled entries at the
//   head, so the head of a non-empty queue is always live (CheckInvariants
//   enforces it). "Queue not empty" in ACQUIRE's conflict test therefore
//   means "a live waiter exists", and the datapath's `queue_len > 0` agrees.
// - min_txn is kIdleMinTxn (all ones) while a lock is idle, as the datapath
//   keeps it; the first member of an idle lock lowers it to its txn. Grant
//   from the head unlinks first: if that leaves the lock idle for an instant
//   the bound restarts from the member being granted (as the datapath does).
// - Recently released memory: written by a RELEASE that ends a hold (its
//   fence) or cancels a wait (fence 0), or by the sweep that expires a
//   holder (a late RELEASE is then told LEASE_EXPIRED); never erased (the
//   datapath's is an LRU). A late RELEASE whose seq is older than the record it
//   would act on is stale (docs/semantics.md): RELEASED with fence 0, nothing
//   changes.
// - ACQUIRE with mode NONE is malformed (dropped like an unknown mode): it
//   asks for nothing and semantics.md gives it no reply. Mode and policy are
//   validated for every opcode.
#ifndef LOCKD_LOCKD_LOCK_ENGINE_H_
#define LOCKD_LOCKD_LOCK_ENGINE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lockd {

// min_txn of an idle lock: no member bounds it.
inline constexpr uint64_t kIdleMinTxn = ~uint64_t{0};

class LockEngine {
 public:
  struct Config {
    // Lease of a request that asks for 0 ms.
    uint32_t default_lease_ms = 10000;
    // Upper bound of every lease, applied after the default.
    uint32_t max_lease_ms = 60000;
  };

  // A request as the datapath sees it after decoding (host order). Opcode,
  // mode and policy hold the ABI enum values (lockd_opcode, lockd_mode,
  // lockd_policy); anything else is malformed.
  struct Request {
    uint8_t opcode = 0;
    uint64_t lock_id = 0;
    uint64_t txn_id = 0;
    uint8_t mode = LOCKD_MODE_NONE;
    uint8_t policy = LOCKD_POLICY_WAIT;
    uint32_t seq = 0;
    uint32_t lease_ms = 0;  // 0 = the configured default
    uint32_t wait_ms = 0;   // longest wait in the queue, 0 = no limit
  };

  // The reply to the requester.
  struct Reply {
    uint8_t opcode = 0;  // lockd_opcode, a reply opcode
    uint8_t status = LOCKD_STATUS_OK;
    uint64_t fence = 0;
    uint32_t queue_pos = 0;
    uint32_t lease_ms = 0;
  };

  // A GRANTED message to a waiter that a request (or a sweep) let in.
  struct Grant {
    uint64_t lock_id = 0;
    uint64_t txn_id = 0;
    uint64_t fence = 0;
    uint32_t seq = 0;  // of the waiter's ACQUIRE
    uint8_t mode = LOCKD_MODE_NONE;
    uint32_t lease_ms = 0;  // granted lease, as in a GRANTED reply
  };

  // Indexed by enum lockd_stat.
  using Counters = std::array<uint64_t, LOCKD_STAT_COUNT>;

  struct Outcome {
    // No reply: the request was malformed (dropped), a KICK, or a sweep.
    std::optional<Reply> reply;
    // Waiters granted as a consequence, in grant order.
    std::vector<Grant> grants;
    // What this call added to the counters.
    Counters counters{};
  };

  struct Hold {
    uint8_t mode = LOCKD_MODE_NONE;
    uint64_t fence = 0;
    uint32_t seq = 0;       // of the ACQUIRE that created the record
    uint32_t lease_ms = 0;  // last granted or renewed lease
    uint64_t lease_expires_ns = 0;
  };

  struct Waiter {
    uint64_t txn_id = 0;
    uint8_t mode = LOCKD_MODE_NONE;
    uint8_t policy = LOCKD_POLICY_WAIT;
    uint32_t seq = 0;
    uint32_t lease_ms = 0;  // lease to grant, already defaulted and clamped
    uint64_t enqueued_ns = 0;
    uint64_t deadline_ns = 0;  // 0 = waits without limit
    uint32_t queue_pos = 0;    // entries ahead at enqueue (its QUEUED reply)
    bool cancelled = false;    // still linked until it reaches the head
  };

  struct LockState {
    uint8_t mode = LOCKD_MODE_NONE;
    std::map<uint64_t, Hold> holders;  // by txn_id
    std::deque<Waiter> queue;          // head first; one pool block each
    uint64_t fence = 0;                // last fence handed out
    uint64_t min_txn = kIdleMinTxn;    // WAIT_DIE bound; kIdleMinTxn while idle
  };

  explicit LockEngine(Config config);

  // Processes one request arriving at `now_ns` (CLOCK_MONOTONIC).
  Outcome Apply(const Request& request, uint64_t now_ns);

  // The daemon's lease sweep. ExpireHolder ends a hold whose lease ran out
  // (lease_expires_ns < now_ns) as a release would, but without a reply and
  // without remembering it as released, then grants from the head.
  // ExpireWaiter cancels a waiter whose deadline passed, as a RELEASE by the
  // waiter would, without a reply. Only grant-from-head counters move.
  // NotFound: no such holder / live waiter. FailedPrecondition: not expired.
  absl::StatusOr<Outcome> ExpireHolder(uint64_t lock_id, uint64_t txn_id,
                                       uint64_t now_ns);
  absl::StatusOr<Outcome> ExpireWaiter(uint64_t lock_id, uint64_t txn_id,
                                       uint64_t now_ns);

  // Ends a hold for an operator, whatever its lease: like ExpireHolder, and a
  // late RELEASE by the holder is told FORCE_RELEASED. NotFound: no holder.
  absl::StatusOr<Outcome> ForceRelease(uint64_t lock_id, uint64_t txn_id,
                                       uint64_t now_ns);

  // Holders whose lease ran out and waiters whose deadline passed at
  // `now_ns`, as (lock_id, txn_id): what the lease sweep must expire.
  std::vector<std::pair<uint64_t, uint64_t>> DueHolders(uint64_t now_ns) const;
  std::vector<std::pair<uint64_t, uint64_t>> DueWaiters(uint64_t now_ns) const;

  // Adopts a lock taken over from the kernel (replacing any state of it).
  void Install(uint64_t lock_id, LockState state);
  // Forgets a lock (handed back to the kernel); returns its last state.
  std::optional<LockState> Remove(uint64_t lock_id);
  std::vector<uint64_t> LockIds() const;

  // nullptr if no ACQUIRE ever named the lock.
  const LockState* Find(uint64_t lock_id) const;

  // Queue entries over all locks, cancelled ones not yet unlinked included:
  // the datapath's pool blocks in use.
  size_t QueuedBlocks() const;

  // CheckLockInvariants for every lock.
  absl::Status CheckInvariants() const;

  // The invariants every lock state satisfies between requests. Static so
  // that a state rebuilt from the datapath's maps can be checked too.
  static absl::Status CheckLockInvariants(uint64_t lock_id,
                                          const LockState& lock);

  // Totals since construction.
  const Counters& stats() const { return stats_; }

  // Whether the engine maintains this counter. The others (rx, kicks, TC
  // sends, retries, hand-offs, pool, bad_version, acquire_inflight) describe
  // how the datapath works, not what it decides, and stay zero here.
  static bool IsModeledCounter(enum lockd_stat stat);

 private:
  using OwnerKey = std::pair<uint64_t, uint64_t>;  // lock_id, txn_id

  void Acquire(const Request& request, uint64_t now_ns, Outcome* outcome);
  void Release(const Request& request, uint64_t now_ns, Outcome* outcome);
  void Renew(const Request& request, uint64_t now_ns, Outcome* outcome);

  // Makes txn a holder with a new fence; the caller checked compatibility.
  Hold& AddHolder(LockState& lock, uint64_t txn_id, uint8_t mode, uint32_t seq,
                  uint32_t lease_ms, uint64_t now_ns);
  void RemoveHolder(LockState& lock, uint64_t txn_id);
  void GrantFromHead(uint64_t lock_id, LockState& lock, uint64_t now_ns,
                     Outcome* outcome);
  absl::StatusOr<Outcome> EndHold(uint64_t lock_id, uint64_t txn_id,
                                  uint64_t now_ns, uint8_t reason);

  uint32_t EffectiveLeaseMs(uint32_t asked_ms) const;
  void Count(enum lockd_stat stat, Outcome* outcome);

  Config config_;
  std::map<uint64_t, LockState> locks_;
  // Why an owner's last hold or wait ended: what a late RELEASE is told.
  struct Memo {
    uint64_t fence = 0;
    uint8_t status = LOCKD_STATUS_OK;  // OK, or why the daemon ended it
  };
  std::map<OwnerKey, Memo> released_;  // recently released
  Counters stats_{};
};

bool operator==(const LockEngine::Reply& a, const LockEngine::Reply& b);
bool operator==(const LockEngine::Grant& a, const LockEngine::Grant& b);
std::ostream& operator<<(std::ostream& os, const LockEngine::Reply& reply);
std::ostream& operator<<(std::ostream& os, const LockEngine::Grant& grant);

}  // namespace lockd

#endif  // LOCKD_LOCKD_LOCK_ENGINE_H_
