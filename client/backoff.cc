#include "client/backoff.h"

#include <algorithm>

namespace lockd::client {

absl::Duration RetryPause(int retry, double random) {
  constexpr int kMaxDoublings = 3;  // 8 ms
  const int doublings = std::clamp(retry - 1, 0, kMaxDoublings);
  return absl::Milliseconds(1 << doublings) * (0.5 + random);
}

}  // namespace lockd::client
