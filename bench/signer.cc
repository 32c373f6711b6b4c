#include "bench/signer.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace lockd::bench {

Signer::Signer(uint32_t client_id, const ClientKey& key)
    : identity_{client_id, key},
      next_seq_(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()))) {}

EncodedMessage Signer::Sign(Message& message) {
  return identity_.Sign(message, next_seq_++);
}

bool Signer::Verify(absl::Span<const uint8_t> bytes,
                    const Message& reply) const {
  return identity_.Accepts(bytes, reply);
}

absl::StatusOr<std::vector<Signer>> MakeSigners(const std::string& key_file,
                                                uint32_t first, int count) {
  if (key_file.empty()) return std::vector<Signer>(count);
  absl::StatusOr<std::map<uint32_t, ClientKey>> keys = ReadKeyFile(key_file);
  if (!keys.ok()) return keys.status();
  std::vector<Signer> signers;
  for (int i = 0; i < count; ++i) {
    const uint32_t id = first + static_cast<uint32_t>(i);
    auto it = keys->find(id);
    if (it == keys->end())
      return absl::NotFoundError(absl::StrCat(
          "key file ", key_file, " has no key for client ", id, " (", count,
          " clients from ", first, " needed: one per sender)"));
    signers.emplace_back(id, it->second);
  }
  return signers;
}

}  // namespace lockd::bench
