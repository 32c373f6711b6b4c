// The lock table's half of Segments (segments.h): segments of buckets
// added when a split asks for one, and removed once merges have left them
// unused. A removal marks the segment RETIRING first, which splits do not
// use, waits until no program can have missed the mark, and looks again.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lockd/map_fields.h"
#include "lockd/segments.h"

namespace lockd {

absl::StatusOr<int> Segments::CreateTableSegment(uint32_t segment) {
  return CreateSegmentMap(datapath_->table_template(), "lockd_tseg",
                          LOCKD_TABLE_SEG_BUCKETS,
                          absl::StrCat("creating table segment ", segment));
}

absl::Status Segments::InsertTableSegment(uint32_t segment, int fd) {
  if (bpf_map_update_elem(datapath_->maps().table_segments, &segment, &fd,
                          BPF_ANY) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus(err, absl::StrCat("inserting table segment ", segment));
  }
  table_fds_[segment] = fd;
  table_segments_.fetch_add(1);
  return absl::OkStatus();
}

absl::Status Segments::InitializeTable(uint64_t fence_base) {
  // The base buckets, in use from the start at the base depth.
  for (uint32_t s = 0;
       s < (1u << LOCKD_TABLE_BASE_DEPTH) / LOCKD_TABLE_SEG_BUCKETS; ++s) {
    absl::StatusOr<int> fd = CreateTableSegment(s);
    if (!fd.ok()) return fd.status();
    if (table_segment_bytes_ == 0) table_segment_bytes_ = MapMemlock(*fd);
    for (uint32_t i = 0; i < LOCKD_TABLE_SEG_BUCKETS; ++i) {
      lockd_bucket bucket{};
      bucket.depth = LOCKD_TABLE_BASE_DEPTH;
      bucket.index = s * LOCKD_TABLE_SEG_BUCKETS + i;
      bucket.fence_floor = fence_base;
      if (bpf_map_update_elem(*fd, &i, &bucket, BPF_ANY) != 0) {
        close(*fd);
        return ErrnoStatus(errno, "writing the base buckets");
      }
    }
    if (absl::Status inserted = InsertTableSegment(s, *fd); !inserted.ok())
      return inserted;
    Store(&datapath_->table_seg_live()[s], int64_t{LOCKD_TABLE_SEG_BUCKETS});
  }
  // The images of the first splits: no first split waits for a segment.
  for (uint32_t s = (1u << LOCKD_TABLE_BASE_DEPTH) / LOCKD_TABLE_SEG_BUCKETS;
       s < LOCKD_TABLE_KEPT_SEGMENTS; ++s)
    if (absl::Status added = AddTableSegment(s); !added.ok()) return added;
  return absl::OkStatus();
}

absl::Status Segments::AdoptTable() {
  const MapFds& maps = datapath_->maps();
  for (uint32_t s = 0; s < LOCKD_TABLE_MAX_SEGMENTS; ++s) {
    table_fds_[s] = InnerMapFd(maps.table_segments, s);
    if (table_fds_[s] < 0) continue;
    table_segments_.fetch_add(1);
    if (table_segment_bytes_ == 0)
      table_segment_bytes_ = MapMemlock(table_fds_[s]);
  }
  for (uint32_t s = 0; s < LOCKD_TABLE_KEPT_SEGMENTS; ++s)
    if (table_fds_[s] < 0)
      return absl::DataLossError(absl::StrCat(
          "pinned lock table without its segment ", s, ": remove the pins"));
  // A removal a predecessor died in: whatever it decided, undecided now.
  uint32_t* state = datapath_->table_seg_state();
  for (uint32_t s = 0; s < LOCKD_TABLE_MAX_SEGMENTS; ++s)
    if (Load(&state[s]) == LOCKD_SEG_RETIRING) Store(&state[s], LOCKD_SEG_IDLE);
  return absl::OkStatus();
}

absl::Status Segments::AddAskedTableSegments() {
  const uint32_t* state = datapath_->table_seg_state();
  for (uint32_t s = 0; s < LOCKD_TABLE_MAX_SEGMENTS; ++s)
    if (Load(&state[s]) == LOCKD_SEG_ASKED)
      if (absl::Status added = AddTableSegment(s);
          !added.ok() && !absl::IsResourceExhausted(added))
        return added;
  return absl::OkStatus();
}

absl::Status Segments::AddTableSegment(uint32_t segment) {
  if (segment >= LOCKD_TABLE_MAX_SEGMENTS)
    return absl::InvalidArgumentError(
        absl::StrCat("no table segment ", segment));
  uint32_t* state = &datapath_->table_seg_state()[segment];
  if (table_fds_[segment] >= 0) {  // asked twice, or raced a removal
    Store(state, LOCKD_SEG_IDLE);
    return absl::OkStatus();
  }
  if (table_segment_bytes_ != 0 && !Fits(table_segment_bytes_)) {
    SetAtBudget(LOCKD_BUDGET_TABLE, true);
    refused_.fetch_add(1);
    Store(state, LOCKD_SEG_IDLE);  // a later split asks again
    return absl::ResourceExhaustedError(
        absl::StrCat("the memory budget (", options_.budget_bytes,
                     " bytes) has no room for table segment ", segment));
  }
  absl::StatusOr<int> fd = CreateTableSegment(segment);
  if (!fd.ok()) return fd.status();
  if (table_segment_bytes_ == 0) table_segment_bytes_ = MapMemlock(*fd);
  if (absl::Status inserted = InsertTableSegment(segment, *fd); !inserted.ok())
    return inserted;
  table_added_.fetch_add(1);
  Store(state, LOCKD_SEG_IDLE);  // in place: splits may use it from now
  return absl::OkStatus();
}

absl::Status Segments::DropIdleTableSegments(absl::Time now) {
  const int64_t* live = datapath_->table_seg_live();
  uint32_t* state = datapath_->table_seg_state();
  std::vector<uint32_t> retiring;
  for (uint32_t s = LOCKD_TABLE_KEPT_SEGMENTS; s < LOCKD_TABLE_MAX_SEGMENTS;
       ++s) {
    if (table_fds_[s] < 0) continue;
    if (Load(&live[s]) != 0) {
      table_idle_since_.erase(s);
      continue;
    }
    auto [since, fresh] = table_idle_since_.try_emplace(s, now);
    if (fresh || now - since->second < options_.idle_grace) continue;
    Store(&state[s], LOCKD_SEG_RETIRING);
    retiring.push_back(s);
  }
  if (retiring.empty()) return absl::OkStatus();
  // Every program that read a state before the mark has ended; a split
  // among them counted its bucket in `live`.
  if (absl::Status s = Quiesce(); !s.ok()) return s;
  for (uint32_t s : retiring) {
    table_idle_since_.erase(s);
    if (Load(&live[s]) == 0) {
      if (bpf_map_delete_elem(datapath_->maps().table_segments, &s) != 0)
        return ErrnoStatus(errno, absl::StrCat("removing table segment ", s));
      close(table_fds_[s]);
      table_fds_[s] = -1;
      table_segments_.fetch_sub(1);
      table_removed_.fetch_add(1);
    }
    Store(&state[s], LOCKD_SEG_IDLE);
  }
  return absl::OkStatus();
}

}  // namespace lockd
