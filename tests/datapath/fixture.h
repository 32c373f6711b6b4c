// Table-driven datapath tests in the style of Katran's tester: each fixture
// is map state before (built by real requests through the real programs,
// plus optional direct edits), one packet in, and what must come out: the
// verdict, the packet byte for byte, the packets sent as clones, the lock
// table afterwards and the exact change of every counter.
#ifndef LOCKD_TESTS_DATAPATH_FIXTURE_H_
#define LOCKD_TESTS_DATAPATH_FIXTURE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lockd/datapath.h"
#include "tests/datapath/packet.h"

namespace lockd::testing {

enum class Hook { kXdp, kTc };

// What one delivered packet produced.
struct Delivery {
  Hook hook = Hook::kXdp;  // the last program that decided
  uint32_t verdict = 0;
  Bytes out;                // the packet after that program
  std::vector<Bytes> sent;  // clones the TC program sent, in order
};

// Runs packets through a loaded datapath the way the kernel would: XDP
// first; a request XDP passes on untouched goes to TC next. Clones that TC
// sends are captured on the loopback device of a private network namespace.
class Deliverer {
 public:
  // With `capture`, RunTc reports the clones TC sent (one capture socket per
  // Deliverer sees every frame on lo: stress tests with several threads turn
  // it off).
  static absl::StatusOr<Deliverer> Create(Datapath* datapath,
                                          bool capture = true);
  Deliverer(Deliverer&& other) noexcept;
  ~Deliverer();

  // XDP, then TC when XDP passes the request on untouched.
  absl::StatusOr<Delivery> Deliver(const Bytes& packet);
  absl::StatusOr<Delivery> RunXdp(const Bytes& packet);
  absl::StatusOr<Delivery> RunTc(const Bytes& packet);

 private:
  Deliverer(Datapath* datapath, int capture_fd);
  std::vector<Bytes> DrainCaptured();

  Datapath* datapath_;
  int capture_fd_;
};

struct LockExpectation {
  uint64_t lock_id = 0;
  lockd_mode mode = LOCKD_MODE_NONE;
  std::vector<uint64_t> holders;  // txn ids in grant order
  std::vector<uint64_t> queue;    // txn ids, head first, cancelled included
  uint64_t fence = 0;
};

struct Fixture {
  std::string name;
  DatapathOptions options;
  std::vector<Bytes> setup;                        // delivered before `in`
  std::function<absl::Status(Datapath&)> prepare;  // direct map edits
  Hook hook = Hook::kXdp;                          // the program `in` goes to
  Bytes in;
  uint32_t verdict = 0;
  std::optional<Bytes> out;             // expected packet afterwards
  std::vector<Bytes> sent;              // expected clones
  std::vector<LockExpectation> locks;   // lock state afterwards
  std::optional<uint64_t> pool_blocks;  // pool elements afterwards
  std::optional<uint64_t> owners;       // owner records afterwards
  // Expected change of counters while `in` ran; every counter not listed
  // must not change.
  std::vector<std::pair<lockd_stat, uint64_t>> stats;
};

// gtest prints a fixture by its name.
inline void PrintTo(const Fixture& fixture, std::ostream* os) {
  *os << fixture.name;
}

// Runs one fixture on a freshly loaded datapath; the error lists every
// mismatch, with both packets printed readably.
absl::Status RunFixture(const Fixture& fixture);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DATAPATH_FIXTURE_H_
