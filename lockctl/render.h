// lockctl's text formats: how an operator names a lock on the command line,
// and how AdminService answers are shown, as aligned tables for people or as
// JSON for scripts. Separate from the binary so tests can check the output
// without a daemon.
#ifndef LOCKD_LOCKCTL_RENDER_H_
#define LOCKD_LOCKCTL_RENDER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "proto/lockd.pb.h"

namespace lockd::lockctl {

// A lock named on the command line.
struct LockArgument {
  uint64_t id = 0;
  std::string name;  // empty when given as an id
};

// A decimal id ("42"), a hexadecimal id ("0x2a") or else a lock name, hashed
// with LockIdForName as every client does. A name made of digits only is
// read as an id. InvalidArgument when empty.
absl::StatusOr<LockArgument> ParseLockArgument(absl::string_view text);

// "0x000000000000002a": fixed width, so ids line up and grep well.
std::string FormatLockId(uint64_t lock_id);

// One row per lock: id, mode, holders, waiters, fence.
std::string RenderLocksTable(const v1::ListLocksResponse& locks);

// The lock's state, then its holders and its queue (head first) as tables.
// `name` is shown when the operator named the lock; may be empty.
std::string RenderLock(const v1::GetLockResponse& lock, absl::string_view name);

// Every counter by name, then memory as RenderMemory shows it.
std::string RenderStats(const v1::GetStatsResponse& stats);

// The datapath's maps against the memory budget.
std::string RenderMemory(const v1::MemoryUsage& memory);

// Client ids, holds + waits, whether a key rotation is under way.
std::string RenderClients(const v1::ListClientsResponse& response);
std::string RenderHealth(const v1::HealthResponse& health);

// The message as indented JSON with proto field names and every field, also
// zero ones, so scripts find the same keys every time. Parses back with
// google::protobuf::util::JsonStringToMessage.
absl::StatusOr<std::string> RenderJson(
    const google::protobuf::Message& message);

}  // namespace lockd::lockctl

#endif  // LOCKD_LOCKCTL_RENDER_H_
