#include "lockd/segments.h"

#include <bpf/bpf.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lockd/map_fields.h"

namespace lockd {

uint64_t MapMemlock(int fd) {
  std::ifstream in(absl::StrCat("/proc/self/fdinfo/", fd));
  std::string key, value;
  while (in >> key >> value) {
    uint64_t bytes = 0;
    if (key == "memlock:" && absl::SimpleAtoi(value, &bytes)) return bytes;
  }
  return 0;
}

Segments::Segments(Datapath* datapath, SegmentOptions options)
    : datapath_(datapath),
      options_(options),
      table_fds_(LOCKD_TABLE_MAX_SEGMENTS, -1) {
  pool_fds_.fill(-1);
}

Segments::~Segments() {
  for (int fd : table_fds_)
    if (fd >= 0) close(fd);
  for (int fd : pool_fds_)
    if (fd >= 0) close(fd);
}

absl::Status Segments::Start() {
  const MapFds& maps = datapath_->maps();
  uint64_t fixed = 0;
  for (int fd : {maps.config, maps.table_segments, maps.table_seg_live,
                 maps.table_seg_state, maps.pool_segments, maps.pool_info,
                 maps.ended, maps.events, maps.stats})
    fixed += MapMemlock(fd);
  fixed_bytes_.store(fixed);
  absl::Status started = datapath_->reused_pins() ? Adopt() : Initialize();
  if (!started.ok()) return started;
  // Growth asked of a predecessor that died before it was done: its events
  // went with it, the requests stay in the maps.
  if (absl::Status grown = AddAskedTableSegments(); !grown.ok()) return grown;
  lockd_config* cfg = datapath_->config();
  const lockd_pool_seg& current =
      datapath_->pool_info()[Load(&cfg->pool_current) % LOCKD_POOL_SLOTS];
  if (Load(&current.low_water_signalled)) return GrowPool();
  return absl::OkStatus();
}

absl::Status Segments::Initialize() {
  lockd_config* cfg = datapath_->config();
  const DatapathOptions& options = datapath_->options();
  uint64_t seed = options.hash_seed.value_or(0);
  if (!options.hash_seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
    return ErrnoStatus(errno, "drawing the hash seed");
  const uint64_t base = datapath_->fence_base();
  // No program runs yet: the config is written plainly.
  *cfg = lockd_config{};
  cfg->hash_seed = seed;
  cfg->fence_base = base;
  // Holds of a predecessor whose state is gone may still be used under
  // their leases: only their reclaims until the longest could have run out.
  if (options.grace_ms)
    cfg->grace_until_ns =
        ClockNs(CLOCK_MONOTONIC) + uint64_t{options.grace_ms} * 1000000;
  cfg->min_depth = LOCKD_TABLE_BASE_DEPTH;
  cfg->max_depth = LOCKD_TABLE_BASE_DEPTH;
  cfg->pool_map_flags = datapath_->pool_template().map_flags;
  cfg->leaves[LOCKD_TABLE_BASE_DEPTH] = 1 << LOCKD_TABLE_BASE_DEPTH;
  if (absl::Status s = InitializeTable(base); !s.ok()) return s;
  return InstallPoolSegment(options_.pool_min_blocks);
}

absl::Status Segments::Adopt() {
  if (absl::Status s = AdoptTable(); !s.ok()) return s;
  const MapFds& maps = datapath_->maps();
  lockd_pool_seg* info = datapath_->pool_info();
  for (uint32_t slot = 0; slot < LOCKD_POOL_SLOTS; ++slot) {
    pool_fds_[slot] = InnerMapFd(maps.pool_segments, slot);
    if (pool_fds_[slot] >= 0)
      pool_bytes_[slot].store(MapMemlock(pool_fds_[slot]));
    else
      Store(&info[slot].id, 0u);  // described but never inserted: a crash
  }
  const uint32_t current = Load(&datapath_->config()->pool_current);
  if (current == 0 || pool_fds_[current % LOCKD_POOL_SLOTS] < 0)
    return InstallPoolSegment(options_.pool_min_blocks);
  return absl::OkStatus();
}

bool Segments::Fits(uint64_t more_bytes) const {
  return Use().total_bytes + more_bytes <= options_.budget_bytes;
}

void Segments::SetAtBudget(uint32_t bit, bool on) {
  uint32_t* flags = &datapath_->config()->at_budget;
  if (on)
    __atomic_fetch_or(flags, bit, __ATOMIC_RELEASE);
  else
    __atomic_fetch_and(flags, ~bit, __ATOMIC_RELEASE);
}

absl::Status Segments::Quiesce() {
  uint32_t zero = 0;
  if (table_fds_[0] < 0) return absl::OkStatus();
  if (bpf_map_update_elem(datapath_->maps().table_segments, &zero,
                          &table_fds_[0], BPF_ANY) != 0)
    return ErrnoStatus(errno, "waiting for running programs");
  return absl::OkStatus();
}

absl::Status Segments::Tidy(absl::Time now) {
  // Growth asked and not done: its event was lost (a full ring), or the
  // budget refused it then and may have room now.
  if (absl::Status s = AddAskedTableSegments(); !s.ok()) return s;
  {
    lockd_config* cfg = datapath_->config();
    const lockd_pool_seg& current =
        datapath_->pool_info()[Load(&cfg->pool_current) % LOCKD_POOL_SLOTS];
    if (Load(&current.low_water_signalled)) {
      absl::Status grown = GrowPool();
      if (!grown.ok() && !absl::IsResourceExhausted(grown)) return grown;
    }
  }
  if (absl::Status s = DropDrainedPool(); !s.ok()) return s;
  if (absl::Status s = DropIdleTableSegments(now); !s.ok()) return s;
  // A current pool segment far larger than what lives in it is replaced by
  // a smaller one; the big one drains and goes.
  const MemoryUse use = Use();
  const lockd_pool_seg& current =
      datapath_->pool_info()[use.pool_current % LOCKD_POOL_SLOTS];
  const uint64_t capacity = Load(&current.capacity);
  const bool oversized =
      capacity > options_.pool_min_blocks && use.pool_live * 4 < capacity;
  if (!oversized) {
    pool_oversized_since_ = absl::InfiniteFuture();
  } else if (pool_oversized_since_ == absl::InfiniteFuture()) {
    pool_oversized_since_ = now;
  } else if (now - pool_oversized_since_ >= options_.idle_grace) {
    pool_oversized_since_ = absl::InfiniteFuture();
    const uint64_t smaller =
        std::max<uint64_t>(options_.pool_min_blocks, 2 * use.pool_live);
    if (absl::Status s = InstallPoolSegment(static_cast<uint32_t>(smaller));
        !s.ok())
      return s;
  }
  if (Fits(table_segment_bytes_)) SetAtBudget(LOCKD_BUDGET_TABLE, false);
  return absl::OkStatus();
}

MemoryUse Segments::Use() const {
  MemoryUse use;
  use.budget_bytes = options_.budget_bytes;
  use.fixed_bytes = fixed_bytes_.load();
  use.table_segments = table_segments_.load();
  use.table_bytes = use.table_segments * table_segment_bytes_;
  const lockd_pool_seg* info = datapath_->pool_info();
  for (uint32_t slot = 0; slot < LOCKD_POOL_SLOTS; ++slot) {
    const uint64_t bytes = pool_bytes_[slot].load();
    if (bytes == 0) continue;
    use.pool_bytes += bytes;
    ++use.pool_segments;
    use.pool_capacity += Load(&info[slot].capacity);
    const int64_t live = Load(&info[slot].live);
    use.pool_live += live > 0 ? static_cast<uint64_t>(live) : 0;
  }
  const lockd_config* cfg = datapath_->config();
  use.table_depth = Load(&cfg->max_depth);
  use.pool_current = Load(&cfg->pool_current);
  const uint32_t at_budget = Load(&cfg->at_budget);
  use.table_at_budget = (at_budget & LOCKD_BUDGET_TABLE) != 0;
  use.pool_at_budget = (at_budget & LOCKD_BUDGET_POOL) != 0;
  use.total_bytes = use.fixed_bytes + use.table_bytes + use.pool_bytes;
  use.table_segments_added = table_added_.load();
  use.table_segments_removed = table_removed_.load();
  use.pool_segments_added = pool_added_.load();
  use.pool_segments_removed = pool_removed_.load();
  use.growth_refused = refused_.load();
  return use;
}

}  // namespace lockd
