// (e) Two lock servers: rendezvous hashing spreads the locks over both
// daemons, and when one daemon stops, its locks fail UNAVAILABLE naming it
// while the other's locks keep working.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/scoped_lock.h"
#include "gtest/gtest.h"
#include "tests/client/client_fixture.h"

namespace lockd::client::testing {
namespace {

constexpr int kLocks = 32;

using TwoServersTest = ClientTest;

TEST_F(TwoServersTest, LocksSpreadOverBothAndSurviveOneServerStopping) {
  absl::Status started = StartServersAndClient(2);
  ASSERT_TRUE(started.ok()) << started;

  // Which lock lives where, as the client computes it.
  std::vector<std::vector<std::string>> by_server(2);
  for (int i = 0; i < kLocks; ++i) {
    const std::string name = absl::StrCat("spread/", i);
    by_server[client_->ServerIndexFor(LockIdForName(name))].push_back(name);
  }
  ASSERT_FALSE(by_server[0].empty());
  ASSERT_FALSE(by_server[1].empty());

  // Each lock is served: exclusive, then refused to a try-lock, released.
  LockOptions try_lock;
  try_lock.policy = Policy::kNoWait;
  RunInClient(1, [&](int) {
    for (const std::vector<std::string>& names : by_server) {
      for (const std::string& name : names) {
        absl::StatusOr<ScopedLock> held =
            ScopedLock::Acquire(*client_, name, Mode::kExclusive);
        ASSERT_TRUE(held.ok()) << held.status();
        EXPECT_TRUE(absl::IsAborted(
            ScopedLock::Acquire(*client_, name, Mode::kExclusive, try_lock)
                .status()));
        EXPECT_TRUE(held->Release().ok());
      }
    }
  });
  const ClientStats spread = client_->Stats();
  ASSERT_EQ(spread.servers.size(), 2u);
  for (const ServerStats& server : spread.servers) {
    // Two acquires and one release per lock, all over UDP.
    EXPECT_GE(server.udp_requests, 3u) << server.name;
    EXPECT_EQ(server.grpc_requests, 0u) << server.name;
  }
  EXPECT_EQ(spread.servers[0].udp_requests, 3 * by_server[0].size());
  EXPECT_EQ(spread.servers[1].udp_requests, 3 * by_server[1].size());

  // server2 stops: neither its UDP port nor its gRPC service answers.
  absl::Status stopped = StopDaemon(1);
  ASSERT_TRUE(stopped.ok()) << stopped;
  RunInClient(1, [&](int) {
    const std::string& lost_name = by_server[1].front();
    absl::StatusOr<ScopedLock> unreachable =
        ScopedLock::Acquire(*client_, lost_name, Mode::kExclusive);
    EXPECT_TRUE(absl::IsUnavailable(unreachable.status()))
        << unreachable.status();
    const std::string message(unreachable.status().message());
    EXPECT_TRUE(absl::StrContains(message, "server \"server2\"")) << message;
    EXPECT_TRUE(absl::StrContains(message, absl::StrCat("\"", lost_name, "\"")))
        << message;
    EXPECT_TRUE(absl::StrContains(message, "gRPC")) << message;

    for (const std::string& name : by_server[0]) {
      absl::StatusOr<ScopedLock> held =
          ScopedLock::Acquire(*client_, name, Mode::kExclusive);
      ASSERT_TRUE(held.ok()) << held.status();
      EXPECT_TRUE(held->Release().ok());
    }
  });
  EXPECT_EQ(client_->Stats().servers[0].grpc_requests, 0u);
}

}  // namespace
}  // namespace lockd::client::testing
