// fuzz: what a million packets from senders without a key, and the random
// requests of a key holder, do to a running lockd (started with --key_file
// and without --open_subnets). Two parts:
//
// 1. Unauthenticated (--packets): random well-formed requests, unsigned
//    (client 0) or under random client ids (a few that lockd knows, from
//    --key_file, most that it does not) with random MACs; copies of signed
//    requests captured from the key holder, replayed as they were or with a
//    byte changed; about 30 % of them malformed (truncated or oversized, a
//    byte changed, garbage). The captures come first: client --client_id
//    takes and releases a few locks. Then lockd must hold what it held
//    before the packets, nothing: no lock in its table, no pool block live,
//    no remembered ending (its pinned "ended" map, read with --pin_dir), no
//    client record added (its pinned "clients" map), and no lock created,
//    pool block allocated or request served meanwhile. Its counters say why
//    each packet was dropped. Any of those figures other than 0 fails the
//    tool (after it printed and wrote them).
// 2. Signed (--signed_packets): random requests of client --client_id, often
//    for stale or unknown owners (random txns, tickets, retransmission
//    flags), each with a fresh seq: how long lockd takes to list its locks at
//    the peak, how its table empties as the leases and waits end, and how
//    much CPU the daemon uses meanwhile and once idle.
//
// Requests carry leases of at most --max_lease_ms and waits of at most
// --max_wait_ms, so that everything they leave ends. Prints the figures and,
// with --json, one JSON object. A benchmark: it never asserts on time.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/json_writer.h"
#include "bench/lockd_memory.h"
#include "bench/memory_sampler.h"
#include "bench/signer.h"
#include "proto/lockd.grpc.pb.h"
#include "tests/netns/test_network.h"

ABSL_FLAG(std::string, netns, "", "Network namespace to run in.");
ABSL_FLAG(std::string, server, "198.18.0.1", "lockd's IPv4 address.");
ABSL_FLAG(std::string, grpc, "198.18.0.1:7451", "lockd's gRPC address.");
ABSL_FLAG(int32_t, pid, 0, "lockd's pid, for its CPU time.");
ABSL_FLAG(std::string, key_file, "", "lockd's key file (required).");
ABSL_FLAG(uint32_t, client_id, 1,
          "The key holder: its requests are captured, and it sends the "
          "signed part.");
ABSL_FLAG(std::string, pin_dir, "",
          "lockd's pin directory (<pin_root>/<instance>): its \"ended\" and "
          "\"clients\" maps are counted; empty: not counted.");
ABSL_FLAG(uint64_t, packets, 1000000, "Unauthenticated packets to send.");
ABSL_FLAG(uint64_t, signed_packets, 1000000, "Signed random requests to send.");
ABSL_FLAG(uint32_t, max_lease_ms, 2000, "Longest lease a request asks for.");
ABSL_FLAG(uint32_t, max_wait_ms, 2000, "Longest wait a request asks for.");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(30),
          "Longest time to watch the table empty after the signed packets.");
ABSL_FLAG(std::string, json, "", "Also write the figures as JSON here.");

namespace lockd::bench {
namespace {

constexpr uint64_t kHotLocks = 64;  // contended: queues form
constexpr uint64_t kColdLocks = 1 << 20;
// Locks the key holder takes and releases, its requests captured.
constexpr uint64_t kCapturedLocks = 32;
constexpr uint64_t kCapturedLockBase = 0xcafe0000;
constexpr absl::Duration kAdminDeadline = absl::Seconds(10);

// The counters that say how the unauthenticated packets were dropped.
constexpr const char* kDropCounters[] = {
    "rx",       "malformed",  "bad_version", "auth_failed", "unauthenticated",
    "replayed", "forged_kick"};
// Counters of requests served: each must not move for them.
constexpr const char* kServedCounters[] = {"acquire", "release", "renew",
                                           "kick"};

using Packet = std::vector<uint8_t>;

// A well-formed request, often for a stale or unknown owner; no client, seq
// or MAC yet.
Message RandomRequest(std::mt19937_64& rng) {
  Message m;
  static constexpr lockd_opcode kOpcodes[] = {
      LOCKD_OP_ACQUIRE, LOCKD_OP_ACQUIRE, LOCKD_OP_ACQUIRE, LOCKD_OP_RELEASE,
      LOCKD_OP_RELEASE, LOCKD_OP_RENEW,   LOCKD_OP_KICK};
  m.opcode = kOpcodes[rng() % 7];
  m.mode = rng() % 3 ? LOCKD_MODE_EXCLUSIVE : LOCKD_MODE_SHARED;
  m.policy = static_cast<lockd_policy>(rng() % LOCKD_POLICY_COUNT);
  m.lock_id = rng() % 2 ? rng() % kHotLocks : kHotLocks + rng() % kColdLocks;
  m.txn_id = 1 + rng() % 100000;
  m.lease_ms = 1 + rng() % absl::GetFlag(FLAGS_max_lease_ms);
  m.wait_ms = 1 + rng() % absl::GetFlag(FLAGS_max_wait_ms);
  if (rng() % 4 == 0) m.flags = LOCKD_FLAG_RETRANSMIT;
  if (rng() % 8 == 0) m.ticket = rng();
  return m;
}

// A packet of a sender without a key. `known`: the client ids lockd knows,
// sorted; `captured`: the key holder's signed requests as they were sent.
Packet UnauthenticatedPacket(std::mt19937_64& rng,
                             const std::vector<uint32_t>& known,
                             const std::vector<Packet>& captured) {
  switch (rng() % 10) {
    case 0:  // a signed request seen on the wire, replayed
      return captured[rng() % captured.size()];
    case 1: {  // the same with a byte it signs changed
      Packet bytes = captured[rng() % captured.size()];
      bytes[rng() % LOCKD_MAC_BYTES] ^= static_cast<uint8_t>(1 + rng() % 255);
      return bytes;
    }
    default:
      break;
  }
  Message m = RandomRequest(rng);
  m.seq = rng();
  switch (rng() % 3) {
    case 0:  // unsigned
      break;
    case 1:  // a client lockd knows, a MAC guessed
      m.client_id = known[rng() % known.size()];
      m.mac = rng();
      break;
    default:  // a client lockd does not know
      do {
        m.client_id = static_cast<uint32_t>(rng());
      } while (m.client_id == LOCKD_CLIENT_NONE ||
               std::binary_search(known.begin(), known.end(), m.client_id));
      m.mac = rng();
      break;
  }
  const EncodedMessage encoded = Encode(m);
  Packet bytes(encoded.begin(), encoded.end());
  switch (rng() % 10) {
    case 0:  // truncated or oversized
      bytes.resize(rng() % (2 * kMessageSize));
      break;
    case 1:  // one byte anywhere
      bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
      break;
    case 2:  // garbage
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
      break;
    default:
      break;
  }
  return bytes;
}

// A UDP socket connected to lockd's port.
class Socket {
 public:
  absl::Status Open(const std::string& server) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(LOCKD_DEFAULT_PORT);
    if (inet_pton(AF_INET, server.c_str(), &address.sin_addr) != 1)
      return absl::InvalidArgumentError("--server is not IPv4");
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&address),
                sizeof(address)) != 0)
      return absl::ErrnoToStatus(errno, "connect");
    return absl::OkStatus();
  }
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }

  void Send(absl::Span<const uint8_t> bytes) {
    send(fd_, bytes.data(), bytes.size(), 0);
  }

  // The next datagram within `wait` (DeadlineExceeded if none came), or
  // the error the socket reported (e.g. an ICMP port unreachable).
  absl::StatusOr<Packet> Receive(absl::Duration wait) {
    pollfd p{fd_, POLLIN, 0};
    const int ms =
        static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(wait)));
    if (poll(&p, 1, ms) <= 0) return absl::DeadlineExceededError("nothing");
    Packet bytes(256);
    const ssize_t n = recv(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT);
    if (n < 0) return absl::ErrnoToStatus(errno, "recv");
    bytes.resize(n);
    return bytes;
  }

  // Replies are not looked at: they go as they come.
  void Drain() {
    uint8_t sink[256];
    while (recv(fd_, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
  }

 private:
  int fd_ = -1;
};

// Sends `request` as the key holder until lockd answers it with `answer`,
// keeping every transmission in `captured`.
absl::Status Exchange(Socket& socket, Signer& signer, Message request,
                      lockd_opcode answer, std::vector<Packet>& captured) {
  constexpr int kTransmissions = 50;
  constexpr absl::Duration kTimeout = absl::Milliseconds(200);
  std::string heard = "nothing";
  for (int i = 0; i < kTransmissions; ++i) {
    const EncodedMessage bytes = signer.Sign(request);
    captured.emplace_back(bytes.begin(), bytes.end());
    socket.Send(bytes);
    request.flags = LOCKD_FLAG_RETRANSMIT;
    const absl::Time until = absl::Now() + kTimeout;
    for (;;) {
      absl::StatusOr<Packet> datagram = socket.Receive(until - absl::Now());
      if (absl::IsDeadlineExceeded(datagram.status())) break;
      if (!datagram.ok()) {
        heard = datagram.status().ToString();
        continue;
      }
      absl::StatusOr<Message> reply = DecodeMessage(*datagram);
      if (!reply.ok()) {
        heard = std::string(reply.status().message());
        continue;
      }
      heard = reply->ToString();
      if (signer.Verify(*datagram, *reply) && reply->opcode == answer &&
          reply->lock_id == request.lock_id && reply->txn_id == request.txn_id)
        return absl::OkStatus();
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat("lockd did not answer client ", signer.client_id(), "'s ",
                   OpcodeName(request.opcode), " of lock ", request.lock_id,
                   " with ", OpcodeName(answer), " (last heard: ", heard, ")"));
}

// The key holder takes and releases kCapturedLocks locks: its
// transmissions.
absl::StatusOr<std::vector<Packet>> Capture(Socket& socket, Signer& signer) {
  std::vector<Packet> captured;
  for (uint64_t i = 0; i < kCapturedLocks; ++i) {
    Message take;
    take.opcode = LOCKD_OP_ACQUIRE;
    take.mode = LOCKD_MODE_EXCLUSIVE;
    take.lock_id = kCapturedLockBase + i;
    take.txn_id = 1 + i;
    Message give = take;
    give.opcode = LOCKD_OP_RELEASE;
    give.mode = LOCKD_MODE_NONE;
    for (const auto& [request, answer] : {std::pair{take, LOCKD_OP_GRANTED},
                                          std::pair{give, LOCKD_OP_RELEASED}})
      if (absl::Status s = Exchange(socket, signer, request, answer, captured);
          !s.ok())
        return s;
  }
  return captured;
}

double CpuSeconds(int pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  // Fields after the command name (which may hold spaces).
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
  uint64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime))
    return 0;
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// How long sending took, and the daemon's CPU meanwhile (share of a core).
struct Sending {
  uint64_t packets = 0;
  double seconds = 0;
  double daemon_cpu = 0;
};

// Sends `packets` packets made by `next` as fast as one socket sends.
Sending SendAll(Socket& socket, uint64_t packets, int pid,
                const std::function<Packet()>& next) {
  const double cpu_start = CpuSeconds(pid);
  const absl::Time start = absl::Now();
  for (uint64_t i = 0; i < packets; ++i) {
    socket.Send(next());
    socket.Drain();
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return {packets, seconds, (CpuSeconds(pid) - cpu_start) / seconds};
}

absl::StatusOr<uint64_t> Locks(v1::AdminService::Stub& admin) {
  absl::StatusOr<v1::MemoryUsage> usage = QueryMemory(admin, kAdminDeadline);
  if (!usage.ok()) return usage.status();
  return usage->locks();
}

// Lists every lock, page by page, as `lockctl locks` does: locks, seconds.
absl::StatusOr<std::pair<uint64_t, double>> ListAll(
    v1::AdminService::Stub& admin) {
  const absl::Time start = absl::Now();
  uint64_t listed = 0;
  v1::ListLocksRequest request;
  request.set_page_size(1000);
  do {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    v1::ListLocksResponse page;
    if (!admin.ListLocks(&context, request, &page).ok())
      return absl::UnavailableError("ListLocks failed");
    listed += page.locks_size();
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return std::pair{listed, absl::ToDoubleSeconds(absl::Now() - start)};
}

// Entries of lockd's pinned map `name`; -1 without --pin_dir.
absl::StatusOr<int64_t> PinnedEntries(absl::string_view name) {
  const std::string dir = absl::GetFlag(FLAGS_pin_dir);
  if (dir.empty()) return -1;
  return PinnedMapEntries(absl::StrCat(dir, "/", name));
}

using Figures = std::vector<std::pair<std::string, int64_t>>;

// What the unauthenticated packets left (all must be 0) and how lockd
// dropped them.
struct Unauthenticated {
  Sending sending;
  size_t captured = 0;
  Figures left;
  Figures dropped;
};

absl::StatusOr<Unauthenticated> SendUnauthenticated(
    Socket& socket, Signer& holder, v1::AdminService::Stub& admin) {
  absl::StatusOr<std::map<uint32_t, ClientKey>> keys =
      ReadKeyFile(absl::GetFlag(FLAGS_key_file));
  if (!keys.ok()) return keys.status();
  std::vector<uint32_t> known;
  for (const auto& [id, key] : *keys) known.push_back(id);
  absl::StatusOr<std::vector<Packet>> captured = Capture(socket, holder);
  if (!captured.ok()) return captured.status();

  absl::StatusOr<std::map<std::string, uint64_t>> before =
      QueryCounters(admin, kAdminDeadline);
  if (!before.ok()) return before.status();
  absl::StatusOr<int64_t> clients_before = PinnedEntries("clients");
  if (!clients_before.ok()) return clients_before.status();
  std::mt19937_64 rng(20231);
  Unauthenticated result;
  result.captured = captured->size();
  result.sending =
      SendAll(socket, absl::GetFlag(FLAGS_packets), absl::GetFlag(FLAGS_pid),
              [&] { return UnauthenticatedPacket(rng, known, *captured); });
  absl::SleepFor(absl::Seconds(1));  // the last ones through the datapath

  absl::StatusOr<std::map<std::string, uint64_t>> after =
      QueryCounters(admin, kAdminDeadline);
  if (!after.ok()) return after.status();
  absl::StatusOr<v1::MemoryUsage> memory = QueryMemory(admin, kAdminDeadline);
  if (!memory.ok()) return memory.status();
  absl::StatusOr<int64_t> ended = PinnedEntries("ended");
  if (!ended.ok()) return ended.status();
  absl::StatusOr<int64_t> clients_after = PinnedEntries("clients");
  if (!clients_after.ok()) return clients_after.status();
  auto delta = [&](const std::string& name) {
    return static_cast<int64_t>((*after)[name] - (*before)[name]);
  };
  int64_t served = 0;
  for (const char* name : kServedCounters) served += delta(name);
  result.left = {
      {"locks", static_cast<int64_t>(memory->locks())},
      {"pool_live_blocks", static_cast<int64_t>(memory->pool_live_blocks())},
      {"ended_memos", *ended},
      {"clients_added",
       *clients_before < 0 ? -1 : *clients_after - *clients_before},
      {"locks_created", delta("lock_created")},
      {"pool_blocks_allocated", delta("pool_alloc")},
      {"requests_served", served}};
  for (const char* name : kDropCounters)
    result.dropped.emplace_back(name, delta(name));
  return result;
}

// What the key holder's random requests left, and how it went.
struct Signed {
  Sending sending;
  uint64_t locks_after = 0;
  double list_seconds = 0;
  std::vector<std::pair<double, uint64_t>> locks_over_time;
  double empty_after = -1;
  double daemon_cpu_settling = 0;
  uint64_t reject_quota = 0;
};

absl::StatusOr<Signed> SendSigned(Socket& socket, Signer& holder,
                                  v1::AdminService::Stub& admin) {
  const int pid = absl::GetFlag(FLAGS_pid);
  absl::StatusOr<std::map<std::string, uint64_t>> before =
      QueryCounters(admin, kAdminDeadline);
  if (!before.ok()) return before.status();
  std::mt19937_64 rng(20232);
  Signed result;
  result.sending =
      SendAll(socket, absl::GetFlag(FLAGS_signed_packets), pid, [&] {
        Message m = RandomRequest(rng);
        const EncodedMessage bytes = holder.Sign(m);
        return Packet(bytes.begin(), bytes.end());
      });

  absl::StatusOr<uint64_t> peak = Locks(admin);
  if (!peak.ok()) return peak.status();
  result.locks_after = *peak;
  absl::StatusOr<std::pair<uint64_t, double>> listing = ListAll(admin);
  if (!listing.ok()) return listing.status();
  result.list_seconds = listing->second;
  absl::StatusOr<std::map<std::string, uint64_t>> after =
      QueryCounters(admin, kAdminDeadline);
  if (!after.ok()) return after.status();
  result.reject_quota = (*after)["reject_quota"] - (*before)["reject_quota"];

  // Leases and waits end: the table empties.
  const absl::Time sent = absl::Now();
  const double cpu_mark = CpuSeconds(pid);
  for (absl::Duration t = absl::Seconds(1); t <= absl::GetFlag(FLAGS_settle);
       t += absl::Seconds(1)) {
    absl::SleepFor(sent + t - absl::Now());
    absl::StatusOr<uint64_t> locks = Locks(admin);
    if (!locks.ok()) return locks.status();
    result.locks_over_time.push_back({absl::ToDoubleSeconds(t), *locks});
    if (*locks == 0) {
      result.empty_after = absl::ToDoubleSeconds(t);
      break;
    }
  }
  result.daemon_cpu_settling =
      (CpuSeconds(pid) - cpu_mark) / absl::ToDoubleSeconds(absl::Now() - sent);
  return result;
}

void WriteFigures(JsonWriter& json, absl::string_view key,
                  const Figures& figures) {
  json.Key(key).BeginObject();
  for (const auto& [name, value] : figures) json.Field(name, value);
  json.EndObject();
}

absl::Status Run() {
  if (const std::string ns = absl::GetFlag(FLAGS_netns); !ns.empty()) {
    if (absl::Status joined = netns::JoinNetns(ns); !joined.ok()) return joined;
  }
  if (absl::GetFlag(FLAGS_key_file).empty())
    return absl::InvalidArgumentError("--key_file is required");
  std::unique_ptr<v1::AdminService::Stub> admin =
      NewAdminStub(absl::GetFlag(FLAGS_grpc));
  absl::StatusOr<std::vector<Signer>> holder = MakeSigners(
      absl::GetFlag(FLAGS_key_file), absl::GetFlag(FLAGS_client_id), 1);
  if (!holder.ok()) return holder.status();
  Socket socket;
  if (absl::Status s = socket.Open(absl::GetFlag(FLAGS_server)); !s.ok())
    return s;

  absl::StatusOr<Unauthenticated> unauthenticated =
      SendUnauthenticated(socket, holder->front(), *admin);
  if (!unauthenticated.ok()) return unauthenticated.status();
  absl::StatusOr<Signed> signed_part =
      SendSigned(socket, holder->front(), *admin);
  if (!signed_part.ok()) return signed_part.status();
  // Idle: nothing left to do.
  const int pid = absl::GetFlag(FLAGS_pid);
  const double cpu_mark = CpuSeconds(pid);
  const absl::Time idle_start = absl::Now();
  absl::SleepFor(absl::Seconds(5));
  const double idle_cpu = (CpuSeconds(pid) - cpu_mark) /
                          absl::ToDoubleSeconds(absl::Now() - idle_start);

  const Unauthenticated& u = *unauthenticated;
  absl::PrintF(
      "fuzz: %d packets without a key (%d signed requests captured first and "
      "replayed among them, about 30%% malformed) in %.1f s; daemon CPU while "
      "they came %.0f%% of a core\n",
      u.sending.packets, u.captured, u.sending.seconds,
      100 * u.sending.daemon_cpu);
  std::vector<std::string> not_zero;
  absl::PrintF("  what they left (all must be 0; -1: not read):\n");
  for (const auto& [name, value] : u.left) {
    absl::PrintF("    %-22s %d\n", name, value);
    if (value > 0) not_zero.push_back(absl::StrCat(name, " ", value));
  }
  absl::PrintF("  how lockd dropped them (counters):\n");
  for (const auto& [name, value] : u.dropped)
    absl::PrintF("    %-22s %d\n", name, value);

  const Signed& s = *signed_part;
  absl::PrintF(
      "fuzz: %d random requests signed by client %d in %.1f s; daemon CPU "
      "while they came %.0f%% of a core; %d rejected at the client's quota\n",
      s.sending.packets, holder->front().client_id(), s.sending.seconds,
      100 * s.sending.daemon_cpu, s.reject_quota);
  absl::PrintF("  locks in the table after: %d; listing them all took %.3f s\n",
               s.locks_after, s.list_seconds);
  for (const auto& [t, locks] : s.locks_over_time)
    absl::PrintF("  %4.0f s later: %d locks\n", t, locks);
  absl::PrintF(
      "  the table empty after %.0f s; daemon CPU meanwhile %.0f%% of a "
      "core; idle after: %.1f%% of a core\n",
      s.empty_after, 100 * s.daemon_cpu_settling, 100 * idle_cpu);

  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    JsonWriter json;
    json.BeginObject();
    json.Field("packets", u.sending.packets);
    json.Field("captured", static_cast<uint64_t>(u.captured));
    json.Field("send_seconds", u.sending.seconds);
    json.Field("daemon_cpu_sending", u.sending.daemon_cpu);
    WriteFigures(json, "left", u.left);
    WriteFigures(json, "dropped", u.dropped);
    json.Key("signed").BeginObject();
    json.Field("packets", s.sending.packets);
    json.Field("send_seconds", s.sending.seconds);
    json.Field("daemon_cpu_sending", s.sending.daemon_cpu);
    json.Field("reject_quota", s.reject_quota);
    json.Field("locks_after", s.locks_after);
    json.Field("list_seconds", s.list_seconds);
    json.Field("empty_after_seconds", s.empty_after);
    json.Field("watched_seconds", s.locks_over_time.back().first);
    json.Field("locks_at_end", s.locks_over_time.back().second);
    json.Field("daemon_cpu_settling", s.daemon_cpu_settling);
    json.EndObject();
    json.Field("daemon_cpu_idle", idle_cpu);
    json.EndObject();
    std::ofstream(path) << json.str() << "\n";
  }
  if (!not_zero.empty())
    return absl::InternalError(
        absl::StrCat("packets without a key left state in lockd: ",
                     absl::StrJoin(not_zero, ", ")));
  return absl::OkStatus();
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fuzz --netns=NS --server=IP --grpc=ADDR --pid=PID --key_file=FILE "
      "--pin_dir=DIR: a million packets without a key against a running "
      "lockd, then a key holder's random requests, and what they leave.");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = lockd::bench::Run();
  if (!status.ok()) {
    fprintf(stderr, "fuzz: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
