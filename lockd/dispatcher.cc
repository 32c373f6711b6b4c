#include "lockd/dispatcher.h"

#include <time.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

// A queue that still has grantable waiters after this many KICKs in a row
// is left to the next release or the expiry sweep (the datapath's KICK
// chain has the same bound).
constexpr int kMaxKicks = LOCKD_MAX_KICK_HOPS;

}  // namespace

// CLOCK_REALTIME in ns, never below the last: a restarted daemon starts
// above every seq its predecessor used, and the daemon's RELEASE for an
// unsigned gRPC caller is newer than that caller's earlier requests over UDP
// (their seqs start from its wall clock: abi/keys.h SeqSource).
uint64_t NextDaemonSeq() {
  static std::atomic<uint64_t> last{0};
  uint64_t prev = last.load(std::memory_order_relaxed);
  for (;;) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t now =
        static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
    const uint64_t next = now > prev ? now : prev + 1;
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

absl::StatusOr<lockd_ctl> Dispatcher::Wire(absl::Span<const uint8_t> bytes,
                                           const lockd_endpoint& from,
                                           uint8_t member_flags) {
  lockd_ctl command{};
  command.op = LOCKD_CTL_WIRE;
  if (bytes.size() != sizeof(command.wire))
    return absl::InvalidArgumentError(absl::StrCat(
        "a message is ", sizeof(command.wire), " bytes, not ", bytes.size()));
  std::memcpy(&command.wire, bytes.data(), sizeof(command.wire));
  command.req.from = from;
  command.req.member_flags = member_flags;
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
