// The lock servers of a client program, given on its command line, so that
// `lockctl lock` and the demo apps take them the same way: either a list
//
//   --lock_servers=lock1=198.18.0.1:20231/198.18.0.1:7451,lock2=198.18.1.1
//
// or a server list file (client/server_list.h), which the client reads again
// while it runs, so that a server replaced by another machine under the same
// name is reached at its new address without a restart:
//
//   --server_list_file=/etc/lockd/servers
//
// Every client of a lock must list the same server names: names place locks
// on servers (client/client.h), addresses only say how to reach them.
#ifndef LOCKD_LOCKCTL_SERVER_LIST_H_
#define LOCKD_LOCKCTL_SERVER_LIST_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/client.h"

namespace lockd::lockctl {

// Help text of a --lock_servers flag (its default is empty: neither flag
// given means DefaultServerList(), which the text spells out).
inline constexpr char kLockServersHelp[] =
    "lock servers, comma-separated, each NAME=UDP_ADDRESS[/GRPC_ADDRESS]: "
    "UDP a.b.c.d[:port] (port 20231 if left out), gRPC host:port, without "
    "it no gRPC fallback. Without NAME= the UDP address is the name. Every "
    "client of a lock must list the same names: they place locks on "
    "servers. Neither this nor --server_list_file: one lockd on this host, "
    "local=127.0.0.1:20231/127.0.0.1:7451";

// Help text of a --server_list_file flag.
inline constexpr char kServerListFileHelp[] =
    "file listing the lock servers instead of --lock_servers: one "
    "NAME=UDP_ADDRESS[/GRPC_ADDRESS] a line, # comments. Read again every "
    "second while running: a server's address may change there (a "
    "replacement machine), its name not";

// One lockd on this host with its default ports (UDP on every address,
// gRPC on loopback): "local=127.0.0.1:20231/127.0.0.1:7451".
std::string DefaultServerList();

// Sets options.servers from --lock_servers (`lock_servers`) or
// options.server_list_file from --server_list_file (`server_list_file`);
// neither given: DefaultServerList(). InvalidArgument, naming the flag, for
// both, or for a bad --lock_servers (the file is read by Client::Create).
absl::Status UseServerFlags(absl::string_view lock_servers,
                            absl::string_view server_list_file,
                            client::ClientOptions& options);

}  // namespace lockd::lockctl

#endif  // LOCKD_LOCKCTL_SERVER_LIST_H_
