// C++ view of the lockd wire message (struct lockd_msg in lockd_abi.h):
// a host-order struct, its encoder and a validating decoder, printable names
// for the ABI enums and counters, and the lock name -> lock id hash that every
// client must share.
#ifndef LOCKD_ABI_CODEC_H_
#define LOCKD_ABI_CODEC_H_

#include <array>
#include <cstdint>
#include <ostream>
#include <string>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace lockd {

// Size of one encoded message: datagrams of any other length are malformed.
inline constexpr size_t kMessageSize = sizeof(struct lockd_msg);

// One wire message with every field in host byte order. The magic and the
// version are not fields: Encode always writes the current ones and
// DecodeMessage rejects any other.
struct Message {
  lockd_opcode opcode{};
  lockd_mode mode = LOCKD_MODE_NONE;
  lockd_policy policy = LOCKD_POLICY_WAIT;
  // enum lockd_status; raw, so that tests can build any byte.
  uint8_t status = 0;
  uint8_t flags = 0;  // LOCKD_FLAG_* (requests only)
  uint32_t client_id = LOCKD_CLIENT_NONE;
  uint64_t seq = 0;
  uint32_t lease_ms = 0;
  uint32_t wait_ms = 0;
  uint32_t queue_pos = 0;
  uint64_t lock_id = 0;
  uint64_t txn_id = 0;
  uint64_t fence = 0;
  uint64_t ticket = 0;  // where the server keeps the owner's record
  uint64_t mac = 0;     // as on the wire (abi/keys.h signs and checks it)

  // One line with every field by name, e.g. for test failure messages.
  std::string ToString() const;

  friend bool operator==(const Message& a, const Message& b);
  friend bool operator!=(const Message& a, const Message& b) {
    return !(a == b);
  }
};

// Lets gtest and logging print a Message with its ToString().
std::ostream& operator<<(std::ostream& os, const Message& message);

using EncodedMessage = std::array<uint8_t, kMessageSize>;

// Writes `message` in wire format (big-endian, current magic and version).
// Fields are written as given, the MAC too, without validation, so tests can
// build the malformed messages that DecodeMessage must reject (abi/keys.h
// signs).
EncodedMessage Encode(const Message& message);

// Parses one datagram payload (the MAC is not checked: abi/keys.h does).
// Returns InvalidArgument, with a message naming
// the problem, for everything docs/semantics.md calls malformed: a length
// other than kMessageSize ("truncated"/"oversized"), wrong magic, wrong
// version, an opcode that is neither a known request nor a known reply, an
// unknown mode or policy, and flags or status that do not fit the opcode:
//  - flags: requests may carry LOCKD_REQUEST_FLAGS, replies none;
//  - status: 0 on a request, a known enum lockd_status on a reply.
// Checks run in that order, so the error names the first problem found.
absl::StatusOr<Message> DecodeMessage(absl::Span<const uint8_t> bytes);

// True for request opcodes (client -> server); replies have the high bit set.
bool IsRequest(lockd_opcode opcode);

// Names of enum values as spelled in the ABI without their prefix
// ("ACQUIRE", "EXCLUSIVE", "WAIT_DIE", "CONFLICT"), or "UNKNOWN" for a value
// the ABI does not define.
absl::string_view OpcodeName(lockd_opcode opcode);
absl::string_view ModeName(lockd_mode mode);
absl::string_view PolicyName(lockd_policy policy);
absl::string_view StatusName(lockd_status status);

// The status code of a rejection for callers, as proto/lockd.proto lists
// it: ABORTED for CONFLICT, DIE and UPGRADE_CONFLICT (retry later or
// restart); RESOURCE_EXHAUSTED for NO_CAPACITY; FAILED_PRECONDITION for
// NOT_HOLDER and FORCE_RELEASED; DEADLINE_EXCEEDED for LEASE_EXPIRED and
// WAIT_EXPIRED; INVALID_ARGUMENT for BAD_REQUEST; INTERNAL for OK and
// unknown values (a rejection must give a reason); RESOURCE_EXHAUSTED for
// QUOTA too.
absl::StatusCode CodeForRejection(lockd_status status);

// Counter names from the LOCKD_STATS list ("rx", "grant_immediate", ...):
// the names user space reports the per-CPU "stats" map under.
absl::string_view StatName(lockd_stat stat);  // "UNKNOWN" when out of range
// All counter names, indexed by enum lockd_stat (LOCKD_STAT_COUNT entries).
absl::Span<const absl::string_view> StatNames();

// The one request/reply vocabulary (abi/lockd_abi.h) from and to the wire
// message: a request as the datapath parses it (replies and grants go to
// `from`), and the message a reply is sent as by a server in `epoch` (which
// every reply carries in wait_ms, as the datapath's msg_write writes it).
lockd_request ToRequest(const Message& message, const lockd_endpoint& from);
Message FromReply(const lockd_reply& reply, uint32_t epoch);

// The lock id for a lock name: FNV-1a 64 over the name's bytes, then the
// splitmix64 finalizer (FNV alone mixes its last bytes poorly into the high
// bits). The function is part of the protocol: ids are stable across
// processes, machines and lockd versions, so independent clients that name a
// lock the same way agree on its id. Changing it is an incompatible change.
uint64_t LockIdForName(absl::string_view name);

}  // namespace lockd

#endif  // LOCKD_ABI_CODEC_H_
