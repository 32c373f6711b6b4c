// End-to-end fixture of the client library: real lockd daemons, each in its
// own server namespace of a TestNetwork and attached to its veth, and
// lockd::client::Client instances in the client namespace, reaching every
// server over UDP (the XDP fast path) and gRPC (the daemon's LockService,
// listening on the server end of the veth).
//
// Namespaces and threads: setns() moves one thread, and gRPC creates its
// worker threads lazily from the threads that use it, which inherit their
// namespace. So clients are created, and used, only on threads that joined
// the client namespace (NewClient, RunInClient), and a test binary that
// exercises gRPC runs one test with one network: gRPC's threads outlive a
// test and would keep an earlier test's namespace.
#ifndef LOCKD_TESTS_CLIENT_CLIENT_FIXTURE_H_
#define LOCKD_TESTS_CLIENT_CLIENT_FIXTURE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "proto/lockd.grpc.pb.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/netns/test_network.h"

namespace lockd::client::testing {

// The daemon's gRPC port on every server veth address.
inline constexpr uint16_t kGrpcPort = 7451;
// How long a test waits for something that should happen: a guard against
// hanging, never a measure of speed.
inline constexpr absl::Duration kPatience = absl::Seconds(60);

class ClientTest : public ::testing::Test {
 protected:
  // The client goes, then the daemons stop (SIGTERM, reaped), then the pins
  // and the network go.
  void TearDown() override;

  // Builds the network and starts lockd on each server: one server is role
  // "server"; more are "server1", "server2", ..., each with its own link to
  // "client" (link i: server 198.18.i.1, client 198.18.i.2). `lockd_flags`
  // are added to every daemon's command line.
  absl::Status StartServers(int count,
                            const std::vector<std::string>& lockd_flags = {});
  // The network of StartServers(count) without the daemons: start each
  // with StartDaemon (a replacement machine may start late).
  absl::Status StartNetwork(int count);
  absl::Status StartDaemon(size_t server,
                           const std::vector<std::string>& lockd_flags = {});
  // StartServers, then client_ = NewClient(Options()).
  absl::Status StartServersAndClient(
      int count, const std::vector<std::string>& lockd_flags = {});
  // Stops server i's daemon (SIGTERM) and reaps it.
  absl::Status StopDaemon(size_t server);
  // Kills it (SIGKILL: a crash) and reaps it.
  absl::Status KillDaemon(size_t server);
  // Removes its pinned table, as a reboot or a replacement machine loses
  // it: its next start has no state of the run before.
  absl::Status RemoveState(size_t server);
  // Takes server i's end of its link down: the machine is gone for the
  // client (its programs may still be attached).
  absl::Status LinkDown(size_t server);

  // Options naming every server (name = its role) by UDP and gRPC address.
  ClientOptions Options() const;
  // A Client created on a thread in the client namespace.
  absl::StatusOr<std::unique_ptr<Client>> NewClient(
      const ClientOptions& options);
  // Runs fn(0) .. fn(threads - 1), each on its own thread in the client
  // namespace, and waits for all.
  void RunInClient(int threads, const std::function<void(int)>& fn);
  // Starts fn on a thread in the client namespace; join it in the test.
  std::thread SpawnInClient(std::function<void()> fn);

  std::string ClientNetns() const { return net_->Netns("client"); }
  std::string ServerNetns(size_t server) const;
  // The lockd binary in the runfiles.
  static std::string LockdPath();

  std::unique_ptr<netns::TestNetwork> net_;
  std::vector<std::string> server_roles_;
  // By server; null until its daemon started.
  std::vector<std::unique_ptr<lockd::testing::NetnsProcess>> daemons_;
  std::unique_ptr<Client> client_;  // goes first in TearDown

 private:
  std::string pin_root_;
  std::string key_file_;  // the daemons' --key_file
};

// Waits, at most kPatience, until `done`; whether it came true.
bool Eventually(const std::function<bool()>& done);

// The AdminService of the daemon listening on `ip` (from the client
// namespace).
class DaemonAdmin {
 public:
  explicit DaemonAdmin(const std::string& ip);
  // The daemon's counter `name` (abi/lockd_abi.h, LOCKD_STATS).
  absl::StatusOr<uint64_t> Counter(const std::string& name);
  // The lock's holders and queue; NotFound for a lock the daemon does not
  // know (never asked for, or idle again).
  absl::StatusOr<v1::GetLockResponse> Lock(const std::string& name);
  absl::StatusOr<v1::HealthResponse> Health();

 private:
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

// A file holding a counter and the last fence that wrote it, as a store that
// checks fencing tokens would: Increment fails when the fence is not above
// the one stored (a stale holder), and otherwise adds one.
class FencedCounterFile {
 public:
  explicit FencedCounterFile(std::string path) : path_(std::move(path)) {}
  absl::Status Reset();
  absl::Status Increment(uint64_t fence);
  absl::StatusOr<uint64_t> Value() const;

 private:
  const std::string path_;
};

// Increments the counter `increments` times, each under the exclusive lock
// `lock_name` taken with a ScopedLock.
absl::Status IncrementUnderLock(Client& client, absl::string_view lock_name,
                                FencedCounterFile& counter, int increments);

}  // namespace lockd::client::testing

#endif  // LOCKD_TESTS_CLIENT_CLIENT_FIXTURE_H_
