#include "bench/loop_inbox.h"

#include <utility>

namespace lockd::bench {

absl::Status LoopInbox::Attach() {
  return loop_->OnWake([this] { Drain(); });
}

void LoopInbox::Post(std::function<void()> work) {
  bool was_empty;
  {
    absl::MutexLock lock(&mu_);
    was_empty = queue_.empty();
    queue_.push_back(std::move(work));
  }
  // A non-empty queue has a wake-up pending: the loop reads the wake-up
  // before it takes the queue, so it takes this closure too.
  if (was_empty) loop_->Wake();
}

void LoopInbox::Drain() {
  std::vector<std::function<void()>> work;
  {
    absl::MutexLock lock(&mu_);
    work.swap(queue_);
  }
  for (std::function<void()>& item : work) item();
}

}  // namespace lockd::bench
