#include "bench/histogram.h"

#include <algorithm>
#include <cmath>

namespace lockd::bench {

// Values below kSubBuckets get a bucket each; above, octave o (the position
// of the highest set bit, from kSubBucketBits on) is split into kSubBuckets
// equal parts by the next kSubBucketBits bits.
int LatencyHistogram::BucketOf(uint64_t value) {
  if (value < kSubBuckets) return static_cast<int>(value);
  const int octave = 63 - __builtin_clzll(value);  // >= kSubBucketBits
  const int shift = octave - kSubBucketBits;
  const int sub = static_cast<int>((value >> shift) & (kSubBuckets - 1));
  return (shift + 1) * kSubBuckets + sub;
}

uint64_t LatencyHistogram::UpperEdge(int bucket) {
  if (bucket < kSubBuckets) return static_cast<uint64_t>(bucket);
  const int shift = bucket / kSubBuckets - 1;
  const uint64_t sub = static_cast<uint64_t>(bucket % kSubBuckets);
  return ((kSubBuckets + sub + 1) << shift) - 1;
}

void LatencyHistogram::Record(int64_t nanoseconds) {
  const uint64_t value =
      static_cast<uint64_t>(std::max<int64_t>(0, nanoseconds));
  ++buckets_[BucketOf(value)];
  ++count_;
  sum_ += static_cast<double>(value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
}

int64_t LatencyHistogram::Percentile(double fraction) const {
  if (count_ == 0) return 0;
  const uint64_t rank = std::max<uint64_t>(
      1,
      static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return static_cast<int64_t>(UpperEdge(i));
  }
  return static_cast<int64_t>(UpperEdge(kBuckets - 1));
}

double LatencyHistogram::MeanNanoseconds() const {
  return count_ == 0 ? 0 : sum_ / static_cast<double>(count_);
}

}  // namespace lockd::bench
