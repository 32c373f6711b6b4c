// Builds and describes the Ethernet/IPv4/UDP frames the datapath sees, for
// tests and benchmarks. Checksums are computed here independently of the BPF
// code, so a byte-exact comparison checks the datapath's checksums too.
#ifndef LOCKD_TESTS_DATAPATH_PACKET_H_
#define LOCKD_TESTS_DATAPATH_PACKET_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/types/span.h"

namespace lockd::testing {

using Bytes = std::vector<uint8_t>;

struct Endpoint {
  std::array<uint8_t, 6> mac{};
  uint32_t addr = 0;  // host order
  uint16_t port = 0;  // host order
};

// The server and a few clients on a 198.18.0.0/24 test segment.
Endpoint ServerEndpoint(uint16_t port = LOCKD_DEFAULT_PORT);
Endpoint ClientEndpoint(int n);  // n >= 0: distinct MAC, address and port
// ClientEndpoint(n) as the ABI holds endpoints (network order).
lockd_endpoint ClientAbiEndpoint(int n);

// A lockd frame exactly as the datapath parses and writes it.
Bytes BuildFrame(const Endpoint& from, const Endpoint& to,
                 const Message& message);
// A UDP frame with an arbitrary payload (for malformed input).
Bytes BuildUdpFrame(const Endpoint& from, const Endpoint& to,
                    absl::Span<const uint8_t> payload);

// Readable one-line-per-layer description: addresses, lengths, whether each
// checksum is right, and the decoded message (or why it does not decode).
std::string DescribeFrame(absl::Span<const uint8_t> frame);
// Both frames described, then a hex dump marking every byte that differs.
std::string DiffFrames(absl::Span<const uint8_t> expected,
                       absl::Span<const uint8_t> actual);

// The lockd message inside a frame built like BuildFrame's.
absl::StatusOr<Message> MessageOf(absl::Span<const uint8_t> frame);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DATAPATH_PACKET_H_
