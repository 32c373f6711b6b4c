// The lock table in the kernel, as the control plane sees it: lock
// operations run through the control program (BPF_PROG_TEST_RUN of
// lockd_ctl, the packet path's own code under the same guards), and locks
// are read straight from the maps. The daemon keeps no copy of any lock.
#ifndef LOCKD_LOCKD_KERNEL_TABLE_H_
#define LOCKD_LOCKD_KERNEL_TABLE_H_

#include <cstdint>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "lockd/datapath.h"

namespace lockd {

// A holder or waiter, and where its record is (its ticket).
struct MemberView {
  lockd_member m{};
  uint64_t ticket = 0;
};

// One lock with every member, as of one moment.
struct LockView {
  uint64_t lock_id = 0;
  lockd_lock state{};               // counts, mode, fence; holder: see below
  std::vector<MemberView> holders;  // by fence (grant order)
  std::vector<MemberView> queue;    // head first, cancelled ones included
};

// One lock as its bucket shows it, without its pool blocks.
struct LockSummary {
  uint64_t lock_id = 0;
  uint8_t mode = LOCKD_MODE_NONE;
  uint32_t holders = 0;
  uint32_t queue_len = 0;
  uint64_t fence = 0;
  uint64_t holder_expires_ns = 0;  // the inline holder's lease end, 0: none
  bool extra_holders = false;      // holders beyond the inline one
};

class KernelTable {
 public:
  // `datapath` must outlive this object. Safe to use from many threads.
  explicit KernelTable(const Datapath* datapath) : datapath_(datapath) {}

  // Runs one control operation (abi/lockd_abi.h, enum lockd_ctl_op) and
  // returns the command with its results filled in.
  absl::StatusOr<lockd_ctl> Execute(const lockd_ctl& command);

  // A consistent view of one lock. NotFound when it has neither holders
  // nor waiters (idle locks do not exist).
  absl::StatusOr<LockView> Read(uint64_t lock_id) const;

  // Locks with members whose id is above `after` (all when `first`), in id
  // order, at most `limit`.
  absl::StatusOr<std::vector<LockSummary>> List(bool first, uint64_t after,
                                                size_t limit) const;

  // The locks of table segment `segment` (none when it does not exist).
  absl::StatusOr<std::vector<LockSummary>> ScanSegment(uint32_t segment) const;
  // Segments that may hold buckets now (those below 2^table_levels).
  uint32_t SegmentCount() const;

  // Locks with members, counted over the whole table.
  absl::StatusOr<uint64_t> CountLocks() const;

  // The table's clock (CLOCK_MONOTONIC ns, bpf_ktime_get_ns): leases and
  // deadlines in views and control operations count on it.
  uint64_t NowNs() const;

 private:
  // Calls `visit(bucket)` for every bucket in use in segments [first, end),
  // each read under its guard.
  template <typename Visit>
  absl::Status ForEachBucket(uint32_t first_segment, uint32_t end_segment,
                             Visit visit) const;

  const Datapath* const datapath_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_KERNEL_TABLE_H_
