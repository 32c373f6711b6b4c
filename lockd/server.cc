#include "lockd/server.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "abi/codec.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "lockd/files.h"
#include "lockd/table_reader.h"

namespace lockd {
namespace {

constexpr size_t kMaxDatagram = 2048;
constexpr int kMaxKicks = 64;
constexpr uint64_t kNsPerMs = 1000000;
constexpr absl::Duration kCancelPoll = absl::Milliseconds(100);

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of bpf_ktime_get_ns
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// Where a member's messages go: a UDP client, or a gRPC call in this
// process (addr and port 0).
struct Endpoint {
  uint32_t addr = 0;                   // network order
  uint16_t port = 0;                   // network order
  uint8_t policy = LOCKD_POLICY_WAIT;  // echoed in its GRANTED
  bool grpc() const { return addr == 0 && port == 0; }
  std::string Name() const {
    if (grpc()) return "grpc";
    char text[INET_ADDRSTRLEN];
    in_addr a{addr};
    inet_ntop(AF_INET, &a, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(port));
  }
};

using OwnerKey = std::pair<uint64_t, uint64_t>;  // lock_id, txn_id

// What a waiter is sent when it becomes a holder.
Message GrantedMessage(uint64_t lock_id, uint64_t txn_id, uint64_t fence,
                       uint32_t seq, uint8_t mode, uint8_t policy,
                       uint32_t lease_ms) {
  Message m;
  m.opcode = LOCKD_OP_GRANTED;
  m.lock_id = lock_id;
  m.txn_id = txn_id;
  m.fence = fence;
  m.seq = seq;
  m.mode = static_cast<lockd_mode>(mode);
  m.policy = static_cast<lockd_policy>(policy);
  m.lease_ms = lease_ms;
  return m;
}

// What a waiter is sent when its wait deadline passed.
Message WaitExpiredMessage(uint64_t lock_id, uint64_t txn_id, uint32_t seq) {
  Message m;
  m.opcode = LOCKD_OP_REJECTED;
  m.status = LOCKD_STATUS_WAIT_EXPIRED;
  m.lock_id = lock_id;
  m.txn_id = txn_id;
  m.seq = seq;
  return m;
}

}  // namespace

class Server::Impl {
 public:
  Impl(const ServerOptions& options, std::unique_ptr<Datapath> datapath)
      : options_(options),
        datapath_(std::move(datapath)),
        engine_(LockEngine::Config{options.datapath.default_lease_ms,
                                   options.datapath.max_lease_ms}),
        state_dir_(absl::StrCat(options.state_root, "/", options.instance,
                                "/locks")) {}

  ~Impl() {
    stopping_ = true;
    if (udp_thread_.joinable()) udp_thread_.join();
    if (sweep_thread_.joinable()) sweep_thread_.join();
    if (socket_ >= 0) close(socket_);
    datapath_->Detach();
    if (!options_.datapath.pin_dir.empty()) {
      datapath_->Unpin();
      std::error_code ignored;
      std::filesystem::remove_all(state_dir_, ignored);
      std::filesystem::remove(std::filesystem::path(state_dir_).parent_path(),
                              ignored);  // the instance's, if now empty
    }
  }

  absl::Status Init() {
    absl::Status restored = Restore();
    if (!restored.ok()) return restored;
    absl::Status opened = OpenSocket();
    if (!opened.ok()) return opened;
    if (fast_path()) {
      unsigned ifindex = if_nametoindex(options_.interface.c_str());
      if (ifindex == 0)
        return absl::NotFoundError(
            absl::StrCat("no interface ", options_.interface));
      absl::StatusOr<XdpMode> mode = datapath_->AttachXdp(ifindex);
      if (!mode.ok()) return mode.status();
      if (*mode == XdpMode::kGeneric)
        fprintf(stderr,
                "lockd: %s refused native XDP; attached in generic (skb) "
                "mode, which is slower\n",
                options_.interface.c_str());
      absl::Status tc = datapath_->AttachTc(ifindex);
      if (!tc.ok()) return tc;
    }
    udp_thread_ = std::thread([this] { ServeUdp(); });
    sweep_thread_ = std::thread([this] { Sweep(); });
    return absl::OkStatus();
  }

  bool fast_path() const { return !options_.interface.empty(); }
  bool restored() const { return restored_; }
  const ServerOptions& options() const { return options_; }

  absl::StatusOr<LockAnswer> Acquire(uint64_t lock_id, uint64_t txn_id,
                                     lockd_mode mode, lockd_policy policy,
                                     uint32_t lease_ms, absl::Time deadline,
                                     const std::function<bool()>& cancelled) {
    absl::MutexLock hold(&mu_);
    if (absl::Status s = TakeOver(lock_id); !s.ok()) return s;
    const OwnerKey key(lock_id, txn_id);
    endpoints_[key] = Endpoint{0, 0, static_cast<uint8_t>(policy)};
    LockEngine::Request request;
    request.opcode = LOCKD_OP_ACQUIRE;
    request.lock_id = lock_id;
    request.txn_id = txn_id;
    request.mode = mode;
    request.policy = policy;
    request.lease_ms = lease_ms;
    // gRPC calls carry no sequence number; 0 is never newer than a UDP
    // client's later RELEASE of the same hold, so that one is never stale.
    request.seq = 0;
    LockEngine::Outcome outcome = engine_.Apply(request, MonotonicNs());
    Deliver(lock_id, outcome);
    if (!outcome.reply)
      return absl::InvalidArgumentError("malformed acquire request");
    LockAnswer answer = ToAnswer(*outcome.reply);
    if (answer.opcode == LOCKD_OP_QUEUED) {
      // Wakes for the outcome, the deadline, or every kCancelPoll to see
      // whether the caller went away (gRPC has no wake-up for that here).
      bool gone = false;
      while (grpc_outcomes_.count(key) == 0 && absl::Now() < deadline &&
             !(gone = cancelled())) {
        decided_.WaitWithDeadline(
            &mu_, std::min(deadline, absl::Now() + kCancelPoll));
      }
      auto it = grpc_outcomes_.find(key);
      if (it != grpc_outcomes_.end()) {
        answer = it->second;
        grpc_outcomes_.erase(it);
      } else {
        request.opcode = LOCKD_OP_RELEASE;  // cancel the wait
        request.seq = RecordSeq(lock_id, txn_id);
        Deliver(lock_id, engine_.Apply(request, MonotonicNs()));
        endpoints_.erase(key);
        Settle(lock_id);
        const std::string what =
            absl::StrCat("lock ", lock_id, " txn ", txn_id, ": ");
        if (gone)
          return absl::CancelledError(absl::StrCat(what, "caller went away"));
        return absl::DeadlineExceededError(
            absl::StrCat(what, "not granted in time"));
      }
    }
    if (answer.opcode != LOCKD_OP_GRANTED) endpoints_.erase(key);
    Settle(lock_id);
    return answer;
  }

  absl::StatusOr<LockAnswer> Release(uint64_t lock_id, uint64_t txn_id) {
    return Apply(LOCKD_OP_RELEASE, lock_id, txn_id, 0);
  }

  absl::StatusOr<LockAnswer> Renew(uint64_t lock_id, uint64_t txn_id,
                                   uint32_t lease_ms) {
    return Apply(LOCKD_OP_RENEW, lock_id, txn_id, lease_ms);
  }

  absl::StatusOr<std::vector<uint64_t>> ListLockIds() const {
    absl::MutexLock hold(&mu_);
    std::set<uint64_t> ids;
    for (uint64_t id : engine_.LockIds()) ids.insert(id);
    absl::StatusOr<std::vector<uint64_t>> kernel = Reader().ListLockIds();
    if (!kernel.ok()) return kernel.status();
    ids.insert(kernel->begin(), kernel->end());
    return std::vector<uint64_t>(ids.begin(), ids.end());
  }

  absl::StatusOr<LockInfo> GetLock(uint64_t lock_id) const {
    absl::MutexLock hold(&mu_);
    const uint64_t now = MonotonicNs();
    LockInfo info;
    info.lock_id = lock_id;
    if (const LockEngine::LockState* state = engine_.Find(lock_id)) {
      info.user_owned = true;
      info.mode = state->mode;
      info.fence = state->fence;
      std::vector<std::pair<uint64_t, HolderInfo>> by_fence;
      for (const auto& [txn, h] : state->holders)
        by_fence.push_back(
            {h.fence,
             HolderInfo{txn, h.mode, h.fence,
                        static_cast<int64_t>(h.lease_expires_ns - now) /
                            static_cast<int64_t>(kNsPerMs),
                        EndpointOf(lock_id, txn).Name()}});
      if (state->holders.empty() && state->queue.empty())
        return IdleLock(lock_id);
      std::sort(by_fence.begin(), by_fence.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [fence, h] : by_fence) info.holders.push_back(std::move(h));
      for (const LockEngine::Waiter& w : state->queue)
        info.queue.push_back(
            WaiterInfo{w.txn_id, w.mode, w.policy,
                       static_cast<int64_t>((now - w.enqueued_ns) / kNsPerMs),
                       w.cancelled, EndpointOf(lock_id, w.txn_id).Name()});
      return info;
    }
    absl::StatusOr<LockView> view = Reader().Read(lock_id);
    if (!view.ok()) return view.status();
    if (view->holders.empty() && view->queue.empty()) return IdleLock(lock_id);
    info.mode = view->state.mode;
    info.fence = view->state.fence;
    for (const HolderView& h : view->holders)
      info.holders.push_back(
          HolderInfo{h.txn_id, h.mode, h.fence,
                     static_cast<int64_t>(h.lease_expires_ns - now) /
                         static_cast<int64_t>(kNsPerMs),
                     Endpoint{h.addr, h.port}.Name()});
    for (const WaiterView& w : view->queue)
      info.queue.push_back(WaiterInfo{
          w.waiter.txn_id, w.waiter.mode, w.waiter.policy,
          static_cast<int64_t>((now - w.waiter.enqueued_ns) / kNsPerMs),
          w.waiter.cancelled != 0,
          Endpoint{w.waiter.addr, w.waiter.port}.Name()});
    return info;
  }

  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> Counters()
      const {
    absl::StatusOr<StatCounters> kernel = datapath_->ReadStats();
    if (!kernel.ok()) return kernel.status();
    std::vector<std::pair<std::string, uint64_t>> all;
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s)
      all.emplace_back(std::string(StatName(static_cast<lockd_stat>(s))),
                       (*kernel)[s]);
    absl::MutexLock hold(&mu_);
    for (const auto& [name, value] : daemon_counters_)
      all.emplace_back(absl::StrCat("daemon_", name), value);
    return all;
  }

  absl::StatusOr<PoolInfo> Pool() const {
    absl::StatusOr<StatCounters> kernel = datapath_->ReadStats();
    if (!kernel.ok()) return kernel.status();
    TableReader reader = Reader();
    absl::StatusOr<std::vector<uint64_t>> locks = reader.ListLockIds();
    absl::StatusOr<uint64_t> owners = reader.CountOwners();
    absl::StatusOr<uint64_t> blocks = reader.CountPoolBlocks();
    if (!locks.ok()) return locks.status();
    if (!owners.ok()) return owners.status();
    if (!blocks.ok()) return blocks.status();
    PoolInfo pool;
    pool.blocks_in_use = *blocks;
    pool.block_capacity = options_.datapath.pool_capacity;
    pool.blocks_allocated = (*kernel)[LOCKD_STAT_POOL_ALLOC];
    pool.blocks_freed = pool.blocks_allocated - pool.blocks_in_use;
    pool.bytes_per_block = sizeof(lockd_block);
    pool.locks = locks->size();
    pool.lock_capacity = options_.datapath.lock_capacity;
    pool.owners = *owners;
    pool.owner_capacity = options_.datapath.owner_capacity;
    absl::MutexLock hold(&mu_);
    for (uint64_t id : engine_.LockIds()) {
      ++pool.user_owned_locks;
      pool.user_waiters += engine_.Find(id)->queue.size();
    }
    return pool;
  }

  absl::Status ForceRelease(uint64_t lock_id, uint64_t txn_id) {
    absl::MutexLock hold(&mu_);
    Count("force_releases");
    if (engine_.Find(lock_id) != nullptr) {
      const uint64_t fence = HeldFence(lock_id, txn_id);
      absl::StatusOr<LockEngine::Outcome> outcome =
          engine_.ForceRelease(lock_id, txn_id, MonotonicNs());
      if (!outcome.ok()) return outcome.status();
      RememberInKernel({lock_id, txn_id}, fence, 0,
                       LOCKD_STATUS_FORCE_RELEASED);
      endpoints_.erase({lock_id, txn_id});
      Deliver(lock_id, *outcome);
      Settle(lock_id);
      return absl::OkStatus();
    }
    lockd_ctl ctl{};
    ctl.op = LOCKD_CTL_FORCE_RELEASE;
    ctl.lock_id = lock_id;
    ctl.txn_id = txn_id;
    absl::StatusOr<lockd_ctl> done = RunControl(ctl);
    if (!done.ok()) return done.status();
    if (done->result == LOCKD_CTL_NOT_FOUND)
      return absl::NotFoundError(
          absl::StrCat("lock ", lock_id, " has no holder txn ", txn_id));
    if (done->result != LOCKD_CTL_OK)
      return absl::FailedPreconditionError(absl::StrCat(
          "force-release of lock ", lock_id, " failed: ", done->result));
    return absl::OkStatus();
  }

  bool AdminAllowed(absl::string_view token) const {
    return options_.admin_token.empty() || token == options_.admin_token;
  }

 private:
  TableReader Reader() const {
    return TableReader(
        {datapath_->locks_fd(), datapath_->owners_fd(), datapath_->pool_fd()});
  }

  void Count(const std::string& name, uint64_t n = 1)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    daemon_counters_[name] += n;
  }

  Endpoint EndpointOf(uint64_t lock_id, uint64_t txn_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = endpoints_.find({lock_id, txn_id});
    return it == endpoints_.end() ? Endpoint{} : it->second;
  }

  // Lock entries outlive their use (the kernel never deletes them): a lock
  // nobody holds or waits for is, to an operator, not there.
  static absl::Status IdleLock(uint64_t lock_id) {
    return absl::NotFoundError(
        absl::StrCat("lock ", lock_id, " has no holders and no waiters"));
  }

  static LockAnswer ToAnswer(const LockEngine::Reply& reply) {
    return LockAnswer{static_cast<lockd_opcode>(reply.opcode), reply.status,
                      reply.fence, reply.lease_ms};
  }

  // A gRPC release or renew: served by the engine, which takes the lock
  // over first if the kernel has it.
  absl::StatusOr<LockAnswer> Apply(lockd_opcode opcode, uint64_t lock_id,
                                   uint64_t txn_id, uint32_t lease_ms) {
    absl::MutexLock hold(&mu_);
    if (absl::Status s = TakeOver(lock_id); !s.ok()) return s;
    LockEngine::Request request;
    request.opcode = opcode;
    request.lock_id = lock_id;
    request.txn_id = txn_id;
    request.lease_ms = lease_ms;
    // Acts on the owner's record, whichever path made it: never stale.
    request.seq = RecordSeq(lock_id, txn_id);
    LockEngine::Outcome outcome = engine_.Apply(request, MonotonicNs());
    Deliver(lock_id, outcome);
    Settle(lock_id);
    if (!outcome.reply) return absl::InternalError("no reply from the engine");
    return ToAnswer(*outcome.reply);
  }

  // --- Sending -----------------------------------------------------------

  absl::Status OpenSocket() {
    socket_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (socket_ < 0) return Errno("socket");
    int one = 1;
    setsockopt(socket_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(options_.datapath.port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(socket_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      return Errno(absl::StrCat("binding UDP port ", options_.datapath.port));
    return absl::OkStatus();
  }

  void Send(const Endpoint& to, const Message& message) {
    EncodedMessage bytes = Encode(message);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = to.port;
    addr.sin_addr.s_addr = to.addr;
    sendto(socket_, bytes.data(), bytes.size(), 0,
           reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  }

  // Tells a member something it did not ask for just now: a grant, or that
  // its wait expired. gRPC members are woken in process.
  void Notify(uint64_t lock_id, uint64_t txn_id, const Message& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Endpoint to = EndpointOf(lock_id, txn_id);
    if (to.grpc()) {
      grpc_outcomes_[{lock_id, txn_id}] = LockAnswer{
          message.opcode, message.status, message.fence, message.lease_ms};
      decided_.SignalAll();
    } else {
      Send(to, message);
    }
  }

  void Deliver(uint64_t lock_id, const LockEngine::Outcome& outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const LockEngine::Grant& g : outcome.grants)
      Notify(lock_id, g.txn_id,
             GrantedMessage(lock_id, g.txn_id, g.fence, g.seq, g.mode,
                            EndpointOf(lock_id, g.txn_id).policy, g.lease_ms));
    Count("grants_sent", outcome.grants.size());
    dirty_.insert(lock_id);
  }

  // Sends the grants a control operation decided, and continues with KICKs
  // while the kernel says compatible waiters may remain.
  void DeliverKernel(uint64_t lock_id, lockd_ctl ctl)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int kicks = 0;; ++kicks) {
      for (uint32_t i = 0; i < ctl.grants && i < LOCKD_MAX_GRANTS; ++i) {
        const lockd_ctl_notice& n = ctl.granted[i];
        Send(Endpoint{n.addr, n.port},
             GrantedMessage(lock_id, n.txn_id, n.fence, n.seq, n.mode, n.policy,
                            n.lease_ms));
      }
      Count("grants_sent", ctl.grants);
      if (!ctl.kick || kicks >= kMaxKicks) return;
      lockd_ctl kick{};
      kick.op = LOCKD_CTL_KICK;
      kick.lock_id = lock_id;
      absl::StatusOr<lockd_ctl> next = datapath_->Control(kick);
      if (!next.ok()) return;
      ctl = *next;
    }
  }

  absl::StatusOr<lockd_ctl> RunControl(const lockd_ctl& ctl)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<lockd_ctl> done = datapath_->Control(ctl);
    if (done.ok() && done->result == LOCKD_CTL_OK)
      DeliverKernel(ctl.lock_id, *done);
    return done;
  }

  // --- Moving locks between the kernel and the engine ---------------------

  // Makes the engine the decider for `lock_id`, importing what the kernel
  // had. A lock without a kernel entry (table full, or no fast path) simply
  // starts in the engine.
  absl::Status TakeOver(uint64_t lock_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!fast_path() || engine_.Find(lock_id) != nullptr)
      return absl::OkStatus();
    lockd_ctl ctl{};
    ctl.op = LOCKD_CTL_TAKEOVER;
    ctl.lock_id = lock_id;
    absl::StatusOr<lockd_ctl> done = datapath_->Control(ctl);
    if (!done.ok()) return done.status();
    if (done->result == LOCKD_CTL_NOT_FOUND) return absl::OkStatus();
    Count("takeovers");
    return Import(lock_id, *done);
  }

  // Builds the engine's state of a lock the kernel flagged USER_OWNED from
  // its owner records (holders; waiters in block order, which is enqueue
  // order since block indexes only grow), then frees those records and the
  // queue's blocks.
  absl::Status Import(uint64_t lock_id, const lockd_ctl& taken)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    LockEngine::LockState state;
    state.fence = taken.fence;
    state.min_txn = taken.min_txn;
    std::vector<lockd_owner_key> records;
    std::map<uint64_t, lockd_owner> waiting_by_block;
    absl::StatusOr<std::vector<lockd_owner_key>> keys =
        MapKeys<lockd_owner_key>(datapath_->owners_fd());
    if (!keys.ok()) return keys.status();
    for (const lockd_owner_key& key : *keys) {
      if (key.lock_id != lock_id) continue;
      lockd_owner owner{};
      if (bpf_map_lookup_elem(datapath_->owners_fd(), &key, &owner) != 0)
        continue;
      if (owner.state == LOCKD_OWNER_HELD) {
        state.mode = owner.mode;  // all holders share the lock's mode
        state.holders[key.txn_id] =
            LockEngine::Hold{owner.mode, owner.fence, owner.seq, owner.lease_ms,
                             owner.lease_expires_ns};
        endpoints_[{lock_id, key.txn_id}] =
            Endpoint{owner.addr, owner.port, owner.policy};
        records.push_back(key);
      } else if (owner.state == LOCKD_OWNER_QUEUED) {
        waiting_by_block[owner.block] = owner;
        records.push_back(key);
      }
    }
    // Queue order is the chain from the head TAKEOVER returned (block
    // indexes are not: a block is allocated before it is linked, and kept
    // across retries). Waiters off the chain exist only when restoring after
    // a crash, which lost the head: they follow in block order.
    std::vector<std::pair<uint64_t, lockd_block>> chain;
    std::set<uint64_t> blocks;
    for (uint64_t idx = taken.head;
         idx != 0 && chain.size() <= taken.queue_len;) {
      lockd_block block{};
      if (bpf_map_lookup_elem(datapath_->pool_fd(), &idx, &block) != 0) break;
      chain.emplace_back(idx, block);
      blocks.insert(idx);
      idx = block.next;
    }
    for (const auto& [block_idx, owner] : waiting_by_block) {
      lockd_block block{};
      if (blocks.count(block_idx) != 0 ||
          bpf_map_lookup_elem(datapath_->pool_fd(), &block_idx, &block) != 0)
        continue;
      chain.emplace_back(block_idx, block);
      blocks.insert(block_idx);
    }
    for (const auto& [block_idx, block] : chain) {
      const lockd_waiter& w = block.waiter;
      if (w.cancelled) continue;
      LockEngine::Waiter waiter;
      waiter.txn_id = w.txn_id;
      waiter.mode = w.mode;
      waiter.policy = w.policy;
      waiter.seq = w.seq;
      waiter.lease_ms = w.lease_ms;
      waiter.enqueued_ns = w.enqueued_ns;
      waiter.deadline_ns = w.deadline_ns;
      waiter.queue_pos = static_cast<uint32_t>(state.queue.size());
      state.queue.push_back(waiter);
      endpoints_[{lock_id, w.txn_id}] = Endpoint{w.addr, w.port, w.policy};
    }
    engine_.Install(lock_id, std::move(state));
    dirty_.insert(lock_id);
    SaveState();  // before the kernel copies go
    for (const lockd_owner_key& k : records)
      bpf_map_delete_elem(datapath_->owners_fd(), &k);
    for (uint64_t idx : blocks) bpf_map_delete_elem(datapath_->pool_fd(), &idx);
    // A grant run the flag cut short continues here.
    LockEngine::Request kick;
    kick.opcode = LOCKD_OP_KICK;
    kick.lock_id = lock_id;
    Deliver(lock_id, engine_.Apply(kick, MonotonicNs()));
    return absl::OkStatus();
  }

  // After the engine served a lock: give it back to the kernel when nothing
  // needs the daemon any more.
  void Settle(uint64_t lock_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    GiveBack(lock_id);
    dirty_.insert(lock_id);
    SaveState();
  }

  void GiveBack(uint64_t lock_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Without a fast path the engine is the only decider: nothing to give
    // back to, and forgetting the lock would forget its holders.
    if (!fast_path()) return;
    const LockEngine::LockState* state = engine_.Find(lock_id);
    if (state == nullptr || !state->queue.empty()) return;
    for (const auto& [txn, h] : state->holders)
      if (EndpointOf(lock_id, txn).grpc()) return;
    absl::StatusOr<uint64_t> blocks = Reader().CountPoolBlocks();
    if (!blocks.ok() ||
        *blocks * 100 >= uint64_t{options_.datapath.pool_capacity} *
                             options_.give_back_below_percent)
      return;
    // A lock the table had no room for gets an entry now if it can.
    lockd_lock entry{};
    entry.flags = LOCKD_LOCK_USER_OWNED;
    entry.fence = state->fence;
    entry.min_txn = kIdleMinTxn;
    bpf_map_update_elem(datapath_->locks_fd(), &lock_id, &entry, BPF_NOEXIST);

    std::vector<lockd_owner_key> written;
    bool complete = true;
    const uint64_t now = MonotonicNs();
    for (const auto& [txn, h] : state->holders) {
      const Endpoint ep = EndpointOf(lock_id, txn);
      lockd_owner owner{};
      owner.key = {lock_id, txn};
      owner.state = LOCKD_OWNER_HELD;
      owner.mode = h.mode;
      owner.seq = h.seq;
      owner.fence = h.fence;
      owner.since_ns = now;
      owner.lease_ms = h.lease_ms;
      owner.lease_expires_ns = h.lease_expires_ns;
      owner.addr = ep.addr;
      owner.port = ep.port;
      if (bpf_map_update_elem(datapath_->owners_fd(), &owner.key, &owner,
                              BPF_NOEXIST) != 0) {
        complete = false;
        break;
      }
      written.push_back(owner.key);
    }
    lockd_ctl ctl{};
    ctl.op = LOCKD_CTL_GIVE_BACK;
    ctl.lock_id = lock_id;
    ctl.mode = state->mode;
    ctl.holders = static_cast<uint32_t>(state->holders.size());
    ctl.fence = state->fence;
    ctl.min_txn = state->min_txn;
    absl::StatusOr<lockd_ctl> done =
        complete ? datapath_->Control(ctl) : absl::StatusOr<lockd_ctl>();
    if (!complete || !done.ok() || done->result != LOCKD_CTL_OK) {
      for (const lockd_owner_key& k : written)
        bpf_map_delete_elem(datapath_->owners_fd(), &k);
      return;
    }
    engine_.Remove(lock_id);
    for (auto it = endpoints_.lower_bound({lock_id, 0});
         it != endpoints_.end() && it->first.first == lock_id;)
      it = endpoints_.erase(it);
    Count("give_backs");
    dirty_.insert(lock_id);
  }

  // --- The UDP slow path ------------------------------------------------

  void ServeUdp() {
    std::vector<uint8_t> buffer(kMaxDatagram);
    while (!stopping_) {
      pollfd p{socket_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      sockaddr_in from{};
      socklen_t from_len = sizeof(from);
      ssize_t n = recvfrom(socket_, buffer.data(), buffer.size(), 0,
                           reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) continue;
      absl::StatusOr<Message> message =
          DecodeMessage(absl::MakeConstSpan(buffer.data(), n));
      absl::MutexLock hold(&mu_);
      if (!message.ok() || !IsRequest(message->opcode)) {
        Count("malformed");
        continue;
      }
      Serve(*message, Endpoint{from.sin_addr.s_addr, from.sin_port});
    }
  }

  void Serve(const Message& m, const Endpoint& from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (m.flags & LOCKD_FLAG_HANDOFF)
      Count(absl::StrCat(
          "handoff_", absl::AsciiStrToLower(
                          HandoffName(static_cast<lockd_handoff>(m.status)))));
    if (absl::Status s = TakeOver(m.lock_id); !s.ok()) {
      Count("takeover_failures");
      Message reply = m;
      reply.opcode = LOCKD_OP_REJECTED;
      reply.status = LOCKD_STATUS_NO_CAPACITY;
      reply.flags = 0;
      Send(from, reply);
      return;
    }
    LockEngine::Request request;
    request.opcode = m.opcode;
    request.lock_id = m.lock_id;
    request.txn_id = m.txn_id;
    request.mode = m.mode;
    request.policy = m.policy;
    request.seq = m.seq;
    request.lease_ms = m.lease_ms;
    request.wait_ms = m.wait_ms;
    const OwnerKey key(m.lock_id, m.txn_id);
    if (m.opcode == LOCKD_OP_ACQUIRE)
      endpoints_[key] = Endpoint{from.addr, from.port, m.policy};
    LockEngine::Outcome outcome = engine_.Apply(request, MonotonicNs());
    Count("requests_served");
    if (outcome.reply) {
      Message reply = m;
      reply.opcode = static_cast<lockd_opcode>(outcome.reply->opcode);
      reply.status = outcome.reply->status;
      reply.flags = 0;
      reply.fence = outcome.reply->fence;
      reply.lease_ms = outcome.reply->lease_ms;
      reply.wait_ms = 0;
      reply.queue_pos = outcome.reply->queue_pos;
      if (m.opcode == LOCKD_OP_RELEASE && reply.opcode == LOCKD_OP_REJECTED &&
          reply.status == LOCKD_STATUS_NOT_HOLDER)
        AnswerFromKernelMemo(key, &reply);
      Send(from, reply);
      if (reply.opcode == LOCKD_OP_REJECTED ||
          reply.opcode == LOCKD_OP_RELEASED)
        endpoints_.erase(key);
      if (reply.opcode == LOCKD_OP_RELEASED)
        RememberInKernel(key, reply.fence, reply.seq, LOCKD_STATUS_OK);
    }
    Deliver(m.lock_id, outcome);
    Settle(m.lock_id);
  }

  // The kernel remembers releases it served before the takeover: a late
  // retransmission of one of those is answered as the kernel would.
  void AnswerFromKernelMemo(const OwnerKey& key, Message* reply) {
    lockd_owner_key k{key.first, key.second};
    lockd_released memo{};
    if (bpf_map_lookup_elem(datapath_->released_fd(), &k, &memo) != 0) return;
    if (memo.status == LOCKD_STATUS_OK) {
      reply->opcode = LOCKD_OP_RELEASED;
      reply->fence = memo.fence;
    } else {
      reply->status = memo.status;
    }
  }

  // And the kernel learns how the engine ended holds and waits (released,
  // cancelled, swept, forced), for after the lock is given back.
  void RememberInKernel(const OwnerKey& key, uint64_t fence, uint32_t seq,
                        uint8_t status) {
    lockd_owner_key k{key.first, key.second};
    lockd_released memo{};
    memo.fence = fence;
    memo.seq = seq;
    memo.status = status;
    bpf_map_update_elem(datapath_->released_fd(), &k, &memo, BPF_ANY);
  }

  // The seq of the ACQUIRE that made the owner's record (0 if none): what a
  // gRPC release or renew uses, so the engine never judges it stale.
  uint32_t RecordSeq(uint64_t lock_id, uint64_t txn_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const LockEngine::LockState* state = engine_.Find(lock_id);
    if (state == nullptr) return 0;
    if (auto it = state->holders.find(txn_id); it != state->holders.end())
      return it->second.seq;
    for (const LockEngine::Waiter& w : state->queue)
      if (w.txn_id == txn_id && !w.cancelled) return w.seq;
    return 0;
  }

  // The fence of a hold the engine is about to end (0: not a holder).
  uint64_t HeldFence(uint64_t lock_id, uint64_t txn_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const LockEngine::LockState* state = engine_.Find(lock_id);
    if (state == nullptr) return 0;
    auto it = state->holders.find(txn_id);
    return it == state->holders.end() ? 0 : it->second.fence;
  }

  // --- Leases and wait deadlines -----------------------------------------

  void Sweep() {
    while (!stopping_) {
      absl::SleepFor(options_.sweep_interval);
      absl::MutexLock hold(&mu_);
      const uint64_t now = MonotonicNs();
      for (const auto& [lock_id, txn_id] : engine_.DueHolders(now)) {
        const uint64_t fence = HeldFence(lock_id, txn_id);
        absl::StatusOr<LockEngine::Outcome> o =
            engine_.ExpireHolder(lock_id, txn_id, now);
        if (!o.ok()) continue;
        Count("leases_expired");
        RememberInKernel({lock_id, txn_id}, fence, 0,
                         LOCKD_STATUS_LEASE_EXPIRED);
        endpoints_.erase({lock_id, txn_id});
        Deliver(lock_id, *o);
        Settle(lock_id);
      }
      for (const auto& [lock_id, txn_id] : engine_.DueWaiters(now)) {
        absl::StatusOr<LockEngine::Outcome> o =
            engine_.ExpireWaiter(lock_id, txn_id, now);
        if (!o.ok()) continue;
        Count("waits_expired");
        RememberInKernel({lock_id, txn_id}, 0, 0, LOCKD_STATUS_WAIT_EXPIRED);
        NotifyWaitExpired(lock_id, txn_id);
        endpoints_.erase({lock_id, txn_id});
        Deliver(lock_id, *o);
        Settle(lock_id);
      }
      if (fast_path()) SweepKernel(now);
      for (uint64_t lock_id : engine_.LockIds()) GiveBack(lock_id);
      SaveState();
    }
  }

  void NotifyWaitExpired(uint64_t lock_id, uint64_t txn_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Notify(lock_id, txn_id, WaitExpiredMessage(lock_id, txn_id, 0));
  }

  // Kernel-owned locks: holders past their lease, waiters past their
  // deadline, found in the owner records and ended under the lock's guard.
  void SweepKernel(uint64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::pair<lockd_owner_key, uint32_t>> due;
    absl::StatusOr<std::vector<lockd_owner_key>> keys =
        MapKeys<lockd_owner_key>(datapath_->owners_fd());
    if (!keys.ok()) return;
    for (const lockd_owner_key& key : *keys) {
      lockd_owner owner{};
      if (bpf_map_lookup_elem(datapath_->owners_fd(), &key, &owner) != 0)
        continue;
      if (owner.state == LOCKD_OWNER_HELD && owner.lease_expires_ns < now) {
        due.push_back({key, LOCKD_CTL_EXPIRE_HOLDER});
      } else if (owner.state == LOCKD_OWNER_QUEUED) {
        lockd_block block{};
        if (bpf_map_lookup_elem(datapath_->pool_fd(), &owner.block, &block) ==
                0 &&
            block.waiter.deadline_ns != 0 && block.waiter.deadline_ns < now)
          due.push_back({key, LOCKD_CTL_EXPIRE_WAITER});
      }
    }
    // A KICK the datapath could not send or dropped leaves compatible
    // waiters ungranted: kick every kernel lock with a queue (a no-op when
    // its head is blocked, as it normally is).
    absl::StatusOr<std::vector<uint64_t>> lock_ids = Reader().ListLockIds();
    if (!lock_ids.ok()) return;
    for (uint64_t lock_id : *lock_ids) {
      lockd_lock entry{};
      if (bpf_map_lookup_elem(datapath_->locks_fd(), &lock_id, &entry) != 0 ||
          entry.queue_len == 0 || (entry.flags & LOCKD_LOCK_USER_OWNED))
        continue;
      lockd_ctl kick{};
      kick.op = LOCKD_CTL_KICK;
      kick.lock_id = lock_id;
      absl::StatusOr<lockd_ctl> kicked = RunControl(kick);
      if (kicked.ok() && kicked->grants > 0)
        Count("sweep_grants", kicked->grants);
    }
    for (const auto& [owner, op] : due) {
      lockd_ctl ctl{};
      ctl.op = op;
      ctl.lock_id = owner.lock_id;
      ctl.txn_id = owner.txn_id;
      absl::StatusOr<lockd_ctl> done = RunControl(ctl);
      if (!done.ok() || done->result != LOCKD_CTL_OK) continue;
      if (op == LOCKD_CTL_EXPIRE_HOLDER) {
        Count("leases_expired");
      } else {
        Count("waits_expired");
        Send(Endpoint{done->waiter.addr, done->waiter.port},
             WaitExpiredMessage(owner.lock_id, owner.txn_id, done->waiter.seq));
      }
    }
  }

  // --- Surviving a restart -------------------------------------------------

  // Each engine lock in a file of its own under state_dir_ (one line for the
  // lock, one per holder and waiter), rewritten atomically when the lock
  // changed and removed when the engine let it go: a request costs one small
  // write, whatever the number of locks. Kernel state survives in the pins.
  void SaveState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (options_.datapath.pin_dir.empty()) return;
    std::set<uint64_t> failed;
    for (uint64_t lock_id : dirty_) {
      const std::string path = absl::StrFormat("%s/%016x", state_dir_, lock_id);
      const LockEngine::LockState* s = engine_.Find(lock_id);
      if (s == nullptr) {
        unlink(path.c_str());
        continue;
      }
      std::ostringstream out;
      out << "lock " << lock_id << " " << int{s->mode} << " " << s->fence << " "
          << s->min_txn << "\n";
      for (const auto& [txn, h] : s->holders) {
        const Endpoint ep = EndpointOf(lock_id, txn);
        out << "hold " << txn << " " << int{h.mode} << " " << h.fence << " "
            << h.seq << " " << h.lease_ms << " " << h.lease_expires_ns << " "
            << ep.addr << " " << ep.port << "\n";
      }
      for (const LockEngine::Waiter& w : s->queue) {
        const Endpoint ep = EndpointOf(lock_id, w.txn_id);
        out << "wait " << w.txn_id << " " << int{w.mode} << " " << int{w.policy}
            << " " << w.seq << " " << w.lease_ms << " " << w.enqueued_ns << " "
            << w.deadline_ns << " " << w.cancelled << " " << ep.addr << " "
            << ep.port << "\n";
      }
      if (!WriteFileAtomically(path, out.str()).ok()) {
        Count("state_write_failures");
        failed.insert(lock_id);  // try again at the next change or sweep
      }
    }
    dirty_ = std::move(failed);
  }

  // Reads one saved lock file into `loaded` (and the members' endpoints).
  absl::Status ReadLockFile(const std::string& path,
                            std::map<uint64_t, LockEngine::LockState>* loaded)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::ifstream file(path);
    std::string word;
    uint64_t lock_id = 0;
    LockEngine::LockState* state = nullptr;
    while (file >> word) {
      if (word == "lock") {
        int mode;
        file >> lock_id >> mode;
        state = &(*loaded)[lock_id];
        state->mode = mode;
        file >> state->fence >> state->min_txn;
      } else if (word == "hold" && state != nullptr) {
        uint64_t txn;
        int mode;
        LockEngine::Hold h;
        Endpoint ep;
        file >> txn >> mode >> h.fence >> h.seq >> h.lease_ms >>
            h.lease_expires_ns >> ep.addr >> ep.port;
        h.mode = mode;
        state->holders[txn] = h;
        endpoints_[{lock_id, txn}] = ep;
      } else if (word == "wait" && state != nullptr) {
        LockEngine::Waiter w;
        int mode, policy;
        Endpoint ep;
        file >> w.txn_id >> mode >> policy >> w.seq >> w.lease_ms >>
            w.enqueued_ns >> w.deadline_ns >> w.cancelled >> ep.addr >> ep.port;
        w.mode = mode;
        w.policy = policy;
        ep.policy = w.policy;
        w.queue_pos = static_cast<uint32_t>(state->queue.size());
        state->queue.push_back(w);
        endpoints_[{lock_id, w.txn_id}] = ep;
      } else {
        return absl::DataLossError(
            absl::StrCat("unreadable state file ", path));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Restore() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    restored_ = datapath_->reused_pins();
    if (options_.datapath.pin_dir.empty()) return absl::OkStatus();
    if (absl::Status made = MakeDirs(state_dir_); !made.ok()) return made;
    std::map<uint64_t, LockEngine::LockState> loaded;
    std::error_code error;
    for (const auto& entry :
         std::filesystem::directory_iterator(state_dir_, error)) {
      if (entry.path().extension() == ".tmp") continue;  // a write cut short
      restored_ = true;
      if (absl::Status read = ReadLockFile(entry.path().string(), &loaded);
          !read.ok())
        return read;
    }
    for (auto& [id, s] : loaded) engine_.Install(id, std::move(s));
    if (!fast_path()) return absl::OkStatus();
    // Locks a crashed predecessor flagged but had not saved yet: their
    // records are still in the kernel maps.
    absl::StatusOr<std::vector<uint64_t>> ids = Reader().ListLockIds();
    if (!ids.ok()) return ids.status();
    for (uint64_t id : *ids) {
      lockd_lock entry{};
      if (bpf_map_lookup_elem_flags(datapath_->locks_fd(), &id, &entry,
                                    BPF_F_LOCK) != 0 ||
          !(entry.flags & LOCKD_LOCK_USER_OWNED) || engine_.Find(id) != nullptr)
        continue;
      lockd_ctl taken{};
      taken.lock_id = id;
      taken.fence = entry.fence;
      taken.min_txn = entry.min_txn;
      // The queue's head died with the predecessor: waiters are found by
      // their records; cancelled blocks they no longer own stay allocated.
      if (absl::Status s = Import(id, taken); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  const ServerOptions options_;
  std::unique_ptr<Datapath> datapath_;
  mutable absl::Mutex mu_;
  absl::CondVar decided_;  // a gRPC waiter's outcome arrived
  LockEngine engine_ ABSL_GUARDED_BY(mu_);
  std::map<OwnerKey, Endpoint> endpoints_ ABSL_GUARDED_BY(mu_);
  std::map<OwnerKey, LockAnswer> grpc_outcomes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> daemon_counters_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> dirty_ ABSL_GUARDED_BY(mu_);  // locks to save
  const std::string state_dir_;
  bool restored_ = false;
  int socket_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread udp_thread_;
  std::thread sweep_thread_;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  ServerOptions resolved = options;
  resolved.datapath.pin_dir =
      absl::StrCat(options.pin_root, "/", options.instance);
  absl::StatusOr<std::unique_ptr<Datapath>> datapath =
      Datapath::Load(resolved.datapath);
  if (!datapath.ok()) return datapath.status();
  auto impl = std::make_unique<Impl>(resolved, std::move(*datapath));
  if (absl::Status s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

absl::StatusOr<LockAnswer> Server::Acquire(
    uint64_t lock_id, uint64_t txn_id, lockd_mode mode, lockd_policy policy,
    uint32_t lease_ms, absl::Time deadline,
    const std::function<bool()>& cancelled) {
  return impl_->Acquire(lock_id, txn_id, mode, policy, lease_ms, deadline,
                        cancelled);
}
absl::StatusOr<LockAnswer> Server::Release(uint64_t lock_id, uint64_t txn_id) {
  return impl_->Release(lock_id, txn_id);
}
absl::StatusOr<LockAnswer> Server::Renew(uint64_t lock_id, uint64_t txn_id,
                                         uint32_t lease_ms) {
  return impl_->Renew(lock_id, txn_id, lease_ms);
}
absl::StatusOr<std::vector<uint64_t>> Server::ListLockIds() const {
  return impl_->ListLockIds();
}
absl::StatusOr<LockInfo> Server::GetLock(uint64_t lock_id) const {
  return impl_->GetLock(lock_id);
}
absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> Server::Counters()
    const {
  return impl_->Counters();
}
absl::StatusOr<PoolInfo> Server::Pool() const { return impl_->Pool(); }
absl::Status Server::ForceRelease(uint64_t lock_id, uint64_t txn_id) {
  return impl_->ForceRelease(lock_id, txn_id);
}
bool Server::AdminAllowed(absl::string_view token) const {
  return impl_->AdminAllowed(token);
}
bool Server::fast_path() const { return impl_->fast_path(); }
bool Server::restored() const { return impl_->restored(); }
const ServerOptions& Server::options() const { return impl_->options(); }

}  // namespace lockd
