// LatencyHistogram: nanosecond latencies in log-linear buckets (32 per power
// of two, so a reported percentile is within 3 % of the true value), in
// constant memory whatever the number of samples.
#ifndef LOCKD_BENCH_HISTOGRAM_H_
#define LOCKD_BENCH_HISTOGRAM_H_

#include <array>
#include <cstdint>

namespace lockd::bench {

class LatencyHistogram {
 public:
  void Record(int64_t nanoseconds);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  // The value below which `fraction` (0..1] of the samples lie: the upper
  // edge of the bucket holding that sample. 0 when empty.
  int64_t Percentile(double fraction) const;
  double MeanNanoseconds() const;

 private:
  static constexpr int kSubBucketBits = 5;  // 32 buckets per octave
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr int kOctaves = 64 - kSubBucketBits;
  static constexpr int kBuckets = kSubBuckets * (kOctaves + 1);

  static int BucketOf(uint64_t value);
  static uint64_t UpperEdge(int bucket);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_HISTOGRAM_H_
