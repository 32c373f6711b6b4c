// What operators ask of a server (the gRPC AdminService and /metrics are
// thin adapters over it): the locks, read from the kernel's table; the
// counters of the datapath and of the daemon; the memory of the maps
// against the budget; and force-release, decided by the control program
// under the lock's guard against the fence the operator saw.
#ifndef LOCKD_LOCKD_ADMIN_H_
#define LOCKD_LOCKD_ADMIN_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lockd/daemon_counters.h"
#include "lockd/datapath.h"
#include "lockd/dispatcher.h"
#include "lockd/kernel_table.h"
#include "lockd/segments.h"

namespace lockd {

// What a server serves with, for Health.
struct ServerInfo {
  std::string interface;  // empty: no fast path
  std::string xdp_mode;   // "native", "generic", or empty
  uint16_t udp_port = 0;
  bool restored = false;  // continued an earlier run's pinned table
  uint32_t epoch = 0;     // in every reply (lockd_epoch_of the fence base)
  uint32_t grace_ms = 0;  // the grace period this run started with
  std::string version;
  absl::Time started = absl::Now();
};

class Admin {
 public:
  struct Parts {
    Dispatcher* dispatcher;
    const Datapath* datapath;
    const Segments* segments;
    DaemonCounters* counters;
  };
  // Every part must outlive this object.
  Admin(Parts parts, ServerInfo info) : parts_(parts), info_(std::move(info)) {}

  // One page of a listing of the locks with members: the whole table
  // segments from `segment` on, until at least `limit` locks (a segment is
  // never split between pages), in lock id order within the page. Each page
  // costs what it returns; a lock that moves between segments while pages
  // are read (a split or a merge) may show twice or not at all.
  struct Page {
    std::vector<LockSummary> locks;
    uint32_t next_segment = 0;  // 0: this was the last page
  };
  absl::StatusOr<Page> ListLocks(uint32_t segment, size_t limit) const;
  // What is left of the grace period (zero: none, or over).
  absl::Duration GraceLeft() const;
  // Ends the grace period now (an operator who knows every earlier holder
  // reclaimed or is gone); returns what was left of it.
  absl::Duration EndGrace() const;

  // One lock in full; NotFound when it is idle.
  absl::StatusOr<LockView> GetLock(uint64_t lock_id) const;
  // The datapath's counters by their LOCKD_STATS names, then the daemon's
  // as "daemon_<name>".
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> Counters()
      const;
  MemoryUse Memory() const { return parts_.segments->Use(); }
  // The datapath's queue wait histogram.
  absl::StatusOr<WaitHistogram> Waits() const {
    return parts_.datapath->ReadWaits();
  }
  // Locks in the table now.
  absl::StatusOr<uint64_t> LockCount() const;
  // Ends txn_id's hold of lock_id if the hold's fence is `fence` (0: any),
  // as one step under the lock's guard; returns the fence of the hold that
  // ended. A rejection (rejection.h) with NOT_HOLDER when the hold has
  // another fence, NotFound when txn_id holds nothing.
  absl::StatusOr<uint64_t> ForceRelease(uint64_t lock_id, uint64_t txn_id,
                                        uint64_t fence);

  const ServerInfo& info() const { return info_; }
  // Now on the table's clock: what lease and wait times in views count on.
  uint64_t NowNs() const { return parts_.dispatcher->table()->NowNs(); }

 private:
  const Parts parts_;
  const ServerInfo info_;
};

// "198.18.0.2:40000", or "grpc" for a gRPC caller inside the daemon.
std::string MemberAddress(const lockd_member& member);

}  // namespace lockd

#endif  // LOCKD_LOCKD_ADMIN_H_
