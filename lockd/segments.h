// The memory of the lock table and of the Kerby pool, grown and shrunk in
// segments within one memory budget.
//
// The datapath decides when: a split asks for the table segment it needs,
// and for those the next splits of its halves will need
// (LOCKD_EVENT_TABLE_GROW); an allocation that takes the pool's current
// segment past its low-water mark asks for a successor
// (LOCKD_EVENT_POOL_LOW). This class carries it out: it creates the maps,
// inserts them into their outer maps and publishes them. Tidy() gives memory
// back: a table segment whose buckets merges have all emptied, a pool
// segment drained of blocks, a current pool segment far larger than what is
// live.
//
// Every step is safe to interrupt (a daemon killed in the middle): a segment
// is published only once it is complete, and Start() after a restart
// finishes what was asked and not yet done.
#ifndef LOCKD_LOCKD_SEGMENTS_H_
#define LOCKD_LOCKD_SEGMENTS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lockd/datapath.h"

namespace lockd {

struct SegmentOptions {
  // Map memory the datapath may use in all, bytes.
  uint64_t budget_bytes = uint64_t{256} << 20;
  // Smallest pool segment, blocks.
  uint32_t pool_min_blocks = 1024;
  // How long a table segment or an oversized pool segment must stay idle
  // before its memory is given back.
  absl::Duration idle_grace = absl::Seconds(5);
};

// What the datapath's maps take now (the kernel's own accounting, fdinfo
// memlock), against the budget.
struct MemoryUse {
  uint64_t budget_bytes = 0;
  uint64_t total_bytes = 0;  // everything below
  uint64_t fixed_bytes = 0;  // maps of fixed size
  uint64_t table_bytes = 0;
  uint32_t table_segments = 0;
  uint32_t table_depth = 0;  // of the deepest bucket in use
  uint64_t pool_bytes = 0;
  uint32_t pool_segments = 0;
  uint64_t pool_capacity = 0;  // blocks, all segments
  uint64_t pool_live = 0;      // blocks in use
  uint32_t pool_current = 0;   // segment new blocks come from
  bool table_at_budget = false;
  bool pool_at_budget = false;
  // Since this daemon started:
  uint64_t table_segments_added = 0;
  uint64_t table_segments_removed = 0;
  uint64_t pool_segments_added = 0;
  uint64_t pool_segments_removed = 0;
  uint64_t growth_refused = 0;  // segments the budget had no room for
};

class Segments {
 public:
  // `datapath` must outlive this object. One thread grows and tidies (the
  // daemon's control loop); Use() may be called from any thread.
  Segments(Datapath* datapath, SegmentOptions options);
  ~Segments();
  Segments(const Segments&) = delete;
  Segments& operator=(const Segments&) = delete;

  // A fresh datapath: writes the shared config, the first table level and
  // the first pool segment. A reused one: adopts its segments and finishes
  // a growth a predecessor was asked for.
  absl::Status Start();

  // Adds table segment `segment` (LOCKD_EVENT_TABLE_GROW).
  absl::Status AddTableSegment(uint32_t segment);
  // The pool gets a current segment with room (LOCKD_EVENT_POOL_LOW).
  absl::Status GrowPool();
  // Gives back what is idle; call about once a second.
  absl::Status Tidy(absl::Time now);

  MemoryUse Use() const;

 private:
  absl::Status Initialize();
  absl::Status Adopt();
  // segments_table.cc
  absl::Status InitializeTable(uint64_t fence_base);
  absl::Status AdoptTable();
  absl::Status AddAskedTableSegments();
  absl::StatusOr<int> CreateTableSegment(uint32_t segment);
  absl::Status InsertTableSegment(uint32_t segment, int fd);
  absl::Status DropIdleTableSegments(absl::Time now);
  // segments_pool.cc
  absl::StatusOr<int> CreatePoolSegment(uint32_t capacity);
  absl::Status InstallPoolSegment(uint32_t capacity);
  absl::Status DropDrainedPool();
  // Waits until no program still runs with what it read before (an
  // outer-map update returns only after an RCU grace period).
  absl::Status Quiesce();
  bool Fits(uint64_t more_bytes) const;
  void SetAtBudget(uint32_t bit, bool on);

  Datapath* const datapath_;
  const SegmentOptions options_;
  std::vector<int> table_fds_;                  // by segment, -1 = none
  std::array<int, LOCKD_POOL_SLOTS> pool_fds_;  // by slot, -1 = none
  uint64_t table_segment_bytes_ = 0;            // memlock of one
  // What Use() reports, kept up to date by the thread that changes the maps
  // so that readers on other threads need neither the fds nor a lock.
  std::atomic<uint64_t> fixed_bytes_{0};
  std::atomic<uint32_t> table_segments_{0};
  std::array<std::atomic<uint64_t>, LOCKD_POOL_SLOTS> pool_bytes_{};
  std::atomic<uint64_t> table_added_{0}, table_removed_{0};
  std::atomic<uint64_t> pool_added_{0}, pool_removed_{0};
  std::atomic<uint64_t> refused_{0};
  absl::flat_hash_map<uint32_t, absl::Time> table_idle_since_;
  absl::Time pool_oversized_since_ = absl::InfiniteFuture();
};

// The kernel's memory accounting of one map (fdinfo "memlock"), bytes.
uint64_t MapMemlock(int fd);

}  // namespace lockd

#endif  // LOCKD_LOCKD_SEGMENTS_H_
