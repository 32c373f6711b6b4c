#include "lockd/dispatcher.h"

#include <time.h>

#include <atomic>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

// A queue that still has grantable waiters after this many KICKs in a row
// is left to the next release or the expiry sweep (the datapath's KICK
// chain has the same bound).
constexpr int kMaxKicks = LOCKD_MAX_KICK_HOPS;

// CLOCK_MONOTONIC in units of 2^16 ns (65.5 us): the seqs it gives wrap
// after 78 hours, so the datapath's order (a signed 32-bit difference)
// holds for holds shorter than 39 hours, and a restarted daemon, which
// takes seconds, starts above what its predecessor used unless that one
// sustained more than 15k requests a second for a long time.
uint32_t MonotonicUnits() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(
      (static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec) >> 16);
}

}  // namespace

uint32_t NextDaemonSeq() {
  static std::atomic<uint32_t> last{0};
  uint32_t prev = last.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t now = MonotonicUnits();
    // Wrapping order, as the datapath compares seqs.
    const uint32_t next = static_cast<int32_t>(now - prev) > 0 ? now : prev + 1;
    if (last.compare_exchange_weak(prev, next, std::memory_order_relaxed))
      return next;
  }
}

void Dispatcher::Deliver(const lockd_ctl& result) {
  for (uint32_t i = 0; i < result.notices && i <= LOCKD_MAX_GRANTS; ++i)
    notifier_->Deliver(result.notice[i]);
}

absl::StatusOr<lockd_ctl> Dispatcher::Run(const lockd_ctl& command) {
  counters_->Add(DaemonCounters::kCtlRuns);
  absl::StatusOr<lockd_ctl> result = table_->Execute(command);
  if (!result.ok()) {
    counters_->Add(DaemonCounters::kCtlErrors);
    return result;
  }
  Deliver(*result);
  if (result->kick) {
    if (absl::Status kicked = Kick(command.req.lock_id); !kicked.ok())
      return kicked;
  }
  return result;
}

absl::StatusOr<lockd_ctl> Dispatcher::Request(const lockd_request& request) {
  lockd_ctl command{};
  command.op = LOCKD_CTL_REQUEST;
  command.req = request;
  return Run(command);
}

absl::Status Dispatcher::Kick(uint64_t lock_id) {
  lockd_ctl command{};
  command.op = LOCKD_CTL_REQUEST;
  command.req.opcode = LOCKD_OP_KICK;
  command.req.lock_id = lock_id;
  for (int i = 0; i < kMaxKicks; ++i) {
    counters_->Add(DaemonCounters::kCtlRuns);
    counters_->Add(DaemonCounters::kKickRuns);
    absl::StatusOr<lockd_ctl> result = table_->Execute(command);
    if (!result.ok()) {
      counters_->Add(DaemonCounters::kCtlErrors);
      return result.status();
    }
    Deliver(*result);
    if (!result->kick) return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace lockd
