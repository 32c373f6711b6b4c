// The client's retransmission timeout (client/rtt.h) against RFC 6298's
// arithmetic, sample by sample, and the probe schedule of a queued request.
#include "client/rtt.h"

#include "gtest/gtest.h"

namespace lockd::client {
namespace {

using absl::Microseconds;
using absl::Milliseconds;
using absl::Seconds;

TEST(RttEstimatorTest, InitialUntilTheFirstSampleThenSrttPlusFourDeviations) {
  RttEstimator rtt(Milliseconds(20), Microseconds(200), Milliseconds(250));
  EXPECT_EQ(rtt.Rto(), Milliseconds(20));
  EXPECT_EQ(rtt.Srtt(), absl::ZeroDuration());
  // First sample R: SRTT = R, RTTVAR = R / 2, RTO = R + 4 * R / 2 = 3R.
  rtt.Sample(Microseconds(100));
  EXPECT_EQ(rtt.Srtt(), Microseconds(100));
  EXPECT_EQ(rtt.Rto(), Microseconds(300));
  // Then RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R.
  rtt.Sample(Microseconds(180));
  // RTTVAR = 37.5 + 20 = 57.5 us, SRTT = 87.5 + 22.5 = 110 us.
  EXPECT_EQ(rtt.Srtt(), Microseconds(110));
  EXPECT_EQ(rtt.Rto(), Microseconds(340));
}

TEST(RttEstimatorTest, StaysBetweenFloorAndCeiling) {
  RttEstimator fast(Milliseconds(20), Milliseconds(1), Milliseconds(250));
  for (int i = 0; i < 50; ++i) fast.Sample(Microseconds(10));
  EXPECT_EQ(fast.Rto(), Milliseconds(1));  // the floor
  RttEstimator slow(Milliseconds(20), Milliseconds(1), Milliseconds(250));
  slow.Sample(absl::Seconds(1));
  EXPECT_EQ(slow.Rto(), Milliseconds(250));  // the ceiling
}

TEST(RttEstimatorTest, SteadyRoundTripsShrinkTheDeviation) {
  RttEstimator rtt(Milliseconds(20), Microseconds(1), Milliseconds(250));
  rtt.Sample(Microseconds(400));
  const absl::Duration first = rtt.Rto();  // 1200 us
  for (int i = 0; i < 40; ++i) rtt.Sample(Microseconds(400));
  EXPECT_LT(rtt.Rto(), first);
  EXPECT_GE(rtt.Rto(), Microseconds(400));
  EXPECT_LT(rtt.Rto(), Microseconds(410));
}

TEST(RttEstimatorTest, ResetForgetsTheSamples) {
  RttEstimator rtt(Milliseconds(20), Microseconds(1), Milliseconds(250));
  rtt.Sample(Microseconds(400));
  ASSERT_EQ(rtt.Rto(), Microseconds(1200));
  rtt.Reset();
  EXPECT_EQ(rtt.Rto(), Milliseconds(20));
  EXPECT_EQ(rtt.Srtt(), absl::ZeroDuration());
  // The next sample is a first one again.
  rtt.Sample(Microseconds(100));
  EXPECT_EQ(rtt.Rto(), Microseconds(300));
}

TEST(QueuedProbeDelayTest, TwoRtosThenDoublingUpToEightRtos) {
  const absl::Duration rto = Microseconds(300);
  const absl::Duration max = Milliseconds(500);
  absl::Duration delay = QueuedProbeDelay(absl::ZeroDuration(), rto, max);
  EXPECT_EQ(delay, Microseconds(600));
  delay = QueuedProbeDelay(delay, rto, max);
  EXPECT_EQ(delay, Microseconds(1200));
  delay = QueuedProbeDelay(delay, rto, max);
  EXPECT_EQ(delay, Microseconds(2400));
  // However long the wait, a lost GRANTED costs at most 8 RTOs.
  for (int i = 0; i < 20; ++i) delay = QueuedProbeDelay(delay, rto, max);
  EXPECT_EQ(delay, kQueuedProbeMaxRtos * rto);
  EXPECT_EQ(delay, Microseconds(2400));
}

TEST(QueuedProbeDelayTest, FollowsTheRtoAndStaysWithinTheConfiguredMaximum) {
  // The RTO grew since the last probe: so does the cap.
  EXPECT_EQ(QueuedProbeDelay(Milliseconds(2), Milliseconds(1), Seconds(1)),
            Milliseconds(4));
  EXPECT_EQ(QueuedProbeDelay(Milliseconds(8), Milliseconds(2), Seconds(1)),
            Milliseconds(16));
  // A slow path (RTO 100 ms): the configured maximum binds first.
  EXPECT_EQ(QueuedProbeDelay(absl::ZeroDuration(), Milliseconds(100),
                             Milliseconds(500)),
            Milliseconds(200));
  EXPECT_EQ(
      QueuedProbeDelay(Milliseconds(400), Milliseconds(100), Milliseconds(500)),
      Milliseconds(500));
  EXPECT_EQ(QueuedProbeDelay(absl::ZeroDuration(), Milliseconds(100),
                             Milliseconds(50)),
            Milliseconds(50));
}

}  // namespace
}  // namespace lockd::client
