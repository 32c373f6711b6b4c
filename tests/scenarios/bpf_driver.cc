// The scenario driver over the BPF datapath: requests are frames from
// client endpoints run through XDP and TC (BPF_PROG_TEST_RUN), grants are
// the clones TC sends, control operations run the control program, state is
// read from the maps.
#include <arpa/inet.h>

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/datapath/test_datapath.h"
#include "tests/scenarios/scenario.h"

namespace lockd::testing {
namespace {

lockd_reply ReplyOf(const Message& m) {
  lockd_reply r{};
  r.lock_id = m.lock_id;
  r.txn_id = m.txn_id;
  r.fence = m.fence;
  r.ticket = m.ticket;
  r.seq = m.seq;
  r.client_id = m.client_id;
  r.mac = m.mac;
  r.lease_ms = m.lease_ms;
  r.queue_pos = m.queue_pos;
  r.opcode = m.opcode;
  r.status = m.status;
  r.mode = m.mode;
  r.policy = m.policy;
  return r;
}

int ClientOfFrame(const Bytes& frame) {
  // Destination IPv4 address: Ethernet 14 + 16 into the IP header.
  uint32_t addr = 0;
  for (int i = 0; i < 4; ++i) addr = addr << 8 | frame[14 + 16 + i];
  return static_cast<int>(addr - ClientEndpoint(0).addr);
}

int ClientOf(const lockd_endpoint& ep) {
  return static_cast<int>(ntohl(ep.addr) - ClientEndpoint(0).addr);
}

class BpfDriver : public Driver {
 public:
  std::string name() const override { return "bpf"; }
  bool SignsReplies() const override { return true; }

  absl::Status Reset(const ScenarioOptions& options) override {
    deliverer_.reset();
    dp_.reset();
    DatapathOptions o;
    o.default_lease_ms = options.default_lease_ms;
    o.max_lease_ms = options.max_lease_ms;
    o.split_at = options.split_at;
    o.merge_at = options.merge_at;
    o.client_quota = static_cast<uint32_t>(options.client_quota);
    o.hash_seed = 0x5eed;
    o.fence_base = options.fence_base;
    o.grace_ms = options.grace_ms;
    absl::StatusOr<TestDatapath> dp = TestDatapath::Create(o);
    if (!dp.ok()) return dp.status();
    dp_ = std::make_unique<TestDatapath>(std::move(*dp));
    absl::StatusOr<Deliverer> d = Deliverer::Create(dp_->datapath.get());
    if (!d.ok()) return d.status();
    deliverer_ = std::make_unique<Deliverer>(std::move(*d));
    tickets_.clear();
    sent_.clear();
    return absl::OkStatus();
  }

  absl::StatusOr<Outcome> Request(int client, const Message& request,
                                  bool without_ticket,
                                  std::optional<ClientKey> key) override {
    Message m = request;
    auto ticket = tickets_.find({m.lock_id, m.txn_id});
    m.ticket = without_ticket || ticket == tickets_.end() ? 0 : ticket->second;
    if (key) m.mac = MessageMac(Encode(m), *key);
    sent_[client].push_back(m);
    return Send(client, m);
  }

  absl::StatusOr<Outcome> Replay(int client, size_t n) override {
    const std::vector<Message>& sent = sent_[client];
    if (n > sent.size() || sent.empty())
      return absl::InvalidArgumentError("replay: no such request");
    return Send(client, sent[n == 0 ? sent.size() - 1 : n - 1]);
  }

  absl::StatusOr<Outcome> Send(int client, const Message& m) {
    std::vector<Bytes> grants;
    absl::StatusOr<Delivery> d = deliverer_->DeliverAll(
        BuildFrame(ClientEndpoint(client), ServerEndpoint(), m), &grants);
    if (!d.ok()) return d.status();
    if (absl::StatusOr<int> grown = dp_->ServeGrowth(); !grown.ok())
      return grown.status();
    Outcome out;
    if (Answered(*d)) {
      absl::StatusOr<Message> reply = MessageOf(d->out);
      if (!reply.ok()) return reply.status();
      if (d->out !=
          BuildFrame(ServerEndpoint(), ClientEndpoint(client), *reply))
        return absl::InternalError(absl::StrCat(
            "reply frame is not addressed back as built: ",
            DiffFrames(
                BuildFrame(ServerEndpoint(), ClientEndpoint(client), *reply),
                d->out)));
      Remember(*reply);
      out.reply = ReplyOf(*reply);
    }
    for (const Bytes& frame : grants) {
      absl::StatusOr<Message> g = MessageOf(frame);
      if (!g.ok()) return g.status();
      Remember(*g);
      out.notices.push_back(Notice{ClientOfFrame(frame), ReplyOf(*g)});
    }
    return out;
  }

  absl::StatusOr<ControlOutcome> Control(const lockd_ctl& command) override {
    absl::StatusOr<lockd_ctl> done = dp_->table->Execute(command);
    if (!done.ok()) return done.status();
    ControlOutcome out{done->result, done->reply.fence, {}};
    for (uint32_t i = 0; i < done->notices && i < LOCKD_MAX_GRANTS; ++i) {
      const lockd_notice& n = done->notice[i];
      out.notices.push_back(Notice{ClientOf(n.to), n.reply});
    }
    return out;
  }

  void Sleep(absl::Duration d) override { absl::SleepFor(d); }

  absl::StatusOr<std::optional<LockDump>> State(uint64_t lock_id) override {
    absl::StatusOr<LockView> view = dp_->table->Read(lock_id);
    if (absl::IsNotFound(view.status())) return std::optional<LockDump>();
    if (!view.ok()) return view.status();
    LockDump d;
    d.mode = view->state.mode;
    d.fence = view->state.fence;
    d.min_txn = view->state.min_txn;
    d.min_dirty = (view->state.flags & LOCKD_LOCK_MIN_DIRTY) != 0;
    for (const MemberView& h : view->holders)
      d.holders.push_back(MemberDump{h.m.txn_id, h.m.mode, h.m.fence, false});
    for (const MemberView& w : view->queue)
      d.queue.push_back(MemberDump{w.m.txn_id, w.m.mode, 0,
                                   w.m.state == LOCKD_MEMBER_CANCELLED});
    return std::optional<LockDump>(d);
  }

  // Also checks that every pool block in use belongs to a queue or a chain:
  // nothing leaked, nothing freed twice.
  absl::StatusOr<TableDump> Table() override {
    absl::StatusOr<std::vector<LockSummary>> locks = dp_->table->ListAll();
    if (!locks.ok()) return locks.status();
    TableDump t{locks->size(), 0};
    uint64_t blocks = 0;
    for (const LockSummary& s : *locks) {
      absl::StatusOr<LockView> v = dp_->table->Read(s.lock_id);
      if (!v.ok()) return v.status();
      t.queue_entries += v->queue.size();
      blocks += v->queue.size();
      for (const MemberView& h : v->holders)
        if (h.ticket != LOCKD_TICKET_INLINE) ++blocks;
    }
    if (blocks != dp_->PoolBlocks())
      return absl::InternalError(absl::StrCat("pool holds ", dp_->PoolBlocks(),
                                              " blocks, locks link ", blocks));
    return t;
  }

  absl::StatusOr<LockModel::Counters> Counters() override {
    absl::StatusOr<StatCounters> stats = dp_->datapath->ReadStats();
    if (!stats.ok()) return stats.status();
    LockModel::Counters c{};
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s)
      if (LockModel::IsModeledCounter(static_cast<lockd_stat>(s)))
        c[s] = (*stats)[s];
    return c;
  }

 private:
  // A client keeps the ticket of its owner's last GRANTED or QUEUED.
  void Remember(const Message& m) {
    if (m.opcode == LOCKD_OP_GRANTED || m.opcode == LOCKD_OP_QUEUED)
      tickets_[{m.lock_id, m.txn_id}] = m.ticket;
  }

  std::unique_ptr<TestDatapath> dp_;
  std::unique_ptr<Deliverer> deliverer_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> tickets_;
  // What each client sent, MAC and ticket included.
  std::map<int, std::vector<Message>> sent_;
};

}  // namespace

std::unique_ptr<Driver> MakeBpfDriver() {
  return std::make_unique<BpfDriver>();
}

}  // namespace lockd::testing
