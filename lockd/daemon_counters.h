// The daemon's own counters, beside the datapath's (abi/lockd_abi.h
// LOCKD_STATS): what the control plane did, each outcome counted once.
// Reported by GetStats and /metrics as "daemon_<name>".
#ifndef LOCKD_LOCKD_DAEMON_COUNTERS_H_
#define LOCKD_LOCKD_DAEMON_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lockd {

// X(ENUM, "name", "help")
#define LOCKD_DAEMON_COUNTERS(X)                                             \
  X(kCtlRuns, "ctl_runs", "control operations run in the kernel")            \
  X(kCtlErrors, "ctl_errors", "control operations the kernel failed")        \
  X(kKickRuns, "kick_runs", "KICKs run for queues a run left grantable")     \
  X(kNoticesSent, "notices_sent", "notices sent by the daemon's socket")     \
  X(kNoticeSendFailed, "notice_send_failed", "notices the socket refused")   \
  X(kNoticesLocal, "notices_local", "notices handed to waiting gRPC calls")  \
  X(kNoticesOrphaned, "notices_orphaned",                                    \
    "notices for gRPC calls that had ended (cancelled meanwhile)")           \
  X(kGrpcAcquire, "grpc_acquire", "gRPC Acquire calls")                      \
  X(kGrpcQueued, "grpc_queued", "gRPC Acquire calls that waited in a queue") \
  X(kGrpcCancelled, "grpc_cancelled",                                        \
    "gRPC Acquire calls cancelled or timed out while waiting")               \
  X(kGrpcRechecked, "grpc_rechecked",                                        \
    "waiting gRPC calls asked again (a notice may have been lost)")          \
  X(kGrpcRelease, "grpc_release", "gRPC Release calls")                      \
  X(kGrpcRenew, "grpc_renew", "gRPC Renew calls")                            \
  X(kSocketRequests, "socket_requests",                                      \
    "requests served from the daemon's UDP socket (no fast path)")           \
  X(kSocketMalformed, "socket_malformed",                                    \
    "datagrams to the daemon's socket that were not lockd requests")         \
  X(kSocketForged, "socket_forged",                                          \
    "datagrams to the daemon's socket that failed authentication")           \
  X(kLeasesExpired, "leases_expired", "holds ended by their lease")          \
  X(kWaitsExpired, "waits_expired", "waits ended by their deadline")         \
  X(kExpiryChecks, "expiry_checks", "locks read to settle leases and waits") \
  X(kSweptSegments, "swept_segments", "table segments swept for expiry")     \
  X(kMemosForgotten, "memos_forgotten",                                      \
    "remembered endings dropped after their time")                           \
  X(kForceReleased, "force_released", "holds ended by an operator")          \
  X(kKickLost, "kick_lost", "KICKs the datapath could not send, run here")   \
  X(kKeysSet, "keys_set", "client keys added or rotated")                    \
  X(kClientsRemoved, "clients_removed", "clients removed with their keys")

class DaemonCounters {
 public:
#define LOCKD_DAEMON_COUNTER_ENUM(e, name, help) e,
  enum Counter { LOCKD_DAEMON_COUNTERS(LOCKD_DAEMON_COUNTER_ENUM) kCount };
#undef LOCKD_DAEMON_COUNTER_ENUM

  void Add(Counter c, uint64_t n = 1) {
    values_[c].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Get(Counter c) const {
    return values_[c].load(std::memory_order_relaxed);
  }

  // Every counter by name ("ctl_runs"), in declaration order.
  std::vector<std::pair<std::string, uint64_t>> Snapshot() const;
  // The help text of a counter by name; empty if unknown.
  static std::string Help(const std::string& name);

 private:
  std::array<std::atomic<uint64_t>, kCount> values_{};
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_DAEMON_COUNTERS_H_
