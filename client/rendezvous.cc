#include "client/rendezvous.h"

#include "abi/codec.h"

namespace lockd::client {
namespace {

// splitmix64's finalizer: every input bit affects every output bit, so the
// scores of one lock on different servers are independent.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

Rendezvous::Rendezvous(absl::Span<const std::string> server_names) {
  server_seeds_.reserve(server_names.size());
  // LockIdForName is a stable string hash that every client already shares.
  for (const std::string& name : server_names)
    server_seeds_.push_back(LockIdForName(name));
}

size_t Rendezvous::ServerFor(uint64_t lock_id) const {
  size_t best = 0;
  uint64_t best_score = 0;
  for (size_t i = 0; i < server_seeds_.size(); ++i) {
    const uint64_t score = Mix(lock_id ^ server_seeds_[i]);
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

}  // namespace lockd::client
