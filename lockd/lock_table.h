// The lock table as the control plane sees it: the seam between the
// daemon's services (dispatcher, lock service, expiry, socket path) and
// wherever the locks live. KernelTable (kernel_table.h) is the real one: the
// BPF maps, changed only through the control program. ModelTable
// (model/model_table.h) serves the reference model behind the same
// interface, so that the services are tested without root.
#ifndef LOCKD_LOCKD_LOCK_TABLE_H_
#define LOCKD_LOCKD_LOCK_TABLE_H_

#include <cstdint>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"

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
  uint64_t holder_txn = 0;         // the inline holder, if any
  uint64_t holder_expires_ns = 0;  // its lease end, 0: none
  bool extra_holders = false;      // holders beyond the inline one
};

class LockTable {
 public:
  virtual ~LockTable() = default;

  // Runs one control operation (abi/lockd_abi.h, enum lockd_ctl_op) and
  // returns the command with its results filled in. Safe from any thread.
  virtual absl::StatusOr<lockd_ctl> Execute(const lockd_ctl& command) = 0;

  // A consistent view of one lock. NotFound when it has neither holders
  // nor waiters (idle locks do not exist).
  virtual absl::StatusOr<LockView> Read(uint64_t lock_id) const = 0;

  // The locks of one segment of the table, for walks that go a piece at a
  // time (none when the segment does not exist).
  virtual absl::StatusOr<std::vector<LockSummary>> ScanSegment(
      uint32_t segment) const = 0;
  // Segments that may hold locks now (below it, SegmentInUse tells which
  // do, without a look at them).
  virtual uint32_t SegmentCount() const = 0;
  virtual bool SegmentInUse(uint32_t segment) const = 0;

  // Every lock with members, segment by segment (for tests and small
  // tables: a listing for operators goes a page at a time, admin.h).
  absl::StatusOr<std::vector<LockSummary>> ListAll() const {
    std::vector<LockSummary> all;
    for (uint32_t s = 0; s < SegmentCount(); ++s) {
      absl::StatusOr<std::vector<LockSummary>> locks = ScanSegment(s);
      if (!locks.ok()) return locks.status();
      all.insert(all.end(), locks->begin(), locks->end());
    }
    return all;
  }

  // Locks with members, over the whole table.
  virtual absl::StatusOr<uint64_t> CountLocks() const = 0;

  // Forgets the endings remembered for owners (lease expired, force-
  // released, wait expired) before `before_ns`; returns how many.
  virtual absl::StatusOr<uint64_t> ForgetEnded(uint64_t before_ns) = 0;

  // The table's clock (CLOCK_MONOTONIC ns in the kernel): leases and
  // deadlines in views and control operations count on it.
  virtual uint64_t NowNs() const = 0;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_LOCK_TABLE_H_
