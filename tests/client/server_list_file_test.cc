// Replacing a lock server (issue #12): a running client follows its server
// list file. Server "lock1" runs at address A; a replacement machine starts
// lockd at address B; the file is rewritten so that lock1=B, and the same
// Client object's next locks are served by B's daemon (B's AdminService
// shows the holder, A's counters do not move) and released there. A
// rewrite that names other servers, and a file that does not parse, are
// refused: the client keeps lock1 at B and keeps working.
//
// One test: it uses gRPC (client/client_fixture.h).
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "abi/codec.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/transaction.h"
#include "gtest/gtest.h"
#include "lockd/files.h"
#include "proto/lockd.grpc.pb.h"
#include "tests/client/client_fixture.h"

namespace lockd::client::testing {
namespace {

using ServerListFileTest = ClientTest;

// "lock1=IP:20231/IP:7451": server lock1 at `ip`, both paths.
std::string Lock1At(const std::string& ip) {
  return absl::StrCat("lock1=", ip, ":20231/", ip, ":", kGrpcPort, "\n");
}

// Takes and releases `name` exclusively on `client`, checking on `holder`'s
// daemon, while held, that the hold is there; the txn id.
uint64_t LockAndRelease(Client& client, const std::string& name,
                        DaemonAdmin& holder) {
  Transaction txn = client.Begin();
  absl::StatusOr<uint64_t> fence = txn.Lock(name, Mode::kExclusive);
  EXPECT_TRUE(fence.ok()) << fence.status();
  absl::StatusOr<v1::GetLockResponse> held = holder.Lock(name);
  EXPECT_TRUE(held.ok()) << held.status();
  if (held.ok()) {
    EXPECT_EQ(held->holders_size(), 1);
    if (held->holders_size() == 1) {
      EXPECT_EQ(held->holders(0).txn_id(), txn.txn_id());
      EXPECT_EQ(held->holders(0).fence(), fence.value_or(0));
    }
  }
  const absl::Status released = txn.Commit();
  EXPECT_TRUE(released.ok()) << released;
  // The last release frees the lock: the daemon forgets it.
  EXPECT_TRUE(absl::IsNotFound(holder.Lock(name).status()));
  return txn.txn_id();
}

TEST_F(ServerListFileTest, ClientFollowsAServerReplacedInItsListFile) {
  // Links: server1 at A = 198.18.0.1, server2 at B = 198.18.1.1. Only A's
  // lockd runs at first.
  ASSERT_TRUE(StartNetwork(2).ok());
  ASSERT_TRUE(StartDaemon(0).ok());
  const std::string a = net_->links()[0].server.ipv4;
  const std::string b = net_->links()[1].server.ipv4;
  const std::string path = absl::StrCat(::testing::TempDir(), "/servers");
  ASSERT_TRUE(
      WriteFileAtomically(path, absl::StrCat("# lock servers\n", Lock1At(a)))
          .ok());
  ClientOptions options = Options();  // its identity; the servers: the file
  options.servers.clear();
  options.server_list_file = path;
  options.server_list_poll_interval = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<Client>> client = NewClient(options);
  ASSERT_TRUE(client.ok()) << client.status();
  client_ = std::move(*client);

  uint64_t a_acquires = 0, a_releases = 0;
  RunInClient(1, [&](int) {
    DaemonAdmin at_a(a);
    LockAndRelease(*client_, "replace/before", at_a);
    absl::StatusOr<uint64_t> acquires = at_a.Counter("acquire");
    absl::StatusOr<uint64_t> releases = at_a.Counter("release");
    ASSERT_TRUE(acquires.ok()) << acquires.status();
    ASSERT_TRUE(releases.ok()) << releases.status();
    EXPECT_GE(*acquires, 1u);
    a_acquires = *acquires;
    a_releases = *releases;
  });
  ClientStats stats = client_->Stats();
  ASSERT_EQ(stats.servers.size(), 1u);
  EXPECT_EQ(stats.servers[0].name, "lock1");
  EXPECT_EQ(stats.servers[0].udp_address, absl::StrCat(a, ":20231"));

  // The replacement machine starts, and the list moves lock1 to it.
  ASSERT_TRUE(StartDaemon(1).ok());
  ASSERT_TRUE(WriteFileAtomically(path, Lock1At(b)).ok());
  ASSERT_TRUE(
      Eventually([&] { return client_->Stats().server_list_reloads == 1; }));
  stats = client_->Stats();
  EXPECT_EQ(stats.server_list_errors, 0u);
  EXPECT_EQ(stats.server_list_error, "");
  EXPECT_EQ(stats.servers[0].name, "lock1");
  EXPECT_EQ(stats.servers[0].udp_address, absl::StrCat(b, ":20231"));
  EXPECT_EQ(stats.servers[0].grpc_address, absl::StrCat(b, ":", kGrpcPort));

  RunInClient(1, [&](int) {
    DaemonAdmin at_a(a), at_b(b);
    LockAndRelease(*client_, "replace/after", at_b);
    // A never heard of it.
    EXPECT_TRUE(absl::IsNotFound(at_a.Lock("replace/after").status()));
    EXPECT_EQ(at_a.Counter("acquire").value_or(0), a_acquires);
    EXPECT_EQ(at_a.Counter("release").value_or(0), a_releases);
    EXPECT_GE(at_b.Counter("acquire").value_or(0), 1u);
    EXPECT_GE(at_b.Counter("release").value_or(0), 1u);
  });

  // Other names would move locks between servers: refused, lock1 stays at
  // B and keeps serving.
  ASSERT_TRUE(
      WriteFileAtomically(path, absl::StrCat(Lock1At(a), "lock2=", b, "\n"))
          .ok());
  ASSERT_TRUE(
      Eventually([&] { return client_->Stats().server_list_errors == 1; }));
  stats = client_->Stats();
  EXPECT_EQ(stats.server_list_reloads, 1u);
  EXPECT_TRUE(absl::StrContains(stats.server_list_error,
                                "names servers lock1,lock2 instead of lock1"))
      << stats.server_list_error;
  EXPECT_EQ(stats.servers[0].udp_address, absl::StrCat(b, ":20231"));
  RunInClient(1, [&](int) {
    DaemonAdmin at_a(a), at_b(b);
    LockAndRelease(*client_, "replace/renamed", at_b);
    EXPECT_EQ(at_a.Counter("acquire").value_or(0), a_acquires);
  });

  // A file that does not parse: refused the same way.
  ASSERT_TRUE(
      WriteFileAtomically(path, absl::StrCat("# half-edited\nlock1=", a, "/\n"))
          .ok());
  ASSERT_TRUE(
      Eventually([&] { return client_->Stats().server_list_errors == 2; }));
  stats = client_->Stats();
  EXPECT_EQ(stats.server_list_reloads, 1u);
  EXPECT_TRUE(absl::StrContains(stats.server_list_error,
                                absl::StrCat(path, ": line 2: ")))
      << stats.server_list_error;
  EXPECT_EQ(stats.servers[0].udp_address, absl::StrCat(b, ":20231"));
  RunInClient(1, [&](int) {
    DaemonAdmin at_a(a), at_b(b);
    LockAndRelease(*client_, "replace/malformed", at_b);
    EXPECT_EQ(at_a.Counter("acquire").value_or(0), a_acquires);
  });
  // Every lock went over UDP, to one server: no fallback was needed.
  EXPECT_EQ(client_->Stats().servers[0].grpc_requests, 0u);
}

}  // namespace
}  // namespace lockd::client::testing
