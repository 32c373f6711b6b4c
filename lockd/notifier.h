// Where the notices of members that the daemon serves go. A notice (struct
// lockd_notice) tells a member its wait ended: GRANTED after a release, or
// REJECTED when its wait deadline passed. The datapath sends those of its
// UDP members itself; the daemon delivers the rest:
//   - members of control operations' runs (a gRPC release that grants a UDP
//     waiter): sent from the daemon's socket to the member's address;
//   - LOCAL members with an address (requests the daemon's socket served):
//     the same;
//   - LOCAL members without one (gRPC callers): handed to the waiting call
//     registered in LocalCalls.
#ifndef LOCKD_LOCKD_NOTIFIER_H_
#define LOCKD_LOCKD_NOTIFIER_H_

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "lockd/daemon_counters.h"
#include "lockd/udp_socket.h"

namespace lockd {

// gRPC calls waiting for a notice, by owner (lock, txn).
class LocalCalls {
 public:
  using Callback = std::function<void(const lockd_reply&)>;

  // Registers `callback` for notices of (lock_id, txn_id); returns the
  // handle to Remove it with.
  uint64_t Add(uint64_t lock_id, uint64_t txn_id, Callback callback);
  void Remove(uint64_t handle);
  // Calls every callback registered for the reply's owner (outside the
  // registry's lock); false when there was none.
  bool Deliver(const lockd_reply& reply);

 private:
  using Owner = std::pair<uint64_t, uint64_t>;  // (lock, txn)
  absl::Mutex mu_;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<Owner, absl::flat_hash_map<uint64_t, Callback>> by_owner_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Owner> owner_of_ ABSL_GUARDED_BY(mu_);
};

class Notifier {
 public:
  // All must outlive the notifier.
  Notifier(UdpSocket* socket, LocalCalls* calls, DaemonCounters* counters)
      : socket_(socket), calls_(calls), counters_(counters) {}

  // Delivers one notice (any thread).
  void Deliver(const lockd_notice& notice);

 private:
  UdpSocket* const socket_;
  LocalCalls* const calls_;
  DaemonCounters* const counters_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_NOTIFIER_H_
