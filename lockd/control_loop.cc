#include "lockd/control_loop.h"

#include <algorithm>
#include <cstdio>

namespace lockd {
namespace {

// The longest the loop sleeps without looking at its timers.
constexpr absl::Duration kMaxWait = absl::Milliseconds(100);

void Report(const absl::Status& status) {
  if (!status.ok())
    fprintf(stderr, "lockd: control loop: %s\n", status.ToString().c_str());
}

}  // namespace

absl::Status ControlLoop::Start() {
  absl::StatusOr<std::unique_ptr<EventReader>> reader =
      EventReader::Open(parts_.datapath->maps().events,
                        [this](const lockd_event& e) { OnEvent(e); });
  if (!reader.ok()) return reader.status();
  events_ = std::move(*reader);
  // Whatever an earlier run of the daemon left queued or expired.
  if (absl::Status swept =
          parts_.expiry->SweepAll(parts_.dispatcher->table()->NowNs());
      !swept.ok())
    return swept;
  next_sweep_ = absl::Now() + options_.sweep_interval;
  next_tidy_ = absl::Now() + options_.tidy_interval;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ControlLoop::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ControlLoop::OnEvent(const lockd_event& event) {
  DaemonCounters* counters = parts_.counters;
  switch (event.type) {
    case LOCKD_EVENT_TABLE_GROW: {
      // Refusals (the budget) are counted by Segments and answered
      // NO_CAPACITY by the datapath.
      absl::Status grown = parts_.segments->AddTableSegment(event.arg);
      if (!grown.ok() && !absl::IsResourceExhausted(grown)) Report(grown);
      break;
    }
    case LOCKD_EVENT_POOL_LOW: {
      absl::Status grown = parts_.segments->GrowPool();
      if (!grown.ok() && !absl::IsResourceExhausted(grown)) Report(grown);
      break;
    }
    case LOCKD_EVENT_WAITING:
      // After the events at hand: growth must not wait for reads.
      waiting_.push_back({event.lock_id, event.time_ns});
      break;
    case LOCKD_EVENT_LOCAL_NOTICE:
      parts_.notifier->Deliver(event.notice);
      break;
    case LOCKD_EVENT_KICK_LOST:
      counters->Add(DaemonCounters::kKickLost);
      Report(parts_.dispatcher->Kick(event.lock_id));
      break;
    default:  // TABLE_SEGMENT_IDLE: Tidy looks at every level anyway
      break;
  }
}

void ControlLoop::Periodic(absl::Time now) {
  const uint64_t now_ns = parts_.dispatcher->table()->NowNs();
  if (now >= next_sweep_) {
    next_sweep_ = now + options_.sweep_interval;
    Report(parts_.expiry->Sweep(now_ns));
    parts_.lock_service->Recheck(options_.recheck_age);
  }
  if (now >= next_tidy_) {
    next_tidy_ = now + options_.tidy_interval;
    Report(parts_.segments->Tidy(now));
    Report(parts_.expiry->ForgetOldMemos(now_ns));
  }
}

void ControlLoop::Run() {
  while (!stop_) {
    const uint64_t now_ns = parts_.dispatcher->table()->NowNs();
    const uint64_t due_ns = parts_.expiry->RunDue(now_ns);
    absl::Duration wait = std::min(kMaxWait, next_sweep_ - absl::Now());
    if (due_ns != 0)
      wait =
          std::min(wait, absl::Nanoseconds(due_ns - std::min(due_ns, now_ns)));
    absl::StatusOr<int> handled =
        events_->Poll(std::max(wait, absl::ZeroDuration()));
    if (!handled.ok()) Report(handled.status());
    const uint64_t now = parts_.dispatcher->table()->NowNs();
    for (const auto& [lock_id, deadline_ns] : waiting_)
      parts_.expiry->Watch(lock_id, deadline_ns, now);
    waiting_.clear();
    Periodic(absl::Now());
  }
}

}  // namespace lockd
