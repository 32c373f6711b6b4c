// burst: a burst of waiters against a running lockd, and its memory after.
// From a client namespace, over lockd's UDP protocol on one socket, as one
// client (--client_id, its key from --key_file; bench/signer.h):
//   1. --locks locks are taken, one holder each;
//   2. --waiters waiters (by default 10x the pool's first segment) queue on
//      them as fast as the socket sends, each retransmitted (flagged, with
//      its ticket and a fresh seq) until answered: the pool grows under the
//      burst, and a request that finds no room while a segment is being
//      added is answered after the growth;
//   3. the holders release, and every waiter, once granted, releases: the
//      queues drain;
//   4. lockd's memory (AdminService.GetMemory) is sampled every second for
//      --settle.
// Prints what was refused, retransmitted and granted, and the memory at
// idle, at the peak and after the drain; with --json, one JSON object. A
// benchmark: it never asserts on time.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/json_writer.h"
#include "bench/lockd_memory.h"
#include "bench/signer.h"
#include "proto/lockd.grpc.pb.h"
#include "tests/netns/test_network.h"

ABSL_FLAG(std::string, netns, "", "Network namespace to run in.");
ABSL_FLAG(std::string, server, "198.18.0.1", "lockd's IPv4 address.");
ABSL_FLAG(std::string, grpc, "198.18.0.1:7451", "lockd's gRPC address.");
ABSL_FLAG(uint32_t, locks, 100, "Locks the waiters queue on.");
ABSL_FLAG(uint32_t, waiters, 10240, "Waiters in the burst.");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(10),
          "How long memory is watched after the drain.");
ABSL_FLAG(absl::Duration, retransmit, absl::Milliseconds(50),
          "Unanswered requests are sent again after this long.");
ABSL_FLAG(std::string, json, "", "Also write the figures as JSON here.");
ABSL_FLAG(std::string, key_file, "",
          "lockd key file holding --client_id's key; empty: unsigned "
          "requests (served only from lockd's --open_subnets).");
ABSL_FLAG(uint32_t, client_id, 1, "The client id to sign requests as.");

namespace lockd::bench {
namespace {

constexpr uint64_t kFirstLock = 0xb0b57000;
constexpr uint64_t kFirstWaiter = 1'000'000;
constexpr size_t kWindow = 2048;  // requests outstanding at once
constexpr absl::Duration kGiveUp = absl::Seconds(120);
constexpr absl::Duration kAdminDeadline = absl::Seconds(10);

// A request waiting for its answer.
struct Pending {
  Message request;
  absl::Time sent;
  // Of its first transmission: answers to any copy have at least this seq.
  uint64_t first_seq = 0;
};

class Client {
 public:
  explicit Client(Signer signer) : signer_(std::move(signer)) {}

  absl::Status Open(const std::string& server) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "socket");
    int size = 8 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    server_.sin_family = AF_INET;
    server_.sin_port = htons(LOCKD_DEFAULT_PORT);
    if (inet_pton(AF_INET, server.c_str(), &server_.sin_addr) != 1)
      return absl::InvalidArgumentError("--server is not IPv4");
    return absl::OkStatus();
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }

  void Send(Pending& p) {
    const EncodedMessage bytes = signer_.Sign(p.request);
    sendto(fd_, bytes.data(), bytes.size(), 0,
           reinterpret_cast<sockaddr*>(&server_), sizeof(server_));
    if (p.first_seq == 0) p.first_seq = p.request.seq;
    p.sent = absl::Now();
    p.request.flags = LOCKD_FLAG_RETRANSMIT;  // every later copy
  }

  // Replies signed for this client that came within `wait`.
  std::vector<Message> Receive(absl::Duration wait) {
    std::vector<Message> out;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) <= 0)
      return out;
    uint8_t buffer[256];
    for (;;) {
      const ssize_t n = recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n < 0) break;
      const auto bytes = absl::MakeConstSpan(buffer, n);
      absl::StatusOr<Message> m = DecodeMessage(bytes);
      if (!m.ok()) continue;
      if (signer_.Verify(bytes, *m))
        out.push_back(*m);
      else
        ++forged_;
    }
    return out;
  }

  uint64_t forged() const { return forged_; }

 private:
  Signer signer_;
  int fd_ = -1;
  sockaddr_in server_{};
  uint64_t forged_ = 0;  // replies not signed for us: dropped
};

Message Request(lockd_opcode opcode, uint64_t lock, uint64_t txn,
                uint64_t ticket = 0) {
  Message m;
  m.opcode = opcode;
  m.mode = opcode == LOCKD_OP_ACQUIRE ? LOCKD_MODE_EXCLUSIVE : LOCKD_MODE_NONE;
  m.lock_id = lock;
  m.txn_id = txn;
  m.ticket = ticket;
  return m;
}

struct Tally {
  uint64_t sent = 0;
  uint64_t retransmitted = 0;
  std::map<std::string, uint64_t> answers;  // "QUEUED", "REJECTED NO_CAPACITY"
};

std::string Describe(const Message& m) {
  std::string s(OpcodeName(m.opcode));
  if (m.opcode == LOCKD_OP_REJECTED)
    absl::StrAppend(&s, " ", StatusName(static_cast<lockd_status>(m.status)));
  return s;
}

// Sends `requests` with at most kWindow outstanding, retransmitting the
// unanswered, until each has its answer (any reply to its owner but a
// GRANTED notice, which `on_notice` gets). Returns the answers by txn.
absl::StatusOr<std::map<uint64_t, Message>> Exchange(
    Client& client, std::vector<Message> requests, Tally& tally,
    const std::function<void(const Message&)>& on_notice) {
  std::map<uint64_t, Message> answers;
  std::map<uint64_t, Pending> outstanding;  // by txn
  size_t next = 0;
  const absl::Duration retransmit = absl::GetFlag(FLAGS_retransmit);
  const absl::Time give_up = absl::Now() + kGiveUp;
  while (answers.size() < requests.size()) {
    if (absl::Now() > give_up)
      return absl::DeadlineExceededError(
          absl::StrCat(answers.size(), " of ", requests.size(), " answered"));
    while (outstanding.size() < kWindow && next < requests.size()) {
      Pending& p = outstanding[requests[next].txn_id];
      p.request = requests[next++];
      client.Send(p);
      ++tally.sent;
    }
    for (const Message& reply : client.Receive(absl::Milliseconds(5))) {
      auto it = outstanding.find(reply.txn_id);
      const bool answers_it = it != outstanding.end() &&
                              reply.seq >= it->second.first_seq &&
                              !(reply.opcode == LOCKD_OP_GRANTED &&
                                it->second.request.opcode == LOCKD_OP_RELEASE);
      if (!answers_it) {
        if (reply.opcode == LOCKD_OP_GRANTED) on_notice(reply);
        continue;
      }
      ++tally.answers[Describe(reply)];
      answers[reply.txn_id] = reply;
      outstanding.erase(it);
    }
    const absl::Time now = absl::Now();
    for (auto& [txn, p] : outstanding)
      if (now - p.sent >= retransmit) {
        client.Send(p);
        ++tally.retransmitted;
      }
  }
  return answers;
}

struct Memory {
  double seconds = 0;
  v1::MemoryUsage usage;
};

std::string MiB(uint64_t bytes) {
  return absl::StrFormat("%.2f MiB", bytes / 1048576.0);
}

absl::Status Run() {
  if (const std::string ns = absl::GetFlag(FLAGS_netns); !ns.empty()) {
    if (absl::Status joined = netns::JoinNetns(ns); !joined.ok()) return joined;
  }
  std::unique_ptr<v1::AdminService::Stub> admin =
      NewAdminStub(absl::GetFlag(FLAGS_grpc));
  absl::StatusOr<v1::MemoryUsage> idle = QueryMemory(*admin, kAdminDeadline);
  if (!idle.ok()) return idle.status();
  absl::StatusOr<std::vector<Signer>> signer = MakeSigners(
      absl::GetFlag(FLAGS_key_file), absl::GetFlag(FLAGS_client_id), 1);
  if (!signer.ok()) return signer.status();
  Client client(signer->front());
  if (absl::Status s = client.Open(absl::GetFlag(FLAGS_server)); !s.ok())
    return s;
  const uint32_t locks = absl::GetFlag(FLAGS_locks);
  const uint32_t waiters = absl::GetFlag(FLAGS_waiters);

  Tally holders_tally;
  std::vector<Message> holders;
  for (uint32_t l = 0; l < locks; ++l)
    holders.push_back(Request(LOCKD_OP_ACQUIRE, kFirstLock + l, 1 + l));
  auto ignore = [](const Message&) {};
  if (auto held = Exchange(client, holders, holders_tally, ignore); !held.ok())
    return held.status();

  // The burst.
  Tally burst_tally;
  std::vector<Message> queue;
  for (uint32_t w = 0; w < waiters; ++w)
    queue.push_back(
        Request(LOCKD_OP_ACQUIRE, kFirstLock + w % locks, kFirstWaiter + w));
  const absl::Time burst_start = absl::Now();
  absl::StatusOr<std::map<uint64_t, Message>> queued =
      Exchange(client, queue, burst_tally, ignore);
  if (!queued.ok()) return queued.status();
  const double burst_seconds = absl::ToDoubleSeconds(absl::Now() - burst_start);
  absl::StatusOr<v1::MemoryUsage> peak = QueryMemory(*admin, kAdminDeadline);
  if (!peak.ok()) return peak.status();

  // The drain: holders release; each waiter granted releases in turn.
  Tally drain_tally;
  std::map<uint64_t, uint64_t> granted;  // txn -> ticket, not yet released
  auto on_grant = [&](const Message& g) {
    if (g.txn_id >= kFirstWaiter) granted.emplace(g.txn_id, g.ticket);
  };
  std::vector<Message> releases;
  for (const Message& h : holders)
    releases.push_back(Request(LOCKD_OP_RELEASE, h.lock_id, h.txn_id));
  uint64_t released = 0, to_release = 0;
  for (const auto& [txn, answer] : *queued)
    if (answer.opcode == LOCKD_OP_QUEUED) ++to_release;
  const absl::Time drain_start = absl::Now();
  while (!releases.empty()) {
    auto done = Exchange(client, releases, drain_tally, on_grant);
    if (!done.ok()) return done.status();
    releases.clear();
    for (const auto& [txn, ticket] : granted)
      releases.push_back(Request(LOCKD_OP_RELEASE,
                                 kFirstLock + (txn - kFirstWaiter) % locks, txn,
                                 ticket));
    released += granted.size();
    granted.clear();
    if (releases.empty() && released < to_release) {
      // Grants still on their way: wait for them.
      for (const Message& g : client.Receive(absl::Milliseconds(100)))
        on_grant(g);
      for (const auto& [txn, ticket] : granted)
        releases.push_back(Request(LOCKD_OP_RELEASE,
                                   kFirstLock + (txn - kFirstWaiter) % locks,
                                   txn, ticket));
      released += granted.size();
      granted.clear();
      if (absl::Now() - drain_start > kGiveUp)
        return absl::DeadlineExceededError("the queues did not drain");
    }
  }
  const double drain_seconds = absl::ToDoubleSeconds(absl::Now() - drain_start);

  std::vector<Memory> after;
  const absl::Time drained = absl::Now();
  for (absl::Duration t = absl::ZeroDuration();
       t <= absl::GetFlag(FLAGS_settle); t += absl::Seconds(1)) {
    absl::SleepFor(drained + t - absl::Now());
    absl::StatusOr<v1::MemoryUsage> m = QueryMemory(*admin, kAdminDeadline);
    if (!m.ok()) return m.status();
    after.push_back({absl::ToDoubleSeconds(absl::Now() - drained), *m});
  }
  absl::StatusOr<std::map<std::string, uint64_t>> counters =
      QueryCounters(*admin, kAdminDeadline);
  if (!counters.ok()) return counters.status();

  absl::PrintF("burst: %d waiters on %d locks in %.2f s; drained in %.2f s\n",
               waiters, locks, burst_seconds, drain_seconds);
  for (const auto& [answer, n] : burst_tally.answers)
    absl::PrintF("  burst answers: %-22s %d\n", answer, n);
  absl::PrintF(
      "  burst retransmissions %d (requests unanswered while the pool grew); "
      "drain retransmissions %d; replies not signed for us %d\n",
      burst_tally.retransmitted, drain_tally.retransmitted, client.forged());
  for (const char* name : {"pool_wait", "no_capacity_pool", "event_lost"})
    absl::PrintF("  %-22s %d\n", name, (*counters)[name]);
  const v1::MemoryUsage& end = after.back().usage;
  absl::PrintF("  pool segments added %d, removed %d; growth refused %d\n",
               end.pool_segments_added(), end.pool_segments_removed(),
               end.growth_refused());
  absl::PrintF(
      "memory: idle %s; peak %s (pool %s in %d segments, %d blocks live)\n",
      MiB(idle->total_bytes()), MiB(peak->total_bytes()),
      MiB(peak->pool_bytes()), peak->pool_segments(), peak->pool_live_blocks());
  for (const Memory& m : after)
    absl::PrintF(
        "  %4.1f s after the drain: %s (pool %s, table %s), %.2fx idle\n",
        m.seconds, MiB(m.usage.total_bytes()), MiB(m.usage.pool_bytes()),
        MiB(m.usage.table_bytes()),
        static_cast<double>(m.usage.total_bytes()) / idle->total_bytes());

  std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) return absl::OkStatus();
  JsonWriter json;
  json.BeginObject();
  json.Field("locks", static_cast<uint64_t>(locks));
  json.Field("waiters", static_cast<uint64_t>(waiters));
  json.Field("burst_seconds", burst_seconds);
  json.Field("drain_seconds", drain_seconds);
  json.Field("queued", burst_tally.answers["QUEUED"]);
  json.Field("refused", burst_tally.answers["REJECTED NO_CAPACITY"]);
  json.Field("burst_retransmitted", burst_tally.retransmitted);
  json.Field("replies_forged", client.forged());
  json.Field("pool_wait", (*counters)["pool_wait"]);
  json.Field("pool_segments_added", after.back().usage.pool_segments_added());
  json.Field("growth_refused", after.back().usage.growth_refused());
  json.Field("memory_idle_bytes", idle->total_bytes());
  json.Field("memory_peak_bytes", peak->total_bytes());
  json.Key("memory_after_drain_bytes").BeginArray();
  for (const Memory& m : after) json.Uint(m.usage.total_bytes());
  json.EndArray();
  json.EndObject();
  std::ofstream(path) << json.str() << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "burst --netns=NS --server=IP --grpc=ADDR: a burst of waiters against "
      "a running lockd, and its memory after.");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = lockd::bench::Run();
  if (!status.ok()) {
    fprintf(stderr, "burst: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
