// The servers of a client program's --lock_servers and --server_list_file
// flags (the lists themselves: tests/client/server_list_test.cc).
#include "lockctl/server_list.h"

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd::lockctl {
namespace {

using ::testing::HasSubstr;

TEST(ServerFlagsTest, NeitherFlagIsOneLocalServerAsTheHelpSays) {
  client::ClientOptions options;
  absl::Status used = UseServerFlags("", "", options);
  ASSERT_TRUE(used.ok()) << used;
  ASSERT_EQ(options.servers.size(), 1u);
  EXPECT_EQ(options.servers[0].name, "local");
  EXPECT_EQ(options.servers[0].udp_address, "127.0.0.1:20231");
  EXPECT_EQ(options.servers[0].grpc_address, "127.0.0.1:7451");
  EXPECT_EQ(options.server_list_file, "");
  EXPECT_TRUE(absl::StrContains(kLockServersHelp, DefaultServerList()));
}

TEST(ServerFlagsTest, ListGoesToServers) {
  client::ClientOptions options;
  absl::Status used = UseServerFlags(
      "lock1=198.18.0.1:20231/198.18.0.1:7451,lock2=198.18.1.1", "", options);
  ASSERT_TRUE(used.ok()) << used;
  ASSERT_EQ(options.servers.size(), 2u);
  EXPECT_EQ(options.servers[1].name, "lock2");
  EXPECT_EQ(options.server_list_file, "");
}

TEST(ServerFlagsTest, FileGoesToServerListFile) {
  client::ClientOptions options;
  absl::Status used = UseServerFlags("", "/etc/lockd/servers", options);
  ASSERT_TRUE(used.ok()) << used;
  EXPECT_TRUE(options.servers.empty());
  EXPECT_EQ(options.server_list_file, "/etc/lockd/servers");
}

TEST(ServerFlagsTest, RefusesBothAndABadList) {
  client::ClientOptions options;
  absl::Status both =
      UseServerFlags("a=10.0.0.1", "/etc/lockd/servers", options);
  EXPECT_TRUE(absl::IsInvalidArgument(both)) << both;
  EXPECT_THAT(both.message(), HasSubstr("give one"));
  absl::Status bad = UseServerFlags("a=10.0.0.1,=10.0.0.2", "", options);
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_THAT(bad.message(), HasSubstr("--lock_servers: entry \"=10.0.0.2\""));
}

}  // namespace
}  // namespace lockd::lockctl
