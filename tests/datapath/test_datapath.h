// A datapath for tests: loaded fresh (nothing pinned) with its first table
// level and pool segment, the lock table over it, and a Deliverer that runs
// packets through the programs the way the kernel would.
#ifndef LOCKD_TESTS_DATAPATH_TEST_DATAPATH_H_
#define LOCKD_TESTS_DATAPATH_TEST_DATAPATH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lockd/clients.h"
#include "lockd/datapath.h"
#include "lockd/events.h"
#include "lockd/kernel_table.h"
#include "lockd/segments.h"
#include "tests/datapath/packet.h"

namespace lockd::testing {

// The test segment (ServerEndpoint, ClientEndpoint): unauthenticated
// requests from it are served unless a test closes it.
inline constexpr char kLabSubnet[] = "198.18.0.0/24";

struct TestDatapath {
  // Loads with `options` (fence_base 0 unless set: fences count from 1),
  // starts its segments with `segments`, and serves unauthenticated
  // requests from `open_subnet` ("" = none).
  static absl::StatusOr<TestDatapath> Create(
      DatapathOptions options = {}, SegmentOptions segments = {},
      const std::string& open_subnet = kLabSubnet);

  // Blocks in use in every pool segment.
  uint64_t PoolBlocks() const;
  // Does what the daemon does with the datapath's growth requests, and
  // keeps the notices for LOCAL members in `local_notices` (the other
  // events are dropped). Returns the events read.
  absl::StatusOr<int> ServeGrowth();

  std::unique_ptr<Datapath> datapath;
  std::unique_ptr<Segments> segments;
  std::unique_ptr<KernelTable> table;
  std::unique_ptr<DaemonCounters> counters;
  std::unique_ptr<Clients> clients;  // no key file: tests Set() keys
  std::unique_ptr<EventReader> events;
  uint64_t growth_requests = 0;
  std::vector<lockd_notice> local_notices;
  absl::Status growth_error;
};

enum class Hook { kXdp, kTc };

// What one delivered packet produced.
struct Delivery {
  Hook hook = Hook::kXdp;  // the last program that decided
  uint32_t verdict = 0;
  Bytes out;                // the packet after that program
  std::vector<Bytes> sent;  // clones the TC program sent, in order
};

// Runs packets through a loaded datapath the way the kernel would: XDP
// first; a request XDP passes on goes to TC next. Clones that TC sends are
// captured on the loopback device (the caller's network namespace should be
// private: tests/datapath/private_netns.h).
class Deliverer {
 public:
  // With `capture`, RunTc reports the clones TC sent (one capture socket
  // sees every frame on lo: stress tests with several threads turn it off).
  static absl::StatusOr<Deliverer> Create(const Datapath* datapath,
                                          bool capture = true);
  Deliverer(Deliverer&& other) noexcept;
  ~Deliverer();

  // XDP, then TC when XDP passed a lockd request on.
  absl::StatusOr<Delivery> Deliver(const Bytes& packet);
  absl::StatusOr<Delivery> RunXdp(const Bytes& packet);
  // `marked`: as the datapath's own KICKs arrive (LOCKD_KICK_MARK).
  absl::StatusOr<Delivery> RunTc(const Bytes& packet, bool marked = false);
  // Delivers a packet, then every KICK it caused (through TC, as the kernel
  // re-injects them), until none is left; `grants` gets every other clone
  // in order. At most `max_kicks` KICKs.
  absl::StatusOr<Delivery> DeliverAll(const Bytes& packet,
                                      std::vector<Bytes>* grants,
                                      int max_kicks = 1000);

 private:
  Deliverer(const Datapath* datapath, int capture_fd);
  std::vector<Bytes> DrainCaptured();

  const Datapath* datapath_;
  int capture_fd_;
};

// Whether the program answered the packet (XDP_TX, or TC redirecting it).
bool Answered(const Delivery& d);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DATAPATH_TEST_DATAPATH_H_
