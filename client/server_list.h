// Lock server lists as text, in the two forms programs take them:
//
// A flag value (`lockctl --lock_servers`, the demo apps), comma-separated:
//
//   lock1=198.18.0.1:20231/198.18.0.1:7451,lock2=198.18.1.1
//
// A server list file (ClientOptions::server_list_file, `--server_list_file`),
// one server a line; `#` starts a comment, blank lines are skipped:
//
//   # The lock servers of the bank.
//   lock1=198.18.0.1:20231/198.18.0.1:7451
//   lock2=198.18.1.1          # UDP only, port 20231
//
// Each entry is NAME=UDP_ADDRESS[/GRPC_ADDRESS]: UDP "a.b.c.d[:port]" (port
// 20231 if left out), gRPC any gRPC target ("host:port"), without it no gRPC
// fallback. Without "NAME=" the UDP address is the name. Names place locks
// on servers (client/client.h), addresses only say how to reach them.
#ifndef LOCKD_CLIENT_SERVER_LIST_H_
#define LOCKD_CLIENT_SERVER_LIST_H_

#include <netinet/in.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"

namespace lockd::client {

// Splits a comma-separated list into servers. InvalidArgument, naming the
// entry, for an empty list or entry, an empty name or gRPC address after
// "/", or a UDP address that is not IPv4 "a.b.c.d[:port]".
absl::StatusOr<std::vector<ServerConfig>> ParseServerList(
    absl::string_view text);

// The servers of a server list file's `content`. InvalidArgument starting
// "line N: " for a bad entry (as ParseServerList), spaces or commas inside
// an entry, or a name listed twice; and for a file without servers.
absl::StatusOr<std::vector<ServerConfig>> ParseServerListFile(
    absl::string_view content);

// The UDP address of an entry as a socket address.
absl::StatusOr<sockaddr_in> ParseUdpAddress(absl::string_view text);

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_SERVER_LIST_H_
