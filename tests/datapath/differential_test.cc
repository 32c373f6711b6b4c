// Randomized differential test: the same stream of requests goes to the real
// datapath (XDP, then TC for releases that wake waiters, KICKs drained back
// through TC) and to the reference model (tests/model). Every reply, every
// GRANTED packet (to the right client), every modeled counter, and at
// checkpoints every lock's full state and the pool's block count must agree.
// 64 clients on 4 hot locks, all three policies, retransmissions, stale and
// stray requests, malformed packets.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <map>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lockd/lock_engine.h"
#include "lockd/table_reader.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/fixture.h"

namespace lockd::testing {
namespace {

constexpr int kOperations = 100'000;
constexpr int kClients = 64;
constexpr int kLocks = 4;
constexpr uint64_t kLockBase = 500;
constexpr int kCheckpointEvery = 500;
// Leases long enough never to lapse during the run: expiry depends on the
// kernel's clock, which the model cannot share exactly (the fixture tests
// cover expiry).
constexpr uint32_t kDefaultLeaseMs = 3'600'000;
constexpr uint32_t kMaxLeaseMs = 7'200'000;

using Request = LockEngine::Request;

Message ToMessage(const Request& r) {
  Message m;
  m.opcode = static_cast<lockd_opcode>(r.opcode);
  m.lock_id = r.lock_id;
  m.txn_id = r.txn_id;
  m.mode = static_cast<lockd_mode>(r.mode);
  m.policy = static_cast<lockd_policy>(r.policy);
  m.seq = r.seq;
  m.lease_ms = r.lease_ms;
  m.wait_ms = r.wait_ms;
  return m;
}

// Client n (txn n) sends from ClientEndpoint(n).
int ClientOf(uint64_t txn) { return static_cast<int>(txn); }

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed), next_seq_(kClients + 1, 1) {}

  // Half the time a holder acts (releases, upgrades, renews), as clients
  // in a critical section do; otherwise a random client does anything.
  Request Next(const LockEngine& model) {
    std::vector<std::pair<uint64_t, uint64_t>> holders;
    for (int l = 0; l < kLocks; ++l)
      if (const LockEngine::LockState* lock = model.Find(kLockBase + l))
        for (const auto& [txn, hold] : lock->holders)
          holders.emplace_back(kLockBase + l, txn);
    const bool holder_acts = !holders.empty() && rng_() % 2 == 0;
    const auto key = holder_acts ? holders[rng_() % holders.size()]
                                 : std::make_pair(kLockBase + rng_() % kLocks,
                                                  1 + rng_() % kClients);
    const auto [lock, txn] = key;
    const uint32_t dice = rng_() % 100;
    if (dice < 12 && last_.count(key)) return last_[key];  // retransmission
    Request r{};
    r.lock_id = lock;
    r.txn_id = txn;
    r.seq = next_seq_[txn]++;
    const uint32_t op = holder_acts ? 50 + rng_() % 50 : rng_() % 100;
    if (holder_acts && op >= 90) {
      r.opcode = LOCKD_OP_ACQUIRE;  // upgrade, or a covered re-acquire
      r.mode = LOCKD_MODE_EXCLUSIVE;
    } else if (op < 50) {
      r.opcode = LOCKD_OP_ACQUIRE;
      r.mode = rng_() % 5 < 3 ? LOCKD_MODE_SHARED : LOCKD_MODE_EXCLUSIVE;
      const uint32_t p = rng_() % 10;
      r.policy = p < 6   ? LOCKD_POLICY_WAIT
                 : p < 8 ? LOCKD_POLICY_NO_WAIT
                         : LOCKD_POLICY_WAIT_DIE;
      static constexpr uint32_t kLeases[] = {0, 60'000, 9'000'000};
      r.lease_ms = kLeases[rng_() % 3];
      r.wait_ms = rng_() % 4 == 0 ? 500 : 0;
    } else if (op < 92) {
      r.opcode = LOCKD_OP_RELEASE;
    } else if (op < 99) {
      r.opcode = LOCKD_OP_RENEW;
      r.lease_ms = rng_() % 2 ? 0 : 120'000;
    } else {
      r.opcode = LOCKD_OP_ACQUIRE;  // malformed: mode out of range
      r.mode = 3 + rng_() % 5;
      return r;
    }
    last_[key] = r;
    return r;
  }

 private:
  std::mt19937_64 rng_;
  std::vector<uint32_t> next_seq_;
  std::map<std::pair<uint64_t, uint64_t>, Request> last_;
};

class DifferentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_BPF_ALLOWED();
    DatapathOptions options;
    options.default_lease_ms = kDefaultLeaseMs;
    options.max_lease_ms = kMaxLeaseMs;
    absl::StatusOr<std::unique_ptr<Datapath>> datapath =
        Datapath::Load(options);
    ASSERT_TRUE(datapath.ok()) << datapath.status();
    datapath_ = std::move(*datapath);
    absl::StatusOr<Deliverer> deliverer = Deliverer::Create(datapath_.get());
    ASSERT_TRUE(deliverer.ok()) << deliverer.status();
    deliverer_.emplace(std::move(*deliverer));
  }

  // Runs one request through the datapath, then any KICKs it caused; returns
  // the reply frame (if any) and every GRANTED frame, in order.
  void Deliver(const Request& r, std::optional<Bytes>* reply,
               std::vector<Bytes>* grants) {
    absl::StatusOr<Delivery> d = deliverer_->Deliver(BuildFrame(
        ClientEndpoint(ClientOf(r.txn_id)), ServerEndpoint(), ToMessage(r)));
    ASSERT_TRUE(d.ok()) << d.status();
    const bool answered = d->hook == Hook::kXdp ? d->verdict == XDP_TX
                                                : d->verdict == TC_ACT_REDIRECT;
    if (answered) *reply = d->out;
    std::vector<Bytes> pending = std::move(d->sent);
    for (int hops = 0; !pending.empty(); ++hops) {
      ASSERT_LT(hops, 100) << "KICKs never stop";
      std::vector<Bytes> next;
      for (Bytes& frame : pending) {
        absl::StatusOr<Message> m = MessageOf(frame);
        ASSERT_TRUE(m.ok()) << m.status();
        if (m->opcode != LOCKD_OP_KICK) {
          grants->push_back(std::move(frame));
          continue;
        }
        absl::StatusOr<Delivery> kick = deliverer_->RunTc(frame);
        ASSERT_TRUE(kick.ok()) << kick.status();
        EXPECT_EQ(kick->verdict, static_cast<uint32_t>(TC_ACT_SHOT));
        for (Bytes& f : kick->sent) next.push_back(std::move(f));
      }
      pending = std::move(next);
    }
  }

  void ExpectSameState(const LockEngine& model, int op) {
    TableReader reader(
        {datapath_->locks_fd(), datapath_->owners_fd(), datapath_->pool_fd()});
    for (int l = 0; l < kLocks; ++l) {
      const uint64_t lock_id = kLockBase + l;
      const LockEngine::LockState* want = model.Find(lock_id);
      absl::StatusOr<LockView> got = reader.Read(lock_id);
      if (want == nullptr) {
        EXPECT_TRUE(absl::IsNotFound(got.status())) << "lock " << lock_id;
        continue;
      }
      ASSERT_TRUE(got.ok()) << got.status();
      // Rebuild the model's shape from the maps, and check the datapath's
      // state against the model's invariants too.
      LockEngine::LockState rebuilt;
      rebuilt.mode = got->state.mode;
      rebuilt.fence = got->state.fence;
      rebuilt.min_txn = got->state.min_txn;
      for (const HolderView& h : got->holders)
        rebuilt.holders[h.txn_id] = LockEngine::Hold{h.mode, h.fence, 0, 0, 0};
      for (const WaiterView& w : got->queue) {
        LockEngine::Waiter waiter{};
        waiter.txn_id = w.waiter.txn_id;
        waiter.mode = w.waiter.mode;
        waiter.cancelled = w.waiter.cancelled;
        rebuilt.queue.push_back(waiter);
      }
      absl::Status invariants =
          LockEngine::CheckLockInvariants(lock_id, rebuilt);
      EXPECT_TRUE(invariants.ok()) << "op " << op << ": " << invariants;
      EXPECT_EQ(rebuilt.mode, want->mode) << "op " << op << " lock " << lock_id;
      EXPECT_EQ(rebuilt.fence, want->fence) << "op " << op;
      EXPECT_EQ(rebuilt.min_txn, want->min_txn) << "op " << op;
      ASSERT_EQ(rebuilt.holders.size(), want->holders.size())
          << "op " << op << " lock " << lock_id;
      for (const auto& [txn, hold] : want->holders) {
        auto it = rebuilt.holders.find(txn);
        ASSERT_TRUE(it != rebuilt.holders.end())
            << "op " << op << ": txn " << txn << " should hold " << lock_id;
        EXPECT_EQ(it->second.fence, hold.fence) << "op " << op;
        EXPECT_EQ(it->second.mode, hold.mode) << "op " << op;
      }
      ASSERT_EQ(rebuilt.queue.size(), want->queue.size())
          << "op " << op << " lock " << lock_id;
      for (size_t i = 0; i < want->queue.size(); ++i) {
        EXPECT_EQ(rebuilt.queue[i].txn_id, want->queue[i].txn_id)
            << "op " << op << " lock " << lock_id << " position " << i;
        EXPECT_EQ(rebuilt.queue[i].cancelled, want->queue[i].cancelled)
            << "op " << op;
      }
    }
    absl::StatusOr<uint64_t> blocks = reader.CountPoolBlocks();
    ASSERT_TRUE(blocks.ok());
    EXPECT_EQ(*blocks, model.QueuedBlocks()) << "op " << op;
  }

  // Both sides' view of one lock, for failure messages.
  std::string Dump(const LockEngine& model, uint64_t lock_id) {
    std::string out = "model:";
    if (const LockEngine::LockState* lock = model.Find(lock_id)) {
      absl::StrAppend(&out, " mode ", lock->mode, " min_txn ", lock->min_txn,
                      " holders");
      for (const auto& [txn, hold] : lock->holders)
        absl::StrAppend(&out, " ", txn, "/", hold.mode);
      absl::StrAppend(&out, " queue");
      for (const auto& w : lock->queue)
        absl::StrAppend(&out, " ", w.txn_id, "/", w.mode,
                        w.cancelled ? "c" : "");
    }
    TableReader reader(
        {datapath_->locks_fd(), datapath_->owners_fd(), datapath_->pool_fd()});
    absl::StatusOr<LockView> view = reader.Read(lock_id);
    absl::StrAppend(&out, "\ndatapath:");
    if (view.ok()) {
      absl::StrAppend(&out, " mode ", view->state.mode, " min_txn ",
                      view->state.min_txn, " holders");
      for (const auto& h : view->holders)
        absl::StrAppend(&out, " ", h.txn_id, "/", h.mode);
      absl::StrAppend(&out, " queue");
      for (const auto& w : view->queue)
        absl::StrAppend(&out, " ", w.waiter.txn_id, "/", w.waiter.mode,
                        w.waiter.cancelled ? "c" : "");
    }
    return out;
  }

  std::unique_ptr<Datapath> datapath_;
  std::optional<Deliverer> deliverer_;
};

TEST_F(DifferentialTest, DatapathMatchesModel) {
  LockEngine model(LockEngine::Config{kDefaultLeaseMs, kMaxLeaseMs});
  Generator generator(/*seed=*/20231);
  absl::StatusOr<StatCounters> before = datapath_->ReadStats();
  ASSERT_TRUE(before.ok());
  uint64_t grants_seen = 0;
  for (int op = 0; op < kOperations; ++op) {
    const Request r = generator.Next(model);
    const LockEngine::Outcome want = model.Apply(r, 0);
    std::optional<Bytes> reply;
    std::vector<Bytes> grants;
    ASSERT_NO_FATAL_FAILURE(Deliver(r, &reply, &grants));
    const std::string what =
        absl::StrCat("op ", op, ": ", ToMessage(r).ToString());

    ASSERT_EQ(reply.has_value(), want.reply.has_value()) << what;
    if (reply) {
      absl::StatusOr<Message> m = MessageOf(*reply);
      ASSERT_TRUE(m.ok()) << what << ": " << m.status();
      LockEngine::Reply got{static_cast<uint8_t>(m->opcode), m->status,
                            m->fence, m->queue_pos, m->lease_ms};
      ASSERT_EQ(got, *want.reply) << what << "\n" << Dump(model, r.lock_id);
      ASSERT_EQ(*reply, BuildFrame(ServerEndpoint(),
                                   ClientEndpoint(ClientOf(r.txn_id)), *m))
          << what << " (reply frame)";
      ASSERT_TRUE(m->lock_id == r.lock_id && m->txn_id == r.txn_id &&
                  m->seq == r.seq)
          << what;
    }
    ASSERT_EQ(grants.size(), want.grants.size()) << what;
    for (size_t i = 0; i < grants.size(); ++i) {
      absl::StatusOr<Message> m = MessageOf(grants[i]);
      ASSERT_TRUE(m.ok()) << what;
      const LockEngine::Grant& g = want.grants[i];
      LockEngine::Grant got{m->lock_id, m->txn_id, m->fence,
                            m->seq,     m->mode,   m->lease_ms};
      ASSERT_EQ(m->opcode, LOCKD_OP_GRANTED) << what;
      ASSERT_EQ(got, g) << what << " grant " << i;
      ASSERT_EQ(grants[i], BuildFrame(ServerEndpoint(),
                                      ClientEndpoint(ClientOf(g.txn_id)), *m))
          << what << " grant " << i << " frame";
    }
    grants_seen += grants.size();

    absl::StatusOr<StatCounters> after = datapath_->ReadStats();
    ASSERT_TRUE(after.ok());
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s) {
      const auto stat = static_cast<lockd_stat>(s);
      if (!LockEngine::IsModeledCounter(stat)) continue;
      ASSERT_EQ((*after)[s] - (*before)[s], want.counters[s])
          << what << ": counter " << StatName(stat);
    }
    before = after;
    ASSERT_TRUE(model.CheckInvariants().ok()) << what;
    if (op % kCheckpointEvery == kCheckpointEvery - 1) {
      ASSERT_NO_FATAL_FAILURE(ExpectSameState(model, op));
    }
  }
  ASSERT_NO_FATAL_FAILURE(ExpectSameState(model, kOperations));
  // The run must have reached the interesting paths.
  const LockEngine::Counters& totals = model.stats();
  for (lockd_stat s :
       {LOCKD_STAT_QUEUED, LOCKD_STAT_REJECT_CONFLICT, LOCKD_STAT_REJECT_DIE,
        LOCKD_STAT_UPGRADE, LOCKD_STAT_REJECT_UPGRADE, LOCKD_STAT_ACQUIRE_DUP,
        LOCKD_STAT_RELEASE_DUP, LOCKD_STAT_CANCELLED,
        LOCKD_STAT_SKIPPED_CANCELLED, LOCKD_STAT_REJECT_NOT_HOLDER,
        LOCKD_STAT_GRANT_FROM_QUEUE, LOCKD_STAT_RENEW, LOCKD_STAT_MALFORMED})
    EXPECT_GT(totals[s], 0u) << StatName(s) << " never happened";
  printf("%d operations, %lu grants from queue\n", kOperations, grants_seen);
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::CheckBpfAllowed(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
