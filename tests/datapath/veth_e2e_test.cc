// End to end over a real veth pair between two network namespaces: lockd_xdp
// (native) and lockd_tc on the server side, real UDP sockets on the client
// side. One exclusive holder, 8 shared and then 2 exclusive waiters queue;
// the holder's release makes the kernel send GRANTED to all 8 shared
// waiters; then the exclusive waiters are granted in order as each
// predecessor releases. No daemon runs: every reply comes from the kernel.
#include <memory>
#include <set>
#include <vector>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lockd/datapath.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/test_datapath.h"
#include "tests/netns/test_network.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kLock = 0x5eed;
constexpr absl::Duration kReplyTimeout = absl::Seconds(5);

class Client {
 public:
  static std::unique_ptr<Client> Open(const netns::TestNetwork& net,
                                      uint64_t txn) {
    absl::StatusOr<netns::UdpSocket> socket =
        netns::UdpSocket::Open(net.client_netns(), net.link().client.ipv4, 0);
    if (!socket.ok()) {
      ADD_FAILURE() << socket.status();
      return nullptr;
    }
    return std::unique_ptr<Client>(
        new Client(std::move(*socket), net.link().server.ipv4, txn));
  }

  void Send(lockd_opcode opcode, lockd_mode mode = LOCKD_MODE_NONE) {
    Message m;
    m.opcode = opcode;
    m.mode = mode;
    m.lock_id = kLock;
    m.txn_id = txn_;
    m.seq = ++seq_;
    m.ticket = ticket_;
    EncodedMessage bytes = Encode(m);
    absl::Status sent = socket_.SendTo(server_, LOCKD_DEFAULT_PORT, bytes);
    ASSERT_TRUE(sent.ok()) << sent;
  }

  // The next datagram, which must be a well-formed reply to this client.
  Message Receive() {
    absl::StatusOr<netns::UdpSocket::Datagram> d =
        socket_.RecvFrom(kReplyTimeout);
    if (!d.ok()) {
      ADD_FAILURE() << "txn " << txn_ << ": " << d.status();
      return Message();
    }
    EXPECT_EQ(d->from_ipv4, server_);
    EXPECT_EQ(d->from_port, LOCKD_DEFAULT_PORT);
    absl::StatusOr<Message> m = DecodeMessage(d->payload);
    if (!m.ok()) {
      ADD_FAILURE() << "txn " << txn_ << ": " << m.status();
      return Message();
    }
    EXPECT_EQ(m->txn_id, txn_);
    EXPECT_EQ(m->lock_id, kLock);
    if (m->opcode == LOCKD_OP_GRANTED || m->opcode == LOCKD_OP_QUEUED)
      ticket_ = m->ticket;  // echoed in the owner's next requests
    return *m;
  }

  uint64_t txn() const { return txn_; }

 private:
  Client(netns::UdpSocket socket, std::string server, uint64_t txn)
      : socket_(std::move(socket)), server_(std::move(server)), txn_(txn) {}

  netns::UdpSocket socket_;
  std::string server_;
  uint64_t txn_;
  uint32_t seq_ = 0;
  uint64_t ticket_ = 0;
};

class VethEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<netns::TestNetwork>> net =
        netns::TestNetwork::Create();
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
    absl::StatusOr<TestDatapath> dp = TestDatapath::Create();
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::make_unique<TestDatapath>(std::move(*dp));
    datapath_ = dp_->datapath.get();
    absl::Status attached = netns::RunIn(net_->server_netns(), [&] {
      absl::StatusOr<XdpMode> mode =
          datapath_->AttachXdp(net_->link().server.ifindex);
      ASSERT_TRUE(mode.ok()) << mode.status();
      EXPECT_EQ(*mode, XdpMode::kNative);
      absl::Status tc = datapath_->AttachTc(net_->link().server.ifindex);
      ASSERT_TRUE(tc.ok()) << tc;
    });
    ASSERT_TRUE(attached.ok()) << attached;
  }

  void TearDown() override {
    dp_.reset();  // detaches inside the server namespace
    net_.reset();
  }

  // Holders (grant order) and waiters (queue order) of kLock; none at all:
  // the lock is gone.
  void ExpectLock(std::vector<uint64_t> holders,
                  std::vector<uint64_t> waiters) {
    absl::StatusOr<LockView> view = dp_->table->Read(kLock);
    if (holders.empty() && waiters.empty()) {
      EXPECT_TRUE(absl::IsNotFound(view.status())) << view.status();
      return;
    }
    ASSERT_TRUE(view.ok()) << view.status();
    std::vector<uint64_t> got_holders, got_waiters;
    for (const MemberView& h : view->holders) got_holders.push_back(h.m.txn_id);
    for (const MemberView& w : view->queue) got_waiters.push_back(w.m.txn_id);
    EXPECT_EQ(got_holders, holders);
    EXPECT_EQ(got_waiters, waiters);
  }

  std::unique_ptr<netns::TestNetwork> net_;
  std::unique_ptr<TestDatapath> dp_;
  Datapath* datapath_ = nullptr;
};

TEST_F(VethEndToEndTest, ReleaseGrantsSharedRunThenExclusivesInOrder) {
  std::unique_ptr<Client> holder = Client::Open(*net_, 1);
  std::vector<std::unique_ptr<Client>> readers, writers;
  for (uint64_t txn = 10; txn < 18; ++txn)
    readers.push_back(Client::Open(*net_, txn));
  for (uint64_t txn = 20; txn < 22; ++txn)
    writers.push_back(Client::Open(*net_, txn));
  ASSERT_FALSE(::testing::Test::HasFailure());

  holder->Send(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE);
  Message granted = holder->Receive();
  ASSERT_EQ(granted.opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ(granted.fence, 1u);

  uint32_t position = 0;
  for (auto& c : readers) {
    c->Send(LOCKD_OP_ACQUIRE, LOCKD_MODE_SHARED);
    Message queued = c->Receive();
    ASSERT_EQ(queued.opcode, LOCKD_OP_QUEUED);
    EXPECT_EQ(queued.queue_pos, position++);
  }
  for (auto& c : writers) {
    c->Send(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE);
    Message queued = c->Receive();
    ASSERT_EQ(queued.opcode, LOCKD_OP_QUEUED);
    EXPECT_EQ(queued.queue_pos, position++);
  }
  ExpectLock({1}, {10, 11, 12, 13, 14, 15, 16, 17, 20, 21});

  // The holder's release: RELEASED to it, GRANTED to all 8 readers.
  holder->Send(LOCKD_OP_RELEASE);
  Message released = holder->Receive();
  ASSERT_EQ(released.opcode, LOCKD_OP_RELEASED);
  EXPECT_EQ(released.fence, 1u);
  std::set<uint64_t> fences;
  for (auto& c : readers) {
    Message g = c->Receive();
    ASSERT_EQ(g.opcode, LOCKD_OP_GRANTED) << "reader " << c->txn();
    EXPECT_EQ(g.mode, LOCKD_MODE_SHARED);
    fences.insert(g.fence);
  }
  EXPECT_EQ(fences, (std::set<uint64_t>{2, 3, 4, 5, 6, 7, 8, 9}));
  ExpectLock({10, 11, 12, 13, 14, 15, 16, 17}, {20, 21});

  // Readers release one by one; only the last one wakes the first writer.
  for (auto& c : readers) {
    c->Send(LOCKD_OP_RELEASE);
    ASSERT_EQ(c->Receive().opcode, LOCKD_OP_RELEASED);
  }
  Message first = writers[0]->Receive();
  ASSERT_EQ(first.opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ(first.fence, 10u);
  ExpectLock({20}, {21});

  writers[0]->Send(LOCKD_OP_RELEASE);
  ASSERT_EQ(writers[0]->Receive().opcode, LOCKD_OP_RELEASED);
  Message second = writers[1]->Receive();
  ASSERT_EQ(second.opcode, LOCKD_OP_GRANTED);
  EXPECT_EQ(second.fence, 11u);
  ExpectLock({21}, {});

  writers[1]->Send(LOCKD_OP_RELEASE);
  ASSERT_EQ(writers[1]->Receive().opcode, LOCKD_OP_RELEASED);
  ExpectLock({}, {});

  absl::StatusOr<StatCounters> stats = datapath_->ReadStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[LOCKD_STAT_GRANT_SENT], 10u);
  EXPECT_EQ((*stats)[LOCKD_STAT_GRANT_SEND_FAILED], 0u);
  // Every release with someone queued went to TC: 1 + 8 readers + 1 writer.
  EXPECT_EQ((*stats)[LOCKD_STAT_RELEASE_TO_TC], 10u);
  EXPECT_EQ((*stats)[LOCKD_STAT_POOL_ALLOC], (*stats)[LOCKD_STAT_POOL_FREE]);
  EXPECT_EQ((*stats)[LOCKD_STAT_LOCK_CREATED], 1u);
  EXPECT_EQ((*stats)[LOCKD_STAT_LOCK_FREED], 1u);
  EXPECT_EQ((*stats)[LOCKD_STAT_MEMBER_SEARCH], 0u) << "every ticket worked";
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/false);
  return RUN_ALL_TESTS();
}
