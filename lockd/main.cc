// lockd: the lock server daemon. Attaches the fast path to one interface,
// serves the slow path and leases, and runs the gRPC control plane until
// SIGTERM or SIGINT (a clean stop: programs detached, pins and saved state
// removed). Killed any other way, it leaves pins and state behind, and the
// next start on the same --instance continues with every hold and waiter.
// Flags can also come from a file: --flagfile=/etc/lockd/lockd.flags.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lockd/command_line.h"
#include "lockd/grpc_conventions.h"
#include "lockd/grpc_service.h"
#include "lockd/sd_notify.h"
#include "lockd/server.h"

ABSL_FLAG(
    std::string, netns, "",
    "Network namespace (a name under /run/netns) to serve in. lockd joins "
    "it itself, keeping the host's mount namespace, so its pins stay on "
    "the host's bpffs (`ip netns exec` would hide /sys/fs/bpf).");
ABSL_FLAG(std::string, interface, "",
          "Interface to attach the XDP/TC fast path to; empty: no fast path "
          "(every lock is served in user space).");
ABSL_FLAG(uint32_t, port, LOCKD_DEFAULT_PORT, "UDP port of the lock protocol.");
ABSL_FLAG(std::string, instance, "default",
          "Instance name: pins go to <pin_root>/<instance>, state to "
          "<state_root>/<instance>. Two instances on one host need two names.");
ABSL_FLAG(std::string, pin_root, "/sys/fs/bpf/lockd", "bpffs directory.");
ABSL_FLAG(std::string, state_root, "/run/lockd",
          "Where the slow path's state is kept across restarts.");
ABSL_FLAG(uint32_t, lock_capacity, 65536, "Lock table entries (kernel).");
ABSL_FLAG(uint32_t, owner_capacity, 65536,
          "Holder and waiter records (kernel).");
ABSL_FLAG(uint32_t, pool_capacity, 65536,
          "Wait-queue blocks (kernel); more waiters spill to user space.");
ABSL_FLAG(uint32_t, released_capacity, 65536,
          "Recently released owners remembered for retransmissions.");
ABSL_FLAG(uint32_t, default_lease_ms, 10000,
          "Lease of a request that asks for none.");
ABSL_FLAG(uint32_t, max_lease_ms, 300000, "Longest lease granted.");
ABSL_FLAG(std::string, grpc_listen, lockd::DefaultGrpcAddress(),
          "gRPC control plane address.");
ABSL_FLAG(std::string, admin_token, "",
          "If set, force-release requires this token.");
ABSL_FLAG(std::string, log_level, "info", "info, or quiet.");

namespace {

bool Fits16(uint32_t value) { return value <= 0xffff; }

// Moves the process (still single-threaded) into a named network namespace.
bool JoinNetns(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
    perror(("lockd: joining network namespace " + path).c_str());
    return false;
  }
  close(fd);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "lockd --interface=IF [--instance=NAME] [--grpc_listen=ADDR] ...");
  lockd::ParseCommandLineWithHelp(argc, argv);
  const bool verbose = absl::GetFlag(FLAGS_log_level) != "quiet";
  if (!Fits16(absl::GetFlag(FLAGS_port))) {
    fprintf(stderr, "lockd: --port must be below 65536\n");
    return 2;
  }

  // Made before joining --netns: an abstract NOTIFY_SOCKET is looked up in
  // the namespace the notifier's socket was made in.
  absl::StatusOr<lockd::SdNotifier> notifier =
      lockd::SdNotifier::FromEnvironment();
  if (!notifier.ok()) {
    fprintf(stderr, "lockd: %s\n",
            std::string(notifier.status().message()).c_str());
    return 1;
  }

  if (!absl::GetFlag(FLAGS_netns).empty() &&
      !JoinNetns(absl::GetFlag(FLAGS_netns)))
    return 1;

  // Signals are taken by sigwait below; block them before any thread starts
  // so that no other thread receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  lockd::ServerOptions options;
  options.interface = absl::GetFlag(FLAGS_interface);
  options.instance = absl::GetFlag(FLAGS_instance);
  options.pin_root = absl::GetFlag(FLAGS_pin_root);
  options.state_root = absl::GetFlag(FLAGS_state_root);
  options.admin_token = absl::GetFlag(FLAGS_admin_token);
  options.datapath.port = static_cast<uint16_t>(absl::GetFlag(FLAGS_port));
  options.datapath.lock_capacity = absl::GetFlag(FLAGS_lock_capacity);
  options.datapath.owner_capacity = absl::GetFlag(FLAGS_owner_capacity);
  options.datapath.pool_capacity = absl::GetFlag(FLAGS_pool_capacity);
  options.datapath.released_capacity = absl::GetFlag(FLAGS_released_capacity);
  options.datapath.default_lease_ms = absl::GetFlag(FLAGS_default_lease_ms);
  options.datapath.max_lease_ms = absl::GetFlag(FLAGS_max_lease_ms);

  absl::StatusOr<std::unique_ptr<lockd::Server>> server =
      lockd::Server::Start(options);
  if (!server.ok()) {
    fprintf(stderr, "lockd: cannot start: %s\n",
            std::string(server.status().message()).c_str());
    return 1;
  }
  int grpc_port = 0;
  absl::StatusOr<std::unique_ptr<grpc::Server>> grpc = lockd::StartGrpcServer(
      server->get(), absl::GetFlag(FLAGS_grpc_listen), &grpc_port);
  if (!grpc.ok()) {
    fprintf(stderr, "lockd: cannot serve gRPC on %s: %s\n",
            absl::GetFlag(FLAGS_grpc_listen).c_str(),
            std::string(grpc.status().message()).c_str());
    return 1;
  }
  if (verbose) {
    printf("lockd: instance %s ready: UDP port %u, %s, gRPC port %d%s\n",
           options.instance.c_str(), options.datapath.port,
           options.interface.empty()
               ? "fast path off"
               : ("fast path on " + options.interface).c_str(),
           grpc_port,
           (*server)->restored() ? ", continuing the previous run" : "");
    fflush(stdout);
  }
  if (absl::Status ready = notifier->Notify("READY=1"); !ready.ok())
    fprintf(stderr, "lockd: %s\n", std::string(ready.message()).c_str());

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (verbose) printf("lockd: signal %d, stopping\n", signal_number);
  notifier->Notify("STOPPING=1").IgnoreError();
  (*grpc)->Shutdown();
  grpc->reset();
  server->reset();
  if (verbose) printf("lockd: stopped\n");
  return 0;
}
