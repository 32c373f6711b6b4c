#include "bench/workload.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace lockd::bench {
namespace {

constexpr uint32_t kMillion = 1000000;

// "0.99" from "099", "0.9" from "09": the exponent as written after "zipf".
bool ParseExponent(absl::string_view digits, double* exponent) {
  if (digits.size() < 2 || digits[0] != '0') return false;
  return absl::SimpleAtod(absl::StrCat("0.", digits.substr(1)), exponent);
}

}  // namespace

absl::StatusOr<WorkloadSpec> ParseWorkload(absl::string_view name) {
  WorkloadSpec spec;
  spec.name = std::string(name);
  absl::string_view rest = name;
  if (name == "uniform") {
    spec.locks = kMillion;
    spec.min_locks_per_txn = 5;
    spec.max_locks_per_txn = 10;
    spec.exclusive_fraction = 0.2;
    return spec;
  }
  if (absl::ConsumePrefix(&rest, "hot")) {
    if (!absl::SimpleAtoi(rest, &spec.locks) || spec.locks == 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad hot set: ", name));
    }
    return spec;  // 1 exclusive lock per transaction
  }
  if (absl::ConsumePrefix(&rest, "zipf")) {
    const size_t split = rest.find("_x");
    uint32_t percent = 0;
    if (split != absl::string_view::npos &&
        ParseExponent(rest.substr(0, split), &spec.zipf_exponent) &&
        absl::SimpleAtoi(rest.substr(split + 2), &percent) && percent <= 100) {
      spec.locks = kMillion;
      spec.min_locks_per_txn = 5;
      spec.max_locks_per_txn = 10;
      spec.exclusive_fraction = percent / 100.0;
      return spec;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown workload '", name,
                   "' (uniform, zipf<exponent digits>_x<percent>, hot<N>)"));
}

uint64_t BenchLockId(uint64_t index) {
  // splitmix64's finalizer: a bijection, so distinct indexes stay distinct.
  uint64_t z = index + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z == 0 ? 1 : z;
}

absl::StatusOr<std::unique_ptr<Workload>> Workload::Create(
    const WorkloadSpec& spec) {
  if (spec.locks == 0 || spec.min_locks_per_txn == 0 ||
      spec.min_locks_per_txn > spec.max_locks_per_txn) {
    return absl::InvalidArgumentError("empty workload");
  }
  std::unique_ptr<Workload> workload(new Workload(spec));
  if (spec.zipf_exponent > 0) {
    std::vector<double>& cdf = workload->zipf_cdf_;
    cdf.resize(spec.locks);
    double sum = 0;
    for (uint32_t rank = 0; rank < spec.locks; ++rank) {
      sum += 1.0 / std::pow(static_cast<double>(rank + 1), spec.zipf_exponent);
      cdf[rank] = sum;
    }
    for (double& value : cdf) value /= sum;
  }
  return workload;
}

uint64_t Workload::DrawIndex(std::mt19937_64& rng) const {
  if (zipf_cdf_.empty()) {
    return std::uniform_int_distribution<uint64_t>(0, spec_.locks - 1)(rng);
  }
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  const auto it = std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u);
  return std::min<uint64_t>(it - zipf_cdf_.begin(), spec_.locks - 1);
}

void Workload::NextTransaction(std::mt19937_64& rng,
                               std::vector<LockStep>& steps) const {
  const uint32_t count = std::uniform_int_distribution<uint32_t>(
      spec_.min_locks_per_txn, spec_.max_locks_per_txn)(rng);
  std::bernoulli_distribution exclusive(spec_.exclusive_fraction);
  steps.clear();
  for (uint32_t i = 0; i < count; ++i) {
    steps.push_back({BenchLockId(DrawIndex(rng)), exclusive(rng)
                                                      ? LOCKD_MODE_EXCLUSIVE
                                                      : LOCKD_MODE_SHARED});
  }
  std::sort(
      steps.begin(), steps.end(), [](const LockStep& a, const LockStep& b) {
        return a.lock_id != b.lock_id ? a.lock_id < b.lock_id : a.mode > b.mode;
      });
  // After the sort the exclusive draw of a lock comes first: keep that one.
  steps.erase(std::unique(steps.begin(), steps.end(),
                          [](const LockStep& a, const LockStep& b) {
                            return a.lock_id == b.lock_id;
                          }),
              steps.end());
}

}  // namespace lockd::bench
