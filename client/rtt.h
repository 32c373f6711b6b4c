// The retransmission timeout of one server, from the round trips measured
// to it (RFC 6298, as TCP's): RTO = SRTT + 4 * RTTVAR, at least `floor` and
// at most `ceiling`; `initial` until the first sample. Every UDP transmission
// has a sequence number of its own, so a reply tells which copy it answers
// and every answered copy is a sample (no Karn ambiguity).
//
// Also the schedule on which a queued ACQUIRE asks again (QueuedProbeDelay).
//
// Internal to the client library. Safe from any thread.
#ifndef LOCKD_CLIENT_RTT_H_
#define LOCKD_CLIENT_RTT_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lockd::client {

class RttEstimator {
 public:
  RttEstimator(absl::Duration initial, absl::Duration floor,
               absl::Duration ceiling)
      : initial_(initial), floor_(floor), ceiling_(ceiling) {}

  // One round trip: a request's transmission to the reply that answers it.
  void Sample(absl::Duration rtt);
  absl::Duration Rto() const;
  // The smoothed round trip; zero before the first sample.
  absl::Duration Srtt() const;
  // Forgets every sample (the server moved): `initial` again.
  void Reset();

 private:
  const absl::Duration initial_;
  const absl::Duration floor_;
  const absl::Duration ceiling_;
  mutable absl::Mutex mu_;
  bool sampled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration srtt_ ABSL_GUARDED_BY(mu_);
  absl::Duration rttvar_ ABSL_GUARDED_BY(mu_);
};

// How long a queued ACQUIRE waits before it asks again (answered QUEUED
// again, or GRANTED should the GRANTED packet have been lost): two RTOs
// after the first QUEUED (`previous` zero), then twice `previous`, at most
// kQueuedProbeMaxRtos RTOs and at most `max`. So a GRANTED lost during a
// long wait costs at most that many RTOs, not a fixed interval.
inline constexpr int kQueuedProbeMaxRtos = 8;
absl::Duration QueuedProbeDelay(absl::Duration previous, absl::Duration rto,
                                absl::Duration max);

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_RTT_H_
