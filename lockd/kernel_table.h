// The lock table in the kernel: lock operations run through the control
// program (BPF_PROG_TEST_RUN of lockd_ctl, the packet path's own code under
// the same guards), and locks are read straight from the maps.
#ifndef LOCKD_LOCKD_KERNEL_TABLE_H_
#define LOCKD_LOCKD_KERNEL_TABLE_H_

#include <cstdint>
#include <vector>

#include "lockd/datapath.h"
#include "lockd/lock_table.h"

namespace lockd {

class KernelTable : public LockTable {
 public:
  // `datapath` must outlive this object.
  explicit KernelTable(const Datapath* datapath) : datapath_(datapath) {}

  absl::StatusOr<lockd_ctl> Execute(const lockd_ctl& command) override;
  absl::StatusOr<LockView> Read(uint64_t lock_id) const override;
  absl::StatusOr<std::vector<LockSummary>> List(bool first, uint64_t after,
                                                size_t limit) const override;
  uint64_t NowNs() const override;

  // Locks with members, counted over the whole table.
  absl::StatusOr<uint64_t> CountLocks() const;

 private:
  // Calls `visit(bucket)` for every bucket in use, each read under its
  // guard.
  template <typename Visit>
  absl::Status ForEachBucket(Visit visit) const;

  const Datapath* const datapath_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_KERNEL_TABLE_H_
