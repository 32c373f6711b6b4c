#include "bench/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

namespace lockd::bench {

int64_t NowNanos() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    const int error = errno;
    close(epoll_fd);
    return absl::ErrnoToStatus(error, "eventfd");
  }
  return std::unique_ptr<EventLoop>(new EventLoop(epoll_fd, wake_fd));
}

EventLoop::~EventLoop() {
  close(wake_fd_);
  close(epoll_fd_);
}

absl::Status EventLoop::Watch(int fd, uint32_t events, FdHandler handler) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl ADD");
  }
  handlers_[fd] = std::move(handler);
  return absl::OkStatus();
}

absl::Status EventLoop::Rewatch(int fd, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl MOD");
  }
  return absl::OkStatus();
}

void EventLoop::Unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::At(int64_t when, std::function<void()> callback) {
  timers_.push(Timer{when, timer_order_++, std::move(callback)});
}

absl::Status EventLoop::OnWake(std::function<void()> handler) {
  return Watch(
      wake_fd_, EPOLLIN, [this, handler = std::move(handler)](uint32_t) {
        uint64_t count;
        while (read(wake_fd_, &count, sizeof(count)) == sizeof(count)) {
        }
        handler();
      });
}

void EventLoop::Wake() {
  const uint64_t one = 1;
  // A full counter already means "wake up": nothing to do on failure.
  (void)!write(wake_fd_, &one, sizeof(one));
}

void EventLoop::RunDueTimers() {
  const int64_t now = NowNanos();
  while (!timers_.empty() && timers_.top().when <= now && !stopped_) {
    // Moved out before popping: the callback may add timers.
    std::function<void()> callback = std::move(timers_.top().callback);
    timers_.pop();
    callback();
  }
}

void EventLoop::AfterEvents(std::function<void()> hook) {
  after_events_.push_back(std::move(hook));
}

absl::Status EventLoop::Run(int64_t deadline) {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (!stopped_) {
    RunDueTimers();
    for (const std::function<void()>& hook : after_events_) hook();
    const int64_t now = NowNanos();
    if (stopped_ || now >= deadline) break;
    int64_t wake_at = deadline;
    if (!timers_.empty()) wake_at = std::min(wake_at, timers_.top().when);
    const int64_t wait = std::max<int64_t>(0, wake_at - now);
    timespec timeout{static_cast<time_t>(wait / 1000000000),
                     static_cast<long>(wait % 1000000000)};
    const int ready =
        epoll_pwait2(epoll_fd_, events, kMaxEvents, &timeout, nullptr);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "epoll_pwait2");
    }
    for (int i = 0; i < ready && !stopped_; ++i) {
      const auto handler = handlers_.find(events[i].data.fd);
      if (handler != handlers_.end()) handler->second(events[i].events);
    }
  }
  return absl::OkStatus();
}

}  // namespace lockd::bench
