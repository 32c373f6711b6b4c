// fuzz: a million packets of random, malformed and stale lockd requests
// against a running lockd, then what they left: how long `lockd` takes to
// list its locks at the peak, how the locks in its table come back to the
// live count as leases and waits end, and how much CPU the daemon uses
// meanwhile and once idle. Requests carry leases of at most --max_lease_ms
// and waits of at most --max_wait_ms, so that everything they leave ends.
// Prints the figures and, with --json, one JSON object. A benchmark: it
// never asserts on time.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/json_writer.h"
#include "bench/lockd_memory.h"
#include "proto/lockd.grpc.pb.h"
#include "tests/netns/test_network.h"

ABSL_FLAG(std::string, netns, "", "Network namespace to run in.");
ABSL_FLAG(std::string, server, "198.18.0.1", "lockd's IPv4 address.");
ABSL_FLAG(std::string, grpc, "198.18.0.1:7451", "lockd's gRPC address.");
ABSL_FLAG(int32_t, pid, 0, "lockd's pid, for its CPU time.");
ABSL_FLAG(uint64_t, packets, 1000000, "Packets to send.");
ABSL_FLAG(uint32_t, max_lease_ms, 2000, "Longest lease a request asks for.");
ABSL_FLAG(uint32_t, max_wait_ms, 2000, "Longest wait a request asks for.");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(30),
          "Longest time to watch the table empty after the packets.");
ABSL_FLAG(std::string, json, "", "Also write the figures as JSON here.");

namespace lockd::bench {
namespace {

constexpr uint64_t kHotLocks = 64;  // contended: queues form
constexpr uint64_t kColdLocks = 1 << 20;

// One packet: a valid request, often for a stale or unknown owner, or
// garbage that is malformed in one of the ways docs/semantics.md lists.
std::vector<uint8_t> Packet(std::mt19937_64& rng) {
  Message m;
  static constexpr lockd_opcode kOpcodes[] = {
      LOCKD_OP_ACQUIRE, LOCKD_OP_ACQUIRE, LOCKD_OP_ACQUIRE, LOCKD_OP_RELEASE,
      LOCKD_OP_RELEASE, LOCKD_OP_RENEW,   LOCKD_OP_KICK};
  m.opcode = kOpcodes[rng() % 7];
  m.mode = rng() % 3 ? LOCKD_MODE_EXCLUSIVE : LOCKD_MODE_SHARED;
  m.policy = static_cast<lockd_policy>(rng() % LOCKD_POLICY_COUNT);
  m.lock_id = rng() % 2 ? rng() % kHotLocks : kHotLocks + rng() % kColdLocks;
  m.txn_id = 1 + rng() % 100000;
  m.seq = static_cast<uint32_t>(rng());
  m.lease_ms = 1 + rng() % absl::GetFlag(FLAGS_max_lease_ms);
  m.wait_ms = 1 + rng() % absl::GetFlag(FLAGS_max_wait_ms);
  if (rng() % 4 == 0) m.flags = LOCKD_FLAG_RETRANSMIT;
  if (rng() % 8 == 0) m.ticket = rng();
  const EncodedMessage encoded = Encode(m);
  std::vector<uint8_t> bytes(encoded.begin(), encoded.end());
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

absl::StatusOr<uint64_t> Locks(v1::AdminService::Stub& admin) {
  absl::StatusOr<v1::MemoryUsage> usage = QueryMemory(admin, absl::Seconds(10));
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

absl::Status Run() {
  if (const std::string ns = absl::GetFlag(FLAGS_netns); !ns.empty()) {
    if (absl::Status joined = netns::JoinNetns(ns); !joined.ok()) return joined;
  }
  std::unique_ptr<v1::AdminService::Stub> admin =
      NewAdminStub(absl::GetFlag(FLAGS_grpc));
  const int pid = absl::GetFlag(FLAGS_pid);

  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(LOCKD_DEFAULT_PORT);
  inet_pton(AF_INET, absl::GetFlag(FLAGS_server).c_str(), &server.sin_addr);
  std::mt19937_64 rng(20231);
  const uint64_t packets = absl::GetFlag(FLAGS_packets);
  const double cpu_start = CpuSeconds(pid);
  const absl::Time start = absl::Now();
  uint8_t sink[256];
  for (uint64_t i = 0; i < packets; ++i) {
    const std::vector<uint8_t> bytes = Packet(rng);
    sendto(fd, bytes.data(), bytes.size(), 0,
           reinterpret_cast<sockaddr*>(&server), sizeof(server));
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
  }
  const double send_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_sending = CpuSeconds(pid) - cpu_start;
  close(fd);

  absl::StatusOr<uint64_t> peak = Locks(*admin);
  if (!peak.ok()) return peak.status();
  absl::StatusOr<std::pair<uint64_t, double>> listing = ListAll(*admin);
  if (!listing.ok()) return listing.status();

  // Leases and waits end: the table empties.
  std::vector<std::pair<double, uint64_t>> locks_over_time;
  const absl::Time sent = absl::Now();
  double empty_after = -1;
  double cpu_mark = CpuSeconds(pid);
  for (absl::Duration t = absl::Seconds(1); t <= absl::GetFlag(FLAGS_settle);
       t += absl::Seconds(1)) {
    absl::SleepFor(sent + t - absl::Now());
    absl::StatusOr<uint64_t> locks = Locks(*admin);
    if (!locks.ok()) return locks.status();
    locks_over_time.push_back({absl::ToDoubleSeconds(t), *locks});
    if (*locks == 0) {
      empty_after = absl::ToDoubleSeconds(t);
      break;
    }
  }
  const double cpu_settling = CpuSeconds(pid) - cpu_mark;
  const double settling_seconds = absl::ToDoubleSeconds(absl::Now() - sent);
  // Idle: nothing left to do.
  cpu_mark = CpuSeconds(pid);
  const absl::Time idle_start = absl::Now();
  absl::SleepFor(absl::Seconds(5));
  const double idle_cpu = (CpuSeconds(pid) - cpu_mark) /
                          absl::ToDoubleSeconds(absl::Now() - idle_start);

  absl::PrintF(
      "fuzz: %d packets (about 30%% malformed) in %.1f s; daemon CPU while "
      "they came %.0f%% of a core\n",
      packets, send_seconds, 100 * cpu_sending / send_seconds);
  absl::PrintF("  locks in the table after: %d; listing them all took %.3f s\n",
               *peak, listing->second);
  for (const auto& [t, locks] : locks_over_time)
    absl::PrintF("  %4.0f s later: %d locks\n", t, locks);
  absl::PrintF(
      "  the table empty after %.0f s; daemon CPU meanwhile %.0f%% of a "
      "core; idle after: %.1f%% of a core\n",
      empty_after, 100 * cpu_settling / settling_seconds, 100 * idle_cpu);

  std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) return absl::OkStatus();
  JsonWriter json;
  json.BeginObject();
  json.Field("packets", packets);
  json.Field("send_seconds", send_seconds);
  json.Field("daemon_cpu_sending", cpu_sending / send_seconds);
  json.Field("locks_after", *peak);
  json.Field("list_seconds", listing->second);
  json.Field("empty_after_seconds", empty_after);
  json.Field("daemon_cpu_settling", cpu_settling / settling_seconds);
  json.Field("daemon_cpu_idle", idle_cpu);
  json.EndObject();
  std::ofstream(path) << json.str() << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fuzz --netns=NS --server=IP --grpc=ADDR --pid=PID: a million fuzzed "
      "packets against a running lockd, and what they leave.");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = lockd::bench::Run();
  if (!status.ok()) {
    fprintf(stderr, "fuzz: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
