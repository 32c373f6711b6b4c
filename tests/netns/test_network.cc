#include "tests/netns/test_network.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/netns/xdp_pass.skel.h"

extern char** environ;

namespace lockd::netns {
namespace {

constexpr char kNetnsDir[] = "/run/netns";

// ---------------------------------------------------------------------------
// Live-namespace registry, readable from a signal handler.
//
// A SIGINT/SIGTERM handler must not allocate or lock, so live namespace paths
// sit in a fixed array of slots whose state is an atomic: a slot is claimed
// (kWriting), filled, then published (kLive). The handler only touches kLive
// slots owned by its own pid (a forked child inherits the parent's slots but
// must not delete the parent's namespaces).

constexpr int kMaxLiveNetns = 256;
constexpr size_t kMaxNetnsPath = 128;

enum SlotState : int { kFree = 0, kWriting = 1, kLive = 2 };

struct RegistrySlot {
  std::atomic<int> state{kFree};
  pid_t owner = 0;
  char path[kMaxNetnsPath] = {};
};

RegistrySlot g_registry[kMaxLiveNetns];

static_assert(std::atomic<int>::is_always_lock_free,
              "the signal handler reads slot states");

// What `ip netns delete` does: the namespace dies once nothing else (a
// process, a thread, an open fd or socket) holds it, and its veths with it.
void RemoveNetnsMount(const char* path) {
  umount2(path, MNT_DETACH);
  unlink(path);
}

void CleanupAndReraise(int signal_number) {
  const pid_t self = getpid();
  for (RegistrySlot& slot : g_registry) {
    if (slot.state.load(std::memory_order_acquire) == kLive &&
        slot.owner == self) {
      RemoveNetnsMount(slot.path);
    }
  }
  // SA_RESETHAND restored the default action; the signal is blocked while
  // this handler runs, so it is delivered (and ends the process) on return.
  raise(signal_number);
}

void InstallSignalHandlersOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction current {};
      sigaction(signal_number, nullptr, &current);
      // Someone else's handler, or an ignored signal, stays as it was: after
      // such a death CleanupStale() removes the leftovers.
      if (current.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = CleanupAndReraise;
      action.sa_flags = SA_RESETHAND;
      sigemptyset(&action.sa_mask);
      sigaction(signal_number, &action, nullptr);
    }
  });
}

absl::StatusOr<int> RegisterNetns(const std::string& path) {
  if (path.size() >= kMaxNetnsPath) {
    return absl::InvalidArgumentError(absl::StrCat("path too long: ", path));
  }
  for (int i = 0; i < kMaxLiveNetns; ++i) {
    int expected = kFree;
    if (g_registry[i].state.compare_exchange_strong(expected, kWriting)) {
      g_registry[i].owner = getpid();
      std::memcpy(g_registry[i].path, path.c_str(), path.size() + 1);
      g_registry[i].state.store(kLive, std::memory_order_release);
      return i;
    }
  }
  return absl::ResourceExhaustedError("too many live test namespaces");
}

void UnregisterNetns(int slot) {
  g_registry[slot].state.store(kFree, std::memory_order_release);
}

// ---------------------------------------------------------------------------

std::string NetnsPath(absl::string_view netns) {
  return absl::StrCat(kNetnsDir, "/", netns);
}

bool IsValidRole(absl::string_view role) {
  if (role.empty()) return false;
  for (char c : role) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

absl::Status CheckCommand(const std::vector<std::string>& argv) {
  absl::StatusOr<CommandResult> result = RunCommand(argv);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("`", absl::StrJoin(argv, " "),
                                            "` exited with ", result->exit_code,
                                            ": ", result->output));
  }
  return absl::OkStatus();
}

// Runs `fn` (which returns a status) inside `netns` and returns its status.
absl::Status RunStatusIn(absl::string_view netns,
                         const std::function<absl::Status()>& fn) {
  absl::Status fn_status;
  absl::Status status = RunIn(netns, [&] { fn_status = fn(); });
  if (!status.ok()) return status;
  return fn_status;
}

// Interface ioctls need a socket of the namespace that holds the interface;
// call these from a thread inside it.
absl::Status InterfaceIoctl(unsigned long request, ifreq& request_data) {
  ScopedFd socket_fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!socket_fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  if (ioctl(socket_fd.get(), request, &request_data) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("ioctl on ", request_data.ifr_name));
  }
  return absl::OkStatus();
}

ifreq RequestFor(absl::string_view ifname) {
  ifreq request_data{};
  std::memcpy(request_data.ifr_name, ifname.data(),
              std::min(ifname.size(), sizeof(request_data.ifr_name) - 1));
  return request_data;
}

absl::Status ReadInterfaceIdentity(Interface& iface) {
  return RunStatusIn(iface.netns, [&iface]() -> absl::Status {
    iface.ifindex = static_cast<int>(if_nametoindex(iface.name.c_str()));
    if (iface.ifindex == 0) return absl::ErrnoToStatus(errno, iface.name);
    ifreq request_data = RequestFor(iface.name);
    absl::Status status = InterfaceIoctl(SIOCGIFHWADDR, request_data);
    if (!status.ok()) return status;
    std::memcpy(iface.mac.data(), request_data.ifr_hwaddr.sa_data,
                iface.mac.size());
    return absl::OkStatus();
  });
}

absl::Status SetTxChecksumOffload(const Interface& iface, bool enabled) {
  return RunStatusIn(iface.netns, [&iface, enabled] {
    ethtool_value value{};
    value.cmd = ETHTOOL_STXCSUM;
    value.data = enabled ? 1 : 0;
    ifreq request_data = RequestFor(iface.name);
    request_data.ifr_data = reinterpret_cast<char*>(&value);
    return InterfaceIoctl(SIOCETHTOOL, request_data);
  });
}

// Turns IPv6 off for the namespace's future interfaces, so veths carry no
// router solicitations or MLD reports: only ARP and what tests send.
absl::Status DisableIpv6(absl::string_view netns) {
  return RunStatusIn(netns, [] {
    // /proc/sys/net is the calling thread's namespace's.
    for (const char* path : {"/proc/sys/net/ipv6/conf/all/disable_ipv6",
                             "/proc/sys/net/ipv6/conf/default/disable_ipv6"}) {
      ScopedFd fd(open(path, O_WRONLY | O_CLOEXEC));
      // A kernel without IPv6 has nothing to turn off.
      if (!fd.valid() && errno == ENOENT) return absl::OkStatus();
      if (!fd.valid() || write(fd.get(), "1", 1) != 1) {
        return absl::ErrnoToStatus(errno, path);
      }
    }
    return absl::OkStatus();
  });
}

// Link i is 198.18.i.0/24; `host` is 1 on the server end, 2 on the client's.
absl::Status FillAddress(Interface& iface, int link_index, int host) {
  iface.ipv4 = absl::StrCat("198.18.", link_index, ".", host);
  if (inet_pton(AF_INET, iface.ipv4.c_str(), &iface.ipv4_addr) != 1) {
    return absl::InternalError(absl::StrCat("bad address ", iface.ipv4));
  }
  return absl::OkStatus();
}

absl::Status ConfigureInterface(const Interface& iface) {
  absl::Status status = CheckCommand(
      {"ip", "-n", iface.netns, "address", "add",
       absl::StrCat(iface.ipv4, "/", iface.prefix_len), "dev", iface.name});
  if (!status.ok()) return status;
  return CheckCommand(
      {"ip", "-n", iface.netns, "link", "set", "dev", iface.name, "up"});
}

// Reaps `pid`, killing it if it is still running at `deadline`. Returns
// whether it had to be killed.
bool WaitForExit(pid_t pid, absl::Time deadline, int& wait_status) {
  // Bounded by `deadline`: poll the child, then kill it.
  while (waitpid(pid, &wait_status, WNOHANG) == 0) {
    if (absl::Now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &wait_status, 0);
      return true;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return false;
}

}  // namespace

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.release();
  }
  return *this;
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) close(fd_);
}

int ScopedFd::release() { return std::exchange(fd_, -1); }

absl::StatusOr<ScopedFd> OpenNetns(absl::string_view netns) {
  if (netns.empty() || netns.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad namespace name '", netns, "'"));
  }
  const std::string path = NetnsPath(netns);
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, path);
  return fd;
}

absl::Status JoinNetns(absl::string_view netns) {
  absl::StatusOr<ScopedFd> fd = OpenNetns(netns);
  if (!fd.ok()) return fd.status();
  if (setns(fd->get(), CLONE_NEWNET) != 0)
    return absl::ErrnoToStatus(errno, absl::StrCat("joining netns ", netns));
  return absl::OkStatus();
}

absl::StatusOr<std::thread> SpawnIn(absl::string_view netns,
                                    std::function<void()> fn) {
  absl::StatusOr<ScopedFd> netns_fd = OpenNetns(netns);
  if (!netns_fd.ok()) return netns_fd.status();
  // The thread owns the promise: were it ours, returning could destroy it
  // while set_value() is still running on the thread.
  std::promise<int> joined;  // setns errno, 0 once in the namespace
  std::future<int> joined_result = joined.get_future();
  std::thread thread([fd = netns_fd->get(), joined = std::move(joined),
                      fn = std::move(fn)]() mutable {
    if (setns(fd, CLONE_NEWNET) != 0) {
      joined.set_value(errno);
      return;
    }
    joined.set_value(0);
    fn();
  });
  const int setns_errno = joined_result.get();
  if (setns_errno != 0) {
    thread.join();
    return absl::ErrnoToStatus(setns_errno, absl::StrCat("setns into ", netns));
  }
  return thread;
}

absl::Status RunIn(absl::string_view netns, std::function<void()> fn) {
  absl::StatusOr<std::thread> thread = SpawnIn(netns, std::move(fn));
  if (!thread.ok()) return thread.status();
  thread->join();
  return absl::OkStatus();
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  const std::string command_line = absl::StrJoin(argv, " ");
  const absl::Time deadline = absl::Now() + timeout;

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "pipe2");
  }
  ScopedFd read_end(pipe_fds[0]);
  ScopedFd write_end(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error =
      posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) return absl::ErrnoToStatus(spawn_error, command_line);
  // Only the child may hold the write end, so EOF means it is done writing.
  write_end = ScopedFd();

  CommandResult result;
  char buffer[4096];
  for (absl::Time now = absl::Now(); now < deadline; now = absl::Now()) {
    pollfd readable{read_end.get(), POLLIN, 0};
    const int ready =
        poll(&readable, 1,
             static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;  // the loop re-checks the deadline
    const ssize_t got = read(read_end.get(), buffer, sizeof(buffer));
    if (got > 0) {
      result.output.append(buffer, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }

  int wait_status = 0;
  const bool killed = WaitForExit(pid, deadline, wait_status);
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.exit_code = 128 + WTERMSIG(wait_status);
  }
  if (killed) {
    return absl::DeadlineExceededError(absl::StrCat(
        "`", command_line, "` still running after ",
        absl::FormatDuration(timeout), "; killed. Output: ", result.output));
  }
  return result;
}

absl::StatusOr<CommandResult> ExecIn(absl::string_view netns,
                                     absl::string_view shell_command,
                                     absl::Duration timeout) {
  return RunCommand({"ip", "netns", "exec", std::string(netns), "sh", "-c",
                     std::string(shell_command)},
                    timeout);
}

// ---------------------------------------------------------------------------
// TestNetwork

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create(
    Options options) {
  std::set<std::string> roles;
  for (const std::string& role : options.roles) {
    if (!IsValidRole(role)) {
      return absl::InvalidArgumentError(
          absl::StrCat("role '", role, "': use letters, digits and '_' only"));
    }
    if (!roles.insert(role).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate role ", role));
    }
  }
  if (options.links.empty() || options.links.size() > 256) {
    return absl::InvalidArgumentError(
        "need 1..256 links (link i uses 198.18.i.0/24)");
  }
  for (const LinkSpec& spec : options.links) {
    if (!roles.count(spec.server_role) || !roles.count(spec.client_role) ||
        spec.server_role == spec.client_role) {
      return absl::InvalidArgumentError(
          absl::StrCat("link ", spec.server_role, " - ", spec.client_role,
                       " must join two different declared roles"));
    }
  }

  InstallSignalHandlersOnce();
  // Leftovers of SIGKILLed runs go before they pile up.
  absl::StatusOr<int> stale = CleanupStale();
  if (!stale.ok()) return stale.status();
  static std::atomic<int> network_seq{0};
  const int seq = network_seq.fetch_add(1);

  // From here on, the destructor of `network` undoes partial work.
  std::unique_ptr<TestNetwork> network(new TestNetwork());
  for (const std::string& role : options.roles) {
    absl::Status status = network->AddNamespace(role, seq);
    if (!status.ok()) return status;
  }
  for (size_t i = 0; i < options.links.size(); ++i) {
    absl::Status status =
        network->AddLink(options.links[i], static_cast<int>(i));
    if (!status.ok()) return status;
  }
  if (options.client_xdp_pass) {
    absl::Status status = network->AttachXdpPass();
    if (!status.ok()) return status;
  }
  if (!options.client_tx_checksum_offload) {
    for (const Link& link : network->links_) {
      absl::Status status = SetTxChecksumOffload(link.client, false);
      if (!status.ok()) return status;
    }
  }
  return network;
}

absl::Status TestNetwork::AddNamespace(absl::string_view role,
                                       int network_seq) {
  Namespace created;
  created.role = std::string(role);
  created.name =
      absl::StrCat(kNetnsPrefix, "-", getpid(), "-", network_seq, "-", role);
  // Registered before it exists, so a signal during `ip netns add` still
  // removes it (removing a missing namespace is harmless).
  absl::StatusOr<int> slot = RegisterNetns(NetnsPath(created.name));
  if (!slot.ok()) return slot.status();
  created.registry_slot = *slot;
  namespaces_.push_back(created);

  absl::Status status = CheckCommand({"ip", "netns", "add", created.name});
  if (!status.ok()) return status;
  status = DisableIpv6(created.name);
  if (!status.ok()) return status;
  return CheckCommand({"ip", "-n", created.name, "link", "set", "lo", "up"});
}

absl::Status TestNetwork::AddLink(const LinkSpec& spec, int index) {
  static std::atomic<uint32_t> link_seq{0};
  const uint32_t seq = link_seq.fetch_add(1);
  Link link;
  link.server.netns = Netns(spec.server_role);
  link.client.netns = Netns(spec.client_role);
  // Interface names are at most 15 characters (IFNAMSIZ - 1).
  link.server.name = absl::StrCat("lk", getpid(), "s", absl::Hex(seq));
  link.client.name = absl::StrCat("lk", getpid(), "c", absl::Hex(seq));
  if (link.server.name.size() >= IFNAMSIZ) {
    return absl::ResourceExhaustedError(
        absl::StrCat("interface name too long: ", link.server.name));
  }
  absl::Status status = FillAddress(link.server, index, 1);
  if (!status.ok()) return status;
  status = FillAddress(link.client, index, 2);
  if (!status.ok()) return status;

  // Both ends are created inside their namespaces: never in the root one.
  status = CheckCommand({"ip", "link", "add", link.server.name, "netns",
                         link.server.netns, "type", "veth", "peer", "name",
                         link.client.name, "netns", link.client.netns});
  if (!status.ok()) return status;
  links_.push_back(link);
  Link& added = links_.back();
  for (Interface* iface : {&added.server, &added.client}) {
    status = ConfigureInterface(*iface);
    if (!status.ok()) return status;
    status = ReadInterfaceIdentity(*iface);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status TestNetwork::AttachXdpPass() {
  xdp_pass_ = xdp_pass__open_and_load();
  if (xdp_pass_ == nullptr)
    return absl::ErrnoToStatus(errno, "loading xdp_pass");
  const int prog_fd = bpf_program__fd(xdp_pass_->progs.xdp_pass);
  bpf_prog_info info{};
  uint32_t info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &info_len) != 0) {
    return absl::ErrnoToStatus(errno, "xdp_pass program info");
  }
  xdp_pass_prog_id_ = info.id;
  for (const Link& link : links_) {
    const Interface& client = link.client;
    absl::Status status = RunStatusIn(client.netns, [&client, prog_fd] {
      const int error =
          bpf_xdp_attach(client.ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
      if (error != 0) {
        return absl::ErrnoToStatus(
            -error, absl::StrCat("attaching xdp_pass to ", client.name));
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status TestNetwork::DetachXdpPass() {
  absl::Status first_error;
  for (const Link& link : links_) {
    const Interface& client = link.client;
    absl::Status status = RunStatusIn(client.netns, [&client] {
      const int error =
          bpf_xdp_detach(client.ifindex, XDP_FLAGS_DRV_MODE, nullptr);
      if (error != 0) {
        return absl::ErrnoToStatus(
            -error, absl::StrCat("detaching xdp_pass from ", client.name));
      }
      return absl::OkStatus();
    });
    first_error.Update(status);
  }
  xdp_pass__destroy(xdp_pass_);
  xdp_pass_ = nullptr;
  return first_error;
}

TestNetwork::~TestNetwork() {
  // Teardown cannot fail the test that owns it; report what went wrong.
  if (xdp_pass_ != nullptr) {
    absl::Status status = DetachXdpPass();
    if (!status.ok()) {
      std::fprintf(stderr, "TestNetwork: %s\n", status.ToString().c_str());
    }
  }
  // Deleting one end of a veth deletes both. Doing it explicitly frees the
  // interfaces (and whatever is attached to them) even if some thread or
  // socket still holds its namespace alive.
  for (const Link& link : links_) {
    absl::Status status = CheckCommand(
        {"ip", "-n", link.server.netns, "link", "delete", link.server.name});
    if (!status.ok()) {
      std::fprintf(stderr, "TestNetwork: %s\n", status.ToString().c_str());
    }
  }
  for (const Namespace& created : namespaces_) {
    RemoveNetnsMount(NetnsPath(created.name).c_str());
    UnregisterNetns(created.registry_slot);
  }
}

absl::StatusOr<int> TestNetwork::CleanupStale(absl::string_view prefix) {
  DIR* dir = opendir(kNetnsDir);
  if (dir == nullptr) {
    if (errno == ENOENT) return 0;  // no namespace was ever named
    return absl::ErrnoToStatus(errno, kNetnsDir);
  }
  // Names first, removal after: unlinking while reading a directory may
  // skip or repeat entries.
  std::vector<std::string> stale;
  const std::string name_prefix = absl::StrCat(prefix, "-");
  while (const dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (!absl::ConsumePrefix(&name, name_prefix)) continue;
    const size_t dash = name.find('-');
    int pid = 0;
    if (dash == absl::string_view::npos ||
        !absl::SimpleAtoi(name.substr(0, dash), &pid) || pid <= 0) {
      continue;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(entry->d_name);
  }
  closedir(dir);
  for (const std::string& name : stale) {
    RemoveNetnsMount(NetnsPath(name).c_str());
  }
  return static_cast<int>(stale.size());
}

std::string TestNetwork::Netns(absl::string_view role) const {
  for (const Namespace& created : namespaces_) {
    if (created.role == role) return created.name;
  }
  return "";
}

// ---------------------------------------------------------------------------
// UdpSocket

namespace {

absl::StatusOr<sockaddr_in> ParseEndpoint(absl::string_view ipv4,
                                          uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, std::string(ipv4).c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 address: '", ipv4, "'"));
  }
  return address;
}

}  // namespace

absl::StatusOr<UdpSocket> UdpSocket::Open(absl::string_view netns,
                                          absl::string_view bind_ipv4,
                                          uint16_t port) {
  absl::StatusOr<sockaddr_in> address = ParseEndpoint(bind_ipv4, port);
  if (!address.ok()) return address.status();
  ScopedFd fd;
  uint16_t bound_port = 0;
  absl::Status status = RunStatusIn(netns, [&]() -> absl::Status {
    // The socket belongs to this thread's namespace for its whole life.
    fd = ScopedFd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address),
             sizeof(*address)) != 0) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("bind ", bind_ipv4, ":", port));
    }
    sockaddr_in bound{};
    socklen_t bound_len = sizeof(bound);
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound),
                    &bound_len) != 0) {
      return absl::ErrnoToStatus(errno, "getsockname");
    }
    bound_port = ntohs(bound.sin_port);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return UdpSocket(std::move(fd), bound_port);
}

absl::Status UdpSocket::SendTo(absl::string_view ipv4, uint16_t port,
                               absl::Span<const uint8_t> payload) const {
  absl::StatusOr<sockaddr_in> address = ParseEndpoint(ipv4, port);
  if (!address.ok()) return address.status();
  const ssize_t sent =
      sendto(fd_.get(), payload.data(), payload.size(), 0,
             reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
  if (sent < 0) return absl::ErrnoToStatus(errno, "sendto");
  if (static_cast<size_t>(sent) != payload.size()) {
    return absl::InternalError(
        absl::StrCat("sent ", sent, " of ", payload.size(), " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<UdpSocket::Datagram> UdpSocket::RecvFrom(
    absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  for (absl::Time now = absl::Now(); now < deadline; now = absl::Now()) {
    pollfd readable{fd_.get(), POLLIN, 0};
    const int ready =
        poll(&readable, 1,
             static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1);
    if (ready < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll");
    if (ready <= 0) continue;  // the loop re-checks the deadline

    Datagram datagram;
    datagram.payload.resize(65536);  // the largest UDP payload fits
    sockaddr_in from{};
    socklen_t from_len = sizeof(from);
    const ssize_t got =
        recvfrom(fd_.get(), datagram.payload.data(), datagram.payload.size(), 0,
                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (got < 0) return absl::ErrnoToStatus(errno, "recvfrom");
    datagram.payload.resize(static_cast<size_t>(got));
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
    datagram.from_ipv4 = text;
    datagram.from_port = ntohs(from.sin_port);
    return datagram;
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no datagram within ", absl::FormatDuration(timeout)));
}

}  // namespace lockd::netns
