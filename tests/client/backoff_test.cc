// RunTransaction's pause before a retry (client/backoff.h).
#include "client/backoff.h"

#include "gtest/gtest.h"

namespace lockd::client {
namespace {

using absl::Microseconds;
using absl::Milliseconds;

TEST(RetryPauseTest, DoublesFromOneMillisecondUpToEight) {
  EXPECT_EQ(RetryPause(1, 0.5), Milliseconds(1));
  EXPECT_EQ(RetryPause(2, 0.5), Milliseconds(2));
  EXPECT_EQ(RetryPause(3, 0.5), Milliseconds(4));
  EXPECT_EQ(RetryPause(4, 0.5), Milliseconds(8));
  // A transaction that keeps dying does not idle for longer and longer.
  EXPECT_EQ(RetryPause(5, 0.5), Milliseconds(8));
  EXPECT_EQ(RetryPause(100, 0.5), Milliseconds(8));
}

TEST(RetryPauseTest, RandomSpreadsItOverHalfToOneAndAHalfTimes) {
  EXPECT_EQ(RetryPause(1, 0.0), Microseconds(500));
  EXPECT_EQ(RetryPause(1, 0.25), Microseconds(750));
  EXPECT_EQ(RetryPause(4, 0.0), Milliseconds(4));
  EXPECT_EQ(RetryPause(4, 0.999), Microseconds(11992));
}

}  // namespace
}  // namespace lockd::client
