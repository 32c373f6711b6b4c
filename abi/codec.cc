#include "abi/codec.h"

#include <endian.h>

#include <cstddef>
#include <cstring>

#include "absl/base/macros.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace lockd {
namespace {

constexpr absl::string_view kUnknownName = "UNKNOWN";

constexpr absl::string_view kStatNames[] = {
#define LOCKD_STAT_NAME_ENTRY(suffix, name) name,
    LOCKD_STATS(LOCKD_STAT_NAME_ENTRY)
#undef LOCKD_STAT_NAME_ENTRY
};
static_assert(ABSL_ARRAYSIZE(kStatNames) == LOCKD_STAT_COUNT,
              "one name per enum lockd_stat entry");

// Takes the raw wire byte: casting an arbitrary byte to lockd_opcode first
// would be undefined for values outside the enum's range.
bool IsKnownOpcode(uint8_t opcode) {
  return OpcodeName(static_cast<lockd_opcode>(opcode)) != kUnknownName;
}

// "GRANTED", or "UNKNOWN(0x07)" so that unknown values stay visible.
std::string NameOrNumber(absl::string_view name, unsigned value) {
  if (name != kUnknownName) return std::string(name);
  return absl::StrFormat("%s(0x%02x)", name, value);
}

absl::Status ValidateFlagsAndStatus(const Message& message) {
  if (!IsRequest(message.opcode)) {
    if (message.flags != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("flags on reply %s: 0x%02x (must be 0)",
                          OpcodeName(message.opcode), message.flags));
    }
    if (message.status >= LOCKD_STATUS_COUNT) {
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown status on reply %s: %d",
                          OpcodeName(message.opcode), message.status));
    }
    return absl::OkStatus();
  }
  if ((message.flags & ~LOCKD_REQUEST_FLAGS) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown flags: 0x%02x", message.flags));
  }
  if (message.status != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("nonzero status on request %s: %d (must be 0)",
                        OpcodeName(message.opcode), message.status));
  }
  return absl::OkStatus();
}

}  // namespace

bool operator==(const Message& a, const Message& b) {
  return a.opcode == b.opcode && a.mode == b.mode && a.policy == b.policy &&
         a.status == b.status && a.flags == b.flags &&
         a.client_id == b.client_id && a.seq == b.seq &&
         a.lease_ms == b.lease_ms && a.wait_ms == b.wait_ms &&
         a.queue_pos == b.queue_pos && a.lock_id == b.lock_id &&
         a.txn_id == b.txn_id && a.fence == b.fence && a.ticket == b.ticket &&
         a.mac == b.mac;
}

std::string Message::ToString() const {
  const std::string status_text =
      status < LOCKD_STATUS_COUNT
          ? NameOrNumber(StatusName(static_cast<lockd_status>(status)), status)
          : NameOrNumber(kUnknownName, status);
  return absl::StrFormat(
      "%s{client=%u seq=%u lock_id=0x%016x txn_id=%u mode=%s policy=%s "
      "status=%s flags=0x%02x lease_ms=%u wait_ms=%u queue_pos=%u fence=%u "
      "ticket=0x%x mac=0x%016x}",
      NameOrNumber(OpcodeName(opcode), opcode), client_id, seq, lock_id, txn_id,
      NameOrNumber(ModeName(mode), mode),
      NameOrNumber(PolicyName(policy), policy), status_text, flags, lease_ms,
      wait_ms, queue_pos, fence, ticket, mac);
}

std::ostream& operator<<(std::ostream& os, const Message& message) {
  return os << message.ToString();
}

EncodedMessage Encode(const Message& message) {
  struct lockd_msg wire = {};
  wire.magic = htobe16(LOCKD_MAGIC);
  wire.version = LOCKD_VERSION;
  wire.opcode = message.opcode;
  wire.mode = message.mode;
  wire.policy = message.policy;
  wire.status = message.status;
  wire.flags = message.flags;
  wire.client_id = htobe32(message.client_id);
  wire.seq = htobe64(message.seq);
  wire.lease_ms = htobe32(message.lease_ms);
  wire.wait_ms = htobe32(message.wait_ms);
  wire.queue_pos = htobe32(message.queue_pos);
  wire.lock_id = htobe64(message.lock_id);
  wire.txn_id = htobe64(message.txn_id);
  wire.fence = htobe64(message.fence);
  wire.ticket = htobe64(message.ticket);
  wire.mac = message.mac;

  EncodedMessage bytes;
  std::memcpy(bytes.data(), &wire, sizeof(wire));
  return bytes;
}

absl::StatusOr<Message> DecodeMessage(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kMessageSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated: %d bytes, need %d", bytes.size(), kMessageSize));
  }
  if (bytes.size() > kMessageSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "oversized: %d bytes, need %d", bytes.size(), kMessageSize));
  }
  struct lockd_msg wire;
  std::memcpy(&wire, bytes.data(), sizeof(wire));

  const uint16_t magic = be16toh(wire.magic);
  if (magic != LOCKD_MAGIC) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad magic: 0x%04x, need 0x%04x", magic, LOCKD_MAGIC));
  }
  if (wire.version != LOCKD_VERSION) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "bad version: %d, need %d", wire.version, LOCKD_VERSION));
  }
  if (!IsKnownOpcode(wire.opcode)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown opcode: 0x%02x", wire.opcode));
  }
  if (wire.mode > LOCKD_MODE_EXCLUSIVE) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown mode: %d (max %d)", wire.mode, LOCKD_MODE_EXCLUSIVE));
  }
  if (wire.policy >= LOCKD_POLICY_COUNT) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown policy: %d (max %d)", wire.policy, LOCKD_POLICY_COUNT - 1));
  }

  Message message;
  message.opcode = static_cast<lockd_opcode>(wire.opcode);
  message.mode = static_cast<lockd_mode>(wire.mode);
  message.policy = static_cast<lockd_policy>(wire.policy);
  message.status = wire.status;
  message.flags = wire.flags;
  message.client_id = be32toh(wire.client_id);
  message.seq = be64toh(wire.seq);
  message.lease_ms = be32toh(wire.lease_ms);
  message.wait_ms = be32toh(wire.wait_ms);
  message.queue_pos = be32toh(wire.queue_pos);
  message.lock_id = be64toh(wire.lock_id);
  message.txn_id = be64toh(wire.txn_id);
  message.fence = be64toh(wire.fence);
  message.ticket = be64toh(wire.ticket);
  message.mac = wire.mac;

  if (absl::Status status = ValidateFlagsAndStatus(message); !status.ok()) {
    return status;
  }
  return message;
}

bool IsRequest(lockd_opcode opcode) { return (opcode & 0x80) == 0; }

absl::string_view OpcodeName(lockd_opcode opcode) {
  switch (opcode) {
    case LOCKD_OP_ACQUIRE:
      return "ACQUIRE";
    case LOCKD_OP_RELEASE:
      return "RELEASE";
    case LOCKD_OP_RENEW:
      return "RENEW";
    case LOCKD_OP_KICK:
      return "KICK";
    case LOCKD_OP_GRANTED:
      return "GRANTED";
    case LOCKD_OP_QUEUED:
      return "QUEUED";
    case LOCKD_OP_REJECTED:
      return "REJECTED";
    case LOCKD_OP_RELEASED:
      return "RELEASED";
    case LOCKD_OP_RENEWED:
      return "RENEWED";
  }
  return kUnknownName;
}

absl::string_view ModeName(lockd_mode mode) {
  switch (mode) {
    case LOCKD_MODE_NONE:
      return "NONE";
    case LOCKD_MODE_SHARED:
      return "SHARED";
    case LOCKD_MODE_EXCLUSIVE:
      return "EXCLUSIVE";
  }
  return kUnknownName;
}

absl::string_view PolicyName(lockd_policy policy) {
  switch (policy) {
    case LOCKD_POLICY_WAIT:
      return "WAIT";
    case LOCKD_POLICY_NO_WAIT:
      return "NO_WAIT";
    case LOCKD_POLICY_WAIT_DIE:
      return "WAIT_DIE";
    case LOCKD_POLICY_COUNT:
      break;
  }
  return kUnknownName;
}

absl::string_view StatusName(lockd_status status) {
  switch (status) {
    case LOCKD_STATUS_OK:
      return "OK";
    case LOCKD_STATUS_CONFLICT:
      return "CONFLICT";
    case LOCKD_STATUS_DIE:
      return "DIE";
    case LOCKD_STATUS_NOT_HOLDER:
      return "NOT_HOLDER";
    case LOCKD_STATUS_LEASE_EXPIRED:
      return "LEASE_EXPIRED";
    case LOCKD_STATUS_NO_CAPACITY:
      return "NO_CAPACITY";
    case LOCKD_STATUS_WAIT_EXPIRED:
      return "WAIT_EXPIRED";
    case LOCKD_STATUS_FORCE_RELEASED:
      return "FORCE_RELEASED";
    case LOCKD_STATUS_UPGRADE_CONFLICT:
      return "UPGRADE_CONFLICT";
    case LOCKD_STATUS_BAD_REQUEST:
      return "BAD_REQUEST";
    case LOCKD_STATUS_QUOTA:
      return "QUOTA";
    case LOCKD_STATUS_GRACE:
      return "GRACE";
    case LOCKD_STATUS_COUNT:
      break;
  }
  return kUnknownName;
}

absl::StatusCode CodeForRejection(lockd_status status) {
  switch (status) {
    case LOCKD_STATUS_CONFLICT:
    case LOCKD_STATUS_DIE:
    case LOCKD_STATUS_UPGRADE_CONFLICT:
      return absl::StatusCode::kAborted;
    case LOCKD_STATUS_NO_CAPACITY:
    case LOCKD_STATUS_QUOTA:
      return absl::StatusCode::kResourceExhausted;
    case LOCKD_STATUS_NOT_HOLDER:
    case LOCKD_STATUS_FORCE_RELEASED:
      return absl::StatusCode::kFailedPrecondition;
    case LOCKD_STATUS_LEASE_EXPIRED:
    case LOCKD_STATUS_WAIT_EXPIRED:
      return absl::StatusCode::kDeadlineExceeded;
    case LOCKD_STATUS_BAD_REQUEST:
      return absl::StatusCode::kInvalidArgument;
    case LOCKD_STATUS_GRACE:
      return absl::StatusCode::kUnavailable;
    case LOCKD_STATUS_OK:
    case LOCKD_STATUS_COUNT:
      break;
  }
  return absl::StatusCode::kInternal;  // a rejection must give a reason
}

absl::string_view StatName(lockd_stat stat) {
  if (static_cast<unsigned>(stat) >= LOCKD_STAT_COUNT) return kUnknownName;
  return kStatNames[stat];
}

absl::Span<const absl::string_view> StatNames() { return kStatNames; }

lockd_request ToRequest(const Message& message, const lockd_endpoint& from) {
  lockd_request req{};
  req.lock_id = message.lock_id;
  req.txn_id = message.txn_id;
  req.ticket = message.ticket;
  req.fence = message.fence;
  req.seq = message.seq;
  req.lease_ms = message.lease_ms;
  req.wait_ms = message.wait_ms;
  req.hops = message.queue_pos;
  req.opcode = message.opcode;
  req.mode = message.mode;
  req.policy = message.policy;
  req.flags = message.flags;
  req.from = from;
  req.client_id = message.client_id;
  return req;
}

Message FromReply(const lockd_reply& reply, uint32_t epoch) {
  Message m;
  m.opcode = static_cast<lockd_opcode>(reply.opcode);
  m.status = reply.status;
  m.mode = static_cast<lockd_mode>(reply.mode);
  m.policy = static_cast<lockd_policy>(reply.policy);
  m.seq = reply.seq;
  m.lease_ms = reply.lease_ms;
  m.wait_ms = epoch;
  m.queue_pos = reply.queue_pos;
  m.lock_id = reply.lock_id;
  m.txn_id = reply.txn_id;
  m.fence = reply.fence;
  m.ticket = reply.ticket;
  m.client_id = reply.client_id;
  m.mac = reply.mac;
  return m;
}

uint64_t LockIdForName(absl::string_view name) {
  constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
  constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
  uint64_t hash = kFnvOffsetBasis;
  for (const char c : name) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  // splitmix64 finalizer (Steele, Lea, Flood 2014).
  hash = (hash ^ (hash >> 30)) * 0xbf58476d1ce4e5b9ULL;
  hash = (hash ^ (hash >> 27)) * 0x94d049bb133111ebULL;
  return hash ^ (hash >> 31);
}

}  // namespace lockd
