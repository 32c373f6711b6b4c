#include "client/server_list.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lockd::client {
namespace {

// One NAME=UDP_ADDRESS[/GRPC_ADDRESS] entry.
absl::StatusOr<ServerConfig> ParseEntry(absl::string_view entry) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry \"", entry, "\": ", why,
                     " (expected NAME=UDP_ADDRESS[/GRPC_ADDRESS])"));
  };
  ServerConfig server;
  absl::string_view addresses = entry;
  if (const size_t equals = entry.find('=');
      equals != absl::string_view::npos) {
    server.name = std::string(entry.substr(0, equals));
    if (server.name.empty()) return invalid("empty name");
    addresses = entry.substr(equals + 1);
  }
  const std::pair<absl::string_view, absl::string_view> split =
      absl::StrSplit(addresses, absl::MaxSplits('/', 1));
  if (split.first.empty()) return invalid("no UDP address");
  if (absl::Status udp = ParseUdpAddress(split.first).status(); !udp.ok())
    return invalid(udp.message());
  server.udp_address = std::string(split.first);
  server.grpc_address = std::string(split.second);
  if (server.grpc_address.empty() && addresses.back() == '/')
    return invalid("empty gRPC address after '/'");
  return server;
}

}  // namespace

absl::StatusOr<std::vector<ServerConfig>> ParseServerList(
    absl::string_view text) {
  std::vector<ServerConfig> servers;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    absl::StatusOr<ServerConfig> server = ParseEntry(entry);
    if (!server.ok()) return server.status();
    servers.push_back(*std::move(server));
  }
  return servers;
}

absl::StatusOr<std::vector<ServerConfig>> ParseServerListFile(
    absl::string_view content) {
  std::vector<ServerConfig> servers;
  std::map<std::string, int> line_of_name;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++number;
    auto invalid = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", number, ": ", why));
    };
    const absl::string_view entry = absl::StripAsciiWhitespace(
        line.substr(0, std::min(line.find('#'), line.size())));
    if (entry.empty()) continue;
    if (entry.find_first_of(" \t,") != absl::string_view::npos)
      return invalid(absl::StrCat(
          "\"", entry,
          "\": one server a line, NAME=UDP_ADDRESS[/GRPC_ADDRESS] without "
          "spaces or commas"));
    absl::StatusOr<ServerConfig> server = ParseEntry(entry);
    if (!server.ok()) return invalid(server.status().message());
    const std::string name =
        server->name.empty() ? server->udp_address : server->name;
    if (auto [it, added] = line_of_name.emplace(name, number); !added)
      return invalid(absl::StrCat("server \"", name,
                                  "\" is listed again (first on line ",
                                  it->second, ")"));
    servers.push_back(*std::move(server));
  }
  if (servers.empty()) return absl::InvalidArgumentError("no servers listed");
  return servers;
}

absl::StatusOr<sockaddr_in> ParseUdpAddress(absl::string_view text) {
  const std::pair<std::string, std::string> host_port =
      absl::StrSplit(text, absl::MaxSplits(':', 1));
  uint32_t port = LOCKD_DEFAULT_PORT;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (inet_pton(AF_INET, host_port.first.c_str(), &address.sin_addr) != 1 ||
      (!host_port.second.empty() &&
       (!absl::SimpleAtoi(host_port.second, &port) || port == 0 ||
        port > 0xffff))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UDP address \"", text, "\" is not IPv4 \"a.b.c.d[:port]\""));
  }
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

}  // namespace lockd::client
