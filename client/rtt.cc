#include "client/rtt.h"

#include <algorithm>

namespace lockd::client {

void RttEstimator::Sample(absl::Duration rtt) {
  absl::MutexLock lock(&mu_);
  if (!sampled_) {
    srtt_ = rtt;
    rttvar_ = rtt / 2;
    sampled_ = true;
    return;
  }
  rttvar_ = rttvar_ * 3 / 4 + absl::AbsDuration(srtt_ - rtt) / 4;
  srtt_ = srtt_ * 7 / 8 + rtt / 8;
}

absl::Duration RttEstimator::Rto() const {
  absl::MutexLock lock(&mu_);
  if (!sampled_) return initial_;
  return std::clamp(srtt_ + 4 * rttvar_, floor_, ceiling_);
}

absl::Duration RttEstimator::Srtt() const {
  absl::MutexLock lock(&mu_);
  return sampled_ ? srtt_ : absl::ZeroDuration();
}

void RttEstimator::Reset() {
  absl::MutexLock lock(&mu_);
  sampled_ = false;
}

absl::Duration QueuedProbeDelay(absl::Duration previous, absl::Duration rto,
                                absl::Duration max) {
  const absl::Duration next =
      previous == absl::ZeroDuration() ? 2 * rto : 2 * previous;
  return std::min({next, kQueuedProbeMaxRtos * rto, max});
}

}  // namespace lockd::client
