// TestNetwork: network namespaces joined by veth pairs, for end-to-end tests
// that send real lockd packets through a real (virtual) wire.
//
// Topology: a list of namespaces, named by role ("server", "client", ...),
// and a list of point-to-point links. Each link is one veth pair with its own
// /24: link i uses 198.18.i.0/24 (RFC 2544 benchmarking range, never routed),
// its server end is 198.18.i.1 and its client end 198.18.i.2. No bridges and
// no routes beyond the connected ones. The default is the common case: two
// namespaces, "server" and "client", and one link between them.
//
// Hygiene: names are unique per process and per network
// ("lockdt-<pid>-<seq>-<role>" for namespaces, "lk<pid><s|c><seq>" for
// interfaces), veths are created directly inside their namespaces (never in
// the root namespace), IPv6 is off so the only traffic is ARP and what the test
// sends, and everything is removed by the destructor, by a SIGINT/SIGTERM/
// SIGHUP handler (which then re-raises the signal), and, after a SIGKILL, by
// CleanupStale(), which every Create() runs first.
//
// Threads: setns() moves only the calling thread, so code that must run in a
// namespace runs on a thread of its own (RunIn, SpawnIn); sockets keep the
// namespace they were created in, wherever they are used afterwards.
#ifndef LOCKD_TESTS_NETNS_TEST_NETWORK_H_
#define LOCKD_TESTS_NETNS_TEST_NETWORK_H_

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct xdp_pass;  // libbpf skeleton of xdp_pass.bpf.c

namespace lockd::netns {

// Prefix of every namespace name TestNetwork creates; CleanupStale's default.
inline constexpr absl::string_view kNetnsPrefix = "lockdt";

// An owned file descriptor, closed on destruction.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();

 private:
  int fd_ = -1;
};

// Opens /run/netns/<netns>: an fd for setns(), or to keep a namespace alive.
absl::StatusOr<ScopedFd> OpenNetns(absl::string_view netns);

// Moves the calling thread (only it) into `netns`: for a program's main
// thread before it starts others, which then inherit the namespace.
absl::Status JoinNetns(absl::string_view netns);

// Runs `fn` to completion on a new thread that has joined `netns` first.
// Errors are only those of joining; `fn` reports its own through captures.
absl::Status RunIn(absl::string_view netns, std::function<void()> fn);

// Starts `fn` on a new thread that has joined `netns`, and returns once the
// thread is in the namespace (so a setns failure is reported here). The caller
// joins the thread, before the TestNetwork that owns `netns` is destroyed.
absl::StatusOr<std::thread> SpawnIn(absl::string_view netns,
                                    std::function<void()> fn);

struct CommandResult {
  int exit_code = -1;  // 128 + signal number if the command was killed
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null. A command still
// running after `timeout` is killed (exit_code 128 + SIGKILL) and reported as
// DeadlineExceeded; a non-zero exit is not an error here, check exit_code.
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv,
    absl::Duration timeout = absl::Seconds(30));

// Runs `sh -c shell_command` inside `netns` via `ip netns exec`. Output is
// read until every holder of the pipe exits, so a command that leaves a
// background job behind (`daemon &`) runs into the timeout: start long-lived
// processes with SpawnIn or your own fork/exec instead.
absl::StatusOr<CommandResult> ExecIn(
    absl::string_view netns, absl::string_view shell_command,
    absl::Duration timeout = absl::Seconds(30));

// One end of a veth pair.
struct Interface {
  std::string netns;             // namespace holding the interface
  std::string name;              // interface name inside `netns`
  int ifindex = 0;               // ifindex inside `netns`
  std::string ipv4;              // dotted quad, e.g. "198.18.0.1"
  in_addr ipv4_addr{};           // the same, network order as in packets
  int prefix_len = 24;           // the link's subnet is ipv4/prefix_len
  std::array<uint8_t, 6> mac{};  // hardware address
};

// A veth pair between two namespaces.
struct Link {
  Interface server;  // 198.18.i.1 for link i
  Interface client;  // 198.18.i.2 for link i
};

class TestNetwork {
 public:
  struct LinkSpec {
    std::string server_role;
    std::string client_role;
  };

  struct Options {
    // Roles of the namespaces to create: letters, digits and '_' only.
    std::vector<std::string> roles = {"server", "client"};
    // Veth pairs to create, by role; link i gets 198.18.i.0/24.
    std::vector<LinkSpec> links = {{"server", "client"}};
    // Attach an XDP_PASS program natively to every client-side interface.
    // Needed when the server side answers with native XDP_TX: veth delivers
    // such frames only if the receiving end has an XDP program too.
    bool client_xdp_pass = true;
    // Turn TX checksum offload off on client-side interfaces, so the packets
    // clients send carry complete UDP checksums, as from a real wire (with
    // offload on, veth passes only the pseudo-header sum, and a reply that
    // XDP derives from it incrementally arrives with a bad checksum).
    bool client_tx_checksum_offload = false;
  };

  // Builds the topology; on failure removes whatever it had created.
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create(Options options);
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create() {
    return Create(Options());
  }

  // Removes namespaces whose names are "<prefix>-<pid>-..." for a pid that is
  // no longer alive: leftovers of runs killed by SIGKILL. Returns how many it
  // removed. A pid reused by an unrelated process keeps its leftovers alive
  // until that process exits (the safe direction).
  static absl::StatusOr<int> CleanupStale(
      absl::string_view prefix = kNetnsPrefix);

  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;
  // Detaches XDP_PASS, deletes every veth, then every namespace. Threads still
  // inside a namespace keep it (empty of veths) alive until they exit.
  ~TestNetwork();

  // Unique name of the namespace created for `role`; empty if there is none.
  std::string Netns(absl::string_view role) const;
  // The default topology's namespaces.
  std::string server_netns() const { return Netns("server"); }
  std::string client_netns() const { return Netns("client"); }

  // Links in Options::links order; link() is the first (the common case).
  const std::vector<Link>& links() const { return links_; }
  const Link& link() const { return links_.front(); }

  // Id of the XDP_PASS program on the client-side interfaces; 0 if none.
  uint32_t xdp_pass_prog_id() const { return xdp_pass_prog_id_; }

 private:
  struct Namespace {
    std::string role;
    std::string name;
    int registry_slot = -1;  // where the signal handler finds it
  };

  TestNetwork() = default;

  absl::Status AddNamespace(absl::string_view role, int network_seq);
  absl::Status AddLink(const LinkSpec& spec, int index);
  absl::Status AttachXdpPass();
  absl::Status DetachXdpPass();

  std::vector<Namespace> namespaces_;
  std::vector<Link> links_;
  xdp_pass* xdp_pass_ = nullptr;
  uint32_t xdp_pass_prog_id_ = 0;
};

// A UDP socket that lives in a namespace, for sending requests and reading
// replies in tests.
class UdpSocket {
 public:
  struct Datagram {
    std::vector<uint8_t> payload;
    std::string from_ipv4;   // dotted quad
    uint16_t from_port = 0;  // host order
  };

  // Binds to bind_ipv4:port inside `netns`; port 0 picks a free one.
  static absl::StatusOr<UdpSocket> Open(absl::string_view netns,
                                        absl::string_view bind_ipv4,
                                        uint16_t port = 0);

  absl::Status SendTo(absl::string_view ipv4, uint16_t port,
                      absl::Span<const uint8_t> payload) const;
  // Waits up to `timeout` for one datagram; DeadlineExceeded if none came.
  absl::StatusOr<Datagram> RecvFrom(absl::Duration timeout) const;

  uint16_t local_port() const { return local_port_; }  // host order
  int fd() const { return fd_.get(); }

 private:
  UdpSocket(ScopedFd fd, uint16_t local_port)
      : fd_(std::move(fd)), local_port_(local_port) {}

  ScopedFd fd_;
  uint16_t local_port_ = 0;
};

}  // namespace lockd::netns

#endif  // LOCKD_TESTS_NETNS_TEST_NETWORK_H_
