// Runs control operations on the lock table and finishes what each run
// leaves to user space: its notices are delivered (notifier.h), and when a
// run says compatible waiters may remain (more than one run may grant), a
// KICK continues the lock's queue, as the datapath does with a packet.
#ifndef LOCKD_LOCKD_DISPATCHER_H_
#define LOCKD_LOCKD_DISPATCHER_H_

#include <cstdint>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "lockd/daemon_counters.h"
#include "lockd/lock_table.h"
#include "lockd/notifier.h"

namespace lockd {

class Dispatcher {
 public:
  // All must outlive the dispatcher. Safe to use from many threads.
  Dispatcher(LockTable* table, Notifier* notifier, DaemonCounters* counters)
      : table_(table), notifier_(notifier), counters_(counters) {}

  // Runs `command`, delivers its notices, continues with KICKs; returns
  // the command with its results.
  absl::StatusOr<lockd_ctl> Run(const lockd_ctl& command);
  // Runs `request` as a packet would be (LOCKD_CTL_REQUEST); the run's
  // reply is in reply unless result is NO_REPLY.
  absl::StatusOr<lockd_ctl> Request(const lockd_request& request);
  // Runs a datagram from `from` (LOCKD_CTL_WIRE): parsed and authenticated
  // by the control program as the packet path does; result FORGED or
  // MALFORMED when the packet path would drop it. InvalidArgument if it is
  // not one message long.
  absl::StatusOr<lockd_ctl> Wire(absl::Span<const uint8_t> bytes,
                                 const lockd_endpoint& from,
                                 uint8_t member_flags);
  // Grants what lock_id's queue can grant now.
  absl::Status Kick(uint64_t lock_id);

  LockTable* table() const { return table_; }

 private:
  void Deliver(const lockd_ctl& result);

  LockTable* const table_;
  Notifier* const notifier_;
  DaemonCounters* const counters_;
};

// The next sequence number for a request the daemon makes for a gRPC
// caller or for itself: above every earlier one, also across restarts of
// the daemon, and following the wall clock in ns as clients' do, so that the
// datapath never takes a later request for a stale one.
uint64_t NextDaemonSeq();

}  // namespace lockd

#endif  // LOCKD_LOCKD_DISPATCHER_H_
