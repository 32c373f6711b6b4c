#include "lockd/kernel_table.h"

#include <bpf/bpf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "absl/strings/str_cat.h"
#include "lockd/map_fields.h"

namespace lockd {
namespace {

// Attempts at a consistent view of a lock that keeps changing.
constexpr int kReadAttempts = 64;
// Members one view walks at most (a chain or queue longer than this is
// reported cut short).
constexpr size_t kMaxMembers = 1 << 16;

// An inner map of `outer` (user space sees inner map ids there), opened for
// the duration of one read; closed with the object.
class InnerMap {
 public:
  InnerMap(int outer_fd, uint32_t slot) : fd_(InnerMapFd(outer_fd, slot)) {}
  ~InnerMap() {
    if (fd_ >= 0) close(fd_);
  }
  InnerMap(const InnerMap&) = delete;
  InnerMap& operator=(const InnerMap&) = delete;
  int fd() const { return fd_; }

 private:
  const int fd_;
};

// Reads buckets and blocks, keeping each inner map open while it lasts.
class MapReader {
 public:
  explicit MapReader(const MapFds& maps) : maps_(maps) {}

  // The bucket, read under its guard; false if its segment is missing.
  bool Bucket(uint32_t idx, lockd_bucket* out) {
    const uint32_t seg = idx >> LOCKD_TABLE_SEG_SHIFT;
    auto& map = table_[seg];
    if (!map) map = std::make_unique<InnerMap>(maps_.table_segments, seg);
    if (map->fd() < 0) return false;
    uint32_t offset = idx & (LOCKD_TABLE_SEG_BUCKETS - 1);
    return bpf_map_lookup_elem_flags(map->fd(), &offset, out, BPF_F_LOCK) == 0;
  }

  bool Block(uint64_t idx, lockd_block* out) {
    const uint32_t slot =
        static_cast<uint32_t>(idx >> LOCKD_POOL_SEG_SHIFT) % LOCKD_POOL_SLOTS;
    auto& map = pool_[slot];
    if (!map) map = std::make_unique<InnerMap>(maps_.pool_segments, slot);
    if (map->fd() < 0) return false;
    return bpf_map_lookup_elem(map->fd(), &idx, out) == 0 && out->idx == idx;
  }

 private:
  const MapFds& maps_;
  std::map<uint32_t, std::unique_ptr<InnerMap>> table_;
  std::map<uint32_t, std::unique_ptr<InnerMap>> pool_;
};

// The bucket that serves `lock_id`, by the datapath's walk (table.h).
bool FindBucket(MapReader& reader, const lockd_config& cfg, uint64_t lock_id,
                lockd_bucket* bucket) {
  const uint64_t h = lockd_table_hash(lock_id, cfg.hash_seed);
  uint32_t d = std::clamp<uint32_t>(cfg.min_depth, LOCKD_TABLE_BASE_DEPTH,
                                    LOCKD_TABLE_MAX_DEPTH);
  for (int step = 0; step < 2 * LOCKD_TABLE_MAX_DEPTH; ++step) {
    const uint32_t idx = static_cast<uint32_t>(h & ((1ull << d) - 1));
    if (!reader.Bucket(idx, bucket)) bucket->depth = 0;
    if (bucket->depth == 0) {
      if (d <= LOCKD_TABLE_BASE_DEPTH) return false;
      --d;
    } else if (bucket->depth > d) {
      if (d >= LOCKD_TABLE_MAX_DEPTH) return false;
      ++d;
    } else {
      return true;
    }
  }
  return false;
}

enum class Walk { kDone, kChanged, kTooLong };

// Follows a chain of blocks of `lock_id` from `first` through `next`.
Walk WalkBlocks(MapReader& reader, uint64_t lock_id, uint64_t first,
                std::vector<MemberView>* out) {
  for (uint64_t idx = first; idx != 0;) {
    if (out->size() >= kMaxMembers) return Walk::kTooLong;
    lockd_block block{};
    if (!reader.Block(idx, &block) || block.lock_id != lock_id)
      return Walk::kChanged;
    out->push_back(MemberView{block.m, idx});
    idx = block.next;
  }
  return Walk::kDone;
}

}  // namespace

absl::StatusOr<lockd_ctl> KernelTable::Execute(const lockd_ctl& command) {
  lockd_ctl result = command;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = &command, .data_out = &result,
              .data_size_in = sizeof(command), .data_size_out = sizeof(result),
              .repeat = 1);
  if (bpf_prog_test_run_opts(datapath_->ctl_prog_fd(), &opts) != 0)
    return ErrnoStatus(errno, "running a control operation");
  if (opts.data_size_out != sizeof(result) || opts.retval != XDP_TX)
    return absl::InternalError(absl::StrCat("control operation ", command.op,
                                            " failed in the kernel"));
  return result;
}

absl::StatusOr<LockView> KernelTable::Read(uint64_t lock_id) const {
  MapReader reader(datapath_->maps());
  const lockd_config cfg = *datapath_->config();
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    lockd_bucket before{};
    if (!FindBucket(reader, cfg, lock_id, &before)) continue;
    const int slot = lockd_bucket_find(&before, lock_id);
    if (slot < 0)
      return absl::NotFoundError(
          absl::StrCat("lock ", lock_id, " has no holders and no waiters"));
    LockView view;
    view.lock_id = lock_id;
    view.state = before.slots[slot];
    if (view.state.holder.state == LOCKD_MEMBER_HELD)
      view.holders.push_back(
          MemberView{view.state.holder, LOCKD_TICKET_INLINE});
    Walk chain = WalkBlocks(reader, lock_id, view.state.chain, &view.holders);
    Walk queue = chain == Walk::kDone
                     ? WalkBlocks(reader, lock_id, view.state.head, &view.queue)
                     : chain;
    if (queue == Walk::kTooLong)
      return absl::ResourceExhaustedError(absl::StrCat(
          "lock ", lock_id, " has more than ", kMaxMembers, " members"));
    // Consistent if the lock did not change while its blocks were read.
    lockd_bucket after{};
    if (queue != Walk::kDone || !FindBucket(reader, cfg, lock_id, &after))
      continue;
    const int again = lockd_bucket_find(&after, lock_id);
    if (again < 0 || after.slots[again].version != view.state.version) continue;
    std::sort(view.holders.begin(), view.holders.end(),
              [](const MemberView& a, const MemberView& b) {
                return a.m.fence < b.m.fence;
              });
    return view;
  }
  return absl::AbortedError(
      absl::StrCat("lock ", lock_id, " kept changing while being read"));
}

namespace {

LockSummary Summarize(const lockd_bucket& b, int slot) {
  const lockd_lock& lk = b.slots[slot];
  LockSummary s;
  s.lock_id = b.ids[slot];
  s.mode = lk.mode;
  s.holders = lk.holders;
  s.queue_len = lk.queue_len;
  s.fence = lk.fence;
  if (lk.holder.state == LOCKD_MEMBER_HELD) {
    s.holder_txn = lk.holder.txn_id;
    s.holder_expires_ns = lk.holder.expires_ns;
  }
  s.extra_holders = lk.chain != 0;
  return s;
}

}  // namespace

template <typename Visit>
absl::Status KernelTable::ForEachBucket(uint32_t first_segment,
                                        uint32_t end_segment,
                                        Visit visit) const {
  const MapFds& maps = datapath_->maps();
  std::vector<lockd_bucket> buckets(LOCKD_TABLE_SEG_BUCKETS);
  std::vector<uint32_t> keys(LOCKD_TABLE_SEG_BUCKETS);
  for (uint32_t seg = first_segment; seg < end_segment; ++seg) {
    InnerMap map(maps.table_segments, seg);
    if (map.fd() < 0) continue;
    uint32_t count = LOCKD_TABLE_SEG_BUCKETS, out_batch = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_F_LOCK);
    int err = bpf_map_lookup_batch(map.fd(), nullptr, &out_batch, keys.data(),
                                   buckets.data(), &count, &opts);
    if (err != 0 && errno != ENOENT)
      return ErrnoStatus(errno, absl::StrCat("reading table segment ", seg));
    for (uint32_t i = 0; i < count; ++i)
      if (buckets[i].depth != 0) visit(buckets[i]);
  }
  return absl::OkStatus();
}

uint32_t KernelTable::SegmentCount() const {
  // Buckets in use sit below 2^max_depth (a hint that only lags a split by
  // moments: a lock moved by one is found on the next walk).
  const uint32_t depth =
      std::clamp<uint32_t>(Load(&datapath_->config()->max_depth),
                           LOCKD_TABLE_BASE_DEPTH, LOCKD_TABLE_MAX_DEPTH);
  return 1u << (depth - LOCKD_TABLE_SEG_SHIFT);
}

bool KernelTable::SegmentInUse(uint32_t segment) const {
  return segment < LOCKD_TABLE_MAX_SEGMENTS &&
         Load(&datapath_->table_seg_live()[segment]) > 0;
}

absl::StatusOr<std::vector<LockSummary>> KernelTable::ScanSegment(
    uint32_t segment) const {
  std::vector<LockSummary> out;
  if (!SegmentInUse(segment)) return out;
  absl::Status walked =
      ForEachBucket(segment, segment + 1, [&](const lockd_bucket& b) {
        for (int i = 0; i < LOCKD_BUCKET_SLOTS; ++i)
          if (b.used & (1u << i)) out.push_back(Summarize(b, i));
      });
  if (!walked.ok()) return walked;
  return out;
}

absl::StatusOr<uint64_t> KernelTable::CountLocks() const {
  uint64_t locks = 0;
  absl::Status walked = ForEachBucket(
      0, SegmentCount(),
      [&](const lockd_bucket& b) { locks += __builtin_popcount(b.used); });
  if (!walked.ok()) return walked;
  return locks;
}

absl::StatusOr<uint64_t> KernelTable::ForgetEnded(uint64_t before_ns) {
  const int fd = datapath_->maps().ended;
  // Read in batches (a few syscalls for the whole map), then delete the old
  // ones in one batch.
  constexpr uint32_t kBatch = 1024;
  std::vector<lockd_owner_key> keys(kBatch), old;
  std::vector<lockd_ended> memos(kBatch);
  uint64_t in_batch = 0, out_batch = 0;
  bool first = true;
  for (;;) {
    uint32_t count = kBatch;
    const int err =
        bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch,
                             keys.data(), memos.data(), &count, nullptr);
    if (err != 0 && errno != ENOENT)
      return ErrnoStatus(errno, "reading the remembered endings");
    for (uint32_t i = 0; i < count; ++i)
      if (memos[i].time_ns < before_ns) old.push_back(keys[i]);
    if (err != 0) break;  // ENOENT: that was the last batch
    in_batch = out_batch;
    first = false;
  }
  if (old.empty()) return 0;
  uint32_t count = static_cast<uint32_t>(old.size());
  if (bpf_map_delete_batch(fd, old.data(), &count, nullptr) != 0 &&
      errno != ENOENT)
    return ErrnoStatus(errno, "forgetting remembered endings");
  return count;
}

uint64_t KernelTable::NowNs() const { return ClockNs(CLOCK_MONOTONIC); }

}  // namespace lockd
