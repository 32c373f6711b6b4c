#include "client/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client_impl.h"
#include "client/rtt.h"
#include "client/server_list.h"
#include "client/transaction.h"
#include "lockd/grpc_conventions.h"

namespace lockd::client {

namespace {

std::string FormatUdpAddress(const sockaddr_in& address) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &address.sin_addr, ip, sizeof(ip));
  return absl::StrCat(ip, ":", ntohs(address.sin_port));
}

}  // namespace

struct Client::Impl::Server {
  Server(const ClientOptions& options, std::string name)
      : name(std::move(name)),
        description(absl::StrCat("server \"", this->name, "\"")),
        rtt(options.udp_initial_timeout, options.udp_min_timeout,
            options.udp_max_timeout) {}

  // Reaches the server at `to` and `to_grpc` (empty: no gRPC fallback) from
  // now on, unless it is there already. A new address is a new machine:
  // its round trips and its UDP path's state start over. One thread at a
  // time (MakeServers, then the server list file's watcher).
  void MoveTo(const sockaddr_in& to, const std::string& to_grpc) {
    {
      absl::MutexLock lock(&mu);
      if (SameAddress(udp, to) && grpc_address == to_grpc) return;
    }
    std::shared_ptr<v1::LockService::Stub> stub;
    if (!to_grpc.empty()) {
      grpc::ChannelArguments arguments;
      // Lock servers are addressed directly; a proxy from the environment
      // must not capture the fallback path.
      arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
      stub = v1::LockService::NewStub(grpc::CreateCustomChannel(
          to_grpc, grpc::InsecureChannelCredentials(), arguments));
    }
    absl::MutexLock lock(&mu);
    udp = to;
    grpc_address = to_grpc;
    grpc = std::move(stub);  // calls in flight keep the stub they started on
    udp_down = false;
    rtt.Reset();
  }
  sockaddr_in Udp() {
    absl::MutexLock lock(&mu);
    return udp;
  }
  bool HasGrpc() {
    absl::MutexLock lock(&mu);
    return grpc != nullptr;
  }

  const std::string name;
  const std::string description;  // how messages name the server

  absl::Mutex mu;
  sockaddr_in udp ABSL_GUARDED_BY(mu) = {};
  std::string grpc_address ABSL_GUARDED_BY(mu);
  // Null: no fallback.
  std::shared_ptr<v1::LockService::Stub> grpc ABSL_GUARDED_BY(mu);
  // The UDP path failed: calls go to gRPC until `udp_retry_at`, when one
  // call tries UDP again.
  bool udp_down ABSL_GUARDED_BY(mu) = false;
  absl::Time udp_retry_at ABSL_GUARDED_BY(mu);
  RttEstimator rtt;  // of its UDP path: the retransmission timeout

  std::atomic<uint64_t> udp_requests{0};
  std::atomic<uint64_t> udp_retransmissions{0};
  std::atomic<uint64_t> udp_replies{0};
  std::atomic<uint64_t> udp_fallbacks{0};
  std::atomic<uint64_t> udp_forged{0};
  std::atomic<uint64_t> grpc_requests{0};
  std::atomic<uint64_t> renewals{0};
  std::atomic<uint64_t> leases_lost{0};
  std::atomic<uint64_t> epoch_changes{0};
  std::atomic<uint64_t> reclaims{0};
  std::atomic<uint64_t> grace_retries{0};
  // Its epoch, from its last reply, UDP or gRPC (0: none yet).
  std::atomic<uint32_t> epoch{0};
};

namespace {

// Low bits of a txn id that are random per client (Client::NewTxnId).
constexpr int kTxnRandomBits = 14;

absl::Time TxnEpoch() {
  return absl::FromCivil(absl::CivilSecond(2024, 1, 1, 0, 0, 0),
                         absl::UTCTimeZone());
}

// The name that places a server's locks.
std::string NameOf(const ServerConfig& config) {
  return config.name.empty() ? config.udp_address : config.name;
}

// The whole content of the file at `path`.
absl::StatusOr<std::string> ReadServerListFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::ErrnoToStatus(errno, absl::StrCat("server list file ", path));
  std::string content;
  std::array<char, 4096> buffer;
  ssize_t got;
  while ((got = read(fd, buffer.data(), buffer.size())) > 0)
    content.append(buffer.data(), got);
  const int read_errno = errno;
  close(fd);
  if (got < 0)
    return absl::ErrnoToStatus(read_errno,
                               absl::StrCat("server list file ", path));
  return content;
}

// The servers of the file at `path` that holds `content`.
absl::StatusOr<std::vector<ServerConfig>> ParseServerListFileAt(
    const std::string& path, absl::string_view content) {
  absl::StatusOr<std::vector<ServerConfig>> servers =
      ParseServerListFile(content);
  if (!servers.ok())
    return absl::InvalidArgumentError(absl::StrCat(
        "server list file ", path, ": ", servers.status().message()));
  return servers;
}

// The wait_ms of an ACQUIRE that must not wait past `deadline`, so that the
// server cancels the wait itself should the client be gone by then.
uint32_t WaitMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return 0;  // no limit
  const int64_t ms = absl::ToInt64Milliseconds(
      absl::Ceil(std::max(deadline - absl::Now(), absl::ZeroDuration()),
                 absl::Milliseconds(1)));
  // 0 would mean "no limit".
  return static_cast<uint32_t>(
      std::clamp<int64_t>(ms, 1, std::numeric_limits<uint32_t>::max()));
}

// The client's status code for each rejection (client/transaction.h): the
// gRPC service's (abi/codec.h) but one: a lease that ran out is, to the
// holder, a lost hold (FAILED_PRECONDITION), not a deadline.
absl::StatusCode ClientCodeForRejection(lockd_status status) {
  return status == LOCKD_STATUS_LEASE_EXPIRED
             ? absl::StatusCode::kFailedPrecondition
             : CodeForRejection(status);
}

absl::string_view ExplainRejection(lockd_status status) {
  switch (status) {
    case LOCKD_STATUS_CONFLICT:
      return "the lock is held or awaited in a conflicting mode (no-wait "
             "request)";
    case LOCKD_STATUS_DIE:
      return "an older transaction holds or awaits the lock (wait-die): "
             "restart the transaction with Transaction::Restart, which keeps "
             "its txn id";
    case LOCKD_STATUS_UPGRADE_CONFLICT:
      return "others hold the lock or wait for it, so it cannot be upgraded";
    case LOCKD_STATUS_NO_CAPACITY:
      return "the server has no room for the request";
    case LOCKD_STATUS_NOT_HOLDER:
      return "the transaction does not hold the lock (or another client "
             "owns that txn id)";
    case LOCKD_STATUS_LEASE_EXPIRED:
      return "the lease ran out";
    case LOCKD_STATUS_FORCE_RELEASED:
      return "an operator force-released the hold";
    case LOCKD_STATUS_WAIT_EXPIRED:
      return "not granted before the deadline; the server cancelled the wait";
    case LOCKD_STATUS_BAD_REQUEST:
      return "the server found the request malformed";
    case LOCKD_STATUS_QUOTA:
      return "this client holds and awaits as many locks as the server's "
             "--client_quota allows";
    case LOCKD_STATUS_GRACE:
      return "the server restarted without its state and takes only "
             "reclaims of earlier holds until its grace period ends";
    case LOCKD_STATUS_OK:
    case LOCKD_STATUS_COUNT:
      break;
  }
  return "no reason given";
}

absl::Status RejectionError(lockd_status status, const std::string& what,
                            absl::string_view path) {
  return absl::Status(
      ClientCodeForRejection(status),
      absl::StrCat(what, ": rejected over ", path, ": ", StatusName(status),
                   ": ", ExplainRejection(status)));
}

// The server's epoch from a lock RPC's trailing metadata (0: not said).
uint32_t EpochOf(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kEpochMetadataKey);
  uint32_t epoch = 0;
  if (it == trailers.end() ||
      !absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()),
                        &epoch))
    return 0;
  return epoch;
}

// The exact rejection of a failed lock RPC, from its trailing metadata.
std::optional<lockd_status> RejectionOf(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kReplyStatusMetadataKey);
  v1::ReplyStatus status;
  if (it == trailers.end() ||
      !v1::ReplyStatus_Parse(std::string(it->second.data(), it->second.size()),
                             &status))
    return std::nullopt;
  return static_cast<lockd_status>(status);
}

// A LockService request for the owner (lock, txn) of `request`, with the
// request signed (`signed_request`, empty for an unauthenticated client).
template <typename Rpc>
Rpc OwnerRpc(const Message& request, const std::string& signed_request) {
  Rpc rpc;
  rpc.set_lock_id(request.lock_id);
  rpc.set_txn_id(request.txn_id);
  rpc.set_signed_request(signed_request);
  return rpc;
}

void Accumulate(const ServerStats& from, ServerStats& into) {
  into.udp_requests += from.udp_requests;
  into.udp_retransmissions += from.udp_retransmissions;
  into.udp_replies += from.udp_replies;
  into.udp_fallbacks += from.udp_fallbacks;
  into.udp_forged += from.udp_forged;
  into.grpc_requests += from.grpc_requests;
  into.renewals += from.renewals;
  into.leases_lost += from.leases_lost;
  into.epoch_changes += from.epoch_changes;
  into.reclaims += from.reclaims;
  into.grace_retries += from.grace_retries;
  into.udp_path_up = into.udp_path_up && from.udp_path_up;
}

}  // namespace

// --- Creation ----------------------------------------------------------------

absl::StatusOr<std::vector<std::unique_ptr<Client::Impl::Server>>>
Client::Impl::MakeServers(const ClientOptions& options) {
  const std::vector<ServerConfig>& configs = options.servers;
  if (configs.empty())
    return absl::InvalidArgumentError("the client has no servers configured");
  std::vector<std::unique_ptr<Server>> servers;
  for (const ServerConfig& config : configs) {
    auto server = std::make_unique<Server>(options, NameOf(config));
    absl::StatusOr<sockaddr_in> udp = ParseUdpAddress(config.udp_address);
    if (!udp.ok())
      return absl::InvalidArgumentError(absl::StrCat(
          "server \"", server->name, "\": ", udp.status().message()));
    for (const std::unique_ptr<Server>& other : servers)
      if (other->name == server->name)
        return absl::InvalidArgumentError(absl::StrCat(
            "two servers are named \"", server->name,
            "\": names place locks on servers, so they must differ"));
    server->MoveTo(*udp, config.grpc_address);
    servers.push_back(std::move(server));
  }
  return servers;
}

absl::Status ClientOptions::UseKey(uint32_t id, const std::string& key_file) {
  client_id = id;
  if (id == LOCKD_CLIENT_NONE) return absl::OkStatus();
  absl::StatusOr<ClientKey> read = ReadClientKey(key_file, id);
  if (!read.ok()) return read.status();
  key = *read;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Client::Impl>> Client::Impl::Create(
    ClientOptions options) {
  if (options.udp_max_transmissions < 1)
    return absl::InvalidArgumentError(
        "udp_max_transmissions must be at least 1");
  absl::StatusOr<std::string> list_file;
  if (!options.server_list_file.empty()) {
    if (!options.servers.empty())
      return absl::InvalidArgumentError(
          "both servers and server_list_file are set: the servers come from "
          "one of them");
    if (options.server_list_poll_interval <= absl::ZeroDuration())
      return absl::InvalidArgumentError(
          "server_list_poll_interval must be positive");
    list_file = ReadServerListFile(options.server_list_file);
    if (!list_file.ok())
      return absl::InvalidArgumentError(list_file.status().message());
    absl::StatusOr<std::vector<ServerConfig>> listed =
        ParseServerListFileAt(options.server_list_file, *list_file);
    if (!listed.ok()) return listed.status();
    options.servers = *std::move(listed);
  }
  absl::StatusOr<std::vector<std::unique_ptr<Server>>> servers =
      MakeServers(options);
  if (!servers.ok()) return servers.status();
  auto impl =
      absl::WrapUnique(new Impl(std::move(options), std::move(*servers)));
  absl::StatusOr<std::unique_ptr<UdpChannel>> udp = UdpChannel::Open(
      [impl = impl.get()](const sockaddr_in& from, bool forged) {
        Server* server = impl->ServerAt(from);
        if (server == nullptr) return;
        if (forged) {
          ++server->udp_forged;
          return;
        }
        ++server->udp_replies;
        absl::MutexLock lock(&server->mu);
        server->udp_down = false;  // whatever the call, UDP works again
      },
      impl->identity_);
  if (!udp.ok()) return udp.status();
  impl->udp_ = std::move(*udp);
  impl->renewer_ =
      std::thread([impl = impl.get()] { impl->RenewUntilStopped(); });
  if (list_file.ok()) {
    {
      absl::MutexLock lock(&impl->list_mu_);
      impl->list_read_ = *std::move(list_file);
    }
    impl->list_watcher_ =
        std::thread([impl = impl.get()] { impl->WatchServerList(); });
  }
  return impl;
}

Client::Impl::Impl(ClientOptions options,
                   std::vector<std::unique_ptr<Server>> servers)
    : options_(std::move(options)),
      identity_{options_.client_id, options_.key},
      servers_(std::move(servers)),
      rendezvous_([this] {
        std::vector<std::string> names;
        for (const std::unique_ptr<Server>& server : servers_)
          names.push_back(server->name);
        return names;
      }()),
      txn_random_bits_(std::random_device()() &
                       ((uint64_t{1} << kTxnRandomBits) - 1)) {}

Client::Impl::~Impl() {
  {
    absl::MutexLock lock(&renew_mu_);
    stopping_ = true;
    renew_changed_.Signal();
  }
  if (renewer_.joinable()) renewer_.join();
  stop_watching_.Notify();
  if (list_watcher_.joinable()) list_watcher_.join();
}

// --- Names, ids, stats -------------------------------------------------------

LockTarget Client::Impl::Target(uint64_t lock_id, std::string name) const {
  return LockTarget{ServerIndexFor(lock_id), lock_id, std::move(name)};
}

size_t Client::Impl::ServerIndexFor(uint64_t lock_id) const {
  return rendezvous_.ServerFor(lock_id);
}

const std::string& Client::Impl::ServerName(size_t server) const {
  return servers_[server]->name;
}

uint64_t Client::Impl::NewTxnId() {
  const uint64_t micros = static_cast<uint64_t>(
      absl::ToInt64Microseconds(absl::Now() - TxnEpoch()));
  absl::MutexLock lock(&txn_mu_);
  // Two transactions started in one microsecond still get distinct ids.
  last_txn_micros_ = std::max(micros, last_txn_micros_ + 1);
  return (last_txn_micros_ << kTxnRandomBits) | txn_random_bits_;
}

std::string Client::Impl::DescribeTxn(uint64_t txn_id) {
  return absl::StrFormat("txn 0x%016x", txn_id);
}

std::string Client::Impl::DescribeLock(const LockTarget& target) {
  if (target.name.empty())
    return absl::StrFormat("lock 0x%016x", target.lock_id);
  return absl::StrFormat("lock \"%s\" (0x%016x)", target.name, target.lock_id);
}

ClientStats Client::Impl::Stats() const {
  ClientStats stats;
  stats.total.name = "total";
  for (const std::unique_ptr<Server>& server : servers_) {
    ServerStats s;
    s.name = server->name;
    s.udp_requests = server->udp_requests;
    s.udp_retransmissions = server->udp_retransmissions;
    s.udp_replies = server->udp_replies;
    s.udp_fallbacks = server->udp_fallbacks;
    s.udp_forged = server->udp_forged;
    s.grpc_requests = server->grpc_requests;
    s.renewals = server->renewals;
    s.leases_lost = server->leases_lost;
    s.epoch_changes = server->epoch_changes;
    s.reclaims = server->reclaims;
    s.grace_retries = server->grace_retries;
    s.epoch = server->epoch;
    {
      absl::MutexLock lock(&server->mu);
      s.udp_path_up = !server->udp_down;
      s.udp_address = FormatUdpAddress(server->udp);
      s.grpc_address = server->grpc_address;
    }
    Accumulate(s, stats.total);
    stats.servers.push_back(std::move(s));
  }
  absl::MutexLock lock(&list_mu_);
  stats.server_list_reloads = list_reloads_;
  stats.server_list_errors = list_errors_;
  stats.server_list_error = list_error_;
  return stats;
}

void Client::Impl::NoteEpoch(Server& server, uint32_t epoch) {
  if (epoch == 0) return;  // a server that does not say
  const uint32_t before = server.epoch.exchange(epoch);
  if (before != 0 && before != epoch) ++server.epoch_changes;
}

bool Client::Impl::Restarted(const Server& server, uint32_t hold_epoch) {
  const uint32_t now = server.epoch;
  return hold_epoch != 0 && now != 0 && now != hold_epoch;
}

Client::Impl::Server* Client::Impl::ServerAt(const sockaddr_in& address) const {
  for (const std::unique_ptr<Server>& server : servers_)
    if (SameAddress(server->Udp(), address)) return server.get();
  return nullptr;
}

// --- Server list file --------------------------------------------------------

void Client::Impl::WatchServerList() {
  while (!stop_watching_.WaitForNotificationWithTimeout(
      options_.server_list_poll_interval))
    ReloadServerList();
}

void Client::Impl::ReloadServerList() {
  absl::StatusOr<std::string> read =
      ReadServerListFile(options_.server_list_file);
  absl::MutexLock lock(&list_mu_);
  if (read == list_read_) return;  // no change since the last look
  list_read_ = read;
  const absl::Status used = read.ok() ? UseServerList(*read) : read.status();
  if (used.ok()) {
    ++list_reloads_;
    list_error_.clear();
  } else {
    ++list_errors_;
    list_error_ = absl::StrCat(used.message(),
                               "; the client keeps its servers' addresses");
  }
}

absl::Status Client::Impl::UseServerList(absl::string_view content) {
  absl::StatusOr<std::vector<ServerConfig>> configs =
      ParseServerListFileAt(options_.server_list_file, content);
  if (!configs.ok()) return configs.status();
  std::map<std::string, const ServerConfig*> by_name;
  for (const ServerConfig& config : *configs) by_name[NameOf(config)] = &config;
  std::vector<std::string> names;
  for (const std::unique_ptr<Server>& server : servers_)
    names.push_back(server->name);
  if (by_name.size() != names.size() ||
      !std::all_of(names.begin(), names.end(), [&](const std::string& name) {
        return by_name.count(name) > 0;
      })) {
    std::vector<std::string> listed;
    for (const auto& [name, config] : by_name) listed.push_back(name);
    return absl::InvalidArgumentError(absl::StrCat(
        "server list file ", options_.server_list_file, " names servers ",
        absl::StrJoin(listed, ","), " instead of ", absl::StrJoin(names, ","),
        ": names place locks on servers, so a running client keeps them"));
  }
  for (const std::unique_ptr<Server>& server : servers_) {
    const ServerConfig& config = *by_name[server->name];
    // The parser checked the address.
    server->MoveTo(*ParseUdpAddress(config.udp_address), config.grpc_address);
  }
  return absl::OkStatus();
}

// --- Requests ----------------------------------------------------------------

bool Client::Impl::UseUdp(Server& server) {
  absl::MutexLock lock(&server.mu);
  if (server.grpc == nullptr) return true;  // nothing to fall back to
  if (!server.udp_down) return true;
  const absl::Time now = absl::Now();
  if (now < server.udp_retry_at) return false;
  // This call probes UDP; the others keep to gRPC until it answers.
  server.udp_retry_at = now + options_.udp_probe_interval;
  return true;
}

absl::StatusOr<Client::Impl::Answer> Client::Impl::Exchange(
    const LockTarget& target, Message request, absl::Time deadline, Path path,
    const std::string& what) {
  Server& server = *servers_[target.server];
  std::string udp_failure;
  if (path == Path::kUdp && UseUdp(server)) {
    const UdpOutcome udp = ExchangeUdp(server, request, deadline);
    switch (udp.kind) {
      case UdpOutcome::Kind::kAnswered:
        // A retransmitted RELEASE that finds no hold: an earlier copy
        // released it and its reply was lost (a hold the server ended is
        // answered with why, not NOT_HOLDER).
        if (request.opcode == LOCKD_OP_RELEASE && udp.transmissions > 1 &&
            udp.reply.opcode == LOCKD_OP_REJECTED &&
            udp.reply.status == LOCKD_STATUS_NOT_HOLDER) {
          Message released = udp.reply;
          released.opcode = LOCKD_OP_RELEASED;
          released.status = LOCKD_STATUS_OK;
          return Answer{released, Path::kUdp, udp.lease_start, false};
        }
        if (udp.reply.opcode == LOCKD_OP_REJECTED) {
          const auto status = static_cast<lockd_status>(udp.reply.status);
          if (status != LOCKD_STATUS_NO_CAPACITY || !server.HasGrpc())
            return RejectionError(status, what, "UDP");
          udp_failure = "the UDP path had no capacity for it; ";
          break;
        }
        return Answer{udp.reply, Path::kUdp, udp.lease_start, false};
      case UdpOutcome::Kind::kDeadline:
        return absl::DeadlineExceededError(
            absl::StrCat(what, ": no answer over UDP before the deadline"));
      case UdpOutcome::Kind::kUnanswered: {
        absl::MutexLock lock(&server.mu);
        server.udp_down = true;
        server.udp_retry_at = absl::Now() + options_.udp_probe_interval;
        udp_failure =
            absl::StrCat("no answer over UDP (", FormatUdpAddress(server.udp),
                         ") to ", udp.transmissions, " transmissions; ");
        break;
      }
    }
    ++server.udp_fallbacks;
  }
  return ExchangeGrpc(server, request, deadline, what, udp_failure);
}

Client::Impl::UdpOutcome Client::Impl::ExchangeUdp(Server& server,
                                                   const Message& request,
                                                   absl::Time deadline) {
  UdpChannel::Call call;
  call.request = request;
  udp_->Register(&call);
  UdpOutcome outcome{UdpOutcome::Kind::kUnanswered, {}, {}, 0};
  // An attempt: transmissions of the request until the server answers it.
  // A queued ACQUIRE starts new attempts on QueuedProbeDelay's schedule.
  bool awaiting_answer = true;
  int attempt_transmissions = 0;
  absl::Time attempt_start;
  absl::Time next_send = absl::Now();
  absl::Duration timeout = server.rtt.Rto();
  // When each transmission of the current attempt left: the reply's seq
  // says which one it answers, a round trip for the server's RTO.
  std::vector<std::pair<uint64_t, absl::Time>> sent;
  bool queued = false;
  absl::Time queued_attempt_start;  // of the attempt last answered QUEUED
  absl::Duration probe_delay;       // until the next attempt while queued
  for (;;) {
    const absl::Time now = absl::Now();
    if (now >= next_send) {
      if (!awaiting_answer) {  // time to ask a queued request's state again
        awaiting_answer = true;
        attempt_transmissions = 0;
        sent.clear();
        timeout = server.rtt.Rto();
      }
      if (attempt_transmissions == options_.udp_max_transmissions ||
          (attempt_transmissions > 0 &&
           now >= attempt_start + options_.udp_budget)) {
        if (!queued) break;  // kUnanswered
        // The server of a queued request went silent (restarting, say):
        // the wait goes on, probed at the longest interval, until its
        // deadline.
        awaiting_answer = false;
        next_send = now + options_.queued_probe_interval;
        continue;
      }
      if (attempt_transmissions == 0) attempt_start = now;
      ++(outcome.transmissions == 0 ? server.udp_requests
                                    : server.udp_retransmissions);
      // A failed send is a lost packet: retransmission deals with both.
      const uint64_t seq = NextSeq();
      sent.emplace_back(seq, now);
      // To where the server is now: it may have moved since the last copy.
      udp_->Send(&call, server.Udp(), seq).IgnoreError();
      ++attempt_transmissions;
      ++outcome.transmissions;
      // Every later copy may find the request served already: the server
      // then answers from the owner's record instead of serving it again.
      call.request.flags |= LOCKD_FLAG_RETRANSMIT;
      next_send = std::min(now + timeout, attempt_start + options_.udp_budget);
      timeout = std::min(2 * timeout, options_.udp_max_timeout);
    }
    std::optional<Message> reply =
        udp_->NextReply(&call, std::min(next_send, deadline));
    if (!reply.has_value()) {
      if (absl::Now() < deadline) continue;
      outcome.kind = UdpOutcome::Kind::kDeadline;
      break;
    }
    // A reply to a transmission of this attempt measures the round trip (a
    // GRANTED for a queued request does not: it came when the lock did).
    if (awaiting_answer) {
      for (const auto& [seq, at] : sent)
        if (seq == reply->seq) server.rtt.Sample(absl::Now() - at);
    }
    NoteEpoch(server, reply->wait_ms);
    if (reply->opcode == LOCKD_OP_REJECTED &&
        reply->status == LOCKD_STATUS_GRACE) {
      // The server restarted without its state and serves only reclaims
      // until its grace period ends, lease_ms from now: ask again then (or
      // sooner, should an operator end it early). Its ticket was the old
      // table's.
      ++server.grace_retries;
      call.request.ticket = LOCKD_TICKET_NONE;
      queued = false;  // the queue it was in is gone
      awaiting_answer = false;
      next_send = absl::Now() + std::clamp(absl::Milliseconds(reply->lease_ms),
                                           server.rtt.Rto(),
                                           options_.queued_probe_interval);
      continue;
    }
    if (reply->opcode == LOCKD_OP_QUEUED) {
      if (awaiting_answer) queued_attempt_start = attempt_start;
      // Probes of the queued request find its record in O(1).
      if (reply->ticket != LOCKD_TICKET_NONE)
        call.request.ticket = reply->ticket;
      probe_delay =
          QueuedProbeDelay(queued ? probe_delay : absl::ZeroDuration(),
                           server.rtt.Rto(), options_.queued_probe_interval);
      queued = true;
      awaiting_answer = false;
      next_send = absl::Now() + probe_delay;
      continue;
    }
    outcome.kind = UdpOutcome::Kind::kAnswered;
    outcome.reply = *reply;
    // The server granted (or renewed) after the first transmission of the
    // attempt it answered; when queued, after answering QUEUED, so after
    // that attempt began.
    outcome.lease_start = queued ? queued_attempt_start : attempt_start;
    break;
  }
  udp_->Unregister(&call);
  return outcome;
}

absl::StatusOr<Client::Impl::Answer> Client::Impl::ExchangeGrpc(
    Server& server, const Message& request, absl::Time deadline,
    const std::string& what, const std::string& udp_failure) {
  for (;;) {
    std::optional<lockd_status> rejection;
    absl::StatusOr<Answer> answer = ExchangeGrpcOnce(
        server, request, deadline, what, udp_failure, &rejection);
    if (rejection != LOCKD_STATUS_GRACE) return answer;
    // The server restarted without its state: ask again after a while (gRPC
    // does not say how long grace lasts), as UDP does.
    ++server.grace_retries;
    const absl::Time retry = absl::Now() + options_.queued_probe_interval;
    if (retry >= deadline) return answer;
    absl::SleepFor(retry - absl::Now());
  }
}

absl::StatusOr<Client::Impl::Answer> Client::Impl::ExchangeGrpcOnce(
    Server& server, const Message& request, absl::Time deadline,
    const std::string& what, const std::string& udp_failure,
    std::optional<lockd_status>* rejection) {
  std::shared_ptr<v1::LockService::Stub> stub;
  std::string grpc_address;
  {
    absl::MutexLock lock(&server.mu);
    stub = server.grpc;
    grpc_address = server.grpc_address;
  }
  if (stub == nullptr)
    return absl::UnavailableError(absl::StrCat(
        what, ": ", udp_failure, "and no gRPC address to fall back to"));
  grpc::ClientContext context;
  const bool may_wait = request.opcode == LOCKD_OP_ACQUIRE &&
                        request.policy != LOCKD_POLICY_NO_WAIT;
  const absl::Time rpc_deadline =
      may_wait ? deadline
               : std::min(deadline, absl::Now() + options_.grpc_timeout);
  if (rpc_deadline != absl::InfiniteFuture())
    context.set_deadline(absl::ToChronoTime(rpc_deadline));
  ++server.grpc_requests;
  const absl::Time sent = absl::Now();
  std::string signed_request;
  if (identity_.client_id != LOCKD_CLIENT_NONE) {
    Message message = request;
    // UDP copies may have reached the server already: it answers from the
    // owner's record then.
    if (message.opcode == LOCKD_OP_ACQUIRE)
      message.flags |= LOCKD_FLAG_RETRANSMIT;
    const EncodedMessage bytes = identity_.Sign(message, NextSeq());
    signed_request.assign(bytes.begin(), bytes.end());
  }
  Message reply = request;
  grpc::Status status;
  switch (request.opcode) {
    case LOCKD_OP_ACQUIRE: {
      auto rpc = OwnerRpc<v1::AcquireRequest>(request, signed_request);
      rpc.set_mode(static_cast<v1::Mode>(request.mode));
      rpc.set_policy(static_cast<v1::Policy>(request.policy));
      rpc.set_lease_ms(request.lease_ms);
      rpc.set_wait_ms(request.wait_ms);
      v1::AcquireResponse response;
      status = stub->Acquire(&context, rpc, &response);
      reply.opcode = LOCKD_OP_GRANTED;
      reply.fence = response.fence();
      reply.lease_ms = response.lease_ms();
      break;
    }
    case LOCKD_OP_RELEASE: {
      v1::ReleaseResponse response;
      status = stub->Release(
          &context, OwnerRpc<v1::ReleaseRequest>(request, signed_request),
          &response);
      reply.opcode = LOCKD_OP_RELEASED;
      reply.fence = response.fence();
      break;
    }
    case LOCKD_OP_RENEW: {
      auto rpc = OwnerRpc<v1::RenewRequest>(request, signed_request);
      rpc.set_lease_ms(request.lease_ms);
      v1::RenewResponse response;
      status = stub->Renew(&context, rpc, &response);
      reply.opcode = LOCKD_OP_RENEWED;
      reply.fence = response.fence();
      reply.lease_ms = response.lease_ms();
      break;
    }
    default:
      return absl::InternalError(
          absl::StrCat(what, ": no RPC for ", OpcodeName(request.opcode)));
  }
  // Answered or refused, the server says its epoch, as UDP replies do.
  reply.wait_ms = EpochOf(context);
  NoteEpoch(server, reply.wait_ms);
  if (status.ok()) {
    // A wait may have been granted at any moment of the call: its lease is
    // counted from the end of the call and confirmed by renewing at once.
    return may_wait ? Answer{reply, Path::kGrpc, absl::Now(), true}
                    : Answer{reply, Path::kGrpc, sent, false};
  }
  *rejection = RejectionOf(context);
  if (*rejection) return RejectionError(**rejection, what, "gRPC");
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && may_wait)
    return absl::DeadlineExceededError(absl::StrCat(
        what, ": ", udp_failure,
        "not granted over gRPC before the deadline; the wait is cancelled"));
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat(what, ": ", udp_failure, "gRPC to ", grpc_address,
                   " failed: ", status.error_message()));
}

void Client::Impl::CancelWait(const LockTarget& target, uint64_t txn_id) {
  Message cancel;
  cancel.opcode = LOCKD_OP_RELEASE;
  cancel.lock_id = target.lock_id;
  cancel.txn_id = txn_id;
  // Best effort: the ACQUIRE carried wait_ms, so the server ends the wait by
  // itself if this RELEASE does not reach it.
  Exchange(target, cancel, absl::InfiniteFuture(), Path::kUdp,
           absl::StrCat(servers_[target.server]->description, ": ",
                        DescribeTxn(txn_id), " cancelling its wait for ",
                        DescribeLock(target)))
      .IgnoreError();
}

// --- Holds -------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Hold>> Client::Impl::Acquire(
    const LockTarget& target, uint64_t txn_id, lockd_mode mode,
    lockd_policy policy, uint32_t lease_ms, absl::Time deadline,
    LostCallback on_lost) {
  Message request;
  request.opcode = LOCKD_OP_ACQUIRE;
  request.mode = mode;
  request.policy = policy;
  request.lease_ms = lease_ms;
  request.wait_ms = WaitMs(deadline);
  request.lock_id = target.lock_id;
  request.txn_id = txn_id;
  const std::string what =
      absl::StrCat(servers_[target.server]->description, ": ",
                   DescribeTxn(txn_id), " acquiring ", DescribeLock(target),
                   " ", ModeName(mode), " (", PolicyName(policy), ")");
  absl::StatusOr<Answer> answer =
      Exchange(target, request, deadline, Path::kUdp, what);
  if (absl::IsDeadlineExceeded(answer.status())) {
    // The server may have queued the request (or even granted it since):
    // take it back.
    CancelWait(target, txn_id);
  }
  if (!answer.ok()) return answer.status();
  auto hold =
      std::make_shared<Hold>(target, txn_id, lease_ms, std::move(on_lost));
  {
    absl::MutexLock lock(&hold->mu);
    hold->mode = mode;
    Granted(*hold, *answer);
  }
  StartRenewing(hold);
  return hold;
}

absl::StatusOr<uint64_t> Client::Impl::Upgrade(Hold& hold, lockd_policy policy,
                                               absl::Time deadline) {
  absl::MutexLock operation(&hold.operation_mu);
  Message request;
  Path path;
  {
    absl::MutexLock lock(&hold.mu);
    if (!hold.lost.ok()) return hold.lost;
    path = hold.path;
  }
  request = HoldRequest(hold, LOCKD_OP_ACQUIRE);
  request.mode = LOCKD_MODE_EXCLUSIVE;
  request.policy = policy;
  // The owner's record exists: the server must find it (by the ticket, or
  // by a search should the ticket be stale) rather than take the request
  // for a new member.
  request.flags = LOCKD_FLAG_RETRANSMIT;
  // An upgrade is granted or refused at once, never queued: no wait_ms and
  // nothing to cancel when the deadline passes.
  absl::StatusOr<Answer> answer = Exchange(
      hold.target, request, deadline, path,
      absl::StrCat(servers_[hold.target.server]->description, ": ",
                   DescribeTxn(hold.txn_id), " upgrading ",
                   DescribeLock(hold.target), " from SHARED to EXCLUSIVE"));
  if (!answer.ok()) return answer.status();
  absl::MutexLock lock(&hold.mu);
  hold.mode = LOCKD_MODE_EXCLUSIVE;
  Granted(hold, *answer);
  return hold.fence;
}

Message Client::Impl::HoldRequest(Hold& hold, lockd_opcode opcode) {
  Message request;
  request.opcode = opcode;
  if (opcode != LOCKD_OP_RELEASE) request.lease_ms = hold.requested_lease_ms;
  request.lock_id = hold.target.lock_id;
  request.txn_id = hold.txn_id;
  absl::MutexLock lock(&hold.mu);
  request.ticket = hold.ticket;
  return request;
}

void Client::Impl::Granted(Hold& hold, const Answer& answer) {
  const absl::Duration lease = absl::Milliseconds(answer.reply.lease_ms);
  hold.fence = answer.reply.fence;
  hold.ticket = answer.reply.ticket;
  hold.path = answer.path;
  hold.epoch = answer.reply.wait_ms;  // the server's, on either path
  hold.lease_end = answer.lease_start + lease;
  hold.next_renewal =
      answer.renew_now ? absl::Now() : answer.lease_start + lease / 3;
}

absl::Status Client::Impl::Release(const std::shared_ptr<Hold>& hold) {
  StopRenewing(hold);
  absl::MutexLock operation(&hold->operation_mu);
  Path path;
  absl::Status result;
  bool ended_by_server;
  uint32_t epoch;
  {
    absl::MutexLock lock(&hold->mu);
    hold->released = true;
    path = hold->path;
    result = hold->lost;
    ended_by_server = hold->ended_by_server;
    epoch = hold->epoch;
  }
  if (ended_by_server) return result;
  const Message request = HoldRequest(*hold, LOCKD_OP_RELEASE);
  absl::StatusOr<Answer> answer =
      Exchange(hold->target, request, absl::InfiniteFuture(), path,
               absl::StrCat(servers_[hold->target.server]->description, ": ",
                            DescribeTxn(hold->txn_id), " releasing ",
                            DescribeLock(hold->target)));
  if (answer.ok() || !result.ok()) return result;
  // A server that restarted without its state before the hold was
  // reclaimed has no hold to release: released.
  if (absl::IsFailedPrecondition(answer.status()) &&
      Restarted(*servers_[hold->target.server], epoch))
    return absl::OkStatus();
  if (absl::IsFailedPrecondition(answer.status())) return answer.status();
  return absl::Status(
      answer.status().code(),
      absl::StrCat(answer.status().message(),
                   "; the lock stays held until its lease runs out"));
}

// --- Lease renewal -----------------------------------------------------------

void Client::Impl::PauseRenewals(bool paused) {
  renewals_paused_ = paused;
  absl::MutexLock lock(&renew_mu_);
  renew_changed_.Signal();  // due times depend on it
}

void Client::Impl::StartRenewing(std::shared_ptr<Hold> hold) {
  absl::MutexLock lock(&renew_mu_);
  renewing_.insert(std::move(hold));
  renew_changed_.Signal();
}

void Client::Impl::StopRenewing(const std::shared_ptr<Hold>& hold) {
  absl::MutexLock lock(&renew_mu_);
  renewing_.erase(hold);
}

void Client::Impl::RenewUntilStopped() {
  for (;;) {
    std::vector<std::shared_ptr<Hold>> due;
    {
      absl::MutexLock lock(&renew_mu_);
      for (;;) {
        if (stopping_) return;
        const absl::Time now = absl::Now();
        absl::Time wake = absl::InfiniteFuture();
        for (const std::shared_ptr<Hold>& hold : renewing_) {
          absl::MutexLock hold_lock(&hold->mu);
          // Paused, a hold is only looked at again when its lease ends.
          const absl::Time at =
              renewals_paused_ ? hold->lease_end
                               : std::min(hold->next_renewal, hold->lease_end);
          if (at <= now) {
            due.push_back(hold);
          } else {
            wake = std::min(wake, at);
          }
        }
        if (!due.empty()) break;
        renew_changed_.WaitWithDeadline(&renew_mu_, wake);
      }
    }
    for (const std::shared_ptr<Hold>& hold : due) RenewOrLose(hold);
  }
}

void Client::Impl::RenewOrLose(const std::shared_ptr<Hold>& hold) {
  Server& server = *servers_[hold->target.server];
  const std::string what =
      absl::StrCat(server.description, ": ", DescribeTxn(hold->txn_id),
                   " renewing its lease of ", DescribeLock(hold->target));
  absl::Status lost;
  {
    absl::MutexLock operation(&hold->operation_mu);
    Path path;
    absl::Time lease_end;
    uint64_t fence;
    uint32_t epoch;
    {
      absl::MutexLock lock(&hold->mu);
      if (hold->released || !hold->lost.ok()) return;
      path = hold->path;
      lease_end = hold->lease_end;
      fence = hold->fence;
      epoch = hold->epoch;
      if (absl::Now() >= lease_end) {
        lost = absl::FailedPreconditionError(absl::StrCat(
            what, ": the lease ran out before a renewal reached the server (",
            renewals_paused_ ? "renewals paused for testing"
                             : hold->last_renewal_error.ToString(),
            "); fence ", fence, " must not be used any more"));
      }
    }
    if (lost.ok()) {
      if (renewals_paused_) return;
      const Message request = HoldRequest(*hold, LOCKD_OP_RENEW);
      absl::StatusOr<Answer> answer =
          Exchange(hold->target, request, lease_end, path, what);
      // Not a holder any more because the server restarted without its
      // state: the hold is reclaimed, in the server's grace period.
      const bool reclaim = absl::IsFailedPrecondition(answer.status()) &&
                           Restarted(server, epoch);
      if (reclaim) answer = Reclaim(*hold, lease_end, what);
      absl::MutexLock lock(&hold->mu);
      if (answer.ok() && reclaim) {
        ++server.reclaims;
        Granted(*hold, *answer);
        hold->last_renewal_error = absl::OkStatus();
      } else if (answer.ok()) {
        ++server.renewals;
        const absl::Duration lease = absl::Milliseconds(answer->reply.lease_ms);
        hold->lease_end = answer->lease_start + lease;
        hold->next_renewal = answer->lease_start + lease / 3;
        hold->last_renewal_error = absl::OkStatus();
        hold->epoch = answer->reply.wait_ms;
      } else if (absl::IsFailedPrecondition(answer.status())) {
        // The server says the hold is over (lease swept, force-released).
        hold->ended_by_server = true;
        lost = absl::FailedPreconditionError(
            absl::StrCat(answer.status().message(), "; fence ", fence,
                         " must not be used any more"));
      } else {
        // Unreachable for now: try again soon, until the lease runs out.
        hold->last_renewal_error = answer.status();
        const absl::Time now = absl::Now();
        hold->next_renewal =
            std::min(lease_end, now + std::max((lease_end - now) / 4,
                                               options_.udp_initial_timeout));
      }
    }
    if (!lost.ok()) {
      absl::MutexLock lock(&hold->mu);
      hold->lost = lost;
      ++server.leases_lost;
    }
  }
  if (lost.ok()) return;
  StopRenewing(hold);
  if (hold->on_lost) hold->on_lost(lost);
}

absl::StatusOr<Client::Impl::Answer> Client::Impl::Reclaim(
    Hold& hold, absl::Time lease_end, const std::string& what) {
  Message request = HoldRequest(hold, LOCKD_OP_ACQUIRE);
  request.policy = LOCKD_POLICY_NO_WAIT;  // a reclaim never waits
  request.flags = LOCKD_FLAG_RECLAIM;
  request.ticket = LOCKD_TICKET_NONE;  // the old table's
  {
    absl::MutexLock lock(&hold.mu);
    request.mode = hold.mode;
    request.fence = hold.fence;
  }
  return Exchange(
      hold.target, request, lease_end, Path::kUdp,
      absl::StrCat(what, ": the server restarted without its state and ",
                   "did not take back the hold"));
}

// --- Client ------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl = Impl::Create(std::move(options));
  if (!impl.ok()) return impl.status();
  return absl::WrapUnique(new Client(std::move(*impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Transaction Client::Begin(const TransactionOptions& options) {
  return Transaction(impl_.get(), impl_->NewTxnId(), options);
}

Transaction Client::Begin() { return Begin(TransactionOptions()); }

size_t Client::ServerIndexFor(uint64_t lock_id) const {
  return impl_->ServerIndexFor(lock_id);
}

const std::string& Client::ServerNameFor(uint64_t lock_id) const {
  return impl_->ServerName(impl_->ServerIndexFor(lock_id));
}

uint64_t Client::NewTxnId() { return impl_->NewTxnId(); }

ClientStats Client::Stats() const { return impl_->Stats(); }

void Client::PauseRenewalsForTesting(bool paused) {
  impl_->PauseRenewals(paused);
}

}  // namespace lockd::client
