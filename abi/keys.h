// Client keys (docs/security.md): the key file that provisions them, and
// signing and checking wire messages with them. The datapath checks and
// signs with the same SipHash-2-4 (abi/siphash.h) in BPF.
//
// Key file: one client per line, "<client id> <32 hex digits>", the key's
// 16 bytes in order (k0 = the first 8 as a little-endian word, k1 the
// rest); blank lines and lines starting with '#' are ignored. Client ids are
// 1..2^32-1 (0 is LOCKD_CLIENT_NONE, the unauthenticated sender).
#ifndef LOCKD_ABI_KEYS_H_
#define LOCKD_ABI_KEYS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "abi/codec.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace lockd {

struct ClientKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  friend bool operator==(const ClientKey& a, const ClientKey& b) {
    return a.k0 == b.k0 && a.k1 == b.k1;
  }
};

// A key from its 32 hex digits; InvalidArgument otherwise.
absl::StatusOr<ClientKey> ParseClientKey(absl::string_view hex);

// Every client of a key file, by id. InvalidArgument naming the line for a
// malformed line, an id of 0 or a repeated id; NotFound if it cannot be read.
absl::StatusOr<std::map<uint32_t, ClientKey>> ReadKeyFile(
    const std::string& path);

// One client's key from a key file (NotFound if the file does not list it).
absl::StatusOr<ClientKey> ReadClientKey(const std::string& path,
                                        uint32_t client_id);

// The key file's text for `keys` (one line per client, a header comment).
std::string KeyFileText(const std::map<uint32_t, ClientKey>& keys);

// The sequence numbers of one client's requests: consecutive, from the
// wall clock in ns at the first, so that a restarted client starts above
// what it used before (it sends fewer than one request a ns), and requests
// sent at once stay within the server's window of LOCKD_REPLAY_WINDOW
// (docs/security.md). Safe from any thread.
class SeqSource {
 public:
  uint64_t Next();

 private:
  std::atomic<uint64_t> next_{0};
};

// A fresh random key (from the kernel's random source), in key-file form.
absl::StatusOr<std::string> NewKeyHex();

// The MAC of an encoded message: SipHash-2-4 of its first LOCKD_MAC_BYTES.
uint64_t MessageMac(const EncodedMessage& bytes, const ClientKey& key);

// `message` encoded with its MAC under `key`.
EncodedMessage EncodeSigned(const Message& message, const ClientKey& key);

// Whether a datagram's MAC is right under `key` (false if not a whole
// message).
bool MacValid(absl::Span<const uint8_t> bytes, const ClientKey& key);

// A client as it speaks: its id and key. LOCKD_CLIENT_NONE is the
// unauthenticated sender: unsigned requests, served only from a server's
// lab subnets.
struct ClientIdentity {
  uint32_t client_id = LOCKD_CLIENT_NONE;
  ClientKey key;

  // `message` as this client's transmission with sequence number `seq`
  // (client id and seq set in `message` too), signed unless
  // unauthenticated.
  EncodedMessage Sign(Message& message, uint64_t seq) const;
  // Whether the datagram `bytes`, decoded as `reply`, is for this client
  // and signed with its key (unauthenticated: any reply for client 0).
  bool Accepts(absl::Span<const uint8_t> bytes, const Message& reply) const;
};

}  // namespace lockd

#endif  // LOCKD_ABI_KEYS_H_
