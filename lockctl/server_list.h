// The lock servers a client program talks to, written as one command-line
// flag, so that `lockctl lock` and the demo apps take the same list the same
// way:
//
//   --lock_servers=lock1=198.18.0.1:20231/198.18.0.1:7451,lock2=198.18.1.1
//
// Every client of a lock must list the same server names: names place locks
// on servers (client/client.h), addresses only say how to reach them.
#ifndef LOCKD_LOCKCTL_SERVER_LIST_H_
#define LOCKD_LOCKCTL_SERVER_LIST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"

namespace lockd::lockctl {

// Help text of a --lock_servers flag.
inline constexpr char kLockServersHelp[] =
    "lock servers, comma-separated, each NAME=UDP_ADDRESS[/GRPC_ADDRESS]: "
    "UDP a.b.c.d[:port] (port 20231 if left out), gRPC host:port, without "
    "it no gRPC fallback. Without NAME= the UDP address is the name. Every "
    "client of a lock must list the same names: they place locks on servers";

// One lockd on this host with its default ports (UDP on every address,
// gRPC on loopback): "local=127.0.0.1:20231/127.0.0.1:7451".
std::string DefaultServerList();

// Splits a --lock_servers value into servers. InvalidArgument for an empty
// list or entry, or an empty name or address; the addresses themselves are
// checked by Client::Create.
absl::StatusOr<std::vector<client::ServerConfig>> ParseServerList(
    absl::string_view text);

}  // namespace lockd::lockctl

#endif  // LOCKD_LOCKCTL_SERVER_LIST_H_
