// lockd: the lock server daemon. Loads the datapath (or continues the
// pinned table of an earlier run of the same --instance), attaches the fast
// path to one interface, and serves the control plane until SIGTERM or
// SIGINT. On a stop it leaves the pinned table to its successor (an upgrade
// or restart continues every hold, waiter and fence) unless
// --keep_state=false. Flags can also come from a file:
// --flagfile=/etc/lockd/lockd.conf.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "lockd/command_line.h"
#include "lockd/grpc_admin_service.h"
#include "lockd/grpc_conventions.h"
#include "lockd/grpc_server.h"
#include "lockd/metrics.h"
#include "lockd/metrics_http.h"
#include "lockd/sd_notify.h"
#include "lockd/server.h"
#include "lockd/version.h"

ABSL_FLAG(
    std::string, netns, "",
    "Network namespace (a name under /run/netns) to serve in. lockd joins "
    "it itself, keeping the host's mount namespace, so its pins stay on "
    "the host's bpffs (`ip netns exec` would hide /sys/fs/bpf).");
ABSL_FLAG(std::string, interface, "",
          "Interface to attach the XDP/TC fast path to; empty: none (the "
          "daemon's socket serves every request, on the same table).");
ABSL_FLAG(uint32_t, port, LOCKD_DEFAULT_PORT, "UDP port of the lock protocol.");
ABSL_FLAG(std::string, instance, "default",
          "Instance name: pins go to <pin_root>/<instance>. Two instances on "
          "one host need two names.");
ABSL_FLAG(std::string, pin_root, "/sys/fs/bpf/lockd", "bpffs directory.");
ABSL_FLAG(lockd::ByteSize, memory_budget, lockd::ByteSize{uint64_t{256} << 20},
          "Kernel memory the lock table and the wait-queue pool may grow to "
          "in all (K, M, G suffixes). Memory follows the live locks and "
          "waiters within it; at the budget, requests that need more are "
          "refused with NO_CAPACITY.");
ABSL_FLAG(uint32_t, pool_min_blocks, 1024,
          "Smallest wait-queue pool segment, blocks (96 bytes each); the "
          "pool grows from it by doubling and shrinks back to it.");
ABSL_FLAG(uint32_t, shrink_after_ms, 5000,
          "How long a table level or an oversized pool segment stays idle "
          "before its memory is given back.");
ABSL_FLAG(uint32_t, default_lease_ms, LOCKD_DEFAULT_LEASE_MS,
          "Lease of a request that asks for none.");
ABSL_FLAG(uint32_t, max_lease_ms, LOCKD_MAX_LEASE_MS, "Longest lease granted.");
ABSL_FLAG(uint32_t, memo_ttl_s, 60,
          "How long a hold or wait that the server ended (lease, wait "
          "deadline, force-release) is remembered, so that its owner's late "
          "RELEASE or RENEW learns why.");
ABSL_FLAG(int64_t, grace_ms, -1,
          "After a start without the previous run's pinned table (a reboot, "
          "state removed, a replacement machine), grant only reclaims of "
          "earlier holds for this long (docs/semantics.md, \"Restarts\"); "
          "-1: --max_lease_ms, the longest lease an earlier run could have "
          "granted. 0 only for a server that never served before.");
ABSL_FLAG(bool, keep_state, true,
          "On SIGTERM/SIGINT, leave the pinned lock table for the next start "
          "of this instance; false: remove it.");
ABSL_FLAG(std::string, grpc_listen, lockd::DefaultGrpcAddress(),
          "gRPC control plane address.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Where Prometheus scrapes GET /metrics (IPv4 address:port); empty: "
          "no metrics endpoint. Loopback by default.");
ABSL_FLAG(std::string, admin_token, "",
          "If set, force-release requires this token.");
ABSL_FLAG(std::string, log_level, "info", "info, or quiet.");
ABSL_FLAG(std::string, key_file, "",
          "Client keys, one \"<client id> <32 hex digits>\" per line "
          "(docs/security.md). Every request must be signed with its "
          "client's key. Reloaded on SIGHUP; AdminService key changes are "
          "written back to it.");
ABSL_FLAG(std::vector<std::string>, open_subnets, {},
          "LABS ONLY: comma-separated IPv4 subnets (a.b.c.d/n) whose "
          "unauthenticated requests are served. Anyone there can end anyone "
          "else's unauthenticated hold.");
ABSL_FLAG(uint32_t, client_quota, LOCKD_DEFAULT_CLIENT_QUOTA,
          "Holds plus waits one client may have at once; past it, ACQUIRE "
          "is REJECTED with QUOTA.");
ABSL_FLAG(uint32_t, max_clients, 4096, "Clients (keys) the server can know.");

namespace {

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
      "lockd --interface=IF [--instance=NAME] [--memory_budget=SIZE] "
      "[--grpc_listen=ADDR] ...");
  const std::string version = absl::StrCat("lockd ", lockd::kVersion);
  lockd::ParseCommandLineWithHelp(argc, argv, version.c_str());
  const bool verbose = absl::GetFlag(FLAGS_log_level) != "quiet";
  if (absl::GetFlag(FLAGS_port) > 0xffff) {
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
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  lockd::ServerOptions options;
  options.interface = absl::GetFlag(FLAGS_interface);
  options.instance = absl::GetFlag(FLAGS_instance);
  options.pin_root = absl::GetFlag(FLAGS_pin_root);
  options.datapath.port = static_cast<uint16_t>(absl::GetFlag(FLAGS_port));
  options.datapath.default_lease_ms = absl::GetFlag(FLAGS_default_lease_ms);
  options.datapath.max_lease_ms = absl::GetFlag(FLAGS_max_lease_ms);
  const int64_t grace_ms = absl::GetFlag(FLAGS_grace_ms);
  options.datapath.grace_ms = grace_ms < 0
                                  ? options.datapath.max_lease_ms
                                  : static_cast<uint32_t>(std::min<int64_t>(
                                        grace_ms, LOCKD_MAX_LEASE_MS));
  options.segments.budget_bytes = absl::GetFlag(FLAGS_memory_budget).bytes;
  options.segments.pool_min_blocks = absl::GetFlag(FLAGS_pool_min_blocks);
  options.segments.idle_grace =
      absl::Milliseconds(absl::GetFlag(FLAGS_shrink_after_ms));
  options.expiry.memo_ttl = absl::Seconds(absl::GetFlag(FLAGS_memo_ttl_s));
  options.datapath.client_quota = absl::GetFlag(FLAGS_client_quota);
  options.datapath.max_clients = absl::GetFlag(FLAGS_max_clients);
  options.key_file = absl::GetFlag(FLAGS_key_file);
  for (const std::string& text : absl::GetFlag(FLAGS_open_subnets)) {
    absl::StatusOr<lockd::Subnet> subnet = lockd::ParseSubnet(text);
    if (!subnet.ok()) {
      fprintf(stderr, "lockd: --open_subnets: %s\n",
              std::string(subnet.status().message()).c_str());
      return 2;
    }
    options.open_subnets.push_back(*subnet);
  }
  if (!options.open_subnets.empty()) {
    std::string list;
    for (const lockd::Subnet& subnet : options.open_subnets)
      absl::StrAppend(&list, list.empty() ? "" : ", ",
                      lockd::SubnetText(subnet));
    // Always said, whatever --log_level: this is not a production setting.
    fprintf(stderr,
            "lockd: WARNING: serving UNAUTHENTICATED requests from %s "
            "(--open_subnets). Any host there can release, renew or take "
            "over any unauthenticated hold. For labs only.\n",
            list.c_str());
  }
  if (options.key_file.empty() && options.open_subnets.empty())
    fprintf(stderr,
            "lockd: no --key_file and no --open_subnets: every UDP request "
            "will be refused\n");

  absl::StatusOr<std::unique_ptr<lockd::Server>> server =
      lockd::Server::Start(options);
  if (!server.ok()) {
    fprintf(stderr, "lockd: cannot start: %s\n",
            std::string(server.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<lockd::GrpcServer>> grpc =
      lockd::GrpcServer::Start(server->get(), absl::GetFlag(FLAGS_grpc_listen),
                               absl::GetFlag(FLAGS_admin_token));
  if (!grpc.ok()) {
    fprintf(stderr, "lockd: %s\n",
            std::string(grpc.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<lockd::MetricsHttpServer> metrics;
  if (!absl::GetFlag(FLAGS_metrics_listen).empty()) {
    const lockd::Admin* admin = &(*server)->admin();
    absl::StatusOr<std::unique_ptr<lockd::MetricsHttpServer>> started =
        lockd::MetricsHttpServer::Start(
            absl::GetFlag(FLAGS_metrics_listen), [admin] {
              lockd::v1::GetStatsResponse stats;
              if (absl::Status s = lockd::FillStats(*admin, stats); !s.ok())
                return absl::StrCat("# lockd: ", s.ToString(), "\n");
              return lockd::RenderPrometheus(stats);
            });
    if (!started.ok()) {
      fprintf(stderr, "lockd: %s\n",
              std::string(started.status().message()).c_str());
      return 1;
    }
    metrics = std::move(*started);
  }
  if (verbose) {
    const lockd::ServerInfo& info = (*server)->admin().info();
    printf(
        "lockd: instance %s ready: UDP port %u, %s, gRPC port %d%s%s, epoch "
        "%u%s\n",
        options.instance.c_str(), info.udp_port,
        info.interface.empty() ? "fast path off"
                               : absl::StrCat("fast path on ", info.interface,
                                              " (", info.xdp_mode, ")")
                                     .c_str(),
        (*grpc)->port(),
        metrics ? absl::StrCat(", metrics port ", metrics->port()).c_str() : "",
        info.restored ? ", continuing the previous run" : "", info.epoch,
        info.grace_ms
            ? absl::StrCat(", grace ", info.grace_ms, " ms (reclaims only)")
                  .c_str()
            : "");
    fflush(stdout);
  }
  if (absl::Status ready = notifier->Notify("READY=1"); !ready.ok())
    fprintf(stderr, "lockd: %s\n", std::string(ready.message()).c_str());

  int signal_number = 0;
  for (;;) {
    sigwait(&stop_signals, &signal_number);
    if (signal_number != SIGHUP) break;
    absl::Status reloaded = (*server)->clients().Load();
    fprintf(stderr, "lockd: SIGHUP: %s\n",
            reloaded.ok() ? "client keys reloaded"
                          : std::string(reloaded.message()).c_str());
  }
  if (verbose) printf("lockd: signal %d, stopping\n", signal_number);
  notifier->Notify("STOPPING=1").IgnoreError();
  metrics.reset();
  grpc->reset();
  if (!absl::GetFlag(FLAGS_keep_state)) (*server)->Unpin();
  server->reset();
  if (verbose) printf("lockd: stopped\n");
  return 0;
}
