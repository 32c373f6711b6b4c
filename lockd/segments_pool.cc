// The pool's half of Segments (segments.h): segments of Kerby blocks
// installed, grown into and dropped once drained.
#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "lockd/map_fields.h"
#include "lockd/segments.h"

namespace lockd {

absl::StatusOr<int> Segments::CreatePoolSegment(uint32_t capacity) {
  return CreateSegmentMap(
      datapath_->pool_template(), "lockd_pseg", capacity,
      absl::StrCat("creating a pool segment of ", capacity));
}

absl::Status Segments::InstallPoolSegment(uint32_t capacity) {
  lockd_config* cfg = datapath_->config();
  lockd_pool_seg* info = datapath_->pool_info();
  // Ids only grow, and a slot is taken by one segment at a time.
  uint32_t id = Load(&cfg->pool_current);
  for (uint32_t slot = 0; slot < LOCKD_POOL_SLOTS; ++slot)
    if (Load(&info[slot].id) > id) id = Load(&info[slot].id);
  uint32_t tries = 0;
  do {
    ++id;
    if (++tries > LOCKD_POOL_SLOTS)
      return absl::ResourceExhaustedError("every pool slot holds a segment");
  } while (pool_fds_[id % LOCKD_POOL_SLOTS] >= 0);
  absl::StatusOr<int> fd = CreatePoolSegment(capacity);
  if (!fd.ok()) return fd.status();
  const uint64_t bytes = MapMemlock(*fd);
  if (!Fits(bytes)) {
    close(*fd);
    SetAtBudget(LOCKD_BUDGET_POOL, true);
    refused_.fetch_add(1);
    return absl::ResourceExhaustedError(absl::StrCat(
        "the memory budget (", options_.budget_bytes,
        " bytes) has no room for a pool segment of ", capacity, " blocks"));
  }
  const uint32_t slot = id % LOCKD_POOL_SLOTS;
  // The slot's bookkeeping first, then the map, then the switch: a program
  // that sees the new current segment finds everything in place.
  lockd_pool_seg fresh{};
  fresh.capacity = capacity;
  Store(&info[slot].capacity, fresh.capacity);
  Store(&info[slot].next, uint64_t{0});
  Store(&info[slot].live, int64_t{0});
  Store(&info[slot].low_water_signalled, 0u);
  Store(&info[slot].id, id);
  if (bpf_map_update_elem(datapath_->maps().pool_segments, &slot, &*fd,
                          BPF_ANY) != 0) {
    close(*fd);
    Store(&info[slot].id, 0u);
    return ErrnoStatus(errno, "inserting a pool segment");
  }
  pool_fds_[slot] = *fd;
  pool_bytes_[slot].store(bytes);
  pool_added_.fetch_add(1);
  Store(&cfg->pool_current, id);
  SetAtBudget(LOCKD_BUDGET_POOL, false);
  return Quiesce();
}

absl::Status Segments::GrowPool() {
  const MemoryUse use = Use();
  const uint32_t current = use.pool_current;
  const lockd_pool_seg& info =
      datapath_->pool_info()[current % LOCKD_POOL_SLOTS];
  uint64_t capacity = std::max<uint64_t>(
      options_.pool_min_blocks,
      2 * std::max<uint64_t>(Load(&info.capacity), use.pool_live));
  capacity = std::min<uint64_t>(capacity, 1u << 30);
  absl::Status installed = InstallPoolSegment(static_cast<uint32_t>(capacity));
  if (!installed.ok() && absl::IsResourceExhausted(installed)) {
    // Over budget at this size: settle for what is left, if anything.
    const uint64_t left = options_.budget_bytes > use.total_bytes
                              ? options_.budget_bytes - use.total_bytes
                              : 0;
    const uint64_t per_block = use.pool_capacity
                                   ? use.pool_bytes / use.pool_capacity
                                   : sizeof(lockd_block) * 2;
    const uint64_t fits = per_block ? left / per_block : 0;
    if (fits > Load(&info.capacity) && fits >= options_.pool_min_blocks)
      installed = InstallPoolSegment(static_cast<uint32_t>(fits));
  }
  return installed;
}

absl::Status Segments::DropDrainedPool() {
  const uint32_t current = Load(&datapath_->config()->pool_current);
  lockd_pool_seg* info = datapath_->pool_info();
  for (uint32_t slot = 0; slot < LOCKD_POOL_SLOTS; ++slot) {
    const uint32_t id = Load(&info[slot].id);
    // Not current for a grace period already (InstallPoolSegment quiesced
    // after switching): nothing allocates there any more, so no block comes
    // back once live is 0.
    if (id == 0 || id == current || pool_fds_[slot] < 0 ||
        Load(&info[slot].live) != 0)
      continue;
    if (bpf_map_delete_elem(datapath_->maps().pool_segments, &slot) != 0)
      return ErrnoStatus(errno, "removing a drained pool segment");
    close(pool_fds_[slot]);
    pool_fds_[slot] = -1;
    pool_bytes_[slot].store(0);
    pool_removed_.fetch_add(1);
    Store(&info[slot].id, 0u);
  }
  return absl::OkStatus();
}

}  // namespace lockd
