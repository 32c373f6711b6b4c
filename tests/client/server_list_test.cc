// Server lists as text (client/server_list.h): the comma-separated flag form
// and the file form, and what each refuses, naming the entry and, in a
// file, its line.
#include "client/server_list.h"

#include <arpa/inet.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd::client {
namespace {

using ::testing::HasSubstr;

void ExpectServer(const ServerConfig& server, const std::string& name,
                  const std::string& udp, const std::string& grpc) {
  EXPECT_EQ(server.name, name);
  EXPECT_EQ(server.udp_address, udp);
  EXPECT_EQ(server.grpc_address, grpc);
}

TEST(ServerListTest, ReadsNamesAndBothAddresses) {
  absl::StatusOr<std::vector<ServerConfig>> servers = ParseServerList(
      "lock1=198.18.0.1:20231/198.18.0.1:7451,lock2=198.18.1.1");
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 2u);
  ExpectServer((*servers)[0], "lock1", "198.18.0.1:20231", "198.18.0.1:7451");
  ExpectServer((*servers)[1], "lock2", "198.18.1.1", "");
}

TEST(ServerListTest, WithoutANameTheClientNamesItByItsUdpAddress) {
  absl::StatusOr<std::vector<ServerConfig>> servers =
      ParseServerList("10.0.0.1:20231/dns:///lockd.example:7451");
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 1u);
  ExpectServer((*servers)[0], "", "10.0.0.1:20231",
               "dns:///lockd.example:7451");
}

TEST(ServerListTest, RefusesEmptyPartsAndBadUdpAddresses) {
  for (const char* text :
       {"", "a=1.2.3.4,", "=1.2.3.4", "a=", "a=/1.2.3.4:1", "a=1.2.3.4/",
        "a=lock1.example", "a=1.2.3.4:0", "a=1.2.3.4:65536", "a=1.2.3.4:x"}) {
    absl::StatusOr<std::vector<ServerConfig>> servers = ParseServerList(text);
    EXPECT_TRUE(absl::IsInvalidArgument(servers.status()))
        << "\"" << text << "\"";
    EXPECT_THAT(servers.status().message(), HasSubstr("entry \""));
  }
}

TEST(ServerListTest, UdpAddressesTakeThePortOr20231) {
  absl::StatusOr<sockaddr_in> with_port = ParseUdpAddress("198.18.0.1:4000");
  ASSERT_TRUE(with_port.ok()) << with_port.status();
  EXPECT_EQ(ntohs(with_port->sin_port), 4000);
  EXPECT_EQ(ntohl(with_port->sin_addr.s_addr), 0xc6120001u);
  absl::StatusOr<sockaddr_in> without = ParseUdpAddress("198.18.0.1");
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(ntohs(without->sin_port), 20231);
}

TEST(ServerListFileTest, OneServerALineWithCommentsAndBlankLines) {
  absl::StatusOr<std::vector<ServerConfig>> servers = ParseServerListFile(
      "# The bank's lock servers.\n"
      "\n"
      "lock1=198.18.0.1:20231/198.18.0.1:7451\n"
      "   lock2=198.18.1.1   # UDP only\n"
      "\t\n"
      "198.18.2.1:20232\n"
      "# the end, without a newline");
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 3u);
  ExpectServer((*servers)[0], "lock1", "198.18.0.1:20231", "198.18.0.1:7451");
  ExpectServer((*servers)[1], "lock2", "198.18.1.1", "");
  EXPECT_EQ((*servers)[2].name, "");
  EXPECT_EQ((*servers)[2].udp_address, "198.18.2.1:20232");
}

TEST(ServerListFileTest, ErrorsNameTheLine) {
  struct Case {
    const char* content;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"lock1=198.18.0.1\n=198.18.1.1\n",
            "line 2: entry \"=198.18.1.1\": "
            "empty name"},
           {"# servers\n\nlock1=\n",
            "line 3: entry \"lock1=\": no UDP address"},
           {"lock1=198.18.0.1/\n",
            "line 1: entry \"lock1=198.18.0.1/\": empty "
            "gRPC address after '/'"},
           {"\nlock1=lockd1.example:20231\n",
            "line 2: entry \"lock1=lockd1.example:20231\": UDP address "
            "\"lockd1.example:20231\" is not IPv4"},
           {"lock1=198.18.0.1,lock2=198.18.1.1\n",
            "line 1: \"lock1=198.18.0.1,lock2=198.18.1.1\": one server a line"},
           {"lock1 = 198.18.0.1\n",
            "line 1: \"lock1 = 198.18.0.1\": one "
            "server a line"},
           {"lock1=198.18.0.1\nlock2=198.18.1.1\n# x\nlock1=198.18.2.1\n",
            "line 4: server \"lock1\" is listed again (first on line 1)"},
           {"198.18.0.1\nx=198.18.1.1\n198.18.0.1\n",
            "line 3: server \"198.18.0.1\" is listed again (first on line 1)"},
           {"", "no servers listed"},
           {"# nothing\n\n", "no servers listed"},
       }) {
    absl::StatusOr<std::vector<ServerConfig>> servers =
        ParseServerListFile(c.content);
    EXPECT_TRUE(absl::IsInvalidArgument(servers.status())) << c.content;
    EXPECT_THAT(servers.status().message(), HasSubstr(c.error)) << c.content;
  }
}

}  // namespace
}  // namespace lockd::client
