// The reference model: docs/semantics.md as plain C++, written for clarity
// rather than speed. The BPF datapath is checked against it: the scenario
// corpus (tests/scenarios) runs on both, and the randomized differential
// test sends one request stream to both and compares every reply, grant,
// counter and lock.
//
// It speaks the datapath's vocabulary (struct lockd_request, lockd_reply,
// lockd_notice, lockd_ctl from abi/lockd_abi.h). Where it is unbounded, the
// datapath is bounded:
// - Grant from the head has no per-run batch limit: one Apply() returns
//   every grant a release causes. The datapath grants at most
//   LOCKD_MAX_GRANTS per run and continues with KICKs.
// - There is no table, pool or budget: no NO_CAPACITY, no silence.
// - It keeps no tickets (it finds owners by (lock, txn)); replies carry
//   ticket 0. Tickets are how the datapath finds a record fast, never what
//   it decides.
// - Fences: a lock that becomes idle is deleted, and a lock created again
//   continues from its last fence + 1. The datapath continues from its
//   bucket's floor + 1, which is at least that: compare fences of one
//   incarnation by difference, and across incarnations by order.
//
// Decisions where semantics.md leaves room (the datapath must do the same):
// - Reply fields a reply does not define are zero: `fence` is set only by
//   GRANTED, RENEWED and RELEASED, `lease_ms` only by GRANTED and RENEWED,
//   `queue_pos` only by QUEUED.
// - A retransmitted ACQUIRE of a waiter gets QUEUED with queue_pos 0.
// - queue_pos counts every linked entry ahead, cancelled ones included.
// - WAIT_DIE decides by the oldest member. Beside it the model keeps
//   min_txn and min_dirty exactly as the datapath keeps min_txn and
//   LOCKD_LOCK_MIN_DIRTY (the state the scenarios and the differential test
//   compare): a member at or below min_txn sets it and clears min_dirty;
//   the member at min_txn leaving sets min_dirty; a WAIT_DIE request that
//   min_txn alone would refuse on a dirty lock makes it exact (the datapath
//   walks the holders and queue for it). min_txn is all ones while a lock
//   is idle; grant from the head unlinks first, so the bound restarts from
//   a member granted into an idle lock.
#ifndef LOCKD_MODEL_LOCK_MODEL_H_
#define LOCKD_MODEL_LOCK_MODEL_H_

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"

namespace lockd {

// min_txn of an idle lock: no member bounds it.
inline constexpr uint64_t kIdleMinTxn = ~uint64_t{0};

class LockModel {
 public:
  struct Config {
    uint32_t default_lease_ms = LOCKD_DEFAULT_LEASE_MS;
    uint32_t max_lease_ms = LOCKD_MAX_LEASE_MS;
    int32_t client_quota = LOCKD_DEFAULT_CLIENT_QUOTA;
    // The table's fence base: new locks' fences start above it, reclaimed
    // fences must be below it (struct lockd_config.fence_base).
    uint64_t fence_base = 0;
    // Grace period end on the model's clock; 0 = none
    // (struct lockd_config.grace_until_ns).
    uint64_t grace_until_ns = 0;
  };

  struct Hold {
    uint8_t mode = LOCKD_MODE_NONE;
    uint8_t policy = LOCKD_POLICY_WAIT;
    uint8_t flags = 0;                       // LOCKD_MEMBER_*
    uint32_t client_id = LOCKD_CLIENT_NONE;  // the owner's client
    uint64_t fence = 0;
    uint64_t seq = 0;       // of the ACQUIRE that made it a member
    uint32_t lease_ms = 0;  // last granted or renewed lease
    uint64_t since_ns = 0;
    uint64_t lease_expires_ns = 0;
    lockd_endpoint endpoint{};
  };

  struct Waiter {
    uint64_t txn_id = 0;
    uint8_t mode = LOCKD_MODE_NONE;
    uint8_t policy = LOCKD_POLICY_WAIT;
    uint8_t flags = 0;
    uint32_t client_id = LOCKD_CLIENT_NONE;
    uint64_t seq = 0;
    uint32_t lease_ms = 0;  // lease to grant, already defaulted and clamped
    uint64_t enqueued_ns = 0;
    uint64_t deadline_ns = 0;  // 0 = waits without limit
    bool cancelled = false;    // still linked until it reaches the head
    lockd_endpoint endpoint{};
  };

  struct LockState {
    uint8_t mode = LOCKD_MODE_NONE;
    std::map<uint64_t, Hold> holders;  // by txn_id
    std::deque<Waiter> queue;          // head first
    uint64_t fence = 0;                // last fence handed out
    // At most the oldest member's txn; equal to it unless min_dirty.
    uint64_t min_txn = kIdleMinTxn;
    bool min_dirty = false;
  };

  // Indexed by enum lockd_stat.
  using Counters = std::array<uint64_t, LOCKD_STAT_COUNT>;

  struct Outcome {
    // None: malformed (dropped), or a KICK.
    std::optional<lockd_reply> reply;
    // Members to tell, in order: GRANTED for waiters let in.
    std::vector<lockd_notice> notices;
    Counters counters{};  // what this call added
  };

  explicit LockModel(Config config);

  // One request arriving at `now_ns` (CLOCK_MONOTONIC), as the datapath
  // would serve it.
  Outcome Apply(const lockd_request& request, uint64_t now_ns);
  // One datagram from `from`: parsed and authenticated as the datapath does
  // (a refused one has no outcome but its counter), then applied.
  Outcome ApplyWire(const lockd_msg& wire, const lockd_endpoint& from,
                    uint64_t now_ns);

  // One control operation (enum lockd_ctl_op), as the control program
  // would run it: results, reply and notices filled in. WIRE checks the
  // message's MAC and seq against the keys SET_KEY gave, as the datapath
  // does (unauthenticated requests are accepted: the model has no subnets),
  // and signs the reply and notices.
  lockd_ctl Execute(const lockd_ctl& command, uint64_t now_ns,
                    Counters* counters = nullptr);

  // nullptr when the lock has neither holders nor waiters.
  const LockState* Find(uint64_t lock_id) const;
  const std::map<uint64_t, LockState>& locks() const { return locks_; }
  // Queue entries over all locks, cancelled ones included: the datapath's
  // pool blocks for waiters.
  size_t QueuedBlocks() const;

  // The invariants every lock satisfies between requests. Static so that a
  // state rebuilt from the datapath's maps can be checked too.
  static absl::Status CheckLockInvariants(uint64_t lock_id,
                                          const LockState& lock);
  absl::Status CheckInvariants() const;

  // Forgets the endings remembered before `before_ns`, as the daemon does
  // with the datapath's; returns how many.
  size_t ForgetEnded(uint64_t before_ns);

  const Counters& stats() const { return stats_; }
  // The grace period now ends at `ns` (0: none), as the daemon's start or
  // EndGrace sets it.
  void SetGraceUntil(uint64_t ns) { config_.grace_until_ns = ns; }
  // Holds + waits of a client now.
  int64_t ClientMembers(uint32_t client_id) const;
  // Whether the model keeps this counter. The others (rx, kicks, TC sends,
  // retries, searches, splits, pool, events) describe how the datapath
  // works, not what it decides, and stay zero here.
  static bool IsModeledCounter(enum lockd_stat stat);

 private:
  using OwnerKey = std::pair<uint64_t, uint64_t>;  // lock_id, txn_id
  struct Memo {
    uint64_t fence = 0;
    uint8_t status = LOCKD_STATUS_OK;
    uint64_t time_ns = 0;  // when the ending was decided
    uint32_t client_id = LOCKD_CLIENT_NONE;
  };
  // A client as the datapath's struct lockd_client keeps it.
  struct Client {
    std::array<uint64_t, 2> key{};
    std::array<uint64_t, 2> old_key{};
    bool has_old_key = false;
    uint64_t seq_top = 0;
    uint64_t seq_seen = 0;
  };

  // The request's verdict as auth_request (bpf/lib/auth.h) decides it:
  // 0 accepted (key: the one it was signed with), else the counter.
  enum lockd_stat Authenticate(const lockd_msg& wire, const lockd_request& req,
                               std::array<uint64_t, 2>* key);
  // The MAC of `reply` as sent (with the table's epoch) under `key`.
  uint64_t SignedMac(const lockd_reply& reply,
                     const std::array<uint64_t, 2>& key) const;
  // The member count of a client changes (a member starts or ends).
  void AddMember(uint32_t client_id, int delta);
  void Acquire(const lockd_request& req, uint64_t now_ns, Outcome* out);
  // A request naming a txn whose record another client made.
  void ReplyForeign(const lockd_request& req, Outcome* out);
  void Release(const lockd_request& req, uint64_t now_ns, Outcome* out);
  void Renew(const lockd_request& req, uint64_t now_ns, Outcome* out);
  // RELEASE or RENEW from an owner the lock does not know: if its hold or
  // wait was ended for it, it learns why.
  void ReplyNotMember(const lockd_request& req, Outcome* out);
  // Ends a hold: `reason` OK (a release) or why it was ended for its owner.
  uint64_t EndHold(uint64_t lock_id, LockState& lock, uint64_t txn_id,
                   uint8_t reason, Outcome* out);
  Hold& AddHolder(LockState& lock, uint64_t txn_id, uint8_t mode,
                  const Waiter& from, uint64_t now_ns);
  void GrantFromHead(uint64_t lock_id, LockState& lock, uint64_t now_ns,
                     Outcome* out);
  // The lock of an id, created (idle) if absent.
  LockState& Lock(uint64_t lock_id, Outcome* out);
  // Deletes the lock if it became idle.
  void Settle(uint64_t lock_id, Outcome* out);
  // min_txn and min_dirty as members join and leave (see above).
  static void NoteMember(LockState& lock, uint64_t txn_id);
  static void NoteLeave(LockState& lock, uint64_t txn_id);
  // The smallest txn id of a holder or live waiter; all ones if none.
  static uint64_t OldestMember(const LockState& lock);
  uint32_t EffectiveLeaseMs(uint32_t asked_ms) const;
  void Count(enum lockd_stat stat, Outcome* out);

  Config config_;
  std::map<uint64_t, LockState> locks_;
  std::map<uint64_t, uint64_t> last_fence_;  // of locks now idle
  std::map<OwnerKey, Memo> ended_;  // holds and waits ended for the owner
  std::map<uint32_t, Client> clients_;
  std::map<uint32_t, int64_t> members_;  // holds + waits per client
  Counters stats_{};
  uint64_t now_ns_ = 0;  // of the request or operation being decided
};

}  // namespace lockd

#endif  // LOCKD_MODEL_LOCK_MODEL_H_
