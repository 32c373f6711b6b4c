#include "client/udp_channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lockd::client {
namespace {

// Whether `reply` can answer the call: the opcodes pair up, and the seq is
// one of its transmissions' (any copy's answer counts). The daemon
// announces an expired wait without the waiter's seq, so for an ACQUIRE a
// WAIT_EXPIRED rejection is taken whatever its seq.
bool Answers(const Message& reply, const UdpChannel::Call& call) {
  const Message& request = call.request;
  const bool expired_wait = request.opcode == LOCKD_OP_ACQUIRE &&
                            reply.opcode == LOCKD_OP_REJECTED &&
                            reply.status == LOCKD_STATUS_WAIT_EXPIRED;
  if (!expired_wait && std::find(call.seqs.begin(), call.seqs.end(),
                                 reply.seq) == call.seqs.end())
    return false;
  switch (reply.opcode) {
    case LOCKD_OP_GRANTED:
    case LOCKD_OP_QUEUED:
      return request.opcode == LOCKD_OP_ACQUIRE;
    case LOCKD_OP_RELEASED:
      return request.opcode == LOCKD_OP_RELEASE;
    case LOCKD_OP_RENEWED:
      return request.opcode == LOCKD_OP_RENEW;
    case LOCKD_OP_REJECTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool SameAddress(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

absl::StatusOr<std::unique_ptr<UdpChannel>> UdpChannel::Open(
    ReplyObserver on_reply, const ClientIdentity& identity) {
  const int socket_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (socket_fd < 0) return absl::ErrnoToStatus(errno, "UDP socket");
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(socket_fd, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) !=
      0) {
    const int bind_errno = errno;
    close(socket_fd);
    return absl::ErrnoToStatus(bind_errno, "binding the UDP socket");
  }
  const int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    const int eventfd_errno = errno;
    close(socket_fd);
    return absl::ErrnoToStatus(eventfd_errno, "eventfd");
  }
  return std::unique_ptr<UdpChannel>(
      new UdpChannel(socket_fd, stop_fd, std::move(on_reply), identity));
}

UdpChannel::UdpChannel(int socket_fd, int stop_fd, ReplyObserver on_reply,
                       const ClientIdentity& identity)
    : socket_fd_(socket_fd),
      stop_fd_(stop_fd),
      on_reply_(std::move(on_reply)),
      identity_(identity),
      receiver_([this] { ReceiveUntilStopped(); }) {}

UdpChannel::~UdpChannel() {
  const uint64_t one = 1;
  // Cannot fail short of a bug: the counter is far from overflowing.
  (void)!write(stop_fd_, &one, sizeof(one));
  receiver_.join();
  close(stop_fd_);
  close(socket_fd_);
}

void UdpChannel::Register(Call* call) {
  absl::MutexLock lock(&mu_);
  calls_[{call->request.lock_id, call->request.txn_id}] = call;
}

void UdpChannel::Unregister(Call* call) {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find({call->request.lock_id, call->request.txn_id});
  if (it != calls_.end() && it->second == call) calls_.erase(it);
}

absl::Status UdpChannel::Send(Call* call, const sockaddr_in& server,
                              uint64_t seq) {
  EncodedMessage bytes;
  {
    absl::MutexLock lock(&mu_);
    call->server = server;
    call->seqs.push_back(seq);
    bytes = identity_.Sign(call->request, seq);
  }
  if (sendto(socket_fd_, bytes.data(), bytes.size(), 0,
             reinterpret_cast<const sockaddr*>(&server),
             sizeof(server)) != static_cast<ssize_t>(bytes.size())) {
    // Reported, but the caller treats it like a lost packet: the
    // retransmission logic decides when to give up.
    return absl::ErrnoToStatus(errno, "sendto");
  }
  return absl::OkStatus();
}

std::optional<Message> UdpChannel::NextReply(Call* call, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (call->replies.empty()) {
    if (call->replied.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (call->replies.empty()) return std::nullopt;
  Message reply = call->replies.front();
  call->replies.pop_front();
  return reply;
}

void UdpChannel::ReceiveUntilStopped() {
  // A little larger than a message, so an oversized datagram is seen as
  // such (and dropped by DecodeMessage) instead of silently truncated.
  std::array<uint8_t, kMessageSize + 1> buffer;
  for (;;) {
    std::array<pollfd, 2> fds = {pollfd{socket_fd_, POLLIN, 0},
                                 pollfd{stop_fd_, POLLIN, 0}};
    if (poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
    if (fds[1].revents != 0) return;
    sockaddr_in from{};
    socklen_t from_len = sizeof(from);
    const ssize_t n =
        recvfrom(socket_fd_, buffer.data(), buffer.size(), MSG_DONTWAIT,
                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) continue;  // EAGAIN, or an ICMP error queued on the socket
    const auto bytes = absl::MakeConstSpan(buffer.data(), n);
    absl::StatusOr<Message> reply = DecodeMessage(bytes);
    if (!reply.ok() || IsRequest(reply->opcode)) continue;
    // A reply for us, signed with our key; anything else may be forged.
    if (!identity_.Accepts(bytes, *reply)) {
      on_reply_(from, /*forged=*/true);
      continue;
    }
    Dispatch(*reply, from);
  }
}

void UdpChannel::Dispatch(const Message& reply, const sockaddr_in& from) {
  {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find({reply.lock_id, reply.txn_id});
    // Anything else is a late answer to a call that has moved on (a
    // duplicate, or a reply that lost the race with a retransmission).
    if (it == calls_.end() || !SameAddress(it->second->server, from) ||
        !Answers(reply, *it->second))
      return;
    it->second->replies.push_back(reply);
    it->second->replied.Signal();
  }
  on_reply_(from, /*forged=*/false);
}

}  // namespace lockd::client
