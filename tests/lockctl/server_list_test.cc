// --lock_servers lists: names, optional gRPC addresses, and what is refused.
#include "lockctl/server_list.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd::lockctl {
namespace {

using ::testing::HasSubstr;

TEST(ServerListTest, ReadsNamesAndBothAddresses) {
  absl::StatusOr<std::vector<client::ServerConfig>> servers = ParseServerList(
      "lock1=198.18.0.1:20231/198.18.0.1:7451,lock2=198.18.1.1");
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 2u);
  EXPECT_EQ((*servers)[0].name, "lock1");
  EXPECT_EQ((*servers)[0].udp_address, "198.18.0.1:20231");
  EXPECT_EQ((*servers)[0].grpc_address, "198.18.0.1:7451");
  EXPECT_EQ((*servers)[1].name, "lock2");
  EXPECT_EQ((*servers)[1].udp_address, "198.18.1.1");
  EXPECT_EQ((*servers)[1].grpc_address, "");
}

TEST(ServerListTest, WithoutANameTheClientNamesItByItsUdpAddress) {
  absl::StatusOr<std::vector<client::ServerConfig>> servers =
      ParseServerList("10.0.0.1:20231/dns:///lockd.example:7451");
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 1u);
  EXPECT_EQ((*servers)[0].name, "");
  EXPECT_EQ((*servers)[0].udp_address, "10.0.0.1:20231");
  EXPECT_EQ((*servers)[0].grpc_address, "dns:///lockd.example:7451");
}

TEST(ServerListTest, TheDefaultIsOneLocalServer) {
  absl::StatusOr<std::vector<client::ServerConfig>> servers =
      ParseServerList(DefaultServerList());
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 1u);
  EXPECT_EQ((*servers)[0].name, "local");
  EXPECT_EQ((*servers)[0].udp_address, "127.0.0.1:20231");
  EXPECT_EQ((*servers)[0].grpc_address, "127.0.0.1:7451");
}

TEST(ServerListTest, RefusesEmptyParts) {
  for (const char* text :
       {"", "a=1.2.3.4,", "=1.2.3.4", "a=", "a=/1.2.3.4:1", "a=1.2.3.4/"}) {
    absl::StatusOr<std::vector<client::ServerConfig>> servers =
        ParseServerList(text);
    EXPECT_TRUE(absl::IsInvalidArgument(servers.status()))
        << "\"" << text << "\"";
    EXPECT_THAT(servers.status().message(), HasSubstr("--lock_servers entry"));
  }
}

}  // namespace
}  // namespace lockd::lockctl
