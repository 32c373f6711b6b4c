#include "abi/codec.h"

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd {
namespace {

using ::testing::HasSubstr;

constexpr lockd_opcode kAllOpcodes[] = {
    LOCKD_OP_ACQUIRE,  LOCKD_OP_RELEASE,  LOCKD_OP_RENEW,
    LOCKD_OP_KICK,     LOCKD_OP_GRANTED,  LOCKD_OP_QUEUED,
    LOCKD_OP_REJECTED, LOCKD_OP_RELEASED, LOCKD_OP_RENEWED,
};

// A valid request whose fields all differ, so a swapped field shows.
Message SampleAcquire() {
  Message message;
  message.opcode = LOCKD_OP_ACQUIRE;
  message.mode = LOCKD_MODE_EXCLUSIVE;
  message.policy = LOCKD_POLICY_WAIT_DIE;
  message.seq = 7;
  message.lease_ms = 5000;
  message.wait_ms = 250;
  message.lock_id = 0x0123456789abcdefULL;
  message.txn_id = 42;
  return message;
}

std::vector<uint8_t> EncodedBytes(const Message& message) {
  const EncodedMessage encoded = Encode(message);
  return std::vector<uint8_t>(encoded.begin(), encoded.end());
}

// The decoder's verdict on `bytes`: its error message, or "" when valid.
std::string DecodeError(const std::vector<uint8_t>& bytes) {
  const absl::StatusOr<Message> decoded = DecodeMessage(bytes);
  if (decoded.ok()) return "";
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
      << decoded.status();
  return std::string(decoded.status().message());
}

// SampleAcquire() encoded, with one byte overwritten.
std::vector<uint8_t> SampleWithByte(size_t offset, uint8_t value) {
  std::vector<uint8_t> bytes = EncodedBytes(SampleAcquire());
  bytes[offset] = value;
  return bytes;
}

class RoundTripTest : public ::testing::TestWithParam<lockd_opcode> {};

TEST_P(RoundTripTest, DecodeOfEncodeIsIdentity) {
  Message message;
  message.opcode = GetParam();
  message.mode = LOCKD_MODE_SHARED;
  message.policy = LOCKD_POLICY_NO_WAIT;
  // Replies carry a reason; requests must not.
  message.status = IsRequest(GetParam()) ? 0 : LOCKD_STATUS_UPGRADE_CONFLICT;
  message.seq = 0xfedcba98;
  message.lease_ms = 30000;
  message.wait_ms = 1;
  message.queue_pos = 17;
  message.lock_id = std::numeric_limits<uint64_t>::max();
  message.txn_id = 0x8000000000000001ULL;
  message.fence = 99;

  const EncodedMessage encoded = Encode(message);
  const absl::StatusOr<Message> decoded = DecodeMessage(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status() << " for " << message;
  EXPECT_EQ(*decoded, message);
}

INSTANTIATE_TEST_SUITE_P(
    AllOpcodes, RoundTripTest, ::testing::ValuesIn(kAllOpcodes),
    [](const ::testing::TestParamInfo<lockd_opcode>& info) {
      return std::string(OpcodeName(info.param));
    });

TEST(CodecTest, RoundTripsRetransmissionWithTicket) {
  Message message = SampleAcquire();
  message.flags = LOCKD_FLAG_RETRANSMIT;
  message.ticket = (uint64_t{3} << LOCKD_POOL_SEG_SHIFT) | 17;
  const absl::StatusOr<Message> decoded = DecodeMessage(Encode(message));
  ASSERT_TRUE(decoded.ok()) << decoded.status() << " for " << message;
  EXPECT_EQ(*decoded, message);
}

TEST(CodecTest, EncodesRequestInNetworkOrderAtAbiOffsets) {
  Message message;
  message.opcode = LOCKD_OP_ACQUIRE;
  message.mode = LOCKD_MODE_SHARED;
  message.policy = LOCKD_POLICY_WAIT_DIE;
  message.client_id = 0x01020304;
  message.seq = 0x5152535455565758ULL;
  message.lease_ms = 0x05060708;
  message.wait_ms = 0x090a0b0c;
  message.queue_pos = 0x0d0e0f10;
  message.lock_id = 0x1112131415161718ULL;
  message.txn_id = 0x2122232425262728ULL;
  message.fence = 0x3132333435363738ULL;
  message.ticket = 0x4142434445464748ULL;
  message.mac = 0x6867666564636261ULL;  // bytes as stored, not swapped

  const std::vector<uint8_t> expected = {
      0x4c, 0x4b,                                      // magic "LK"
      0x03,                                            // version
      0x01,                                            // opcode ACQUIRE
      0x01,                                            // mode SHARED
      0x02,                                            // policy WAIT_DIE
      0x00,                                            // status
      0x00,                                            // flags
      0x01, 0x02, 0x03, 0x04,                          // client_id
      0x05, 0x06, 0x07, 0x08,                          // lease_ms
      0x09, 0x0a, 0x0b, 0x0c,                          // wait_ms
      0x0d, 0x0e, 0x0f, 0x10,                          // queue_pos
      0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,  // seq
      0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // lock_id
      0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,  // txn_id
      0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,  // fence
      0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,  // ticket
      0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,  // mac
  };
  EXPECT_EQ(EncodedBytes(message), expected);
}

TEST(CodecTest, EncodesReplyStatusAndRetransmitFlagBytes) {
  Message rejected;
  rejected.opcode = LOCKD_OP_REJECTED;
  rejected.status = LOCKD_STATUS_DIE;
  const std::vector<uint8_t> rejected_bytes = EncodedBytes(rejected);
  EXPECT_EQ(rejected_bytes[3], 0x83);
  EXPECT_EQ(rejected_bytes[6], 0x02);
  EXPECT_EQ(rejected_bytes[7], 0x00);

  Message again = SampleAcquire();
  again.flags = LOCKD_FLAG_RETRANSMIT;
  const std::vector<uint8_t> again_bytes = EncodedBytes(again);
  EXPECT_EQ(again_bytes[6], 0x00);
  EXPECT_EQ(again_bytes[7], 0x01);
}

TEST(CodecTest, RejectsTruncatedInput) {
  for (const size_t length : {0, 1, 71}) {
    std::vector<uint8_t> bytes = EncodedBytes(SampleAcquire());
    bytes.resize(length);
    EXPECT_EQ(DecodeError(bytes),
              "truncated: " + std::to_string(length) + " bytes, need 72");
  }
}

TEST(CodecTest, RejectsOversizedInputEvenWithValidPrefix) {
  for (const size_t length : {73, 1500}) {
    std::vector<uint8_t> bytes = EncodedBytes(SampleAcquire());
    bytes.resize(length, 0);
    EXPECT_EQ(DecodeError(bytes),
              "oversized: " + std::to_string(length) + " bytes, need 72");
  }
}

TEST(CodecTest, RejectsWrongMagic) {
  std::vector<uint8_t> bytes = EncodedBytes(SampleAcquire());
  bytes[0] = 0x12;
  bytes[1] = 0x34;
  EXPECT_EQ(DecodeError(bytes), "bad magic: 0x1234, need 0x4c4b");
  // Magic in host order on a little-endian machine is still wrong.
  bytes[0] = 0x4b;
  bytes[1] = 0x4c;
  EXPECT_EQ(DecodeError(bytes), "bad magic: 0x4b4c, need 0x4c4b");
}

TEST(CodecTest, RejectsWrongVersion) {
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, version), 0)),
            "bad version: 0, need 3");
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, version), 2)),
            "bad version: 2, need 3");
}

TEST(CodecTest, RejectsUnknownOpcodes) {
  for (const int opcode : {0x00, 0x05, 0x7f, 0x80, 0x86, 0xff}) {
    EXPECT_THAT(DecodeError(SampleWithByte(offsetof(lockd_msg, opcode),
                                           static_cast<uint8_t>(opcode))),
                HasSubstr("unknown opcode: 0x"))
        << "opcode " << opcode;
  }
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, opcode), 0x05)),
            "unknown opcode: 0x05");
}

TEST(CodecTest, RejectsUnknownMode) {
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, mode), 3)),
            "unknown mode: 3 (max 2)");
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, mode), 255)),
            "unknown mode: 255 (max 2)");
}

TEST(CodecTest, RejectsUnknownPolicy) {
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, policy), 3)),
            "unknown policy: 3 (max 2)");
}

TEST(CodecTest, RejectsUnknownFlags) {
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, flags), 0x04)),
            "unknown flags: 0x04");
}

TEST(CodecTest, RejectsStatusOnPlainRequest) {
  EXPECT_EQ(DecodeError(SampleWithByte(offsetof(lockd_msg, status), 1)),
            "nonzero status on request ACQUIRE: 1 (must be 0)");
}

TEST(CodecTest, RejectsRetransmitFlagOnReply) {
  Message message;
  message.opcode = LOCKD_OP_GRANTED;
  message.flags = LOCKD_FLAG_RETRANSMIT;
  EXPECT_EQ(DecodeError(EncodedBytes(message)),
            "flags on reply GRANTED: 0x01 (must be 0)");
}

TEST(CodecTest, RejectsUnknownReplyStatus) {
  Message message;
  message.opcode = LOCKD_OP_REJECTED;
  message.status = LOCKD_STATUS_COUNT;
  EXPECT_EQ(DecodeError(EncodedBytes(message)),
            "unknown status on reply REJECTED: 12");
}

// Decodes arbitrary bytes, which must never crash the decoder. Whatever it
// accepts must be canonical (re-encoding reproduces the input byte for byte);
// whatever it refuses must be an InvalidArgument with a reason. Returns
// whether the bytes were accepted.
bool DecodeExpectingErrorOrCanonical(const std::vector<uint8_t>& bytes) {
  const absl::StatusOr<Message> decoded = DecodeMessage(bytes);
  if (!decoded.ok()) {
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(decoded.status().message().empty());
    return false;
  }
  EXPECT_EQ(EncodedBytes(*decoded), bytes) << *decoded;
  return true;
}

TEST(CodecTest, RandomGarbageIsRejectedWithoutCrashing) {
  std::mt19937_64 random(20231);
  std::uniform_int_distribution<int> length_distribution(0, 3 * kMessageSize);
  std::uniform_int_distribution<int> byte_distribution(0, 255);
  int accepted_count = 0;
  for (int iteration = 0; iteration < 100000; ++iteration) {
    std::vector<uint8_t> bytes(length_distribution(random));
    for (uint8_t& byte : bytes) byte = byte_distribution(random);
    // Half the inputs get a valid header, so the later checks are reached.
    if (iteration % 2 == 0 && bytes.size() >= 3) {
      bytes[0] = LOCKD_MAGIC >> 8;
      bytes[1] = LOCKD_MAGIC & 0xff;
      bytes[2] = LOCKD_VERSION;
    }
    accepted_count += DecodeExpectingErrorOrCanonical(bytes);
  }
  // Random bytes pass every check with probability far below 1 in 10^5.
  EXPECT_EQ(accepted_count, 0);
}

TEST(CodecTest, RandomlyMutatedMessagesAreAcceptedOnlyWhenCanonical) {
  std::mt19937_64 random(48);
  std::uniform_int_distribution<size_t> offset_distribution(0,
                                                            kMessageSize - 1);
  std::uniform_int_distribution<int> byte_distribution(0, 255);
  int accepted_count = 0;
  int rejected_count = 0;
  for (int iteration = 0; iteration < 100000; ++iteration) {
    std::vector<uint8_t> bytes = EncodedBytes(SampleAcquire());
    for (int mutation = 0; mutation < 3; ++mutation) {
      bytes[offset_distribution(random)] = byte_distribution(random);
    }
    if (DecodeExpectingErrorOrCanonical(bytes)) {
      ++accepted_count;
    } else {
      ++rejected_count;
    }
  }
  // Mutating the integer fields keeps a message valid, mutating the header
  // usually does not: both paths must have been exercised.
  EXPECT_GT(accepted_count, 0);
  EXPECT_GT(rejected_count, 0);
}

TEST(CodecTest, IsRequestSplitsOpcodesByHighBit) {
  EXPECT_TRUE(IsRequest(LOCKD_OP_ACQUIRE));
  EXPECT_TRUE(IsRequest(LOCKD_OP_RELEASE));
  EXPECT_TRUE(IsRequest(LOCKD_OP_RENEW));
  EXPECT_TRUE(IsRequest(LOCKD_OP_KICK));
  EXPECT_FALSE(IsRequest(LOCKD_OP_GRANTED));
  EXPECT_FALSE(IsRequest(LOCKD_OP_QUEUED));
  EXPECT_FALSE(IsRequest(LOCKD_OP_REJECTED));
  EXPECT_FALSE(IsRequest(LOCKD_OP_RELEASED));
  EXPECT_FALSE(IsRequest(LOCKD_OP_RENEWED));
}

TEST(CodecTest, NamesEveryEnumValue) {
  std::set<absl::string_view> opcode_names;
  for (const lockd_opcode opcode : kAllOpcodes) {
    EXPECT_NE(OpcodeName(opcode), "UNKNOWN") << static_cast<int>(opcode);
    opcode_names.insert(OpcodeName(opcode));
  }
  EXPECT_EQ(opcode_names.size(), std::size(kAllOpcodes));
  EXPECT_EQ(OpcodeName(LOCKD_OP_RENEWED), "RENEWED");
  EXPECT_EQ(OpcodeName(static_cast<lockd_opcode>(0x42)), "UNKNOWN");

  EXPECT_EQ(ModeName(LOCKD_MODE_NONE), "NONE");
  EXPECT_EQ(ModeName(LOCKD_MODE_SHARED), "SHARED");
  EXPECT_EQ(ModeName(LOCKD_MODE_EXCLUSIVE), "EXCLUSIVE");

  EXPECT_EQ(PolicyName(LOCKD_POLICY_WAIT), "WAIT");
  EXPECT_EQ(PolicyName(LOCKD_POLICY_NO_WAIT), "NO_WAIT");
  EXPECT_EQ(PolicyName(LOCKD_POLICY_WAIT_DIE), "WAIT_DIE");
  EXPECT_EQ(PolicyName(LOCKD_POLICY_COUNT), "UNKNOWN");

  std::set<absl::string_view> status_names;
  for (int status = 0; status < LOCKD_STATUS_COUNT; ++status) {
    status_names.insert(StatusName(static_cast<lockd_status>(status)));
  }
  EXPECT_EQ(status_names.size(), LOCKD_STATUS_COUNT);
  EXPECT_EQ(status_names.count("UNKNOWN"), 0);
  EXPECT_EQ(StatusName(LOCKD_STATUS_LEASE_EXPIRED), "LEASE_EXPIRED");
  EXPECT_EQ(StatusName(LOCKD_STATUS_COUNT), "UNKNOWN");
}

TEST(CodecTest, StatNamesFollowTheAbiList) {
  ASSERT_EQ(StatNames().size(), LOCKD_STAT_COUNT);
  const std::set<absl::string_view> unique(StatNames().begin(),
                                           StatNames().end());
  EXPECT_EQ(unique.size(), LOCKD_STAT_COUNT);
  EXPECT_EQ(unique.count(""), 0);
  EXPECT_EQ(StatName(LOCKD_STAT_RX), "rx");
  EXPECT_EQ(StatName(LOCKD_STAT_GRANT_IMMEDIATE), "grant_immediate");
  EXPECT_EQ(StatName(LOCKD_STAT_POOL_ALLOC_FAILED), "pool_alloc_failed");
  EXPECT_EQ(StatName(LOCKD_STAT_COUNT), "UNKNOWN");
  for (int stat = 0; stat < LOCKD_STAT_COUNT; ++stat) {
    EXPECT_EQ(StatName(static_cast<lockd_stat>(stat)), StatNames()[stat]);
  }
}

TEST(CodecTest, ToStringNamesEveryField) {
  const std::string text = SampleAcquire().ToString();
  EXPECT_EQ(text,
            "ACQUIRE{client=0 seq=7 lock_id=0x0123456789abcdef txn_id=42 "
            "mode=EXCLUSIVE policy=WAIT_DIE status=OK flags=0x00 "
            "lease_ms=5000 wait_ms=250 queue_pos=0 fence=0 ticket=0x0 "
            "mac=0x0000000000000000}");

  Message unknown;
  unknown.status = 200;
  EXPECT_THAT(unknown.ToString(), HasSubstr("UNKNOWN(0x00){"));
  EXPECT_THAT(unknown.ToString(), HasSubstr("status=UNKNOWN(0xc8)"));
}

// These values are part of the protocol: if this test fails, the hash
// changed and every deployed client would disagree on lock ids.
TEST(CodecTest, LockIdForNameIsStable) {
  EXPECT_EQ(LockIdForName(""), 0xf52a15e9a9b5e89bULL);
  EXPECT_EQ(LockIdForName("a"), 0x02c0bdbf481420f8ULL);
  EXPECT_EQ(LockIdForName("orders/42"), 0xc6d0eec4fd7c56aaULL);
  EXPECT_EQ(LockIdForName("lockd"), 0x95c38eade90076c2ULL);
}

TEST(CodecTest, LockIdForNameUsesEveryByte) {
  // Names that differ only in one byte, or only in length, get other ids.
  EXPECT_NE(LockIdForName("orders/42"), LockIdForName("orders/43"));
  EXPECT_NE(LockIdForName("orders/42"), LockIdForName("Orders/42"));
  EXPECT_NE(LockIdForName(absl::string_view("a\0", 2)), LockIdForName("a"));
}

}  // namespace
}  // namespace lockd
