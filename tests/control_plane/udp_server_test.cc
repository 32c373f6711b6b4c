// The socket path over the reference model: datagrams the daemon's socket
// receives are served as LOCAL members with the sender's address, replies
// and later grants go back from the socket, and what is not a lockd
// request is dropped and counted. Real UDP on the loopback of this host.
#include "lockd/udp_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "abi/codec.h"
#include "abi/keys.h"
#include "gtest/gtest.h"
#include "tests/control_plane/fixture.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kLock = 9;

// A client's socket on 127.0.0.1, and the endpoint the server sees.
class Client {
 public:
  Client() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    from_.addr = addr.sin_addr.s_addr;
    from_.port = addr.sin_port;
  }
  ~Client() { close(fd_); }

  Datagram Request(const Message& m) const {
    const EncodedMessage bytes = Encode(m);
    return Datagram{from_, std::vector<uint8_t>(bytes.begin(), bytes.end())};
  }
  // The next datagram (up to 5 s), decoded.
  absl::StatusOr<Message> Receive() const {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return absl::DeadlineExceededError("nothing");
    uint8_t buffer[256];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0) return absl::InternalError("recv");
    return DecodeMessage(absl::MakeConstSpan(buffer, n));
  }

 private:
  int fd_ = -1;
  lockd_endpoint from_{};
};

Message Request(lockd_opcode opcode, uint64_t txn, uint32_t seq) {
  Message m;
  m.opcode = opcode;
  m.mode = opcode == LOCKD_OP_ACQUIRE ? LOCKD_MODE_EXCLUSIVE : LOCKD_MODE_NONE;
  m.lock_id = kLock;
  m.txn_id = txn;
  m.seq = seq;
  return m;
}

using UdpServerTest = ControlPlaneTest;

TEST_F(UdpServerTest, RepliesAndGrantsGoBackFromTheSocket) {
  UdpServer server(socket_.get(), dispatcher_.get(), &counters_);
  Client a, b;
  server.Serve(a.Request(Request(LOCKD_OP_ACQUIRE, 1, 1)));
  absl::StatusOr<Message> granted = a.Receive();
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->opcode, LOCKD_OP_GRANTED);
  server.Serve(b.Request(Request(LOCKD_OP_ACQUIRE, 2, 1)));
  absl::StatusOr<Message> queued = b.Receive();
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->opcode, LOCKD_OP_QUEUED);

  server.Serve(a.Request(Request(LOCKD_OP_RELEASE, 1, 2)));
  absl::StatusOr<Message> released = a.Receive();
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->opcode, LOCKD_OP_RELEASED);
  absl::StatusOr<Message> b_granted = b.Receive();
  ASSERT_TRUE(b_granted.ok()) << b_granted.status();
  EXPECT_EQ(b_granted->opcode, LOCKD_OP_GRANTED);
  EXPECT_GT(b_granted->fence, granted->fence);
  EXPECT_EQ(Counter(DaemonCounters::kSocketRequests), 3u);
  EXPECT_EQ(Counter(DaemonCounters::kNoticesSent), 1u);
  // The member the socket made is the daemon's to tell.
  absl::StatusOr<LockView> view = table_.Read(kLock);
  ASSERT_TRUE(view.ok());
  ASSERT_EQ(view->holders.size(), 1u);
  EXPECT_EQ(view->holders[0].m.flags & LOCKD_MEMBER_LOCAL, LOCKD_MEMBER_LOCAL);
}

TEST_F(UdpServerTest, GrantsToSignedClientsAreSigned) {
  constexpr uint32_t kClient = 7;
  const ClientKey key{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  lockd_ctl set_key{};
  set_key.op = LOCKD_CTL_SET_KEY;
  set_key.req.client_id = kClient;
  set_key.key[0] = key.k0;
  set_key.key[1] = key.k1;
  ASSERT_TRUE(table_.Execute(set_key).ok());
  UdpServer server(socket_.get(), dispatcher_.get(), &counters_);
  Client a, b;
  auto send = [&](const Client& from, Message m) {
    m.client_id = kClient;
    Datagram signed_request = from.Request(m);
    const EncodedMessage bytes = EncodeSigned(m, key);
    signed_request.bytes.assign(bytes.begin(), bytes.end());
    server.Serve(signed_request);
  };
  send(a, Request(LOCKD_OP_ACQUIRE, 1, 1));
  ASSERT_TRUE(a.Receive().ok());
  send(b, Request(LOCKD_OP_ACQUIRE, 2, 2));
  ASSERT_TRUE(b.Receive().ok());
  send(a, Request(LOCKD_OP_RELEASE, 1, 3));
  ASSERT_TRUE(a.Receive().ok());
  // The notice the socket sends for the member it serves, signed as the
  // datapath's own are.
  absl::StatusOr<Message> granted = b.Receive();
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ(granted->client_id, kClient);
  EXPECT_TRUE(MacValid(Encode(*granted), key));
}

TEST_F(UdpServerTest, WhatIsNotARequestIsDroppedAndCounted) {
  UdpServer server(socket_.get(), dispatcher_.get(), &counters_);
  Client a;
  Datagram truncated = a.Request(Request(LOCKD_OP_ACQUIRE, 1, 1));
  truncated.bytes.resize(10);
  Message reply = Request(LOCKD_OP_ACQUIRE, 1, 1);
  reply.opcode = LOCKD_OP_GRANTED;
  Message no_mode = Request(LOCKD_OP_ACQUIRE, 1, 1);
  no_mode.mode = LOCKD_MODE_NONE;
  server.Serve(truncated);
  server.Serve(a.Request(reply));
  server.Serve(a.Request(no_mode));
  EXPECT_EQ(Counter(DaemonCounters::kSocketMalformed), 3u);
  EXPECT_EQ(Counter(DaemonCounters::kSocketRequests), 0u);
  EXPECT_TRUE(absl::IsNotFound(table_.Read(kLock).status()));
}

}  // namespace
}  // namespace lockd::testing
