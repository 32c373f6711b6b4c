// Randomized exponential backoff, shared by transaction retries and by
// drivers that poll a busy lock.
#ifndef LOCKD_BENCH_BACKOFF_H_
#define LOCKD_BENCH_BACKOFF_H_

#include <algorithm>
#include <cstdint>
#include <random>

namespace lockd::bench {

struct Backoff {
  int64_t base_nanos = 20000;
  int64_t cap_nanos = 2000000;

  // Uniform in [0, min(cap, base * 2^attempt)].
  int64_t Draw(std::mt19937_64& rng, int attempt) const {
    const int64_t ceiling =
        std::min(cap_nanos, base_nanos << std::clamp(attempt, 0, 20));
    return std::uniform_int_distribution<int64_t>(0, ceiling)(rng);
  }
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_BACKOFF_H_
