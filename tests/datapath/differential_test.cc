// Randomized differential test: the same stream of requests goes to the real
// datapath (XDP, then TC for releases that wake waiters, KICKs drained back
// through TC; the daemon's control operations through the control program)
// and to the reference model. Every reply, every GRANTED packet (to the
// right client), every modeled counter, and at checkpoints every lock's full
// state, the lock count and the pool's blocks must agree.
//
// The table splits a bucket at 2 locks and merges buckets holding 1, over
// thousands of lock ids created and deleted: locks move between buckets,
// segments come and go, and nothing a client sees may change. UDP clients
// behave as the client library does: they echo tickets, flag their
// retransmissions, and sometimes lose a reply (and so their ticket). One
// client in eight is a gRPC caller instead, on the same locks: its requests
// run through the control program as the daemon's LockService runs them
// (LOCAL members, no ticket), and its grants come back as events.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <map>
#include <random>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/lock_model.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/test_datapath.h"

namespace lockd::testing {
namespace {

constexpr int kOperations = 150'000;
constexpr int kClients = 64;
constexpr int kHotLocks = 4;
constexpr uint64_t kHotBase = 500;
constexpr uint64_t kChurnBase = 1'000'000;
constexpr int kChurnLocks = 3000;
constexpr int kCheckpointEvery = 1000;
constexpr int kPhase = 25'000;  // operations filling, then draining
// Leases that never lapse during the run: the kernel's clock cannot be
// shared with the model (the scenarios cover expiry).
constexpr uint32_t kDefaultLeaseMs = 3'600'000;
constexpr uint32_t kMaxLeaseMs = 7'200'000;
// Both tables' fence base: fences below it are reclaimed ones, the same in
// both; above it one offset per incarnation of a lock tells them apart.
constexpr uint64_t kFenceBase = uint64_t{1} << 40;
// The datapath's epoch, that of its fence base.
const uint32_t kEpoch = lockd_epoch_of(kFenceBase);
// A grace period (reclaims only) for this many operations of every
// kGraceEvery.
constexpr int kGraceEvery = 20'000;
constexpr int kGraceOps = 5'000;

using OwnerKey = std::pair<uint64_t, uint64_t>;

int ClientOf(uint64_t txn) { return static_cast<int>(txn % kClients); }

// Clients 0, 8, 16, ... are gRPC callers inside the daemon.
bool IsGrpc(int client) { return client % 8 == 0; }

// What the test sends: a message, and for the datapath its ticket.
struct Step {
  enum Kind { kRequest, kControl } kind = kRequest;
  Message m;        // kRequest
  lockd_ctl ctl{};  // kControl
  bool lost_ticket = false;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  // A holder acts (releases, upgrades, renews), as clients in a critical
  // section do, or anyone asks anything. Phases alternate: while `filling`
  // holders act rarely and locks pile up (buckets split), then often and
  // they go (buckets merge).
  Step Next(const LockModel& model, bool filling, bool grace) {
    std::vector<OwnerKey> holders;
    for (const auto& [lock_id, lock] : model.locks())
      for (const auto& [txn, hold] : lock.holders)
        holders.emplace_back(lock_id, txn);
    const bool holder_acts =
        !holders.empty() && rng_() % 100 < (filling ? 15u : 75u);
    const OwnerKey key =
        holder_acts ? holders[rng_() % holders.size()] : RandomOwner();
    const auto [lock, txn] = key;
    Step step;
    const uint32_t dice = rng_() % 1000;
    if (dice < 100 && last_.count(key)) {  // a retransmission
      step.m = last_[key];
      step.m.flags |= LOCKD_FLAG_RETRANSMIT;
      step.lost_ticket = rng_() % 3 == 0;
      return step;
    }
    if (dice < 120) {  // the daemon or an operator
      step.kind = Step::kControl;
      const uint32_t op = rng_() % 3;
      step.ctl.op = op == 0   ? LOCKD_CTL_EXPIRE_HOLDER
                    : op == 1 ? LOCKD_CTL_EXPIRE_WAITER
                              : LOCKD_CTL_FORCE_RELEASE;
      step.ctl.req.lock_id = lock;
      step.ctl.req.txn_id = txn;
      step.ctl.req.fence = rng_() % 2 ? 0 : rng_() % 8;
      return step;
    }
    Message& m = step.m;
    m.lock_id = lock;
    m.txn_id = txn;
    m.seq = ++next_seq_[ClientOf(txn)];
    const uint32_t op = holder_acts ? 50 + rng_() % 50 : rng_() % 100;
    if (holder_acts && op >= 90) {
      m.opcode = LOCKD_OP_ACQUIRE;  // an upgrade, or a covered re-acquire
      m.mode = LOCKD_MODE_EXCLUSIVE;
    } else if (op < 50) {
      m.opcode = LOCKD_OP_ACQUIRE;
      m.mode = rng_() % 5 < 3 ? LOCKD_MODE_SHARED : LOCKD_MODE_EXCLUSIVE;
      const uint32_t p = rng_() % 10;
      m.policy = p < 6   ? LOCKD_POLICY_WAIT
                 : p < 8 ? LOCKD_POLICY_NO_WAIT
                         : LOCKD_POLICY_WAIT_DIE;
      static constexpr uint32_t kLeases[] = {0, 60'000, 9'000'000};
      m.lease_ms = kLeases[rng_() % 3];
      m.wait_ms = rng_() % 4 == 0 ? 500'000 : 0;
      // Reclaims: most ACQUIREs in grace, a few after it (refused). Each
      // with a fence of its own, as holds of an earlier table have.
      if (rng_() % 100 < (grace ? 70u : 3u)) {
        m.flags = LOCKD_FLAG_RECLAIM;
        m.policy = LOCKD_POLICY_NO_WAIT;
        m.fence = ++reclaimed_fence_;
      }
    } else if (op < 92) {
      m.opcode = LOCKD_OP_RELEASE;
      if (rng_() % 50 == 0) m.seq -= 1 + rng_() % 3;  // a late, stale copy
    } else if (op < 99) {
      m.opcode = LOCKD_OP_RENEW;
      m.lease_ms = rng_() % 2 ? 0 : 120'000;
    } else {
      m.opcode = LOCKD_OP_ACQUIRE;  // malformed: mode out of range
      m.mode = static_cast<lockd_mode>(3 + rng_() % 5);
      return step;
    }
    last_[key] = m;
    return step;
  }

 private:
  OwnerKey RandomOwner() {
    const uint64_t txn = 1 + rng_() % (kClients * 32);
    if (rng_() % 3 == 0) return {kHotBase + rng_() % kHotLocks, txn};
    return {kChurnBase + rng_() % kChurnLocks, txn};
  }

  std::mt19937_64 rng_;
  std::map<int, uint32_t> next_seq_;
  std::map<OwnerKey, Message> last_;
  uint64_t reclaimed_fence_ = 0;
};

class DifferentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatapathOptions options;
    options.default_lease_ms = kDefaultLeaseMs;
    options.max_lease_ms = kMaxLeaseMs;
    options.split_at = 2;
    options.merge_at = 1;
    options.hash_seed = 0xd1ff;
    options.fence_base = kFenceBase;
    SegmentOptions segments;
    segments.pool_min_blocks = 64;  // the pool grows and shrinks too
    segments.idle_grace = absl::ZeroDuration();
    absl::StatusOr<TestDatapath> dp = TestDatapath::Create(options, segments);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::make_unique<TestDatapath>(std::move(*dp));
    absl::StatusOr<Deliverer> d = Deliverer::Create(dp_->datapath.get());
    ASSERT_TRUE(d.ok()) << d.status();
    deliverer_.emplace(std::move(*d));
  }

  // The datapath's fence for the model's: one offset per incarnation of a
  // lock (the model continues from the last fence, the datapath from its
  // bucket's floor), and incarnations only go up.
  void CheckFence(uint64_t lock, uint64_t model_fence, uint64_t dp_fence,
                  const std::string& what) {
    if (model_fence < kFenceBase) {  // a reclaimed hold keeps its own
      ASSERT_EQ(dp_fence, model_fence) << what << ": a reclaimed fence";
      return;
    }
    auto [it, fresh] = offset_.emplace(lock, 0);
    if (fresh) {
      ASSERT_GT(dp_fence, last_dp_fence_[lock])
          << what << ": a re-created lock's fence went back";
      it->second = static_cast<int64_t>(dp_fence - model_fence);
    }
    ASSERT_EQ(static_cast<int64_t>(dp_fence - model_fence), it->second)
        << what << ": fence " << dp_fence << " for the model's " << model_fence;
    last_dp_fence_[lock] = std::max(last_dp_fence_[lock], dp_fence);
  }

  void CheckReply(const lockd_reply& want, const Message& got,
                  const std::string& what) {
    ASSERT_EQ(got.opcode, want.opcode) << what << " got " << got;
    ASSERT_EQ(got.status, want.status) << what << " got " << got;
    ASSERT_EQ(got.queue_pos, want.queue_pos) << what << " got " << got;
    // GRACE's lease_ms is the grace left, on each side's own clock.
    if (want.status != LOCKD_STATUS_GRACE) {
      ASSERT_EQ(got.lease_ms, want.lease_ms) << what << " got " << got;
    }
    ASSERT_EQ(got.txn_id, want.txn_id) << what;
    ASSERT_EQ(got.seq, want.seq) << what;
    ASSERT_EQ(got.fence == 0, want.fence == 0) << what << " got " << got;
    if (want.fence != 0) {
      ASSERT_NO_FATAL_FAILURE(
          CheckFence(got.lock_id, want.fence, got.fence, what));
    }
    if (got.opcode == LOCKD_OP_GRANTED || got.opcode == LOCKD_OP_QUEUED)
      tickets_[{got.lock_id, got.txn_id}] = got.ticket;
  }

  // The datapath counters that moved since the last request.
  std::string Moved() {
    absl::StatusOr<StatCounters> now = dp_->datapath->ReadStats();
    if (!now.ok()) return std::string(now.status().message());
    std::string out;
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s)
      if ((*now)[s] != before_[s])
        absl::StrAppend(&out, StatName(static_cast<lockd_stat>(s)), "=",
                        (*now)[s] - before_[s], " ");
    return out;
  }

  // The lock as the maps show it, and the table's shape, for messages.
  std::string Describe(uint64_t lock_id) {
    absl::StatusOr<LockView> v = dp_->table->Read(lock_id);
    const lockd_config* cfg = dp_->datapath->config();
    std::string out = absl::StrCat(
        v.ok() ? absl::StrCat("holders ", v->holders.size(), " queue ",
                              v->queue.size())
               : std::string(v.status().message()),
        "; depths ", cfg->min_depth, "..", cfg->max_depth, " leaves");
    for (int d = 0; d <= LOCKD_TABLE_MAX_DEPTH; ++d)
      if (cfg->leaves[d]) absl::StrAppend(&out, " ", d, ":", cfg->leaves[d]);
    return out;
  }

  // The notices of a control operation's run, and of the KICK the daemon
  // runs when the run stopped at LOCKD_MAX_GRANTS.
  void TakeControlNotices(const lockd_ctl& got, const std::string& what,
                          std::vector<std::pair<int, Message>>* notices) {
    for (uint32_t i = 0; i < got.notices; ++i) {
      Message n = FromReply(got.notice[i].reply, kEpoch);
      notices->emplace_back(ClientOf(n.txn_id), n);
    }
    if (!got.kick) return;
    lockd_ctl kick{};
    kick.op = LOCKD_CTL_REQUEST;
    kick.req.opcode = LOCKD_OP_KICK;
    kick.req.lock_id = got.req.lock_id;
    absl::StatusOr<lockd_ctl> more = dp_->table->Execute(kick);
    ASSERT_TRUE(more.ok()) << what;
    for (uint32_t i = 0; i < more->notices; ++i) {
      Message n = FromReply(more->notice[i].reply, kEpoch);
      notices->emplace_back(ClientOf(n.txn_id), n);
    }
    ASSERT_EQ(more->kick, 0u) << what;
  }

  // Forgets the fence offsets of locks the model deleted.
  void Settle() {
    for (auto it = offset_.begin(); it != offset_.end();)
      it = model_.Find(it->first) ? std::next(it) : offset_.erase(it);
  }

  void Apply(const Step& step, int op) {
    const std::string what = absl::StrCat(
        "op ", op, ": ",
        step.kind == Step::kRequest
            ? step.m.ToString()
            : absl::StrCat("control ", step.ctl.op, " lock ",
                           step.ctl.req.lock_id, " txn ", step.ctl.req.txn_id));
    std::vector<lockd_notice> want_notices;
    LockModel::Counters want_counters{};
    std::vector<std::pair<int, Message>> got_notices;
    if (step.kind == Step::kRequest && IsGrpc(ClientOf(step.m.txn_id))) {
      // As LockService asks: a LOCAL member with no address, no ticket,
      // ACQUIREs flagged (a caller's retry finds its record).
      lockd_request req = ToRequest(step.m, lockd_endpoint{});
      req.member_flags = LOCKD_MEMBER_LOCAL;
      req.ticket = 0;
      if (req.opcode == LOCKD_OP_ACQUIRE) req.flags |= LOCKD_FLAG_RETRANSMIT;
      LockModel::Outcome want = model_.Apply(req, 0);
      lockd_ctl ctl{};
      ctl.op = LOCKD_CTL_REQUEST;
      ctl.req = req;
      absl::StatusOr<lockd_ctl> got = dp_->table->Execute(ctl);
      ASSERT_TRUE(got.ok()) << what << ": " << got.status();
      ASSERT_EQ(got->result == LOCKD_CTL_OK, want.reply.has_value()) << what;
      ASSERT_EQ(got->result == LOCKD_CTL_MALFORMED,
                want.counters[LOCKD_STAT_MALFORMED] == 1)
          << what;
      if (want.reply) {
        ASSERT_NO_FATAL_FAILURE(
            CheckReply(*want.reply, FromReply(got->reply, kEpoch), what));
      }
      ASSERT_NO_FATAL_FAILURE(TakeControlNotices(*got, what, &got_notices));
      want_notices = want.notices;
      want_counters = want.counters;
    } else if (step.kind == Step::kRequest) {
      const int client = ClientOf(step.m.txn_id);
      LockModel::Outcome want =
          model_.Apply(ToRequest(step.m, ClientAbiEndpoint(client)), 0);
      Message m = step.m;
      auto ticket = tickets_.find({m.lock_id, m.txn_id});
      m.ticket =
          step.lost_ticket || ticket == tickets_.end() ? 0 : ticket->second;
      std::vector<Bytes> grants;
      absl::StatusOr<Delivery> d = deliverer_->DeliverAll(
          BuildFrame(ClientEndpoint(client), ServerEndpoint(), m), &grants);
      ASSERT_TRUE(d.ok()) << what << ": " << d.status();
      ASSERT_EQ(Answered(*d), want.reply.has_value())
          << what << "; datapath counters moved: " << Moved()
          << "; the lock: " << Describe(m.lock_id);
      if (want.reply) {
        absl::StatusOr<Message> reply = MessageOf(d->out);
        ASSERT_TRUE(reply.ok()) << what;
        ASSERT_EQ(d->out,
                  BuildFrame(ServerEndpoint(), ClientEndpoint(client), *reply))
            << what << " (reply frame)";
        ASSERT_NO_FATAL_FAILURE(CheckReply(*want.reply, *reply, what));
      }
      for (const Bytes& frame : grants) {
        absl::StatusOr<Message> g = MessageOf(frame);
        ASSERT_TRUE(g.ok()) << what;
        got_notices.emplace_back(ClientOf(g->txn_id), *g);
        ASSERT_EQ(frame, BuildFrame(ServerEndpoint(),
                                    ClientEndpoint(ClientOf(g->txn_id)), *g))
            << what << " (grant frame)";
      }
      want_notices = want.notices;
      want_counters = want.counters;
    } else {
      lockd_ctl want = model_.Execute(step.ctl, 0, &want_counters);
      // A fence names a hold in each one's numbering.
      lockd_ctl ctl = step.ctl;
      if (ctl.req.fence != 0 && offset_.count(ctl.req.lock_id))
        ctl.req.fence += offset_[ctl.req.lock_id];
      absl::StatusOr<lockd_ctl> got = dp_->table->Execute(ctl);
      ASSERT_TRUE(got.ok()) << what << ": " << got.status();
      ASSERT_EQ(got->result, want.result) << what;
      ASSERT_EQ(got->reply.fence == 0, want.reply.fence == 0) << what;
      ASSERT_NO_FATAL_FAILURE(TakeControlNotices(*got, what, &got_notices));
      want_notices.assign(want.notice, want.notice + want.notices);
    }
    // Grants of gRPC callers that a packet caused came as events.
    dp_->local_notices.clear();
    absl::StatusOr<int> grown = dp_->ServeGrowth();
    ASSERT_TRUE(grown.ok()) << what << ": " << grown.status();
    for (const lockd_notice& n : dp_->local_notices) {
      ASSERT_TRUE(n.local) << what;
      got_notices.emplace_back(ClientOf(n.reply.txn_id),
                               FromReply(n.reply, kEpoch));
    }
    // Each kind of member in the order the model told it (packets and
    // events are two streams).
    for (const bool grpc : {false, true}) {
      std::vector<std::pair<int, Message>> got;
      std::vector<lockd_notice> want;
      for (const auto& n : got_notices)
        if (IsGrpc(n.first) == grpc) got.push_back(n);
      for (const lockd_notice& n : want_notices)
        if (IsGrpc(ClientOf(n.reply.txn_id)) == grpc) {
          ASSERT_EQ(n.local != 0, grpc) << what;
          want.push_back(n);
        }
      ASSERT_EQ(got.size(), want.size()) << what << (grpc ? " (gRPC)" : "");
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].first, ClientOf(want[i].reply.txn_id))
            << what << " notice " << i;
        ASSERT_NO_FATAL_FAILURE(CheckReply(want[i].reply, got[i].second,
                                           absl::StrCat(what, " notice ", i)));
      }
    }
    absl::StatusOr<StatCounters> after = dp_->datapath->ReadStats();
    ASSERT_TRUE(after.ok());
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s) {
      const auto stat = static_cast<lockd_stat>(s);
      if (!LockModel::IsModeledCounter(stat)) continue;
      ASSERT_EQ((*after)[s] - before_[s], want_counters[s])
          << what << ": counter " << StatName(stat);
    }
    before_ = *after;
    Settle();
  }

  void ExpectSameState(int op) {
    absl::StatusOr<std::vector<LockSummary>> listed = dp_->table->ListAll();
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_EQ(listed->size(), model_.locks().size()) << "op " << op;
    uint64_t blocks = 0;
    for (const LockSummary& s : *listed) {
      const LockModel::LockState* want = model_.Find(s.lock_id);
      ASSERT_NE(want, nullptr) << "op " << op << ": lock " << s.lock_id;
      absl::StatusOr<LockView> got = dp_->table->Read(s.lock_id);
      ASSERT_TRUE(got.ok()) << got.status();
      const std::string what = absl::StrCat("op ", op, " lock ", s.lock_id);
      ASSERT_EQ(got->state.mode, want->mode) << what;
      ASSERT_EQ(got->state.min_txn, want->min_txn) << what;
      ASSERT_EQ((got->state.flags & LOCKD_LOCK_MIN_DIRTY) != 0, want->min_dirty)
          << what;
      ASSERT_NO_FATAL_FAILURE(
          CheckFence(s.lock_id, want->fence, got->state.fence, what));
      ASSERT_EQ(got->holders.size(), want->holders.size()) << what;
      for (const MemberView& h : got->holders) {
        auto it = want->holders.find(h.m.txn_id);
        ASSERT_TRUE(it != want->holders.end()) << what << " txn " << h.m.txn_id;
        ASSERT_EQ(h.m.mode, it->second.mode) << what;
        ASSERT_NO_FATAL_FAILURE(
            CheckFence(s.lock_id, it->second.fence, h.m.fence, what));
        if (h.ticket != LOCKD_TICKET_INLINE) ++blocks;
      }
      ASSERT_EQ(got->queue.size(), want->queue.size()) << what;
      for (size_t i = 0; i < want->queue.size(); ++i) {
        EXPECT_EQ(got->queue[i].m.txn_id, want->queue[i].txn_id)
            << what << " position " << i;
        EXPECT_EQ(got->queue[i].m.state == LOCKD_MEMBER_CANCELLED,
                  want->queue[i].cancelled)
            << what << " position " << i;
      }
      blocks += got->queue.size();
    }
    ASSERT_EQ(dp_->PoolBlocks(), blocks)
        << "op " << op << ": pool blocks against queue and chain entries";
  }

  // In grace or not, in both: the model's clock stays at 0, so a grace
  // period is one that ends at 1 ns.
  void SetGrace(bool on) {
    model_.SetGraceUntil(on ? 1 : 0);
    dp_->datapath->config()->grace_until_ns = on ? ~uint64_t{0} : 0;
  }

  LockModel model_{LockModel::Config{kDefaultLeaseMs, kMaxLeaseMs,
                                     LOCKD_DEFAULT_CLIENT_QUOTA, kFenceBase}};
  std::unique_ptr<TestDatapath> dp_;
  std::optional<Deliverer> deliverer_;
  StatCounters before_{};
  std::map<OwnerKey, uint64_t> tickets_;
  std::map<uint64_t, int64_t> offset_;
  std::map<uint64_t, uint64_t> last_dp_fence_;
};

TEST_F(DifferentialTest, DatapathMatchesModel) {
  Generator generator(/*seed=*/20231);
  absl::StatusOr<StatCounters> start = dp_->datapath->ReadStats();
  ASSERT_TRUE(start.ok());
  before_ = *start;
  for (int op = 0; op < kOperations; ++op) {
    const bool grace = op % kGraceEvery >= kGraceEvery - kGraceOps;
    if (op % kGraceEvery == kGraceEvery - kGraceOps || op % kGraceEvery == 0)
      SetGrace(grace);
    const Step step = generator.Next(model_, op / kPhase % 2 == 0, grace);
    ASSERT_NO_FATAL_FAILURE(Apply(step, op));
    if (op % kCheckpointEvery == kCheckpointEvery - 1) {
      ASSERT_TRUE(model_.CheckInvariants().ok()) << "op " << op;
      ASSERT_NO_FATAL_FAILURE(ExpectSameState(op));
      // What the daemon does about once a second: give idle memory back.
      absl::Status tidied = dp_->segments->Tidy(absl::Now());
      ASSERT_TRUE(tidied.ok()) << tidied;
    }
  }
  ASSERT_NO_FATAL_FAILURE(ExpectSameState(kOperations));
  absl::StatusOr<StatCounters> end = dp_->datapath->ReadStats();
  ASSERT_TRUE(end.ok());
  const StatCounters& c = *end;
  // The run must have reached the interesting paths, in both.
  for (lockd_stat s :
       {LOCKD_STAT_QUEUED, LOCKD_STAT_REJECT_CONFLICT, LOCKD_STAT_REJECT_DIE,
        LOCKD_STAT_UPGRADE, LOCKD_STAT_REJECT_UPGRADE, LOCKD_STAT_ACQUIRE_DUP,
        LOCKD_STAT_RELEASE_DUP, LOCKD_STAT_CANCELLED,
        LOCKD_STAT_SKIPPED_CANCELLED, LOCKD_STAT_REJECT_NOT_HOLDER,
        LOCKD_STAT_GRANT_FROM_QUEUE, LOCKD_STAT_RENEW, LOCKD_STAT_MALFORMED,
        LOCKD_STAT_FORCE_RELEASED, LOCKD_STAT_LOCK_CREATED,
        LOCKD_STAT_LOCK_FREED, LOCKD_STAT_REJECT_GRACE, LOCKD_STAT_RECLAIMED,
        LOCKD_STAT_REJECT_RECLAIM})
    EXPECT_GT(model_.stats()[s], 0u) << StatName(s) << " never happened";
  // ... and the datapath's own machinery: searches for lost tickets, walks
  // for WAIT_DIE's oldest member, splits and merges of the table, growth of
  // the pool.
  for (lockd_stat s :
       {LOCKD_STAT_MEMBER_SEARCH, LOCKD_STAT_MIN_WALK, LOCKD_STAT_SPLIT,
        LOCKD_STAT_MERGE, LOCKD_STAT_POOL_ALLOC})
    EXPECT_GT(c[s], 0u) << StatName(s) << " never happened";
  EXPECT_GT(c[LOCKD_STAT_GRANT_LOCAL], 0u) << "no gRPC caller granted by TC";
  EXPECT_EQ(c[LOCKD_STAT_CONTENDED], 0u);
  EXPECT_EQ(c[LOCKD_STAT_TABLE_WAIT], 0u);
  EXPECT_EQ(c[LOCKD_STAT_POOL_WAIT], 0u);
  printf(
      "%d operations: %lu locks created, %lu splits, %lu merges, %lu "
      "searches, %lu WAIT_DIE walks, %lu growth requests served\n",
      kOperations, c[LOCKD_STAT_LOCK_CREATED], c[LOCKD_STAT_SPLIT],
      c[LOCKD_STAT_MERGE], c[LOCKD_STAT_MEMBER_SEARCH], c[LOCKD_STAT_MIN_WALK],
      dp_->growth_requests);
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
