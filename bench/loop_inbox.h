// LoopInbox: hands work from threads a client library runs on its own (its
// I/O and completion threads) to one EventLoop. Post() queues a closure and
// wakes the loop, which runs the queued closures in order on its thread, so
// a driver's state is only ever touched there. Uses the loop's one wake
// handler (EventLoop::OnWake).
#ifndef LOCKD_BENCH_LOOP_INBOX_H_
#define LOCKD_BENCH_LOOP_INBOX_H_

#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "bench/event_loop.h"

namespace lockd::bench {

class LoopInbox {
 public:
  explicit LoopInbox(EventLoop* loop) : loop_(loop) {}
  LoopInbox(const LoopInbox&) = delete;
  LoopInbox& operator=(const LoopInbox&) = delete;

  // Takes the loop's wake handler; once, before the loop runs.
  absl::Status Attach();

  // From any thread: runs `work` on the loop's thread soon.
  void Post(std::function<void()> work);

 private:
  void Drain();

  EventLoop* loop_;
  absl::Mutex mu_;
  std::vector<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_LOOP_INBOX_H_
