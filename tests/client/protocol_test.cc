// The client's side of the protocol against scripted servers on loopback:
// a UDP socket the test answers by hand (or not at all) and an in-process
// gRPC LockService. No daemon and no root: this is where the client's
// reactions to lost packets, queued waits, rejections and a silent UDP
// path are pinned down exactly.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/transaction.h"
#include "gtest/gtest.h"
#include "lockd/files.h"
#include "lockd/grpc_conventions.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd::client {
namespace {

// Guards against a hang; no assertion depends on how long anything takes.
constexpr absl::Duration kPatience = absl::Seconds(30);
// Leases the scripted servers grant: no renewal falls due during a test
// unless the test asks for one.
constexpr uint32_t kLongLeaseMs = 600000;

// A lock server's UDP socket on loopback, answered by the test.
class ScriptedUdpServer {
 public:
  ScriptedUdpServer() : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length),
              0);
    port_ = ntohs(address.sin_port);
  }
  ~ScriptedUdpServer() { close(fd_); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  // Replies to requests of a client are signed with this key.
  void set_key(const ClientKey& key) { key_ = key; }
  // The bytes of the last request received.
  const std::vector<uint8_t>& last_bytes() const { return last_bytes_; }

  // The next request the client sent.
  absl::StatusOr<Message> Receive() {
    pollfd readable{fd_, POLLIN, 0};
    if (poll(&readable, 1, absl::ToInt64Milliseconds(kPatience)) != 1)
      return absl::DeadlineExceededError("the client sent nothing");
    std::array<uint8_t, kMessageSize> buffer;
    socklen_t length = sizeof(client_);
    const ssize_t got =
        recvfrom(fd_, buffer.data(), buffer.size(), 0,
                 reinterpret_cast<sockaddr*>(&client_), &length);
    if (got < 0) return absl::ErrnoToStatus(errno, "recvfrom");
    last_bytes_.assign(buffer.begin(), buffer.begin() + got);
    return DecodeMessage(absl::MakeConstSpan(buffer.data(), got));
  }

  // Answers `request` (lock, txn and seq copied from it).
  // `forged`: with a MAC under another key.
  void Reply(const Message& request, lockd_opcode opcode, uint64_t fence = 0,
             uint8_t status = LOCKD_STATUS_OK, uint32_t lease_ms = kLongLeaseMs,
             bool forged = false) {
    Message reply = request;
    reply.opcode = opcode;
    reply.fence = fence;
    reply.status = status;
    reply.lease_ms = lease_ms;
    reply.wait_ms = 0;
    reply.flags = 0;  // replies carry none
    reply.mac = 0;
    const ClientKey key = forged ? ClientKey{key_.k0 ^ 1, key_.k1} : key_;
    const EncodedMessage bytes = reply.client_id == LOCKD_CLIENT_NONE
                                     ? Encode(reply)
                                     : EncodeSigned(reply, key);
    EXPECT_EQ(
        sendto(fd_, bytes.data(), bytes.size(), 0,
               reinterpret_cast<const sockaddr*>(&client_), sizeof(client_)),
        static_cast<ssize_t>(bytes.size()));
  }

 private:
  const int fd_;
  uint16_t port_ = 0;
  sockaddr_in client_{};  // where the last request came from
  ClientKey key_;
  std::vector<uint8_t> last_bytes_;
};

// A LockService that grants everything with increasing fences, or rejects
// every Acquire with `rejection`, and records what it was asked.
class ScriptedLockService final : public v1::LockService::Service {
 public:
  grpc::Status Acquire(grpc::ServerContext* context,
                       const v1::AcquireRequest* request,
                       v1::AcquireResponse* response) override {
    absl::MutexLock lock(&mu_);
    acquired_txns_.push_back(request->txn_id());
    if (rejection_ != v1::REPLY_STATUS_OK) {
      context->AddTrailingMetadata(kReplyStatusMetadataKey,
                                   v1::ReplyStatus_Name(rejection_));
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "scripted");
    }
    response->set_lock_id(request->lock_id());
    response->set_fence(++fence_);
    response->set_lease_ms(kLongLeaseMs);
    return grpc::Status::OK;
  }
  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override {
    absl::MutexLock lock(&mu_);
    released_txns_.push_back(request->txn_id());
    response->set_fence(fence_);
    return grpc::Status::OK;
  }
  grpc::Status Renew(grpc::ServerContext*, const v1::RenewRequest*,
                     v1::RenewResponse* response) override {
    response->set_lease_ms(kLongLeaseMs);
    return grpc::Status::OK;
  }

  void RejectAcquires(v1::ReplyStatus rejection) {
    absl::MutexLock lock(&mu_);
    rejection_ = rejection;
  }
  std::vector<uint64_t> acquired_txns() {
    absl::MutexLock lock(&mu_);
    return acquired_txns_;
  }
  std::vector<uint64_t> released_txns() {
    absl::MutexLock lock(&mu_);
    return released_txns_;
  }

 private:
  absl::Mutex mu_;
  v1::ReplyStatus rejection_ ABSL_GUARDED_BY(mu_) = v1::REPLY_STATUS_OK;
  uint64_t fence_ ABSL_GUARDED_BY(mu_) = 100;
  std::vector<uint64_t> acquired_txns_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> released_txns_ ABSL_GUARDED_BY(mu_);
};

class ProtocolTest : public ::testing::Test {
 protected:
  // A client of the scripted UDP server, with the gRPC service as fallback
  // when `with_grpc`.
  std::unique_ptr<Client> NewClient(ClientOptions options, bool with_grpc) {
    std::string grpc_address;
    if (with_grpc) {
      grpc::ServerBuilder builder;
      int port = 0;
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                               &port);
      builder.RegisterService(&service_);
      grpc_server_ = builder.BuildAndStart();
      EXPECT_GT(port, 0);
      grpc_address = absl::StrCat("127.0.0.1:", port);
    }
    options.servers = {{"scripted", udp_.address(), grpc_address}};
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  void TearDown() override {
    if (grpc_server_ != nullptr) grpc_server_->Shutdown();
  }

  ScriptedUdpServer udp_;
  ScriptedLockService service_;
  std::unique_ptr<grpc::Server> grpc_server_;
};

// Runs `call` on its own thread while the test plays the server.
template <typename Call>
auto InBackground(Call call) {
  return std::async(std::launch::async, std::move(call));
}

// Has `txn` lock `name` and answers the ACQUIRE with `opcode`, `fence`,
// `status` and `lease_ms`; what Lock returned.
absl::StatusOr<uint64_t> LockAnswered(ScriptedUdpServer& udp, Transaction& txn,
                                      const std::string& name, Mode mode,
                                      lockd_opcode opcode, uint64_t fence,
                                      uint8_t status,
                                      uint32_t lease_ms = kLongLeaseMs,
                                      const LockOptions& options = {}) {
  auto locked = InBackground([&] { return txn.Lock(name, mode, options); });
  absl::StatusOr<Message> request = udp.Receive();
  if (!request.ok()) return request.status();
  udp.Reply(*request, opcode, fence, status, lease_ms);
  return locked.get();
}

// Commits `txn`, answering its RELEASE of the one lock it holds.
void CommitAnswering(ScriptedUdpServer& udp, Transaction& txn, uint64_t fence) {
  auto committed = InBackground([&] { return txn.Commit(); });
  absl::StatusOr<Message> release = udp.Receive();
  // Retransmitted ACQUIREs that crossed the answer may come first.
  while (release.ok() && release->opcode == LOCKD_OP_ACQUIRE)
    release = udp.Receive();
  ASSERT_TRUE(release.ok()) << release.status();
  EXPECT_EQ(release->opcode, LOCKD_OP_RELEASE);
  udp.Reply(*release, LOCKD_OP_RELEASED, fence);
  EXPECT_TRUE(committed.get().ok());
}

TEST_F(ProtocolTest, RetransmissionsTakeNewSeqsAndAnyCopysAnswerCounts) {
  std::unique_ptr<Client> client = NewClient(ClientOptions(), false);
  Transaction txn = client->Begin();
  auto locked = InBackground([&] { return txn.Lock("k", Mode::kExclusive); });
  std::vector<Message> copies;
  for (int i = 0; i < 3; ++i) {  // the first two are "lost"
    absl::StatusOr<Message> request = udp_.Receive();
    ASSERT_TRUE(request.ok()) << request.status();
    copies.push_back(*request);
  }
  // The answer to the first copy arrives late: it still counts.
  udp_.Reply(copies.front(), LOCKD_OP_GRANTED, 5);
  absl::StatusOr<uint64_t> fence = locked.get();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(*fence, 5u);
  // Copies after the first say they are retransmissions, and each has a
  // seq of its own, increasing (the server's replay window drops a seq it
  // has seen).
  EXPECT_EQ(copies.front().flags, 0);
  for (size_t i = 0; i < copies.size(); ++i) {
    const Message& copy = copies[i];
    Message same = copy;
    same.flags = copies.front().flags;
    same.seq = copies.front().seq;
    EXPECT_EQ(same, copies.front());
    if (i > 0) {
      EXPECT_EQ(copy.flags, LOCKD_FLAG_RETRANSMIT);
      EXPECT_GT(copy.seq, copies[i - 1].seq);
    }
    EXPECT_EQ(copy.opcode, LOCKD_OP_ACQUIRE);
    EXPECT_EQ(copy.txn_id, txn.txn_id());
    EXPECT_EQ(copy.lock_id, LockIdForName("k"));
  }
  EXPECT_GE(client->Stats().total.udp_retransmissions, 2u);

  // The next request, a RELEASE, is newer than the ACQUIRE, so the server
  // never takes it for a stale one.
  Transaction next = client->Begin();
  auto next_locked =
      InBackground([&] { return next.Lock("k2", Mode::kExclusive); });
  absl::StatusOr<Message> later = udp_.Receive();
  while (later.ok() && later->lock_id != LockIdForName("k2"))
    later = udp_.Receive();  // retransmissions that crossed the answer
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_GT(later->seq, copies.back().seq);
  udp_.Reply(*later, LOCKD_OP_GRANTED, 1);
  ASSERT_TRUE(next_locked.get().ok());
  CommitAnswering(udp_, next, 1);
  CommitAnswering(udp_, txn, 5);
}

// A GRANTED packet that never arrives: the queued client asks again (same
// seq) and the server's answer to that carries the grant.
TEST_F(ProtocolTest, SignsRequestsAndIgnoresForgedReplies) {
  const ClientKey key{0x1111222233334444ULL, 0x5555666677778888ULL};
  udp_.set_key(key);
  ClientOptions options;
  options.client_id = 7;
  options.key = key;
  std::unique_ptr<Client> client = NewClient(options, false);
  Transaction txn = client->Begin();
  auto locked = InBackground([&] { return txn.Lock("k", Mode::kExclusive); });
  absl::StatusOr<Message> request = udp_.Receive();
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->client_id, 7u);
  EXPECT_TRUE(MacValid(udp_.last_bytes(), key));
  EXPECT_FALSE(MacValid(udp_.last_bytes(), ClientKey{key.k0, key.k1 + 1}));
  // A GRANTED under another key (a forger's) is dropped, and counted; the
  // real one is taken.
  udp_.Reply(*request, LOCKD_OP_GRANTED, 666, LOCKD_STATUS_OK, kLongLeaseMs,
             /*forged=*/true);
  Message other_client = *request;
  other_client.client_id = 8;  // signed right, but for another client
  udp_.Reply(other_client, LOCKD_OP_GRANTED, 667);
  udp_.Reply(*request, LOCKD_OP_GRANTED, 5);
  absl::StatusOr<uint64_t> fence = locked.get();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(*fence, 5u);
  EXPECT_EQ(client->Stats().total.udp_forged, 2u);
  CommitAnswering(udp_, txn, 5);
}

TEST_F(ProtocolTest, LostGrantedIsRecoveredByTheQueuedProbe) {
  ClientOptions options;
  options.queued_probe_interval = absl::Milliseconds(20);
  std::unique_ptr<Client> client = NewClient(options, false);
  Transaction txn = client->Begin();
  auto locked = InBackground([&] { return txn.Lock("q", Mode::kShared); });
  absl::StatusOr<Message> first = udp_.Receive();
  ASSERT_TRUE(first.ok()) << first.status();
  udp_.Reply(*first, LOCKD_OP_QUEUED);
  // The grant happens now, and its packet is lost.
  absl::StatusOr<Message> probe = udp_.Receive();
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_EQ(probe->flags, LOCKD_FLAG_RETRANSMIT);
  EXPECT_GT(probe->seq, first->seq);  // a transmission of its own
  Message same = *probe;
  same.flags = first->flags;
  same.seq = first->seq;
  EXPECT_EQ(same, *first);
  udp_.Reply(*probe, LOCKD_OP_GRANTED, 8);
  absl::StatusOr<uint64_t> fence = locked.get();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(*fence, 8u);
  CommitAnswering(udp_, txn, 8);
}

// While queued the client waits for the GRANTED packet; nothing else wakes
// it (no retransmission falls due here: the intervals are long).
TEST_F(ProtocolTest, GrantedPacketWakesTheQueuedWaiter) {
  ClientOptions options;
  options.udp_initial_timeout = kPatience;
  options.udp_budget = 2 * kPatience;
  options.queued_probe_interval = 2 * kPatience;
  std::unique_ptr<Client> client = NewClient(options, false);
  Transaction txn = client->Begin();
  auto locked = InBackground([&] { return txn.Lock("g", Mode::kExclusive); });
  absl::StatusOr<Message> request = udp_.Receive();
  ASSERT_TRUE(request.ok()) << request.status();
  udp_.Reply(*request, LOCKD_OP_QUEUED);
  udp_.Reply(*request, LOCKD_OP_GRANTED, 12);
  absl::StatusOr<uint64_t> fence = locked.get();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(*fence, 12u);
  EXPECT_EQ(client->Stats().total.udp_requests, 1u);
  EXPECT_EQ(client->Stats().total.udp_retransmissions, 0u);
  CommitAnswering(udp_, txn, 12);
}

TEST_F(ProtocolTest, RejectionsBecomeStatusCodesNamingServerLockAndTxn) {
  std::unique_ptr<Client> client = NewClient(ClientOptions(), false);
  Transaction txn = client->Begin();
  absl::StatusOr<uint64_t> fence = LockAnswered(
      udp_, txn, "d", Mode::kExclusive, LOCKD_OP_REJECTED, 0, LOCKD_STATUS_DIE);
  EXPECT_TRUE(absl::IsAborted(fence.status())) << fence.status();
  const std::string message(fence.status().message());
  EXPECT_TRUE(absl::StrContains(message, "server \"scripted\"")) << message;
  EXPECT_TRUE(absl::StrContains(message, "lock \"d\"")) << message;
  EXPECT_TRUE(
      absl::StrContains(message, absl::StrFormat("txn 0x%016x", txn.txn_id())))
      << message;
  EXPECT_TRUE(absl::StrContains(message, "DIE")) << message;
  EXPECT_TRUE(txn.is_open());
}

TEST_F(ProtocolTest, SilentServerWithoutGrpcIsUnavailable) {
  ClientOptions options;
  options.udp_max_transmissions = 2;
  std::unique_ptr<Client> client = NewClient(options, false);
  Transaction txn = client->Begin();
  absl::StatusOr<uint64_t> fence = txn.Lock("silent", Mode::kExclusive);
  EXPECT_TRUE(absl::IsUnavailable(fence.status())) << fence.status();
  EXPECT_TRUE(
      absl::StrContains(fence.status().message(), "server \"scripted\""))
      << fence.status();
  EXPECT_TRUE(absl::StrContains(fence.status().message(), "2 transmissions"))
      << fence.status();
}

// UDP unanswered: the request continues over gRPC with the same txn id, the
// hold is released over gRPC, and once UDP answers again calls return to it.
TEST_F(ProtocolTest, SilentUdpFallsBackToGrpcAndComesBack) {
  ClientOptions options;
  options.udp_max_transmissions = 2;
  options.udp_probe_interval = absl::ZeroDuration();  // probe at every call
  std::unique_ptr<Client> client = NewClient(options, true);
  Transaction txn = client->Begin();
  absl::StatusOr<uint64_t> fence = txn.Lock("f", Mode::kExclusive);
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(*fence, 101u);
  EXPECT_EQ(service_.acquired_txns(), std::vector<uint64_t>{txn.txn_id()});
  for (int i = 0; i < 2; ++i) {  // what the silent UDP path was sent
    absl::StatusOr<Message> sent = udp_.Receive();
    ASSERT_TRUE(sent.ok()) << sent.status();
    EXPECT_EQ(sent->txn_id, txn.txn_id());
  }
  ClientStats stats = client->Stats();
  EXPECT_EQ(stats.total.udp_fallbacks, 1u);
  EXPECT_FALSE(stats.total.udp_path_up);
  ASSERT_TRUE(txn.Commit().ok());
  EXPECT_EQ(service_.released_txns(), std::vector<uint64_t>{txn.txn_id()});

  // UDP answers again: the next call probes it and stays on it.
  Transaction next = client->Begin();
  auto locked = InBackground([&] { return next.Lock("f", Mode::kExclusive); });
  absl::StatusOr<Message> request = udp_.Receive();
  ASSERT_TRUE(request.ok()) << request.status();
  udp_.Reply(*request, LOCKD_OP_GRANTED, 7);
  absl::StatusOr<uint64_t> udp_fence = locked.get();
  ASSERT_TRUE(udp_fence.ok()) << udp_fence.status();
  EXPECT_EQ(*udp_fence, 7u);
  EXPECT_TRUE(client->Stats().total.udp_path_up);
  EXPECT_EQ(service_.acquired_txns().size(), 1u);
  CommitAnswering(udp_, next, 7);
}

// A hand-off the UDP path cannot serve goes to gRPC; gRPC's rejection, read
// from the trailing metadata, is what the application sees.
TEST_F(ProtocolTest, NoCapacityOverUdpTriesGrpc) {
  std::unique_ptr<Client> client = NewClient(ClientOptions(), true);
  service_.RejectAcquires(v1::REPLY_STATUS_NO_CAPACITY);
  Transaction txn = client->Begin();
  absl::StatusOr<uint64_t> fence =
      LockAnswered(udp_, txn, "full", Mode::kShared, LOCKD_OP_REJECTED, 0,
                   LOCKD_STATUS_NO_CAPACITY);
  EXPECT_TRUE(absl::IsResourceExhausted(fence.status())) << fence.status();
  EXPECT_TRUE(absl::StrContains(fence.status().message(), "over gRPC"))
      << fence.status();
  EXPECT_EQ(service_.acquired_txns(), std::vector<uint64_t>{txn.txn_id()});
  // A NO_CAPACITY answer proves UDP works: later calls still start there.
  EXPECT_TRUE(client->Stats().total.udp_path_up);
}

// The server refuses a renewal: the holder is told, and cannot commit.
TEST_F(ProtocolTest, RejectedRenewalLosesTheHold) {
  constexpr uint32_t kShortLeaseMs = 300;
  std::unique_ptr<Client> client = NewClient(ClientOptions(), false);
  Transaction txn = client->Begin();
  absl::Notification lost;
  LockOptions watch;
  watch.on_lost = [&](const absl::Status&) { lost.Notify(); };
  absl::StatusOr<uint64_t> fence =
      LockAnswered(udp_, txn, "r", Mode::kExclusive, LOCKD_OP_GRANTED, 3,
                   LOCKD_STATUS_OK, kShortLeaseMs, watch);
  ASSERT_TRUE(fence.ok()) << fence.status();
  absl::StatusOr<Message> renew = udp_.Receive();
  while (renew.ok() && renew->opcode == LOCKD_OP_ACQUIRE)
    renew = udp_.Receive();  // retransmissions that crossed the grant
  ASSERT_TRUE(renew.ok()) << renew.status();
  EXPECT_EQ(renew->opcode, LOCKD_OP_RENEW);
  udp_.Reply(*renew, LOCKD_OP_REJECTED, 0, LOCKD_STATUS_FORCE_RELEASED);
  ASSERT_TRUE(lost.WaitForNotificationWithTimeout(kPatience));
  EXPECT_TRUE(txn.lost());
  // The server ended the hold: Commit sends no RELEASE and reports the loss.
  absl::Status committed = txn.Commit();
  EXPECT_TRUE(absl::IsFailedPrecondition(committed)) << committed;
  EXPECT_TRUE(absl::StrContains(committed.message(), "FORCE_RELEASED"))
      << committed;
  EXPECT_TRUE(absl::StrContains(committed.message(), "fence 3")) << committed;
}

// A server list file moves the server while a request is in flight: the
// next retransmission goes to the new address, whose answer completes the
// call while the old address's is no longer taken; the release goes to the
// new address too.
TEST_F(ProtocolTest, ServerListFileMovesRetransmissionsInFlight) {
  ScriptedUdpServer replacement;
  const std::string path = absl::StrCat(::testing::TempDir(), "/servers");
  ASSERT_TRUE(
      WriteFileAtomically(path, absl::StrCat("scripted=", udp_.address()))
          .ok());
  ClientOptions options;
  options.server_list_file = path;
  options.server_list_poll_interval = absl::Milliseconds(10);
  // Retransmissions go on until the test answers.
  options.udp_max_transmissions = std::numeric_limits<int>::max();
  options.udp_budget = kPatience;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  Transaction txn = (*client)->Begin();
  auto locked = InBackground([&] { return txn.Lock("k", Mode::kExclusive); });
  absl::StatusOr<Message> first = udp_.Receive();
  ASSERT_TRUE(first.ok()) << first.status();

  ASSERT_TRUE(
      WriteFileAtomically(
          path, absl::StrCat("# moved\nscripted=", replacement.address(), "\n"))
          .ok());
  absl::StatusOr<Message> moved = replacement.Receive();
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->opcode, LOCKD_OP_ACQUIRE);
  EXPECT_EQ(moved->txn_id, txn.txn_id());
  EXPECT_EQ(moved->lock_id, LockIdForName("k"));
  EXPECT_EQ(moved->flags, LOCKD_FLAG_RETRANSMIT);
  // The old address answers too late: the call has moved on.
  udp_.Reply(*first, LOCKD_OP_GRANTED, 666);
  replacement.Reply(*moved, LOCKD_OP_GRANTED, 7);
  absl::StatusOr<uint64_t> fence = locked.get();
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(*fence, 7u);

  const ClientStats stats = (*client)->Stats();
  EXPECT_EQ(stats.server_list_reloads, 1u);
  EXPECT_EQ(stats.server_list_errors, 0u);
  ASSERT_EQ(stats.servers.size(), 1u);
  EXPECT_EQ(stats.servers[0].name, "scripted");
  EXPECT_EQ(stats.servers[0].udp_address, replacement.address());
  CommitAnswering(replacement, txn, 7);
}

}  // namespace
}  // namespace lockd::client
