// The reference model behind the daemon's LockTable interface
// (lockd/lock_table.h): the control plane's services (dispatcher, lock
// service, expiry, socket path) run over it in tests that need no root and
// no kernel. Its clock is the test's: time moves only when the test says.
// The whole table is one segment.
#ifndef LOCKD_MODEL_MODEL_TABLE_H_
#define LOCKD_MODEL_MODEL_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "lockd/lock_table.h"
#include "model/lock_model.h"

namespace lockd {

class ModelTable : public LockTable {
 public:
  explicit ModelTable(LockModel::Config config = {}) : model_(config) {}

  absl::StatusOr<lockd_ctl> Execute(const lockd_ctl& command) override;
  absl::StatusOr<LockView> Read(uint64_t lock_id) const override;
  absl::StatusOr<std::vector<LockSummary>> ScanSegment(
      uint32_t segment) const override;
  uint32_t SegmentCount() const override { return 1; }
  bool SegmentInUse(uint32_t segment) const override { return segment == 0; }
  absl::StatusOr<uint64_t> CountLocks() const override;
  absl::StatusOr<uint64_t> ForgetEnded(uint64_t before_ns) override;
  uint64_t NowNs() const override;

  void Advance(uint64_t ns);
  // The model's checks, for the test's own invariants.
  absl::Status CheckInvariants() const;

 private:
  std::vector<LockSummary> Summaries() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  LockModel model_ ABSL_GUARDED_BY(mu_);
  // Starts far from zero, as CLOCK_MONOTONIC does on a running machine.
  uint64_t now_ns_ ABSL_GUARDED_BY(mu_) = uint64_t{1000} * 1000000000;
};

}  // namespace lockd

#endif  // LOCKD_MODEL_MODEL_TABLE_H_
