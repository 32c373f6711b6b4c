#include "abi/keys.h"

#include <sys/random.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "abi/siphash.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lockd {
namespace {

constexpr size_t kKeyBytes = 16;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<ClientKey> ParseClientKey(absl::string_view hex) {
  if (hex.size() != 2 * kKeyBytes)
    return absl::InvalidArgumentError(absl::StrCat(
        "a key is ", 2 * kKeyBytes, " hex digits, not ", hex.size()));
  uint8_t bytes[kKeyBytes];
  for (size_t i = 0; i < kKeyBytes; ++i) {
    const int hi = HexDigit(hex[2 * i]);
    const int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return absl::InvalidArgumentError("a key is hex digits only");
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  ClientKey key{lockd_load_le64(bytes), lockd_load_le64(bytes + 8)};
  if (key.k0 == 0 && key.k1 == 0)
    return absl::InvalidArgumentError("an all-zero key is not a key");
  return key;
}

absl::StatusOr<std::map<uint32_t, ClientKey>> ReadKeyFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat("cannot read key file ", path, ": ", strerror(errno)));
  std::map<uint32_t, ClientKey> keys;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(path, ":", number, ": ");
    uint32_t id = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &id))
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected \"<client id> <32 hex digits>\""));
    if (id == LOCKD_CLIENT_NONE)
      return absl::InvalidArgumentError(
          absl::StrCat(where, "client id 0 is reserved (unauthenticated)"));
    absl::StatusOr<ClientKey> key = ParseClientKey(fields[1]);
    if (!key.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(where, key.status().message()));
    if (!keys.emplace(id, *key).second)
      return absl::InvalidArgumentError(
          absl::StrCat(where, "client ", id, " listed twice"));
  }
  return keys;
}

absl::StatusOr<ClientKey> ReadClientKey(const std::string& path,
                                        uint32_t client_id) {
  absl::StatusOr<std::map<uint32_t, ClientKey>> keys = ReadKeyFile(path);
  if (!keys.ok()) return keys.status();
  auto it = keys->find(client_id);
  if (it == keys->end())
    return absl::NotFoundError(
        absl::StrCat("key file ", path, " has no key for client ", client_id));
  return it->second;
}

std::string KeyFileText(const std::map<uint32_t, ClientKey>& keys) {
  std::string text =
      "# lockd client keys: <client id> <32 hex digits>. Keep this file "
      "private (mode 0600).\n";
  for (const auto& [id, key] : keys) {
    absl::StrAppend(&text, id, " ");
    for (uint64_t word : {key.k0, key.k1})
      for (int byte = 0; byte < 8; ++byte)
        absl::StrAppend(
            &text, absl::Hex((word >> (8 * byte)) & 0xff, absl::kZeroPad2));
    absl::StrAppend(&text, "\n");
  }
  return text;
}

EncodedMessage ClientIdentity::Sign(Message& message, uint64_t seq) const {
  message.client_id = client_id;
  message.seq = seq;
  return client_id == LOCKD_CLIENT_NONE ? Encode(message)
                                        : EncodeSigned(message, key);
}

bool ClientIdentity::Accepts(absl::Span<const uint8_t> bytes,
                             const Message& reply) const {
  if (reply.client_id != client_id) return false;
  return client_id == LOCKD_CLIENT_NONE || MacValid(bytes, key);
}

uint64_t SeqSource::Next() {
  uint64_t next = next_.load(std::memory_order_relaxed);
  if (next == 0) {  // the first: from the clock, unless another was first
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const uint64_t clock =
        static_cast<uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
    next_.compare_exchange_strong(next, clock, std::memory_order_relaxed);
  }
  return next_.fetch_add(1, std::memory_order_relaxed);
}

absl::StatusOr<std::string> NewKeyHex() {
  uint8_t bytes[kKeyBytes];
  if (getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(kKeyBytes))
    return absl::ErrnoToStatus(errno, "getrandom");
  std::string hex;
  for (uint8_t b : bytes) absl::StrAppend(&hex, absl::Hex(b, absl::kZeroPad2));
  return hex;
}

uint64_t MessageMac(const EncodedMessage& bytes, const ClientKey& key) {
  return lockd_siphash24(key.k0, key.k1, bytes.data(), LOCKD_MAC_BYTES / 8);
}

EncodedMessage EncodeSigned(const Message& message, const ClientKey& key) {
  EncodedMessage bytes = Encode(message);
  const uint64_t mac = MessageMac(bytes, key);
  std::memcpy(bytes.data() + offsetof(struct lockd_msg, mac), &mac,
              sizeof(mac));
  return bytes;
}

bool MacValid(absl::Span<const uint8_t> bytes, const ClientKey& key) {
  if (bytes.size() != kMessageSize) return false;
  EncodedMessage copy;
  std::memcpy(copy.data(), bytes.data(), kMessageSize);
  uint64_t mac;
  std::memcpy(&mac, bytes.data() + offsetof(struct lockd_msg, mac),
              sizeof(mac));
  return MessageMac(copy, key) == mac;
}

}  // namespace lockd
