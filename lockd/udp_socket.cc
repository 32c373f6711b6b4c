#include "lockd/udp_socket.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "abi/codec.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lockd {

absl::StatusOr<std::unique_ptr<UdpSocket>> UdpSocket::Open(uint16_t port,
                                                           uint32_t epoch) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "creating the UDP socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat("binding UDP port ", port));
  }
  return std::unique_ptr<UdpSocket>(new UdpSocket(fd, epoch));
}

UdpSocket::~UdpSocket() { close(fd_); }

absl::Status UdpSocket::Send(const lockd_endpoint& to,
                             const lockd_reply& reply) {
  const EncodedMessage bytes = Encode(FromReply(reply, epoch_));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = to.port;
  addr.sin_addr.s_addr = to.addr;
  if (sendto(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT,
             reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
    return absl::ErrnoToStatus(errno, "sending a reply");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Datagram>> UdpSocket::Receive(absl::Duration timeout,
                                                         size_t max) {
  std::vector<Datagram> out;
  pollfd p{fd_, POLLIN, 0};
  const int ready =
      poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready < 0 && errno != EINTR)
    return absl::ErrnoToStatus(errno, "waiting on the UDP socket");
  if (ready <= 0) return out;
  while (out.size() < max) {
    uint8_t buffer[2048];
    sockaddr_in from{};
    socklen_t from_len = sizeof(from);
    const ssize_t n = recvfrom(fd_, buffer, sizeof(buffer), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      return absl::ErrnoToStatus(errno, "receiving on the UDP socket");
    }
    Datagram d;
    d.from.addr = from.sin_addr.s_addr;
    d.from.port = from.sin_port;
    d.bytes.assign(buffer, buffer + n);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace lockd
