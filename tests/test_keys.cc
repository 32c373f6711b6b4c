#include "tests/test_keys.h"

#include <atomic>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lockd/files.h"

namespace lockd::testing {

ClientKey TestKey(uint32_t client_id) {
  return ClientKey{0x6c6f636b64000000ULL | client_id,
                   0x7465737400000000ULL ^ (uint64_t{client_id} * 2654435761u)};
}

ClientIdentity TestIdentity(uint32_t client_id) {
  return ClientIdentity{client_id, client_id == LOCKD_CLIENT_NONE
                                       ? ClientKey{}
                                       : TestKey(client_id)};
}

absl::StatusOr<std::string> WriteTestKeyFile(const std::string& dir) {
  std::map<uint32_t, ClientKey> keys;
  for (uint32_t id = 1; id <= kTestClients; ++id) keys[id] = TestKey(id);
  const std::string path = absl::StrCat(dir, "/clients.keys");
  if (absl::Status s = WriteFileAtomically(path, KeyFileText(keys)); !s.ok())
    return s;
  return path;
}

uint32_t NextTestClientId() {
  static std::atomic<uint32_t> next{0};
  return 2 + next.fetch_add(1) % (kTestClients - 1);
}

uint64_t NextTestSeq() {
  static SeqSource seqs;
  return seqs.Next();
}

}  // namespace lockd::testing
