// A consistent view of one lock (state, holders, queue in order) read from
// the datapath's maps while the kernel keeps changing them: the lock entry is
// read under its spin lock (BPF_F_LOCK) before and after walking, and the walk
// is retried until the version did not move and the pieces agree.
#ifndef LOCKD_LOCKD_TABLE_READER_H_
#define LOCKD_LOCKD_TABLE_READER_H_

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace lockd {

struct HolderView {
  uint64_t txn_id = 0;
  uint8_t mode = LOCKD_MODE_NONE;
  uint64_t fence = 0;
  uint32_t seq = 0;               // of the ACQUIRE that made the record
  uint32_t lease_ms = 0;          // last granted or renewed
  uint64_t since_ns = 0;          // CLOCK_MONOTONIC
  uint64_t lease_expires_ns = 0;  // CLOCK_MONOTONIC
  uint32_t addr = 0;              // network order
  uint16_t port = 0;              // network order
};

struct WaiterView {
  uint64_t block = 0;  // pool block index
  lockd_waiter waiter{};
};

struct LockView {
  uint64_t lock_id = 0;
  lockd_lock state{};               // guard field meaningless
  std::vector<HolderView> holders;  // by fence (grant order)
  std::vector<WaiterView> queue;    // head first, cancelled ones included
};

struct TableMaps {
  int locks_fd = -1;
  int owners_fd = -1;
  int pool_fd = -1;
};

// Every key of a BPF hash map, in the kernel's iteration order. Keys added
// or deleted meanwhile may or may not appear; each present key appears once.
template <typename Key>
absl::StatusOr<std::vector<Key>> MapKeys(int fd) {
  std::vector<Key> keys;
  Key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  if (errno != ENOENT)
    return absl::InternalError(
        absl::StrCat("iterating a map: ", strerror(errno)));
  return keys;
}

class TableReader {
 public:
  explicit TableReader(TableMaps maps) : maps_(maps) {}

  // NOT_FOUND when the lock has no entry; ABORTED when no consistent view
  // could be read within a bounded number of attempts.
  absl::StatusOr<LockView> Read(uint64_t lock_id) const;
  absl::StatusOr<std::vector<uint64_t>> ListLockIds() const;
  // Elements in the pool map (blocks in use).
  absl::StatusOr<uint64_t> CountPoolBlocks() const;
  // Elements in the owners map (holders, waiters, and records in flight).
  absl::StatusOr<uint64_t> CountOwners() const;

 private:
  absl::StatusOr<lockd_lock> ReadLocked(uint64_t lock_id) const;
  TableMaps maps_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_TABLE_READER_H_
