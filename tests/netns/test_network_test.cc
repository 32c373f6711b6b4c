#include "tests/netns/test_network.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/netns/udp_reflector.skel.h"

namespace lockd::netns {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kReplyTimeout = absl::Seconds(5);

bool PathExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

bool NetnsExists(const std::string& name) {
  return PathExists(absl::StrCat("/run/netns/", name));
}

std::vector<uint8_t> Bytes(absl::string_view text) {
  return std::vector<uint8_t>(text.begin(), text.end());
}

std::string RootVeths() {
  absl::StatusOr<CommandResult> veths =
      RunCommand({"ip", "-o", "link", "show", "type", "veth"});
  return veths.ok() ? veths->output : veths.status().ToString();
}

// Sends `text` from `from` to `to` and expects it to arrive intact, from
// `from`'s address and port.
void ExpectDelivered(const Interface& from, const Interface& to,
                     absl::string_view text) {
  absl::StatusOr<UdpSocket> receiver = UdpSocket::Open(to.netns, to.ipv4);
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::StatusOr<UdpSocket> sender = UdpSocket::Open(from.netns, from.ipv4);
  ASSERT_TRUE(sender.ok()) << sender.status();

  ASSERT_TRUE(
      sender->SendTo(to.ipv4, receiver->local_port(), Bytes(text)).ok());
  absl::StatusOr<UdpSocket::Datagram> datagram =
      receiver->RecvFrom(kReplyTimeout);
  ASSERT_TRUE(datagram.ok()) << datagram.status();
  EXPECT_EQ(datagram->payload, Bytes(text));
  EXPECT_EQ(datagram->from_ipv4, from.ipv4);
  EXPECT_EQ(datagram->from_port, sender->local_port());
}

TEST(TestNetworkTest, DefaultTopologyExistsWhileAliveAndIsGoneAfter) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  const std::string server_ns = (*network)->server_netns();
  const std::string client_ns = (*network)->client_netns();
  ASSERT_EQ((*network)->links().size(), 1u);
  const Link link = (*network)->link();

  EXPECT_TRUE(NetnsExists(server_ns));
  EXPECT_TRUE(NetnsExists(client_ns));
  EXPECT_EQ(link.server.netns, server_ns);
  EXPECT_EQ(link.client.netns, client_ns);
  EXPECT_EQ(link.server.ipv4, "198.18.0.1");
  EXPECT_EQ(link.client.ipv4, "198.18.0.2");
  EXPECT_EQ(link.server.ipv4_addr.s_addr, inet_addr("198.18.0.1"));
  EXPECT_NE(link.server.mac, link.client.mac);

  // What the harness reports matches what the kernel shows in each namespace.
  for (const Interface& iface : {link.server, link.client}) {
    absl::StatusOr<CommandResult> shown = ExecIn(
        iface.netns,
        absl::StrCat("cat /sys/class/net/", iface.name, "/ifindex /sys/class/",
                     "net/", iface.name, "/address; ip -o -4 address show dev ",
                     iface.name, "; cat /proc/sys/net/ipv6/conf/", iface.name,
                     "/disable_ipv6"));
    ASSERT_TRUE(shown.ok()) << shown.status();
    ASSERT_EQ(shown->exit_code, 0) << shown->output;
    const std::vector<std::string> lines =
        absl::StrSplit(shown->output, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 4u) << shown->output;
    EXPECT_EQ(lines[0], absl::StrCat(iface.ifindex));
    EXPECT_EQ(lines[1],
              absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", iface.mac[0],
                              iface.mac[1], iface.mac[2], iface.mac[3],
                              iface.mac[4], iface.mac[5]));
    EXPECT_THAT(lines[2], HasSubstr(absl::StrCat(" ", iface.ipv4, "/24 ")));
    EXPECT_EQ(lines[3], "1");  // IPv6 off: the wire carries only test traffic
  }
  // The veths never appear in the machine's own namespace.
  EXPECT_THAT(RootVeths(), Not(HasSubstr(link.server.name)));
  EXPECT_THAT(RootVeths(), Not(HasSubstr(link.client.name)));

  // Keep the client namespace alive past the harness, to look inside after.
  absl::StatusOr<ScopedFd> held_client_ns = OpenNetns(client_ns);
  ASSERT_TRUE(held_client_ns.ok()) << held_client_ns.status();
  network->reset();

  EXPECT_FALSE(NetnsExists(server_ns));
  EXPECT_FALSE(NetnsExists(client_ns));
  unsigned lo_index = 0;
  unsigned veth_index = 0;
  int setns_result = -1;
  std::thread inspector([&] {
    setns_result = setns(held_client_ns->get(), CLONE_NEWNET);
    lo_index = if_nametoindex("lo");
    veth_index = if_nametoindex(link.client.name.c_str());
  });
  inspector.join();
  ASSERT_EQ(setns_result, 0);
  EXPECT_NE(lo_index, 0u);    // we did look inside the namespace,
  EXPECT_EQ(veth_index, 0u);  // and its veth is gone even though it lives on
}

TEST(TestNetworkTest, UdpCrossesTheLinkBothWays) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  const Link& link = (*network)->link();
  ExpectDelivered(link.client, link.server, "request");
  ExpectDelivered(link.server, link.client, "reply");
}

TEST(TestNetworkTest, RecvFromTimesOutWhenNothingArrives) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  absl::StatusOr<UdpSocket> socket = UdpSocket::Open(
      (*network)->server_netns(), (*network)->link().server.ipv4);
  ASSERT_TRUE(socket.ok()) << socket.status();
  EXPECT_EQ(socket->RecvFrom(absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(TestNetworkTest, SocketsAndThreadsBelongToTheirNamespace) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  const Interface& server = (*network)->link().server;

  // The server address exists only in the server namespace.
  EXPECT_FALSE(UdpSocket::Open((*network)->client_netns(), server.ipv4).ok());
  EXPECT_TRUE(UdpSocket::Open((*network)->server_netns(), server.ipv4).ok());

  unsigned index_inside = 0;
  absl::StatusOr<std::thread> thread = SpawnIn(server.netns, [&] {
    index_inside = if_nametoindex(server.name.c_str());
  });
  ASSERT_TRUE(thread.ok()) << thread.status();
  thread->join();
  EXPECT_EQ(index_inside, static_cast<unsigned>(server.ifindex));
  EXPECT_EQ(if_nametoindex(server.name.c_str()), 0u);  // this thread: root ns

  EXPECT_FALSE(RunIn("lockdt-no-such-namespace", [] {}).ok());
}

TEST(TestNetworkTest, TwoNetworksCoexist) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> first = TestNetwork::Create();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<TestNetwork>> second = TestNetwork::Create();
  ASSERT_TRUE(second.ok()) << second.status();

  EXPECT_NE((*first)->server_netns(), (*second)->server_netns());
  EXPECT_NE((*first)->client_netns(), (*second)->client_netns());
  EXPECT_NE((*first)->link().client.name, (*second)->link().client.name);
  // Same addresses, separate wires.
  EXPECT_EQ((*first)->link().server.ipv4, (*second)->link().server.ipv4);
  ExpectDelivered((*first)->link().client, (*first)->link().server, "one");
  ExpectDelivered((*second)->link().client, (*second)->link().server, "two");
}

TEST(TestNetworkTest, ClientJoinsTwoServers) {
  TestNetwork::Options options;
  options.roles = {"server1", "server2", "client"};
  options.links = {{"server1", "client"}, {"server2", "client"}};
  absl::StatusOr<std::unique_ptr<TestNetwork>> network =
      TestNetwork::Create(options);
  ASSERT_TRUE(network.ok()) << network.status();
  const std::vector<Link>& links = (*network)->links();
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(links[0].server.netns, (*network)->Netns("server1"));
  EXPECT_EQ(links[1].server.netns, (*network)->Netns("server2"));
  EXPECT_EQ(links[1].server.ipv4, "198.18.1.1");
  EXPECT_EQ(links[1].client.ipv4, "198.18.1.2");
  EXPECT_EQ(links[0].client.netns, links[1].client.netns);
  ExpectDelivered(links[0].client, links[0].server, "to server1");
  ExpectDelivered(links[1].client, links[1].server, "to server2");
  EXPECT_EQ((*network)->Netns("nobody"), "");
}

TEST(TestNetworkTest, RejectsBadOptions) {
  TestNetwork::Options duplicate_role;
  duplicate_role.roles = {"server", "server"};
  EXPECT_EQ(TestNetwork::Create(duplicate_role).status().code(),
            absl::StatusCode::kInvalidArgument);

  TestNetwork::Options unknown_role;
  unknown_role.links = {{"server", "ghost"}};
  EXPECT_EQ(TestNetwork::Create(unknown_role).status().code(),
            absl::StatusCode::kInvalidArgument);

  TestNetwork::Options dash_in_role;
  dash_in_role.roles = {"server", "cli-ent"};
  dash_in_role.links = {{"server", "cli-ent"}};
  EXPECT_EQ(TestNetwork::Create(dash_in_role).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TestNetworkTest, ClientXdpPassIsAttachedNatively) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  const Link& link = (*network)->link();
  ASSERT_NE((*network)->xdp_pass_prog_id(), 0u);

  bpf_xdp_query_opts client_query{};
  client_query.sz = sizeof(client_query);
  bpf_xdp_query_opts server_query{};
  server_query.sz = sizeof(server_query);
  int client_error = -1;
  int server_error = -1;
  ASSERT_TRUE(RunIn(link.client.netns, [&] {
                client_error =
                    bpf_xdp_query(link.client.ifindex, 0, &client_query);
              }).ok());
  ASSERT_TRUE(RunIn(link.server.netns, [&] {
                server_error =
                    bpf_xdp_query(link.server.ifindex, 0, &server_query);
              }).ok());
  ASSERT_EQ(client_error, 0);
  EXPECT_EQ(client_query.attach_mode, XDP_ATTACHED_DRV);
  EXPECT_EQ(client_query.drv_prog_id, (*network)->xdp_pass_prog_id());
  // The server side is left to the test (lockd attaches there).
  ASSERT_EQ(server_error, 0);
  EXPECT_EQ(server_query.attach_mode, XDP_ATTACHED_NONE);

  ExpectDelivered(link.client, link.server, "through xdp_pass");
  ExpectDelivered(link.server, link.client, "into xdp_pass");
}

TEST(TestNetworkTest, ClientXdpPassCanBeLeftOut) {
  TestNetwork::Options options;
  options.client_xdp_pass = false;
  absl::StatusOr<std::unique_ptr<TestNetwork>> network =
      TestNetwork::Create(options);
  ASSERT_TRUE(network.ok()) << network.status();
  const Interface& client = (*network)->link().client;
  EXPECT_EQ((*network)->xdp_pass_prog_id(), 0u);
  bpf_xdp_query_opts query{};
  query.sz = sizeof(query);
  int error = -1;
  ASSERT_TRUE(RunIn(client.netns, [&] {
                error = bpf_xdp_query(client.ifindex, 0, &query);
              }).ok());
  ASSERT_EQ(error, 0);
  EXPECT_EQ(query.attach_mode, XDP_ATTACHED_NONE);
}

struct ReflectorDeleter {
  void operator()(udp_reflector* skeleton) const {
    udp_reflector__destroy(skeleton);
  }
};
using Reflector = std::unique_ptr<udp_reflector, ReflectorDeleter>;

// Attaches udp_reflector natively to `server`: a stand-in for lockd's fast
// path answering with XDP_TX.
absl::StatusOr<Reflector> AttachReflector(const Interface& server) {
  Reflector reflector(udp_reflector__open_and_load());
  if (reflector == nullptr) return absl::InternalError("loading reflector");
  const int prog_fd = bpf_program__fd(reflector->progs.udp_reflector);
  int error = -1;
  absl::Status status = RunIn(server.netns, [&] {
    error =
        bpf_xdp_attach(server.ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
  });
  if (!status.ok()) return status;
  if (error != 0) return absl::InternalError("attaching reflector");
  return reflector;
}

// Sends to the reflector's port 7 from the client; returns the reply.
absl::StatusOr<UdpSocket::Datagram> Reflect(const Link& link,
                                            absl::Duration timeout) {
  absl::StatusOr<UdpSocket> client =
      UdpSocket::Open(link.client.netns, link.client.ipv4);
  if (!client.ok()) return client.status();
  absl::Status status = client->SendTo(link.server.ipv4, 7, Bytes("echo"));
  if (!status.ok()) return status;
  return client->RecvFrom(timeout);
}

TEST(TestNetworkTest, NativeXdpTxRepliesReachTheClient) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  const Link& link = (*network)->link();
  absl::StatusOr<Reflector> reflector = AttachReflector(link.server);
  ASSERT_TRUE(reflector.ok()) << reflector.status();

  // Arriving at the socket also means the reply's UDP checksum was valid.
  absl::StatusOr<UdpSocket::Datagram> reply = Reflect(link, kReplyTimeout);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->payload, Bytes("echo"));
  EXPECT_EQ(reply->from_ipv4, link.server.ipv4);
  EXPECT_EQ(reply->from_port, 7);
}

// The control for the test above, and the reason client_xdp_pass exists:
// veth drops native XDP_TX frames towards an end without an XDP program.
TEST(TestNetworkTest, NativeXdpTxRepliesNeedClientXdpPass) {
  TestNetwork::Options options;
  options.client_xdp_pass = false;
  absl::StatusOr<std::unique_ptr<TestNetwork>> network =
      TestNetwork::Create(options);
  ASSERT_TRUE(network.ok()) << network.status();
  const Link& link = (*network)->link();
  absl::StatusOr<Reflector> reflector = AttachReflector(link.server);
  ASSERT_TRUE(reflector.ok()) << reflector.status();

  EXPECT_EQ(Reflect(link, absl::Milliseconds(500)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

// One's-complement sum of 16-bit big-endian words.
uint32_t SumWords(const uint8_t* data, size_t size, uint32_t sum) {
  for (size_t i = 0; i + 1 < size; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (size % 2 == 1) sum += data[size - 1] << 8;
  return sum;
}

// Whether the UDP checksum of an IPv4 packet is complete: summing the
// pseudo-header and the whole datagram, checksum included, gives 0xffff.
bool UdpChecksumIsComplete(const uint8_t* packet, size_t size) {
  const size_t ip_header_len = (packet[0] & 0x0f) * 4;
  const uint8_t* udp = packet + ip_header_len;
  const size_t udp_len = (udp[4] << 8) | udp[5];
  if (ip_header_len + udp_len > size) return false;
  uint32_t sum = SumWords(packet + 12, 8, 0);  // source and destination
  sum += IPPROTO_UDP + udp_len;
  sum = SumWords(udp, udp_len, sum);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// Sends one datagram from the client and captures it as the server's
// interface receives it; returns whether its UDP checksum is complete.
absl::StatusOr<bool> ServerSeesCompleteChecksum(const Link& link) {
  absl::StatusOr<UdpSocket> receiver =
      UdpSocket::Open(link.server.netns, link.server.ipv4);
  if (!receiver.ok()) return receiver.status();
  ScopedFd capture;
  absl::Status status = RunIn(link.server.netns, [&] {
    capture = ScopedFd(socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP)));
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_IP);
    address.sll_ifindex = link.server.ifindex;
    if (capture.valid() &&
        bind(capture.get(), reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
      capture = ScopedFd();
    }
  });
  if (!status.ok()) return status;
  if (!capture.valid()) return absl::InternalError("no capture socket");
  absl::StatusOr<UdpSocket> sender =
      UdpSocket::Open(link.client.netns, link.client.ipv4);
  if (!sender.ok()) return sender.status();
  status = sender->SendTo(link.server.ipv4, receiver->local_port(),
                          Bytes("checksum me"));
  if (!status.ok()) return status;

  // Bounded: at most 16 frames (ARP is filtered out by ETH_P_IP).
  for (int frame = 0; frame < 16; ++frame) {
    pollfd readable{capture.get(), POLLIN, 0};
    if (poll(&readable, 1, absl::ToInt64Milliseconds(kReplyTimeout)) != 1) {
      break;
    }
    uint8_t packet[2048];
    const ssize_t got = recv(capture.get(), packet, sizeof(packet), 0);
    if (got < static_cast<ssize_t>(sizeof(iphdr) + sizeof(udphdr))) continue;
    const iphdr* ip = reinterpret_cast<const iphdr*>(packet);
    const udphdr* udp = reinterpret_cast<const udphdr*>(packet + ip->ihl * 4);
    if (ip->protocol != IPPROTO_UDP ||
        ntohs(udp->dest) != receiver->local_port()) {
      continue;
    }
    return UdpChecksumIsComplete(packet, static_cast<size_t>(got));
  }
  return absl::DeadlineExceededError("the datagram was not captured");
}

TEST(TestNetworkTest, ClientSendsCompleteChecksums) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  absl::StatusOr<bool> complete =
      ServerSeesCompleteChecksum((*network)->link());
  ASSERT_TRUE(complete.ok()) << complete.status();
  EXPECT_TRUE(*complete);
}

// The control for the test above: with offload on, veth hands the peer only
// the pseudo-header sum, which is what the harness exists to prevent.
TEST(TestNetworkTest, OffloadLeavesChecksumsIncomplete) {
  TestNetwork::Options options;
  options.client_tx_checksum_offload = true;
  absl::StatusOr<std::unique_ptr<TestNetwork>> network =
      TestNetwork::Create(options);
  ASSERT_TRUE(network.ok()) << network.status();
  absl::StatusOr<bool> complete =
      ServerSeesCompleteChecksum((*network)->link());
  ASSERT_TRUE(complete.ok()) << complete.status();
  EXPECT_FALSE(*complete);
}

TEST(TestNetworkTest, ExecInReportsExitCodeAndOutput) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
  ASSERT_TRUE(network.ok()) << network.status();
  absl::StatusOr<CommandResult> result = ExecIn(
      (*network)->client_netns(), "ip -o link show; echo bye >&2; exit 3");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_THAT(result->output, HasSubstr((*network)->link().client.name));
  EXPECT_THAT(result->output, Not(HasSubstr((*network)->link().server.name)));
  EXPECT_THAT(result->output, HasSubstr("bye\n"));
}

TEST(TestNetworkTest, RunCommandKillsCommandsPastTheirTimeout) {
  absl::StatusOr<CommandResult> result =
      RunCommand({"sleep", "30"}, absl::Milliseconds(100));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(RunCommand({"no-such-command-lockd"}).status().code(),
            absl::StatusCode::kNotFound);
}

// Returns the pid of a child that has already exited and been reaped.
pid_t DeadPid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

TEST(TestNetworkTest, CleanupStaleRemovesOnlyDeadOwnersLeftovers) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> live = TestNetwork::Create();
  ASSERT_TRUE(live.ok()) << live.status();
  const std::string stale =
      absl::StrCat(kNetnsPrefix, "-", DeadPid(), "-0-stale");
  absl::StatusOr<CommandResult> added =
      RunCommand({"ip", "netns", "add", stale});
  ASSERT_TRUE(added.ok()) << added.status();
  ASSERT_EQ(added->exit_code, 0) << added->output;
  ASSERT_TRUE(NetnsExists(stale));

  absl::StatusOr<int> removed = TestNetwork::CleanupStale();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_GE(*removed, 1);
  EXPECT_FALSE(NetnsExists(stale));
  EXPECT_TRUE(NetnsExists((*live)->server_netns()));
  EXPECT_TRUE(NetnsExists((*live)->client_netns()));
}

TEST(TestNetworkTest, SigtermRemovesNamespacesAndStillKills) {
  int names_pipe[2];
  ASSERT_EQ(pipe(names_pipe), 0);
  const pid_t child = fork();
  if (child == 0) {
    close(names_pipe[0]);
    absl::StatusOr<std::unique_ptr<TestNetwork>> network =
        TestNetwork::Create();
    if (!network.ok()) _exit(2);
    const std::string names = absl::StrCat((*network)->server_netns(), "\n",
                                           (*network)->client_netns(), "\n");
    if (write(names_pipe[1], names.data(), names.size()) !=
        static_cast<ssize_t>(names.size())) {
      _exit(3);
    }
    // Wait for SIGTERM, but not forever.
    for (int i = 0; i < 300; ++i) absl::SleepFor(absl::Milliseconds(100));
    _exit(4);
  }
  ASSERT_GT(child, 0);
  close(names_pipe[1]);

  std::string names;
  char buffer[256];
  pollfd readable{names_pipe[0], POLLIN, 0};
  for (int reads = 0;
       reads < 16 && std::count(names.begin(), names.end(), '\n') < 2;
       ++reads) {
    if (poll(&readable, 1, 30000) != 1) break;
    const ssize_t got = read(names_pipe[0], buffer, sizeof(buffer));
    if (got <= 0) break;
    names.append(buffer, static_cast<size_t>(got));
  }
  close(names_pipe[0]);
  const std::vector<std::string> netns =
      absl::StrSplit(names, '\n', absl::SkipEmpty());

  kill(child, SIGTERM);
  int status = 0;
  pid_t reaped = 0;
  for (int tries = 0; tries < 3000 && reaped == 0; ++tries) {
    reaped = waitpid(child, &status, WNOHANG);
    if (reaped == 0) absl::SleepFor(absl::Milliseconds(10));
  }
  if (reaped == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
  }

  ASSERT_EQ(netns.size(), 2u) << "child wrote: " << names;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  for (const std::string& name : netns) EXPECT_FALSE(NetnsExists(name));
}

}  // namespace
}  // namespace lockd::netns
