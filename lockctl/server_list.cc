#include "lockctl/server_list.h"

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lockd/grpc_conventions.h"

namespace lockd::lockctl {

std::string DefaultServerList() {
  return absl::StrCat("local=127.0.0.1:", LOCKD_DEFAULT_PORT, "/",
                      DefaultGrpcAddress());
}

absl::StatusOr<std::vector<client::ServerConfig>> ParseServerList(
    absl::string_view text) {
  std::vector<client::ServerConfig> servers;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    auto invalid = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("--lock_servers entry \"", entry, "\": ", why,
                       " (expected NAME=UDP_ADDRESS[/GRPC_ADDRESS])"));
    };
    client::ServerConfig server;
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
    server.udp_address = std::string(split.first);
    server.grpc_address = std::string(split.second);
    if (server.grpc_address.empty() && addresses.back() == '/')
      return invalid("empty gRPC address after '/'");
    servers.push_back(std::move(server));
  }
  return servers;
}

}  // namespace lockd::lockctl
