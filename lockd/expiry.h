// Leases and wait deadlines: the endings nobody asks for.
//
// The datapath ends nothing by time on its own, except a lone expired holder
// that a conflicting ACQUIRE meets with an empty queue (lazy expiry). The
// rest is this class's, through the control program, which decides each
// ending under the lock's guard (a lease renewed meanwhile is not ended):
//   - a lock with waiters is watched from the moment its first waiter
//     queues (LOCKD_EVENT_WAITING): it is settled when its first lease or
//     wait deadline is due, and watched again while waiters remain;
//   - a sweep walks the table a few segments at a time and settles what no
//     queue watches: expired holders that nobody contends (their memory goes
//     back), and queues whose WAITING event was lost or came before a
//     restart;
//   - endings remembered for their owners (map "ended") are forgotten after
//     a while.
// Not thread-safe: the daemon's control loop owns it.
#ifndef LOCKD_LOCKD_EXPIRY_H_
#define LOCKD_LOCKD_EXPIRY_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lockd/daemon_counters.h"
#include "lockd/dispatcher.h"

namespace lockd {

struct ExpiryOptions {
  // Table segments one Sweep reads at most (256 buckets each).
  uint32_t segments_per_sweep = 64;
  // How long an ending is remembered for the owner's late RELEASE or RENEW.
  absl::Duration memo_ttl = absl::Seconds(60);
};

class Expiry {
 public:
  // All must outlive this object.
  Expiry(Dispatcher* dispatcher, DaemonCounters* counters,
         ExpiryOptions options = {})
      : dispatcher_(dispatcher), counters_(counters), options_(options) {}

  // A waiter queued on `lock_id`, whose wait ends at `deadline_ns` (0:
  // none): a lock not watched yet is settled now and watched from then on;
  // a watched one is looked at by the deadline.
  void Watch(uint64_t lock_id, uint64_t deadline_ns, uint64_t now_ns);
  // Settles the locks due by `now_ns`. Returns when the next is due (ns on
  // the table's clock), 0 when none is.
  uint64_t RunDue(uint64_t now_ns);
  // Reads the next segments of the table and settles what is due there.
  absl::Status Sweep(uint64_t now_ns);
  // The same over every segment in use, each once: at start, for what an
  // earlier run of the daemon left queued or expired.
  absl::Status SweepAll(uint64_t now_ns);
  // Forgets remembered endings older than the memo TTL.
  absl::Status ForgetOldMemos(uint64_t now_ns);

  size_t watched() const { return due_.size(); }

 private:
  // Ends what is due on `lock_id` and, while it has waiters, watches it.
  void Settle(uint64_t lock_id, uint64_t now_ns);
  // Runs one ending; true when it ended something.
  bool End(lockd_ctl_op op, uint64_t lock_id, const MemberView& member);
  void Schedule(uint64_t lock_id, uint64_t due_ns);
  // Sweeps from the cursor on until `limit` segments in use were read or
  // every segment was looked at once.
  absl::Status SweepSegments(uint64_t now_ns, uint32_t limit);

  Dispatcher* const dispatcher_;
  DaemonCounters* const counters_;
  const ExpiryOptions options_;
  using Entry = std::pair<uint64_t, uint64_t>;  // (due ns, lock)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  absl::flat_hash_map<uint64_t, uint64_t> due_;  // lock -> its heap entry
  uint32_t next_segment_ = 0;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_EXPIRY_H_
