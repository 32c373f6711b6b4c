// The scenario driver over the reference model, on a virtual clock.
#include <arpa/inet.h>

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "tests/datapath/packet.h"
#include "tests/scenarios/scenario.h"

namespace lockd::testing {
namespace {

int ClientOf(const lockd_endpoint& ep) {
  return static_cast<int>(ntohl(ep.addr) - ClientEndpoint(0).addr);
}

std::vector<Notice> NoticesOf(const lockd_notice* notices, size_t count) {
  std::vector<Notice> out;
  for (size_t i = 0; i < count; ++i)
    out.push_back(Notice{ClientOf(notices[i].to), notices[i].reply});
  return out;
}

class ModelDriver : public Driver {
 public:
  std::string name() const override { return "model"; }
  bool SignsReplies() const override { return false; }

  absl::Status Reset(const ScenarioOptions& options) override {
    now_ns_ = uint64_t{1} << 40;
    model_ = std::make_unique<LockModel>(LockModel::Config{
        options.default_lease_ms, options.max_lease_ms, options.client_quota,
        options.fence_base,
        options.grace_ms ? now_ns_ + uint64_t{options.grace_ms} * 1000000 : 0});
    sent_.clear();
    return absl::OkStatus();
  }

  absl::StatusOr<Outcome> Request(int client, const Message& request, bool,
                                  std::optional<ClientKey> key) override {
    Message m = request;
    if (key) m.mac = MessageMac(Encode(m), *key);
    sent_[client].push_back(m);
    return Replay(client, 0);
  }

  absl::StatusOr<Outcome> Replay(int client, size_t n) override {
    const std::vector<Message>& sent = sent_[client];
    if (n > sent.size() || sent.empty())
      return absl::InvalidArgumentError("replay: no such request");
    const EncodedMessage bytes = Encode(sent[n == 0 ? sent.size() - 1 : n - 1]);
    lockd_msg wire;
    std::memcpy(&wire, bytes.data(), sizeof(wire));
    LockModel::Outcome o =
        model_->ApplyWire(wire, ClientAbiEndpoint(client), now_ns_);
    Outcome out;
    out.reply = o.reply;
    out.notices = NoticesOf(o.notices.data(), o.notices.size());
    return out;
  }

  absl::StatusOr<ControlOutcome> Control(const lockd_ctl& command) override {
    lockd_ctl done = model_->Execute(command, now_ns_);
    return ControlOutcome{done.result, done.reply.fence,
                          NoticesOf(done.notice, done.notices)};
  }

  void Sleep(absl::Duration d) override {
    now_ns_ += static_cast<uint64_t>(absl::ToInt64Nanoseconds(d));
  }

  absl::StatusOr<std::optional<LockDump>> State(uint64_t lock_id) override {
    const LockModel::LockState* lock = model_->Find(lock_id);
    if (lock == nullptr) return std::optional<LockDump>();
    if (absl::Status s = LockModel::CheckLockInvariants(lock_id, *lock);
        !s.ok())
      return s;
    LockDump d;
    d.mode = lock->mode;
    d.fence = lock->fence;
    d.min_txn = lock->min_txn;
    d.min_dirty = lock->min_dirty;
    for (const auto& [txn, hold] : lock->holders)
      d.holders.push_back(MemberDump{txn, hold.mode, hold.fence, false});
    std::sort(d.holders.begin(), d.holders.end(),
              [](const MemberDump& a, const MemberDump& b) {
                return a.fence < b.fence;
              });
    for (const LockModel::Waiter& w : lock->queue)
      d.queue.push_back(MemberDump{w.txn_id, w.mode, 0, w.cancelled});
    return std::optional<LockDump>(d);
  }

  absl::StatusOr<TableDump> Table() override {
    if (absl::Status s = model_->CheckInvariants(); !s.ok()) return s;
    return TableDump{model_->locks().size(), model_->QueuedBlocks()};
  }

  absl::StatusOr<LockModel::Counters> Counters() override {
    LockModel::Counters c = model_->stats();
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s)
      if (!LockModel::IsModeledCounter(static_cast<lockd_stat>(s))) c[s] = 0;
    return c;
  }

 private:
  std::unique_ptr<LockModel> model_;
  std::map<int, std::vector<Message>> sent_;  // as sent, MACs included
  uint64_t now_ns_ = 0;
};

}  // namespace

std::unique_ptr<Driver> MakeModelDriver() {
  return std::make_unique<ModelDriver>();
}

}  // namespace lockd::testing
