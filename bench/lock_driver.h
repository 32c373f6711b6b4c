// LockDriver: how the load generator talks to one lock service. A driver
// serves the sessions of one EventLoop; each session has at most one
// transaction, whose locks are numbered by slot (their position in the
// transaction's sorted lock list). Calls return at once; the outcome comes
// back later, on the loop's thread, through the DriverListener.
#ifndef LOCKD_BENCH_LOCK_DRIVER_H_
#define LOCKD_BENCH_LOCK_DRIVER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"

namespace lockd::bench {

// Transaction ids carry their session in the low 16 bits (TxnRunner builds
// them), so a driver finds the session of a reply from its txn id.
inline int SessionOfTxn(uint64_t txn_id) {
  return static_cast<int>(txn_id & 0xffff);
}

enum class Reply {
  kGranted,   // the ACQUIRE of the slot holds now
  kRejected,  // refused (NO_WAIT conflict, WAIT_DIE death): abort the txn
  kReleased,  // the RELEASE of the slot is done
};

class DriverListener {
 public:
  virtual ~DriverListener() = default;
  virtual void OnReply(int session, int slot, Reply reply) = 0;
};

// Counters of what a driver did beyond the replies: retransmissions, polls
// of a busy lock, ... by name.
using DriverCounters = std::vector<std::pair<std::string, uint64_t>>;

class LockDriver {
 public:
  virtual ~LockDriver() = default;

  // Opens what `sessions` sessions need (sockets, connections, leases).
  // Blocking; called once, before the loop runs.
  virtual absl::Status Connect(int sessions, DriverListener* listener) = 0;

  virtual void Acquire(int session, int slot, uint64_t txn_id, uint64_t lock_id,
                       lockd_mode mode) = 0;
  // Only for slots that were granted.
  virtual void Release(int session, int slot, uint64_t txn_id,
                       uint64_t lock_id) = 0;

  virtual DriverCounters Counters() const = 0;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_LOCK_DRIVER_H_
