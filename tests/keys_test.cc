#include "abi/keys.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "abi/siphash.h"
#include "gtest/gtest.h"

namespace lockd {
namespace {

// The reference implementation's vectors (key 00..0f, message 00..len-1)
// for the lengths that are whole words.
TEST(SipHashTest, MatchesReferenceVectors) {
  uint8_t key[16], msg[64];
  for (int i = 0; i < 16; ++i) key[i] = i;
  for (int i = 0; i < 64; ++i) msg[i] = i;
  const uint64_t k0 = lockd_load_le64(key), k1 = lockd_load_le64(key + 8);
  const struct {
    uint32_t words;
    uint8_t out[8];
  } vectors[] = {
      {0, {0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72}},
      {1, {0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93}},
      {2, {0xdb, 0x9b, 0xc2, 0x57, 0x7f, 0xcc, 0x2a, 0x3f}},
      {4, {0xce, 0x7c, 0xf2, 0x72, 0x2f, 0x51, 0x27, 0x71}},
      {7, {0xbd, 0x83, 0x8d, 0x3a, 0xaf, 0xbf, 0x8d, 0xb7}},
  };
  for (const auto& v : vectors) {
    const uint64_t mac = lockd_siphash24(k0, k1, msg, v.words);
    uint8_t bytes[8];
    std::memcpy(bytes, &mac, sizeof(bytes));
    EXPECT_EQ(0, std::memcmp(bytes, v.out, 8)) << v.words << " words";
  }
}

TEST(KeysTest, SignedMessageChecksAndAnyChangeBreaksIt) {
  const ClientKey key{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  Message m;
  m.opcode = LOCKD_OP_ACQUIRE;
  m.mode = LOCKD_MODE_EXCLUSIVE;
  m.client_id = 7;
  m.seq = 1234567890123ULL;
  m.lock_id = 42;
  m.txn_id = 99;
  const EncodedMessage bytes = EncodeSigned(m, key);
  EXPECT_TRUE(MacValid(bytes, key));
  EXPECT_FALSE(MacValid(bytes, ClientKey{key.k0, key.k1 ^ 1}));
  for (size_t i = 0; i < LOCKD_MAC_BYTES; ++i) {
    EncodedMessage changed = bytes;
    changed[i] ^= 0x01;
    EXPECT_FALSE(MacValid(changed, key)) << "byte " << i;
  }
  EncodedMessage bad_mac = bytes;
  bad_mac[kMessageSize - 1] ^= 0x80;
  EXPECT_FALSE(MacValid(bad_mac, key));
}

TEST(KeysTest, IdentitySignsAsItsClientAndAcceptsOnlyItsReplies) {
  const ClientIdentity seven{7, ClientKey{11, 12}};
  Message m;
  m.opcode = LOCKD_OP_ACQUIRE;
  m.mode = LOCKD_MODE_SHARED;
  const EncodedMessage bytes = seven.Sign(m, 99);
  EXPECT_EQ(m.client_id, 7u);
  EXPECT_EQ(m.seq, 99u);
  EXPECT_TRUE(MacValid(bytes, seven.key));
  Message reply = m;
  reply.opcode = LOCKD_OP_GRANTED;
  EXPECT_TRUE(seven.Accepts(EncodeSigned(reply, seven.key), reply));
  EXPECT_FALSE(seven.Accepts(EncodeSigned(reply, ClientKey{11, 13}), reply));
  Message other = reply;
  other.client_id = 8;
  EXPECT_FALSE(seven.Accepts(EncodeSigned(other, seven.key), other));

  const ClientIdentity none;
  Message unsigned_request = m;
  const EncodedMessage plain = none.Sign(unsigned_request, 5);
  EXPECT_EQ(unsigned_request.client_id, LOCKD_CLIENT_NONE);
  EXPECT_EQ(unsigned_request.mac, 0u);
  EXPECT_EQ(plain, Encode(unsigned_request));
  Message anonymous_reply = unsigned_request;
  anonymous_reply.opcode = LOCKD_OP_GRANTED;
  EXPECT_TRUE(none.Accepts(Encode(anonymous_reply), anonymous_reply));
  EXPECT_FALSE(none.Accepts(EncodeSigned(reply, seven.key), reply));
}

TEST(KeysTest, KeyFileParsesAndRejectsWithTheLine) {
  const std::string path = ::testing::TempDir() + "/keys";
  {
    std::ofstream out(path);
    out << "# clients\n\n7 000102030405060708090a0b0c0d0e0f\n"
        << "8 ffffffffffffffffffffffffffffffff\n";
  }
  absl::StatusOr<std::map<uint32_t, ClientKey>> keys = ReadKeyFile(path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->at(7).k0, 0x0706050403020100ULL);
  EXPECT_EQ(keys->at(7).k1, 0x0f0e0d0c0b0a0908ULL);
  EXPECT_TRUE(ReadClientKey(path, 8).ok());
  EXPECT_EQ(ReadClientKey(path, 9).status().code(),
            absl::StatusCode::kNotFound);
  const struct {
    const char* text;
    const char* error;
  } bad[] = {
      {"0 000102030405060708090a0b0c0d0e0f\n", ":1: client id 0 is reserved"},
      {"7 0001\n", ":1: a key is 32 hex digits"},
      {"7 zz0102030405060708090a0b0c0d0e0f\n", ":1: a key is hex digits"},
      {"# c\n7 000102030405060708090a0b0c0d0e0f\n"
       "7 000102030405060708090a0b0c0d0e0f\n",
       ":3: client 7 listed twice"},
      {"seven 000102030405060708090a0b0c0d0e0f\n", ":1: expected"},
  };
  for (const auto& b : bad) {
    {
      std::ofstream out(path);
      out << b.text;
    }
    absl::StatusOr<std::map<uint32_t, ClientKey>> r = ReadKeyFile(path);
    ASSERT_FALSE(r.ok()) << b.text;
    EXPECT_NE(r.status().message().find(b.error), std::string::npos)
        << r.status();
  }
  std::remove(path.c_str());
  EXPECT_EQ(ReadKeyFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(KeysTest, NewKeysParseAndDiffer) {
  absl::StatusOr<std::string> a = NewKeyHex(), b = NewKeyHex();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(ParseClientKey(*a).ok());
  EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace lockd
