// The daemon's UDP socket on lockd's port: it sends the replies and grants
// that the daemon itself decides (members served from user space, grants
// of control operations) and receives what the fast path passes up (IPv4
// with options or fragments) or, with no fast path attached, every request.
#ifndef LOCKD_LOCKD_UDP_SOCKET_H_
#define LOCKD_LOCKD_UDP_SOCKET_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lockd {

struct Datagram {
  lockd_endpoint from{};  // address and port; no MAC
  std::vector<uint8_t> bytes;
};

class UdpSocket {
 public:
  // Binds 0.0.0.0:`port` in the calling thread's network namespace. Its
  // replies carry `epoch`, as the datapath's do (their MACs cover it).
  static absl::StatusOr<std::unique_ptr<UdpSocket>> Open(uint16_t port,
                                                         uint32_t epoch);
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Sends `reply` as a lockd message to `to` (its address and port). Safe
  // from any thread.
  absl::Status Send(const lockd_endpoint& to, const lockd_reply& reply);

  // Waits up to `timeout` for datagrams and returns up to `max` of them
  // (none when the time passed).
  absl::StatusOr<std::vector<Datagram>> Receive(absl::Duration timeout,
                                                size_t max);

 private:
  UdpSocket(int fd, uint32_t epoch) : fd_(fd), epoch_(epoch) {}
  const int fd_;
  const uint32_t epoch_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_UDP_SOCKET_H_
