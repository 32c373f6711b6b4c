#include "lockd/admin.h"

#include <arpa/inet.h>
#include <time.h>

#include <algorithm>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lockd/map_fields.h"
#include "lockd/rejection.h"

namespace lockd {
namespace {

// Force-release runs while the lock keeps changing at most this often.
constexpr int kAttempts = 8;

}  // namespace

std::string MemberAddress(const lockd_member& member) {
  if (member.addr == 0) return "grpc";
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &member.addr, ip, sizeof(ip));
  return absl::StrCat(ip, ":", ntohs(member.port));
}

namespace {

// What is left of a grace period that ends at `until` (CLOCK_MONOTONIC ns).
absl::Duration GraceLeftUntil(uint64_t until) {
  const uint64_t now = ClockNs(CLOCK_MONOTONIC);
  return until > now ? absl::Nanoseconds(until - now) : absl::ZeroDuration();
}

}  // namespace

absl::Duration Admin::GraceLeft() const {
  return GraceLeftUntil(Load(&parts_.datapath->config()->grace_until_ns));
}

absl::Duration Admin::EndGrace() const {
  return GraceLeftUntil(__atomic_exchange_n(
      &parts_.datapath->config()->grace_until_ns, 0, __ATOMIC_ACQ_REL));
}

absl::StatusOr<Admin::Page> Admin::ListLocks(uint32_t segment,
                                             size_t limit) const {
  const LockTable* table = parts_.dispatcher->table();
  const uint32_t end = table->SegmentCount();
  Page page;
  for (; segment < end && page.locks.size() < limit; ++segment) {
    absl::StatusOr<std::vector<LockSummary>> locks =
        table->ScanSegment(segment);
    if (!locks.ok()) return locks.status();
    page.locks.insert(page.locks.end(), locks->begin(), locks->end());
  }
  page.next_segment = segment < end ? segment : 0;
  std::sort(page.locks.begin(), page.locks.end(),
            [](const LockSummary& a, const LockSummary& b) {
              return a.lock_id < b.lock_id;
            });
  return page;
}

absl::StatusOr<LockView> Admin::GetLock(uint64_t lock_id) const {
  return parts_.dispatcher->table()->Read(lock_id);
}

absl::StatusOr<uint64_t> Admin::LockCount() const {
  return parts_.dispatcher->table()->CountLocks();
}

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> Admin::Counters()
    const {
  absl::StatusOr<StatCounters> stats = parts_.datapath->ReadStats();
  if (!stats.ok()) return stats.status();
  std::vector<std::pair<std::string, uint64_t>> out;
  for (int i = 0; i < LOCKD_STAT_COUNT; ++i)
    out.emplace_back(std::string(StatName(static_cast<lockd_stat>(i))),
                     (*stats)[i]);
  for (auto& [name, value] : parts_.counters->Snapshot())
    out.emplace_back(absl::StrCat("daemon_", name), value);
  return out;
}

absl::StatusOr<uint64_t> Admin::ForceRelease(uint64_t lock_id, uint64_t txn_id,
                                             uint64_t fence) {
  const std::string what = absl::StrFormat(
      "force-releasing lock %d held by txn %d", lock_id, txn_id);
  lockd_ctl command{};
  command.op = LOCKD_CTL_FORCE_RELEASE;
  command.req.lock_id = lock_id;
  command.req.txn_id = txn_id;
  command.req.fence = fence;
  for (int i = 0; i < kAttempts; ++i) {
    absl::StatusOr<lockd_ctl> run = parts_.dispatcher->Run(command);
    if (!run.ok()) return Annotate(run.status(), what);
    switch (run->result) {
      case LOCKD_CTL_OK:
        parts_.counters->Add(DaemonCounters::kForceReleased);
        return run->reply.fence;
      case LOCKD_CTL_FENCE_MISMATCH:
        return RejectionError(
            LOCKD_STATUS_NOT_HOLDER,
            absl::StrCat(what, ": its hold has another fence than ", fence,
                         " (released and acquired again since)"));
      case LOCKD_CTL_NOT_FOUND:
        return absl::NotFoundError(
            absl::StrCat(what, ": the txn holds no such lock"));
      case LOCKD_CTL_RETRY:
        continue;
      default:
        return absl::InternalError(
            absl::StrCat(what, ": control result ", run->result));
    }
  }
  return absl::UnavailableError(
      absl::StrCat(what, ": the lock kept changing; try again"));
}

}  // namespace lockd
