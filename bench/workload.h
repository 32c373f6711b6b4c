// The lock workloads of the benchmarks (/work/shared/brief/anchors.md, "How
// the literature measures"): which locks a transaction takes, in which mode.
//
//   uniform             1M locks, uniform, 5-10 locks per transaction, 20 %
//                       exclusive (80 % shared): DINT-Lock's workload
//   zipf<S>_x<P>        1M locks, Zipf with exponent S (0.9, 0.99), 5-10
//                       locks per transaction, P % exclusive (0, 10, 50):
//                       FissLock's skews and write ratios
//   hot<N>              N locks (1 .. 10000), uniform, 1 exclusive lock per
//                       transaction: NetLock's hot set
//
// Locks of one transaction are distinct and sorted by lock id (the global
// order that makes strict 2PL deadlock-free); a lock drawn twice is taken
// once, exclusive if either draw was.
#ifndef LOCKD_BENCH_WORKLOAD_H_
#define LOCKD_BENCH_WORKLOAD_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lockd::bench {

struct LockStep {
  uint64_t lock_id = 0;
  lockd_mode mode = LOCKD_MODE_SHARED;
};

struct WorkloadSpec {
  std::string name;
  uint32_t locks = 0;        // key space
  double zipf_exponent = 0;  // 0 = uniform
  uint32_t min_locks_per_txn = 1;
  uint32_t max_locks_per_txn = 1;
  double exclusive_fraction = 1;
};

// The spec of a workload named as in the header comment.
absl::StatusOr<WorkloadSpec> ParseWorkload(absl::string_view name);

// The lock id of the index-th lock of every workload: well spread (as hashed
// names would be) and never 0.
uint64_t BenchLockId(uint64_t index);

// Draws transactions of one workload. Immutable after construction (the Zipf
// table is shared), so threads share one and bring their own random engine.
class Workload {
 public:
  static absl::StatusOr<std::unique_ptr<Workload>> Create(
      const WorkloadSpec& spec);

  // Fills `steps` with the next transaction's locks, sorted by lock id.
  void NextTransaction(std::mt19937_64& rng,
                       std::vector<LockStep>& steps) const;

  const WorkloadSpec& spec() const { return spec_; }

 private:
  explicit Workload(WorkloadSpec spec) : spec_(std::move(spec)) {}
  uint64_t DrawIndex(std::mt19937_64& rng) const;

  WorkloadSpec spec_;
  std::vector<double> zipf_cdf_;  // empty for uniform
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_WORKLOAD_H_
