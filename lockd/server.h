// The lockd server: owns the datapath (kernel fast path) and the user-space
// lock engine (slow path), and decides which of the two serves each lock.
//
// A lock is kernel-owned by default. It becomes user-owned when the kernel
// hands one of its requests up (pool, table or owner map full; queue kept
// changing) or a gRPC client takes part in it: the daemon flags it
// USER_OWNED under its guard (LOCKD_CTL_TAKEOVER), imports holders and queue
// into the engine and frees their kernel records. From then on the kernel
// hands every request for it to the daemon. When its queue is empty, its
// holders are all UDP clients and the pool has room again, the daemon writes
// the holders back as owner records and returns it (LOCKD_CTL_GIVE_BACK).
// At no time do the kernel and the daemon both decide for one lock.
//
// gRPC servers and lockctl are thin adapters over this class.
#ifndef LOCKD_LOCKD_SERVER_H_
#define LOCKD_LOCKD_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lockd/datapath.h"
#include "lockd/lock_engine.h"

namespace lockd {

struct ServerOptions {
  // Interface to attach the fast path to; empty: no fast path, user space
  // serves every lock (the "fast path off" configuration).
  std::string interface;
  // Names the instance: its pins (/sys/fs/bpf/lockd/<instance>) and state
  // (<state_root>/<instance>) do not collide with another instance's.
  std::string instance = "default";
  std::string pin_root = "/sys/fs/bpf/lockd";
  std::string state_root = "/run/lockd";
  DatapathOptions datapath;  // capacities, port, leases; pin_dir is derived
  absl::Duration sweep_interval = absl::Milliseconds(20);
  // Give a user-owned lock back only while the pool is below this fill.
  uint32_t give_back_below_percent = 75;
  // Required by mutating admin calls when not empty.
  std::string admin_token;
};

// The answer to a lock-service request.
struct LockAnswer {
  lockd_opcode opcode = LOCKD_OP_REJECTED;  // GRANTED, QUEUED, REJECTED, ...
  uint8_t status = LOCKD_STATUS_OK;         // enum lockd_status
  uint64_t fence = 0;
  uint32_t lease_ms = 0;
};

struct HolderInfo {
  uint64_t txn_id = 0;
  uint8_t mode = LOCKD_MODE_NONE;
  uint64_t fence = 0;
  int64_t lease_left_ms = 0;  // negative: expired, not yet swept
  std::string client;         // "198.18.0.2:40000", or "grpc"
};

struct WaiterInfo {
  uint64_t txn_id = 0;
  uint8_t mode = LOCKD_MODE_NONE;
  uint8_t policy = LOCKD_POLICY_WAIT;
  int64_t waited_ms = 0;
  bool cancelled = false;
  std::string client;
};

struct LockInfo {
  uint64_t lock_id = 0;
  uint8_t mode = LOCKD_MODE_NONE;
  uint64_t fence = 0;
  bool user_owned = false;          // served by the daemon right now
  std::vector<HolderInfo> holders;  // grant order
  std::vector<WaiterInfo> queue;    // head first
};

struct PoolInfo {
  uint64_t blocks_in_use = 0;
  uint64_t block_capacity = 0;
  uint64_t blocks_allocated = 0;  // since the maps were created
  uint64_t blocks_freed = 0;
  uint64_t bytes_per_block = 0;
  uint64_t locks = 0;
  uint64_t lock_capacity = 0;
  uint64_t owners = 0;
  uint64_t owner_capacity = 0;
  uint64_t user_owned_locks = 0;
  uint64_t user_waiters = 0;  // waiting in the daemon's engine
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options);
  // Stops the threads; detaches the programs, removes the pins and the
  // saved state: a clean shutdown. (A crash leaves pins and state, and the
  // next Start continues from them.)
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Lock service, for clients that cannot use UDP. Acquire blocks until the
  // lock is granted or rejected, or `deadline` passes, or `cancelled` says
  // the caller went away (the wait is then cancelled: DeadlineExceeded or
  // Cancelled). They share the FIFO queue with UDP clients.
  absl::StatusOr<LockAnswer> Acquire(
      uint64_t lock_id, uint64_t txn_id, lockd_mode mode, lockd_policy policy,
      uint32_t lease_ms, absl::Time deadline,
      const std::function<bool()>& cancelled = [] { return false; });
  absl::StatusOr<LockAnswer> Release(uint64_t lock_id, uint64_t txn_id);
  absl::StatusOr<LockAnswer> Renew(uint64_t lock_id, uint64_t txn_id,
                                   uint32_t lease_ms);

  // Admin service.
  absl::StatusOr<std::vector<uint64_t>> ListLockIds() const;
  absl::StatusOr<LockInfo> GetLock(uint64_t lock_id) const;
  // Every kernel counter by its LOCKD_STATS name, then the daemon's own
  // ("daemon_*").
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> Counters()
      const;
  absl::StatusOr<PoolInfo> Pool() const;
  // Ends a hold for an operator; the next waiters are granted.
  absl::Status ForceRelease(uint64_t lock_id, uint64_t txn_id);
  // Whether `token` may call mutating admin methods.
  bool AdminAllowed(absl::string_view token) const;

  bool fast_path() const;
  bool restored() const;  // continued from an earlier run's pins/state
  const ServerOptions& options() const;

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_SERVER_H_
