#include "lockd/table_reader.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

constexpr int kMaxAttempts = 1000;

absl::Status MapError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

}  // namespace

absl::StatusOr<lockd_lock> TableReader::ReadLocked(uint64_t lock_id) const {
  lockd_lock state{};
  if (bpf_map_lookup_elem_flags(maps_.locks_fd, &lock_id, &state, BPF_F_LOCK) !=
      0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat("no lock ", lock_id));
    return MapError("reading a lock entry");
  }
  return state;
}

absl::StatusOr<LockView> TableReader::Read(uint64_t lock_id) const {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<lockd_lock> before = ReadLocked(lock_id);
    if (!before.ok()) return before.status();
    LockView view;
    view.lock_id = lock_id;
    view.state = *before;

    bool consistent = true;
    uint64_t idx = before->head, last = 0;
    for (uint32_t i = 0; consistent && idx != 0 && i <= before->queue_len;
         ++i) {
      lockd_block block{};
      if (bpf_map_lookup_elem(maps_.pool_fd, &idx, &block) != 0 ||
          block.idx != idx) {
        consistent = false;
        break;
      }
      view.queue.push_back({idx, block.waiter});
      last = idx;
      idx = block.next;
    }
    consistent = consistent && idx == 0 &&
                 view.queue.size() == before->queue_len && last == before->tail;

    absl::StatusOr<std::vector<lockd_owner_key>> keys =
        MapKeys<lockd_owner_key>(maps_.owners_fd);
    if (!keys.ok()) return keys.status();
    for (const lockd_owner_key& key : *keys) {
      if (key.lock_id != lock_id) continue;
      lockd_owner owner{};
      if (bpf_map_lookup_elem(maps_.owners_fd, &key, &owner) != 0) continue;
      if (owner.state != LOCKD_OWNER_HELD) continue;
      view.holders.push_back({owner.key.txn_id, owner.mode, owner.fence,
                              owner.seq, owner.lease_ms, owner.since_ns,
                              owner.lease_expires_ns, owner.addr, owner.port});
    }
    consistent = consistent && view.holders.size() == before->holders;

    absl::StatusOr<lockd_lock> after = ReadLocked(lock_id);
    if (!after.ok()) return after.status();
    if (consistent && after->version == before->version) {
      std::sort(view.holders.begin(), view.holders.end(),
                [](const HolderView& a, const HolderView& b) {
                  return a.fence < b.fence;
                });
      return view;
    }
  }
  return absl::AbortedError(absl::StrCat(
      "lock ", lock_id, " kept changing: no consistent view after ",
      kMaxAttempts, " attempts"));
}

absl::StatusOr<std::vector<uint64_t>> TableReader::ListLockIds() const {
  return MapKeys<uint64_t>(maps_.locks_fd);
}

absl::StatusOr<uint64_t> TableReader::CountPoolBlocks() const {
  absl::StatusOr<std::vector<uint64_t>> keys = MapKeys<uint64_t>(maps_.pool_fd);
  if (!keys.ok()) return keys.status();
  return keys->size();
}

absl::StatusOr<uint64_t> TableReader::CountOwners() const {
  absl::StatusOr<std::vector<lockd_owner_key>> keys =
      MapKeys<lockd_owner_key>(maps_.owners_fd);
  if (!keys.ok()) return keys.status();
  return keys->size();
}

}  // namespace lockd
