// The daemon's control loop: one thread that reads the datapath's events
// and keeps the table's memory and time.
//
//   event                        handled by
//   TABLE_GROW, POOL_LOW         Segments: the next table level, pool segment
//   WAITING                      Expiry::Watch: settle the lock when due
//   LOCAL_NOTICE                 Notifier: a gRPC caller's or socket member's
//   KICK_LOST                    Dispatcher::Kick: continue the queue here
//   (every sweep_interval)       Expiry::Sweep, LockService::Recheck
//   (every tidy_interval)        Segments::Tidy, Expiry::ForgetOldMemos
//
// It owns Segments and Expiry, which are single-threaded by design; the lock
// table itself needs no lock (the control program runs under the buckets'
// guards).
#ifndef LOCKD_LOCKD_CONTROL_LOOP_H_
#define LOCKD_LOCKD_CONTROL_LOOP_H_

#include <atomic>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lockd/daemon_counters.h"
#include "lockd/datapath.h"
#include "lockd/dispatcher.h"
#include "lockd/events.h"
#include "lockd/expiry.h"
#include "lockd/lock_service.h"
#include "lockd/notifier.h"
#include "lockd/segments.h"

namespace lockd {

struct ControlLoopOptions {
  absl::Duration sweep_interval = absl::Milliseconds(100);
  absl::Duration tidy_interval = absl::Seconds(1);
  // A gRPC call waiting this long is asked about again (LockService).
  absl::Duration recheck_age = absl::Seconds(1);
};

class ControlLoop {
 public:
  struct Parts {
    const Datapath* datapath;
    Segments* segments;
    Expiry* expiry;
    Notifier* notifier;
    Dispatcher* dispatcher;
    LockService* lock_service;
    DaemonCounters* counters;
  };
  // Every part must outlive the loop.
  ControlLoop(Parts parts, ControlLoopOptions options)
      : parts_(parts), options_(options) {}
  ~ControlLoop() { Stop(); }
  ControlLoop(const ControlLoop&) = delete;
  ControlLoop& operator=(const ControlLoop&) = delete;

  // Opens the event ring, settles what an earlier run left due (a full
  // sweep), and starts the thread.
  absl::Status Start();
  void Stop();

 private:
  void Run();
  void OnEvent(const lockd_event& event);
  void Periodic(absl::Time now);

  const Parts parts_;
  const ControlLoopOptions options_;
  std::unique_ptr<EventReader> events_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Time next_sweep_;
  absl::Time next_tidy_;
  // WAITING events of the last poll: (lock, wait deadline).
  std::vector<std::pair<uint64_t, uint64_t>> waiting_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_CONTROL_LOOP_H_
