// The lock table in the kernel: lock operations run through the control
// program (BPF_PROG_TEST_RUN of lockd_ctl, the packet path's own code under
// the same guards), and locks are read straight from the maps. The daemon
// keeps no copy of any lock.
#ifndef LOCKD_LOCKD_KERNEL_TABLE_H_
#define LOCKD_LOCKD_KERNEL_TABLE_H_

#include <cstdint>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "lockd/datapath.h"
#include "lockd/lock_table.h"

namespace lockd {

class KernelTable : public LockTable {
 public:
  // `datapath` must outlive this object. Safe to use from many threads.
  explicit KernelTable(const Datapath* datapath) : datapath_(datapath) {}

  absl::StatusOr<lockd_ctl> Execute(const lockd_ctl& command) override;
  absl::StatusOr<LockView> Read(uint64_t lock_id) const override;
  // A segment is 256 buckets of the table (one inner map).
  absl::StatusOr<std::vector<LockSummary>> ScanSegment(
      uint32_t segment) const override;
  // Those that may hold buckets below 2^max_depth.
  uint32_t SegmentCount() const override;
  // table_seg_live: a bucket in use in it.
  bool SegmentInUse(uint32_t segment) const override;
  absl::StatusOr<uint64_t> CountLocks() const override;
  // Deletes them from the "ended" map.
  absl::StatusOr<uint64_t> ForgetEnded(uint64_t before_ns) override;
  // bpf_ktime_get_ns's clock.
  uint64_t NowNs() const override;

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
