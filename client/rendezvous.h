// Rendezvous (highest-random-weight) hashing: which of several servers
// serves a lock. Each (lock, server) pair gets a pseudo-random score; the
// server with the highest score wins. A lock only moves when its winner
// leaves or a newcomer outscores it, so adding a server to n moves about
// 1/(n+1) of the locks, all to the newcomer, and removing one moves only the
// locks it served. No state is kept: every client computes the same answer
// from the same server names.
#ifndef LOCKD_CLIENT_RENDEZVOUS_H_
#define LOCKD_CLIENT_RENDEZVOUS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace lockd::client {

class Rendezvous {
 public:
  // `server_names` are the servers' stable identities; at least one.
  explicit Rendezvous(absl::Span<const std::string> server_names);

  // Index into `server_names` of the server that serves `lock_id`.
  size_t ServerFor(uint64_t lock_id) const;

 private:
  std::vector<uint64_t> server_seeds_;  // one hash per server name
};

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_RENDEZVOUS_H_
