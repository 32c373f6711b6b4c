// Only a holder ends its hold (docs/security.md), black box: lockd with its
// fast path in the server namespace; the victim, client 1, signs from the
// client namespace; from a second client namespace, on the same wire with
// an address of its own (a macvlan of the client's veth), an intruder with a
// valid key of its own (client 2), an unauthenticated sender, and a forger
// who claims client 1 without its key try every spoof of issue #11. Each
// changes nothing, learns no fence and is counted; and the victim's
// captured requests, replayed after its release (from the victim's address
// and from the intruder's), take nothing.
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"
#include "tests/test_keys.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kVictimTxn = 500;
constexpr uint64_t kWaiterTxn = 600;
constexpr uint32_t kIntruderClient = 2;
constexpr uint32_t kWaiterClient = 3;
// The intruder's address, on the client's wire.
constexpr char kIntruderIpv4[] = "198.18.0.3";

class AuthTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    // A network with a third namespace, the intruder's, on the client's
    // wire: a macvlan of the client's veth, moved into it.
    netns::TestNetwork::Options options;
    options.roles = {"server", "client", "intruder"};
    net_.reset();
    absl::StatusOr<std::unique_ptr<netns::TestNetwork>> net =
        netns::TestNetwork::Create(options);
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
    intruder_netns_ = net_->Netns("intruder");
    const std::string macvlan = absl::StrCat("lkmv", getpid() % 100000);
    const std::vector<std::pair<std::string, std::string>> steps = {
        {net_->client_netns(),
         absl::StrCat("ip link add ", macvlan, " link ",
                      net_->link().client.name,
                      " type macvlan mode bridge && ip link set ", macvlan,
                      " netns ", intruder_netns_)},
        {intruder_netns_,
         absl::StrCat("ip addr add ", kIntruderIpv4, "/24 dev ", macvlan,
                      " && ip link set ", macvlan, " up")}};
    for (const auto& [netns, command] : steps) {
      absl::StatusOr<netns::CommandResult> done = netns::ExecIn(netns, command);
      ASSERT_TRUE(done.ok() && done->exit_code == 0)
          << command << ": "
          << (done.ok() ? done->output : done.status().ToString());
    }
    absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
    ASSERT_TRUE(lockd.ok()) << lockd.status();
    lockd_ = std::move(*lockd);
  }

  // A sender of `client_id` (its test key; LOCKD_CLIENT_NONE: unsigned)
  // from the intruder's address, naming `txn_id` on `lock`.
  std::unique_ptr<UdpLockClient> Intruder(uint64_t lock, uint64_t txn_id,
                                          uint32_t client_id) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> c = UdpLockClient::Open(
        *net_, lock, txn_id, client_id, kIntruderIpv4, intruder_netns_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  uint64_t Counter(const std::string& name) {
    absl::StatusOr<v1::GetStatsResponse> stats = StatsJson();
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (!stats.ok() || !stats->counters().contains(name)) return ~0ull;
    return stats->counters().at(name);
  }

  // Waits until counter `name` is above `before` (the datapath counted
  // the packet), then checks that `client` got no datagram.
  void ExpectDropped(UdpLockClient& client, const std::string& name,
                     uint64_t before) {
    EXPECT_TRUE(IsOk(WaitUntil(
        [&]() -> absl::StatusOr<bool> { return Counter(name) > before; },
        absl::Seconds(10), absl::StrCat("counter ", name, " to move"))));
    absl::StatusOr<Message> reply = client.Receive(absl::ZeroDuration());
    EXPECT_TRUE(absl::IsDeadlineExceeded(reply.status()))
        << "a dropped request was answered: "
        << (reply.ok() ? reply->ToString() : reply.status().ToString());
  }

  // The lock's holders, by txn, as lockctl shows them.
  std::vector<uint64_t> Holders(uint64_t lock) {
    absl::StatusOr<ShownLock> shown = Show(lock);
    return shown.ok() ? shown->holders : std::vector<uint64_t>{};
  }

  std::string intruder_netns_;
  std::unique_ptr<NetnsProcess> lockd_;
};

TEST_F(AuthTest, ClientWithItsOwnKeyCannotTouchAnothersHoldOrWait) {
  const uint64_t lock = LockIdForName("auth/hold");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> victim =
      UdpLockClient::Open(*net_, lock, kVictimTxn, kTestClient);
  ASSERT_TRUE(victim.ok()) << victim.status();
  absl::StatusOr<Message> held = ExpectReply(
      (*victim)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_SHARED), LOCKD_OP_GRANTED);
  ASSERT_TRUE(held.ok()) << held.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter =
      UdpLockClient::Open(*net_, lock, kWaiterTxn, kWaiterClient);
  ASSERT_TRUE(waiter.ok()) << waiter.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_QUEUED)
               .status()));

  const uint64_t not_owner = Counter("reject_not_owner");
  std::unique_ptr<UdpLockClient> as_holder =
      Intruder(lock, kVictimTxn, kIntruderClient);
  std::unique_ptr<UdpLockClient> as_waiter =
      Intruder(lock, kWaiterTxn, kIntruderClient);
  ASSERT_TRUE(as_holder && as_waiter);
  // RELEASE, RENEW and ACQUIRE (again, and as an upgrade to X) naming the
  // victim's txn; RELEASE naming the waiter's: each REJECTED NOT_HOLDER
  // with no fence, no lease and no ticket.
  const std::vector<absl::StatusOr<Message>> answers = {
      as_holder->Call(LOCKD_OP_RELEASE),
      as_holder->Call(LOCKD_OP_RENEW, LOCKD_MODE_NONE, LOCKD_POLICY_WAIT,
                      300000),
      as_holder->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_SHARED),
      as_holder->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
      as_waiter->Call(LOCKD_OP_RELEASE),
  };
  for (const absl::StatusOr<Message>& answer : answers) {
    absl::StatusOr<Message> rejected = ExpectReply(answer, LOCKD_OP_REJECTED);
    ASSERT_TRUE(rejected.ok()) << rejected.status();
    EXPECT_EQ(rejected->status, LOCKD_STATUS_NOT_HOLDER) << *rejected;
    EXPECT_EQ(rejected->fence, 0u) << *rejected;
    EXPECT_EQ(rejected->lease_ms, 0u) << *rejected;
    EXPECT_EQ(rejected->ticket, 0u) << *rejected;
  }
  EXPECT_EQ(Counter("reject_not_owner"), not_owner + answers.size());

  // Nothing changed: the victim holds, with its fence, and still S (its
  // renewal says so); the waiter still waits, then is granted when the
  // victim releases.
  EXPECT_EQ(Holders(lock), std::vector<uint64_t>{kVictimTxn});
  absl::StatusOr<Message> renewed =
      ExpectReply((*victim)->Call(LOCKD_OP_RENEW), LOCKD_OP_RENEWED);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->fence, held->fence);
  absl::StatusOr<Message> released =
      ExpectReply((*victim)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->fence, held->fence);
  absl::StatusOr<Message> granted =
      ExpectReply((*waiter)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_GT(granted->fence, held->fence);
}

TEST_F(AuthTest, UnauthenticatedForgedAndKickPacketsAreDroppedAndCounted) {
  const uint64_t lock = LockIdForName("auth/drops");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> victim =
      UdpLockClient::Open(*net_, lock, kVictimTxn, kTestClient);
  ASSERT_TRUE(victim.ok()) << victim.status();
  absl::StatusOr<Message> held =
      ExpectReply((*victim)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(held.ok()) << held.status();

  // No key at all, from a subnet lockd did not open.
  std::unique_ptr<UdpLockClient> anonymous =
      Intruder(lock, kVictimTxn, LOCKD_CLIENT_NONE);
  ASSERT_TRUE(anonymous);
  uint64_t before = Counter("unauthenticated");
  ASSERT_TRUE(IsOk(anonymous->Send(LOCKD_OP_RELEASE)));
  ExpectDropped(*anonymous, "unauthenticated", before);

  // Client 1's id without client 1's key (here: client 2's key).
  std::unique_ptr<UdpLockClient> forger =
      Intruder(lock, kVictimTxn, kIntruderClient);
  ASSERT_TRUE(forger);
  Message release;
  release.opcode = LOCKD_OP_RELEASE;
  release.lock_id = lock;
  release.txn_id = kVictimTxn;
  release.client_id = kTestClient;
  release.seq = NextTestSeq();
  before = Counter("auth_failed");
  ASSERT_TRUE(
      IsOk(forger->SendBytes(EncodeSigned(release, TestKey(kIntruderClient)))));
  ExpectDropped(*forger, "auth_failed", before);

  // A KICK from the network: only the datapath's own are served.
  Message kick;
  kick.opcode = LOCKD_OP_KICK;
  kick.lock_id = lock;
  before = Counter("forged_kick");
  ASSERT_TRUE(IsOk(forger->SendBytes(Encode(kick))));
  ExpectDropped(*forger, "forged_kick", before);

  EXPECT_EQ(Holders(lock), std::vector<uint64_t>{kVictimTxn});
  absl::StatusOr<Message> renewed =
      ExpectReply((*victim)->Call(LOCKD_OP_RENEW), LOCKD_OP_RENEWED);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->fence, held->fence);
}

TEST_F(AuthTest, CapturedRequestsReplayedAfterAReleaseTakeNothing) {
  const uint64_t lock = LockIdForName("auth/replay");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> victim =
      UdpLockClient::Open(*net_, lock, kVictimTxn, kTestClient);
  ASSERT_TRUE(victim.ok()) << victim.status();
  // The victim's traffic, as a sniffer on the link records it.
  Message acquire;
  acquire.opcode = LOCKD_OP_ACQUIRE;
  acquire.mode = LOCKD_MODE_EXCLUSIVE;
  acquire.lock_id = lock;
  acquire.txn_id = kVictimTxn;
  const EncodedMessage captured_acquire = (*victim)->Signed(acquire);
  ASSERT_TRUE(IsOk((*victim)->SendBytes(captured_acquire)));
  absl::StatusOr<Message> held =
      ExpectReply((*victim)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(held.ok()) << held.status();
  Message renew = acquire;
  renew.opcode = LOCKD_OP_RENEW;
  renew.mode = LOCKD_MODE_NONE;
  const EncodedMessage captured_renew = (*victim)->Signed(renew);
  ASSERT_TRUE(IsOk((*victim)->SendBytes(captured_renew)));
  ASSERT_TRUE(
      IsOk(ExpectReply((*victim)->Receive(), LOCKD_OP_RENEWED).status()));
  Message release = acquire;
  release.opcode = LOCKD_OP_RELEASE;
  release.mode = LOCKD_MODE_NONE;
  const EncodedMessage captured_release = (*victim)->Signed(release);
  ASSERT_TRUE(IsOk((*victim)->SendBytes(captured_release)));
  ASSERT_TRUE(
      IsOk(ExpectReply((*victim)->Receive(), LOCKD_OP_RELEASED).status()));

  // Replayed, from the victim's own address and from another: dropped.
  std::unique_ptr<UdpLockClient> replayer =
      Intruder(lock, kVictimTxn, kIntruderClient);
  ASSERT_TRUE(replayer);
  for (UdpLockClient* sender : {victim->get(), replayer.get()}) {
    for (const EncodedMessage& bytes :
         {captured_acquire, captured_renew, captured_release}) {
      const uint64_t before = Counter("replayed");
      ASSERT_TRUE(IsOk(sender->SendBytes(bytes)));
      ExpectDropped(*sender, "replayed", before);
    }
  }
  // Nobody holds the lock; the victim's own next request is served.
  absl::StatusOr<ShownLock> shown = Show(lock);
  EXPECT_FALSE(shown.ok() && !shown->holders.empty())
      << "a replayed ACQUIRE took the lock";
  absl::StatusOr<Message> again =
      ExpectReply((*victim)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(again->fence, held->fence);
}

TEST_F(AuthTest, QuotaRejectsPastItWithItsOwnReason) {
  // A lockd of its own with a quota of 2 holds + waits per client.
  lockd_.reset();
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--client_quota=2"});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  lockd_ = std::move(*lockd);
  std::vector<std::unique_ptr<UdpLockClient>> locks;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> c = UdpLockClient::Open(
        *net_, LockIdForName(absl::StrCat("auth/quota/", i)), 700 + i,
        kIntruderClient);
    ASSERT_TRUE(c.ok()) << c.status();
    locks.push_back(std::move(*c));
  }
  const uint64_t before = Counter("reject_quota");
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(
        IsOk(ExpectReply(locks[i]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                         LOCKD_OP_GRANTED)
                 .status()));
  absl::StatusOr<Message> third =
      ExpectReply(locks[2]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_REJECTED);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->status, LOCKD_STATUS_QUOTA);
  EXPECT_EQ(Counter("reject_quota"), before + 1);
  // Another client is not limited by this one's quota; a release makes room.
  absl::StatusOr<std::unique_ptr<UdpLockClient>> other = UdpLockClient::Open(
      *net_, LockIdForName("auth/quota/other"), 800, kWaiterClient);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*other)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_GRANTED)
               .status()));
  ASSERT_TRUE(
      IsOk(ExpectReply(locks[0]->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED)
               .status()));
  ASSERT_TRUE(
      IsOk(ExpectReply(locks[2]->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_GRANTED)
               .status()));
}

}  // namespace
}  // namespace lockd::testing
