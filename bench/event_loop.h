// EventLoop: one thread's epoll loop with timers, the engine every load
// generator driver runs on. Not thread-safe, except Wake().
#ifndef LOCKD_BENCH_EVENT_LOOP_H_
#define LOCKD_BENCH_EVENT_LOOP_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lockd::bench {

// CLOCK_MONOTONIC in nanoseconds: every time in the load generator.
int64_t NowNanos();

class EventLoop {
 public:
  // Called with the epoll events of a ready file descriptor.
  using FdHandler = std::function<void(uint32_t events)>;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd` (owned by the caller) for `events` (EPOLLIN, ...).
  absl::Status Watch(int fd, uint32_t events, FdHandler handler);
  absl::Status Rewatch(int fd, uint32_t events);
  void Unwatch(int fd);

  // Runs `callback` once, on this loop, at `when` (NowNanos) or later.
  void At(int64_t when, std::function<void()> callback);

  // Makes Run call `handler` soon; callable from any thread.
  absl::Status OnWake(std::function<void()> handler);
  void Wake();

  // Runs `hook` after every round of ready descriptors and due timers,
  // before the loop sleeps again: where drivers flush batched sends.
  void AfterEvents(std::function<void()> hook);

  // Serves descriptors and timers until Stop() or `deadline` passes.
  absl::Status Run(int64_t deadline);
  void Stop() { stopped_ = true; }

 private:
  struct Timer {
    int64_t when;
    uint64_t order;  // FIFO among equal times
    std::function<void()> callback;
    bool operator>(const Timer& other) const {
      return when != other.when ? when > other.when : order > other.order;
    }
  };

  EventLoop(int epoll_fd, int wake_fd)
      : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}
  void RunDueTimers();

  int epoll_fd_;
  int wake_fd_;
  bool stopped_ = false;
  uint64_t timer_order_ = 0;
  std::unordered_map<int, FdHandler> handlers_;
  std::vector<std::function<void()>> after_events_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_EVENT_LOOP_H_
