// The lock recipe of ZooKeeper's documentation ("Locks", "Shared Locks"), as
// JVM shops take it through Apache Curator's InterProcessMutex and
// InterProcessReadWriteLock: every acquire creates an EPHEMERAL|SEQUENTIAL
// child of the lock's znode, "read-" or "write-" followed by the ten-digit
// sequence number ZooKeeper appends (one counter per parent, shared by both
// prefixes). A writer holds the lock when no child has a lower sequence
// number, else it waits for its immediate predecessor of either kind; a
// reader holds it when no writer precedes it, else it waits for the nearest
// preceding writer. Each waiter watches exactly one node, so a release wakes
// only those it lets in (no herd effect). When the watched node goes, the
// waiter lists the children again and decides anew.
//
// Curator's read lock watches the first (lowest) writer instead of the
// nearest preceding one; both are correct, the nearest one wakes a reader
// only when every writer before it is gone.
#ifndef LOCKD_BENCH_ZK_LOCK_RECIPE_H_
#define LOCKD_BENCH_ZK_LOCK_RECIPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lockd::bench {

inline constexpr absl::string_view kZkReadPrefix = "read-";
inline constexpr absl::string_view kZkWritePrefix = "write-";

// The sequence number of a child "read-0000000042" or "write-0000000042".
absl::StatusOr<int64_t> ZkLockSequence(absl::string_view child);

struct ZkLockDecision {
  bool holds = false;
  std::string watch;  // when !holds: the child (a name, not a path) to await
};

// Whether `ours` (one of `children`, in ZooKeeper's order: none) holds the
// lock, and if not, which child it waits for. An error when `ours` is not
// among the children (its session ended) or a name is not the recipe's.
absl::StatusOr<ZkLockDecision> DecideZkLock(
    const std::vector<std::string>& children, absl::string_view ours);

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_ZK_LOCK_RECIPE_H_
