// Loading, configuring and attaching the lockd BPF datapath (bpf/lockd.bpf.c)
// from its embedded skeleton, and access to its maps.
#ifndef LOCKD_LOCKD_DATAPATH_H_
#define LOCKD_LOCKD_DATAPATH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct lockd_bpf;

namespace lockd {

// Capacities and limits fixed when the programs are loaded (map sizes and
// .rodata constants), so no recompilation is needed to size a server.
struct DatapathOptions {
  uint16_t port = LOCKD_DEFAULT_PORT;
  uint32_t lock_capacity = 65536;      // lock table entries
  uint32_t owner_capacity = 65536;     // holders + waiters
  uint32_t released_capacity = 65536;  // recently released (LRU)
  uint32_t pool_capacity = 65536;      // wait-queue blocks
  uint32_t default_lease_ms = 10000;
  uint32_t max_lease_ms = 300000;
  // Directory under bpffs for the maps (e.g. /sys/fs/bpf/lockd/default).
  // Maps already pinned there are reused, so a restarted daemon continues
  // with every hold, waiter and fence; empty: nothing is pinned.
  std::string pin_dir;
};

enum class XdpMode { kNative, kGeneric };

using StatCounters = std::array<uint64_t, LOCKD_STAT_COUNT>;

class Datapath {
 public:
  static absl::StatusOr<std::unique_ptr<Datapath>> Load(
      const DatapathOptions& options);
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // Attaches lockd_xdp to `ifindex` in the calling thread's network
  // namespace, native first and generic when the driver refuses; returns the
  // mode used.
  absl::StatusOr<XdpMode> AttachXdp(int ifindex);
  // Attaches lockd_tc to the clsact ingress hook of `ifindex` (calling
  // thread's network namespace).
  absl::Status AttachTc(int ifindex);
  // Detaches what Attach* attached, inside the namespace it was attached in
  // (an ifindex means nothing elsewhere). Also done by the destructor.
  void Detach();
  // Removes the pins (a clean shutdown: the state goes with the programs).
  void Unpin();
  // Whether Load found pinned maps of an earlier run and reused them.
  bool reused_pins() const { return reused_pins_; }

  // Runs one control operation (bpf/lib/control.h) in the kernel. Calls are
  // serialized: lockd_ctl's scratch is per CPU, and a test run is only
  // migration-disabled, not preemption-disabled.
  absl::StatusOr<lockd_ctl> Control(const lockd_ctl& command);

  const DatapathOptions& options() const { return options_; }
  int xdp_prog_fd() const;
  int tc_prog_fd() const;
  int locks_fd() const;
  int owners_fd() const;
  int released_fd() const;
  int pool_fd() const;
  int pool_next_fd() const;
  int stats_fd() const;

  // Counters summed over all CPUs.
  absl::StatusOr<StatCounters> ReadStats() const;

 private:
  Datapath(lockd_bpf* skel, const DatapathOptions& options);

  absl::Status RememberNetns();
  void DetachHere();

  lockd_bpf* skel_;
  DatapathOptions options_;
  bool reused_pins_ = false;
  absl::Mutex control_mu_;
  int attach_netns_fd_ = -1;  // where the programs are attached
  int xdp_ifindex_ = 0;
  uint32_t xdp_flags_ = 0;
  int tc_ifindex_ = 0;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_DATAPATH_H_
