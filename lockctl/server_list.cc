#include "lockctl/server_list.h"

#include <utility>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/strings/str_cat.h"
#include "client/server_list.h"
#include "lockd/grpc_conventions.h"

namespace lockd::lockctl {

std::string DefaultServerList() {
  return absl::StrCat("local=127.0.0.1:", LOCKD_DEFAULT_PORT, "/",
                      DefaultGrpcAddress());
}

absl::Status UseServerFlags(absl::string_view lock_servers,
                            absl::string_view server_list_file,
                            client::ClientOptions& options) {
  if (!server_list_file.empty()) {
    if (!lock_servers.empty())
      return absl::InvalidArgumentError(
          "--lock_servers and --server_list_file both name the lock "
          "servers: give one");
    options.server_list_file = std::string(server_list_file);
    return absl::OkStatus();
  }
  const std::string list =
      lock_servers.empty() ? DefaultServerList() : std::string(lock_servers);
  absl::StatusOr<std::vector<client::ServerConfig>> servers =
      client::ParseServerList(list);
  if (!servers.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("--lock_servers: ", servers.status().message()));
  options.servers = *std::move(servers);
  return absl::OkStatus();
}

}  // namespace lockd::lockctl
