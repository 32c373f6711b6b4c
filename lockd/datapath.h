// Loading, configuring, pinning and attaching the lockd BPF datapath
// (bpf/lockd.bpf.c) from its embedded skeleton, and raw access to its maps.
// What lives in the maps is read and changed elsewhere: segments.h grows and
// shrinks them, kernel_table.h runs lock operations and reads locks.
#ifndef LOCKD_LOCKD_DATAPATH_H_
#define LOCKD_LOCKD_DATAPATH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct lockd_bpf;

namespace lockd {

// Limits fixed when the programs are loaded (.rodata constants and map
// sizes), so no recompilation is needed to configure a server. Capacity is
// not among them: the maps grow and shrink within a memory budget
// (segments.h).
struct DatapathOptions {
  uint16_t port = LOCKD_DEFAULT_PORT;
  uint32_t default_lease_ms = LOCKD_DEFAULT_LEASE_MS;
  uint32_t max_lease_ms = LOCKD_MAX_LEASE_MS;
  // A bucket with this many locks splits when one more needs room; two
  // sibling buckets with this many in all merge (tests lower them).
  uint32_t split_at = LOCKD_BUCKET_SLOTS - 1;
  uint32_t merge_at = LOCKD_BUCKET_SLOTS / 4;
  // A pool segment this full (percent) asks for a successor.
  uint32_t pool_low_water_pct = 75;
  // Pool segments preallocate their elements (one allocation per segment,
  // none per block) rather than BPF_F_NO_PREALLOC (docs/benchmarks.md
  // compares both). Only a fresh start chooses; a restart keeps the pinned
  // choice.
  bool pool_prealloc = true;
  // Holds and waits ended for their owner, remembered for its late RELEASE.
  uint32_t ended_capacity = 4096;
  // Holds + waits one client may have at once (REJECTED/QUOTA past it).
  uint32_t client_quota = LOCKD_DEFAULT_CLIENT_QUOTA;
  // Clients (keys) the server can know at once.
  uint32_t max_clients = 4096;
  // Ring buffer for events to the daemon, bytes (a power of two).
  uint32_t events_bytes = 64 * 1024;
  // First fence floor of a fresh table; none: CLOCK_TAI in ns at creation.
  // Its epoch (lockd_epoch_of) is in every reply.
  std::optional<uint64_t> fence_base;
  // A fresh table (no pinned predecessor) grants only reclaims for this
  // long (docs/semantics.md, "Restarts"); 0: no grace.
  uint32_t grace_ms = 0;
  // Seed of the table's hash of lock ids; none: random (tests fix it to
  // place locks in buckets they know).
  std::optional<uint64_t> hash_seed;
  // Directory under bpffs for the maps (e.g. /sys/fs/bpf/lockd/default).
  // Maps already pinned there are reused, so a restarted daemon continues
  // with every hold, waiter and fence; empty: nothing is pinned.
  std::string pin_dir;
};

enum class XdpMode { kNative, kGeneric };

using StatCounters = std::array<uint64_t, LOCKD_STAT_COUNT>;

struct WaitHistogram {
  std::array<uint64_t, LOCKD_WAIT_BUCKETS> counts{};  // see LOCKD_WAIT_*
  uint64_t sum_ns = 0;
};

// File descriptors of the maps user space works on.
struct MapFds {
  int config = -1;
  int table_segments = -1;
  int table_seg_live = -1;
  int table_seg_state = -1;
  int pool_segments = -1;
  int pool_info = -1;
  int ended = -1;
  int events = -1;
  int stats = -1;
  int clients = -1;
  int open_subnets = -1;
};

// How to create a segment map that its outer map accepts: the inner map's
// type, sizes and flags, its key and value types as the loaded object's BTF
// describes them.
struct SegmentTemplate {
  uint32_t map_type = 0;  // enum bpf_map_type
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  int btf_fd = -1;
  uint32_t key_type_id = 0;
  uint32_t value_type_id = 0;
  uint32_t map_flags = 0;
};

// Now on `clock` in ns (CLOCK_MONOTONIC: the clock of bpf_ktime_get_ns).
uint64_t ClockNs(clockid_t clock);

// A new segment map of `entries` made from `t`: its fd. `what` names it in
// the error.
absl::StatusOr<int> CreateSegmentMap(const SegmentTemplate& t, const char* name,
                                     uint32_t entries, absl::string_view what);

class Datapath {
 public:
  // Opens and loads the programs and maps (reusing pinned maps), maps the
  // mmapable maps, and, on a fresh start, writes the initial table and pool
  // (segments.h). FailedPrecondition when pinned maps do not fit.
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
  // The table's fence base: the pinned one, or a fresh table's choice.
  uint64_t fence_base() const { return fence_base_; }
  // What replies carry as the server's epoch: lockd_epoch_of(fence_base()).
  uint32_t epoch() const { return lockd_epoch_of(fence_base_); }

  const DatapathOptions& options() const { return options_; }
  const MapFds& maps() const { return maps_; }
  int xdp_prog_fd() const;
  int tc_prog_fd() const;
  int ctl_prog_fd() const;
  const SegmentTemplate& table_template() const { return table_template_; }
  const SegmentTemplate& pool_template() const { return pool_template_; }

  // The mmapped maps. Programs update them concurrently: access single
  // fields with atomic operations (__atomic_* builtins).
  lockd_config* config() const { return config_; }
  lockd_pool_seg* pool_info() const { return pool_info_; }  // [POOL_SLOTS]
  int64_t* table_seg_live() const { return seg_live_; }     // [MAX_SEGMENTS]
  // LOCKD_SEG_* per table segment [MAX_SEGMENTS].
  uint32_t* table_seg_state() const { return seg_state_; }

  // Counters summed over all CPUs.
  absl::StatusOr<StatCounters> ReadStats() const;
  // The queue wait histogram (LOCKD_WAIT_BUCKETS counts, then the sum of
  // the waits in ns), summed over all CPUs.
  absl::StatusOr<WaitHistogram> ReadWaits() const;

 private:
  Datapath(lockd_bpf* skel, const DatapathOptions& options);
  absl::Status MapShared();
  absl::Status RememberNetns();
  void DetachHere();

  lockd_bpf* skel_;
  DatapathOptions options_;
  MapFds maps_;
  SegmentTemplate table_template_;
  SegmentTemplate pool_template_;
  bool reused_pins_ = false;
  uint64_t fence_base_ = 0;
  lockd_config* config_ = nullptr;
  lockd_pool_seg* pool_info_ = nullptr;
  int64_t* seg_live_ = nullptr;
  uint32_t* seg_state_ = nullptr;
  int attach_netns_fd_ = -1;  // where the programs are attached
  int xdp_ifindex_ = 0;
  uint32_t xdp_flags_ = 0;
  int tc_ifindex_ = 0;
};

// errno (positive or negative) as a Status; EPERM as PermissionDenied.
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace lockd

#endif  // LOCKD_LOCKD_DATAPATH_H_
