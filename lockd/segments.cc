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
namespace {

uint32_t SegmentsOfLevel(uint32_t level) {
  // Level L holds the buckets 2^(L-1) .. 2^L - 1; level BASE all of 0..255.
  return level <= LOCKD_TABLE_BASE_DEPTH
             ? 1
             : 1u << (level - 1 - LOCKD_TABLE_SEG_SHIFT);
}

uint32_t FirstSegmentOfLevel(uint32_t level) {
  return level <= LOCKD_TABLE_BASE_DEPTH
             ? 0
             : 1u << (level - 1 - LOCKD_TABLE_SEG_SHIFT);
}

uint64_t TaiNowNs() {
  timespec ts;
  clock_gettime(CLOCK_TAI, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// An inner map's fd from its outer map's slot (user space sees inner map
// ids there); -1 when the slot is empty.
int InnerFd(int outer_fd, uint32_t slot) {
  uint32_t id = 0;
  if (bpf_map_lookup_elem(outer_fd, &slot, &id) != 0 || id == 0) return -1;
  return bpf_map_get_fd_by_id(id);
}

}  // namespace

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
                 maps.pool_segments, maps.pool_info, maps.ended, maps.events,
                 maps.stats})
    fixed += MapMemlock(fd);
  fixed_bytes_.store(fixed);
  absl::Status started = datapath_->reused_pins() ? Adopt() : Initialize();
  if (!started.ok()) return started;
  // Growth asked of a predecessor that died before it was done: its events
  // went with it, the requests stay in the shared config.
  lockd_config* cfg = datapath_->config();
  const uint32_t asked = Load(&cfg->table_level_requested);
  if (asked > Load(&cfg->table_levels)) {
    if (absl::Status grown = GrowTable(asked); !grown.ok()) return grown;
  }
  const lockd_pool_seg& current =
      datapath_->pool_info()[Load(&cfg->pool_current) % LOCKD_POOL_SLOTS];
  if (Load(&current.low_water_signalled)) return GrowPool();
  return absl::OkStatus();
}

absl::Status Segments::Initialize() {
  lockd_config* cfg = datapath_->config();
  const DatapathOptions& options = datapath_->options();
  uint64_t seed = options.hash_seed.value_or(0);
  if (!options.hash_seed &&
      getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
    return ErrnoStatus(errno, "drawing the hash seed");
  const uint64_t base = options.fence_base.value_or(TaiNowNs());
  // No program runs yet: the config is written plainly.
  *cfg = lockd_config{};
  cfg->hash_seed = seed;
  cfg->fence_base = base;
  cfg->min_depth = LOCKD_TABLE_BASE_DEPTH;
  cfg->max_depth = LOCKD_TABLE_BASE_DEPTH;
  cfg->table_levels = LOCKD_TABLE_BASE_DEPTH;
  cfg->table_level_requested = LOCKD_TABLE_BASE_DEPTH + 1;
  cfg->pool_map_flags = datapath_->pool_template().map_flags;
  cfg->leaves[LOCKD_TABLE_BASE_DEPTH] = LOCKD_TABLE_SEG_BUCKETS;

  absl::StatusOr<int> first = CreateTableSegment(0);
  if (!first.ok()) return first.status();
  for (uint32_t i = 0; i < LOCKD_TABLE_SEG_BUCKETS; ++i) {
    lockd_bucket bucket{};
    bucket.depth = LOCKD_TABLE_BASE_DEPTH;
    bucket.index = i;
    bucket.fence_floor = base;
    if (bpf_map_update_elem(*first, &i, &bucket, BPF_ANY) != 0)
      return ErrnoStatus(errno, "writing the first buckets");
  }
  uint32_t zero = 0;
  if (bpf_map_update_elem(datapath_->maps().table_segments, &zero, &*first,
                          BPF_ANY) != 0)
    return ErrnoStatus(errno, "inserting the first table segment");
  table_fds_[0] = *first;
  table_segment_bytes_ = MapMemlock(*first);
  table_segments_.store(1);
  Store(&datapath_->table_seg_live()[0], int64_t{LOCKD_TABLE_SEG_BUCKETS});
  if (absl::Status s = InstallPoolSegment(options_.pool_min_blocks); !s.ok())
    return s;
  // One level above the deepest in use always exists, so that a split never
  // waits for a segment (the datapath asks for the next one when it starts
  // using this one).
  return GrowTable(LOCKD_TABLE_BASE_DEPTH + 1);
}

absl::Status Segments::Adopt() {
  const MapFds& maps = datapath_->maps();
  for (uint32_t s = 0; s < LOCKD_TABLE_MAX_SEGMENTS; ++s) {
    table_fds_[s] = InnerFd(maps.table_segments, s);
    if (table_fds_[s] < 0) continue;
    table_segments_.fetch_add(1);
    if (table_segment_bytes_ == 0)
      table_segment_bytes_ = MapMemlock(table_fds_[s]);
  }
  lockd_pool_seg* info = datapath_->pool_info();
  for (uint32_t slot = 0; slot < LOCKD_POOL_SLOTS; ++slot) {
    pool_fds_[slot] = InnerFd(maps.pool_segments, slot);
    if (pool_fds_[slot] >= 0)
      pool_bytes_[slot].store(MapMemlock(pool_fds_[slot]));
    else
      Store(&info[slot].id, 0u);  // described but never inserted: a crash
  }
  if (table_fds_[0] < 0)
    return absl::DataLossError(
        "pinned lock table without its first segment: remove the pins");
  const uint32_t current = Load(&datapath_->config()->pool_current);
  if (current == 0 || pool_fds_[current % LOCKD_POOL_SLOTS] < 0)
    return InstallPoolSegment(options_.pool_min_blocks);
  return absl::OkStatus();
}

absl::StatusOr<int> Segments::CreateTableSegment(uint32_t segment) {
  const SegmentTemplate t = datapath_->table_template();
  LIBBPF_OPTS(bpf_map_create_opts, opts, .btf_fd = static_cast<__u32>(t.btf_fd),
              .btf_key_type_id = t.key_type_id,
              .btf_value_type_id = t.value_type_id, .map_flags = t.map_flags);
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lockd_tseg", sizeof(uint32_t),
                          sizeof(lockd_bucket), LOCKD_TABLE_SEG_BUCKETS, &opts);
  if (fd < 0)
    return ErrnoStatus(errno, absl::StrCat("creating table segment ", segment));
  return fd;
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

absl::Status Segments::GrowTable(uint32_t level) {
  lockd_config* cfg = datapath_->config();
  if (level > LOCKD_TABLE_MAX_DEPTH) level = LOCKD_TABLE_MAX_DEPTH;
  for (uint32_t next = Load(&cfg->table_levels) + 1; next <= level; ++next) {
    const uint32_t first = FirstSegmentOfLevel(next);
    const uint32_t count = SegmentsOfLevel(next);
    uint64_t missing = 0;
    for (uint32_t s = first; s < first + count; ++s)
      if (table_fds_[s] < 0) ++missing;
    if (!Fits(missing * table_segment_bytes_)) {
      SetAtBudget(LOCKD_BUDGET_TABLE, true);
      return absl::ResourceExhaustedError(
          absl::StrCat("the memory budget (", options_.budget_bytes,
                       " bytes) has no room for table level ", next));
    }
    for (uint32_t s = first; s < first + count; ++s) {
      if (table_fds_[s] >= 0) continue;
      absl::StatusOr<int> fd = CreateTableSegment(s);
      if (!fd.ok()) return fd.status();
      if (bpf_map_update_elem(datapath_->maps().table_segments, &s, &*fd,
                              BPF_ANY) != 0) {
        close(*fd);
        return ErrnoStatus(errno, absl::StrCat("inserting table segment ", s));
      }
      table_fds_[s] = *fd;
      table_segments_.fetch_add(1);
    }
    Store(&cfg->table_levels, next); /* splits may use the level from now */
  }
  return absl::OkStatus();
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
  if (absl::Status s = DropDrainedPool(); !s.ok()) return s;
  if (absl::Status s = DropTableLevel(now); !s.ok()) return s;
  // A current pool segment far larger than what lives in it is replaced by
  // a smaller one; the big one drains and goes.
  const MemoryUse use = Use();
  const lockd_pool_seg& current =
      datapath_->pool_info()[use.pool_current % LOCKD_POOL_SLOTS];
  const uint64_t capacity = Load(&current.capacity);
  const bool oversized = capacity > options_.pool_min_blocks &&
                         use.pool_live * 4 < capacity;
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
  if (Fits(0)) SetAtBudget(LOCKD_BUDGET_TABLE, false);
  return absl::OkStatus();
}

absl::Status Segments::DropTableLevel(absl::Time now) {
  lockd_config* cfg = datapath_->config();
  const uint32_t top = Load(&cfg->table_levels);
  if (top <= LOCKD_TABLE_BASE_DEPTH + 1) return absl::OkStatus();
  const int64_t* live = datapath_->table_seg_live();
  // The top level goes only when the one below it is unused too: one level
  // above the deepest in use always stays (see Initialize).
  auto level_idle = [&](uint32_t level) {
    if (level <= LOCKD_TABLE_BASE_DEPTH) return false;
    for (uint32_t s = FirstSegmentOfLevel(level);
         s < FirstSegmentOfLevel(level) + SegmentsOfLevel(level); ++s)
      if (Load(&live[s]) != 0) return false;
    return true;
  };
  auto top_idle = [&] { return level_idle(top) && level_idle(top - 1); };
  if (!top_idle()) {
    top_level_idle_since_ = absl::InfiniteFuture();
    return absl::OkStatus();
  }
  if (top_level_idle_since_ == absl::InfiniteFuture()) {
    top_level_idle_since_ = now;
    return absl::OkStatus();
  }
  if (now - top_level_idle_since_ < options_.idle_grace)
    return absl::OkStatus();
  // Unpublish the level, wait out every program that read the old value (a
  // split among them may just have used the level), then look again.
  Store(&cfg->table_levels, top - 1);
  if (Load(&cfg->table_level_requested) >= top)
    Store(&cfg->table_level_requested, top - 1);
  if (absl::Status s = Quiesce(); !s.ok()) return s;
  if (!top_idle()) {
    Store(&cfg->table_levels, top);
    return absl::OkStatus();
  }
  for (uint32_t s = FirstSegmentOfLevel(top);
       s < FirstSegmentOfLevel(top) + SegmentsOfLevel(top); ++s) {
    if (table_fds_[s] < 0) continue;
    if (bpf_map_delete_elem(datapath_->maps().table_segments, &s) != 0)
      return ErrnoStatus(errno, absl::StrCat("removing table segment ", s));
    close(table_fds_[s]);
    table_fds_[s] = -1;
    table_segments_.fetch_sub(1);
  }
  top_level_idle_since_ = absl::InfiniteFuture();
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
  use.table_levels = Load(&cfg->table_levels);
  use.pool_current = Load(&cfg->pool_current);
  const uint32_t at_budget = Load(&cfg->at_budget);
  use.table_at_budget = (at_budget & LOCKD_BUDGET_TABLE) != 0;
  use.pool_at_budget = (at_budget & LOCKD_BUDGET_POOL) != 0;
  use.total_bytes = use.fixed_bytes + use.table_bytes + use.pool_bytes;
  return use;
}

}  // namespace lockd
