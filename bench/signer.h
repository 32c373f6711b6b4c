// Signer: how a benchmark tool speaks as one lockd client (docs/security.md):
// every transmission, a retransmission too, carries the client's id and a
// fresh sequence number (increasing, so that the server's replay window takes
// it) and is signed with the client's key (abi/keys.h), as the client library
// does; replies are checked against the same key. A default Signer is the
// unauthenticated sender (client 0, no MAC), served only from lockd's
// --open_subnets (labs).
//
// One Signer is one sequence counter: each concurrent sender that numbers its
// own requests needs its own Signer, hence its own client id.
#ifndef LOCKD_BENCH_SIGNER_H_
#define LOCKD_BENCH_SIGNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace lockd::bench {

class Signer {
 public:
  Signer() : Signer(LOCKD_CLIENT_NONE, ClientKey{}) {}
  Signer(uint32_t client_id, const ClientKey& key);

  uint32_t client_id() const { return identity_.client_id; }

  // `message` as the next transmission: its client id and seq set (also in
  // `message`), signed unless unauthenticated.
  EncodedMessage Sign(Message& message);
  // Whether the datagram `bytes`, decoded as `reply`, is for this client and
  // signed with its key (unauthenticated: any reply for client 0).
  bool Verify(absl::Span<const uint8_t> bytes, const Message& reply) const;

 private:
  ClientIdentity identity_;
  // From the wall clock in ns, as the client library's: a tool run again
  // as the same client starts above the seqs its last run used.
  uint64_t next_seq_;
};

// `count` signers for the clients first, first + 1, ..., each with its key
// from `key_file`; `key_file` empty: `count` unauthenticated signers.
absl::StatusOr<std::vector<Signer>> MakeSigners(const std::string& key_file,
                                                uint32_t first, int count);

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_SIGNER_H_
