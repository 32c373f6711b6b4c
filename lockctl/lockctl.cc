// lockctl: the operators' command line for a running lockd, over its gRPC
// AdminService. Output is a table for people or, with --json, JSON for
// scripts (`metrics` prints the Prometheus text format either way).
//
// Exit status: 0 on success, 2 when the daemon cannot be reached, 1 for
// every other error (bad usage, or an error the daemon answered). `lock` is
// the exception: it runs a command under a lock through the client library
// (lockctl/lock_command.h) and passes on the command's exit status.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi/keys.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "lockctl/lock_command.h"
#include "lockctl/render.h"
#include "lockctl/server_list.h"
#include "lockd/command_line.h"
#include "lockd/grpc_conventions.h"
#include "lockd/metrics.h"
#include "proto/lockd.grpc.pb.h"

ABSL_FLAG(std::string, server, lockd::DefaultGrpcAddress(),
          "lockd's gRPC address, host:port");
ABSL_FLAG(std::string, token, "",
          "admin token, required by `release --force` when the daemon has "
          "one");
ABSL_FLAG(bool, json, false, "print JSON instead of tables");
// Optional: `lock` waits without a limit unless it is given.
ABSL_FLAG(std::optional<absl::Duration>, timeout, std::nullopt,
          "deadline of each call to the daemon (default 5s); for `lock`, how "
          "long to wait for the lock (default: no limit; 0: do not wait)");
ABSL_FLAG(bool, force, false,
          "confirms `release`: it ends a hold on the operator's word");
ABSL_FLAG(std::string, lock_servers, "", lockd::lockctl::kLockServersHelp);
ABSL_FLAG(std::string, server_list_file, "",
          lockd::lockctl::kServerListFileHelp);
ABSL_FLAG(bool, shared, false, "`lock` takes the lock shared");
ABSL_FLAG(absl::Duration, lease, absl::ZeroDuration(),
          "`lock`: lease to ask for, renewed while the command runs (at "
          "least 1s; 0: the server's default)");
ABSL_FLAG(uint32_t, client_id, LOCKD_CLIENT_NONE,
          "`lock`: the client id to sign requests as (its key from "
          "--key_file); 0: unsigned (served only from a lab subnet)");
ABSL_FLAG(std::string, key_file, "",
          "`lock`: key file holding --client_id's key");
ABSL_FLAG(absl::Duration, kill_after, absl::Seconds(10),
          "`lock`: when the hold is lost, the command gets SIGTERM, and "
          "SIGKILL this much later");

namespace lockd::lockctl {
namespace {

constexpr char kUsage[] =
    R"(lockctl [--server=HOST:PORT] [--json] [--timeout=5s] COMMAND

Commands:
  locks                        every lock with holders or waiters
  show LOCK                    one lock: holders and queue in order
  stats                        all counters and memory use
  memory                       the datapath's memory against its budget
  metrics                      counters and memory in Prometheus text format
  health                       whether lockd serves, and how
  release --force LOCK TXN [FENCE]
                               end TXN's hold on LOCK (needs --token when
                               lockd has an admin token); with FENCE only
                               the hold that has that fence
  lock NAME -- COMMAND...      run COMMAND while holding lock NAME (below)
  clients                      the clients lockd knows (ids, never keys)
  client-key ID [KEY]          add client ID or rotate its key (32 hex
                               digits; none: lockd makes one and prints it
                               once); needs --token
  client-remove ID             forget client ID and its key; needs --token
  end-grace                    end the grace period after a start without
                               state now (every earlier holder reclaimed or
                               is gone); needs --token
LOCK is a decimal id, a 0x-hex id or a lock name.)";

using Stub = v1::AdminService::Stub;

// The daemon as the flags name it.
class Daemon {
 public:
  Daemon()
      : address_(absl::GetFlag(FLAGS_server)),
        token_(absl::GetFlag(FLAGS_token)),
        timeout_(absl::GetFlag(FLAGS_timeout).value_or(absl::Seconds(5))) {
    grpc::ChannelArguments arguments;
    // An operator's proxy settings must not reroute a call to the daemon.
    arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    channel_ = grpc::CreateCustomChannel(
        address_, grpc::InsecureChannelCredentials(), arguments);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  // Runs one AdminService method, e.g. Call(&Stub::Health, request).
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                   Response*),
      const Request& request) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    if (!token_.empty()) {
      context.AddMetadata(kAuthorizationMetadataKey,
                          absl::StrCat(kBearerPrefix, token_));
    }
    Response response;
    const grpc::Status status =
        (admin_.get()->*method)(&context, request, &response);
    if (!status.ok()) return FromGrpc(status);
    return response;
  }

 private:
  absl::Status FromGrpc(const grpc::Status& status) const {
    // A deadline with no connection means nobody answered at all.
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
         channel_->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach lockd at ", address_, ": ", status.error_message()));
    }
    const auto code = static_cast<absl::StatusCode>(status.error_code());
    return absl::Status(
        code, absl::StrCat("lockd answered ", absl::StatusCodeToString(code),
                           ": ", status.error_message()));
  }

  std::string address_;
  std::string token_;
  absl::Duration timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> admin_;
};

// Renders `response` as JSON when asked to, else with `render`.
template <typename Response, typename Render>
absl::StatusOr<std::string> Show(const absl::StatusOr<Response>& response,
                                 Render render) {
  if (!response.ok()) return response.status();
  if (absl::GetFlag(FLAGS_json)) return RenderJson(*response);
  return render(*response);
}

absl::StatusOr<v1::ListLocksResponse> ListAllLocks(Daemon& daemon) {
  v1::ListLocksResponse all;
  v1::ListLocksRequest request;
  do {
    absl::StatusOr<v1::ListLocksResponse> page =
        daemon.Call(&Stub::ListLocks, request);
    if (!page.ok()) return page.status();
    all.mutable_locks()->MergeFrom(page->locks());
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  // Pages come in table order, each sorted; the whole listing by id.
  std::sort(all.mutable_locks()->begin(), all.mutable_locks()->end(),
            [](const v1::LockSummary& a, const v1::LockSummary& b) {
              return a.lock_id() < b.lock_id();
            });
  return all;
}

absl::StatusOr<std::string> ShowLock(Daemon& daemon, absl::string_view text) {
  absl::StatusOr<LockArgument> lock = ParseLockArgument(text);
  if (!lock.ok()) return lock.status();
  v1::GetLockRequest request;
  request.set_lock_id(lock->id);
  return Show(daemon.Call(&Stub::GetLock, request),
              [&](const v1::GetLockResponse& response) {
                return RenderLock(response, lock->name);
              });
}

absl::StatusOr<uint64_t> ParseNumber(absl::string_view what,
                                     absl::string_view text) {
  uint64_t number = 0;
  if (!absl::SimpleAtoi(text, &number)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a decimal number, not \"", text, "\""));
  }
  return number;
}

absl::StatusOr<std::string> ForceRelease(Daemon& daemon,
                                         const std::vector<char*>& arguments) {
  if (!absl::GetFlag(FLAGS_force)) {
    return absl::InvalidArgumentError(
        "release ends another client's hold: confirm with --force");
  }
  if (arguments.size() != 2 && arguments.size() != 3) {
    return absl::InvalidArgumentError(
        "usage: release --force LOCK TXN [FENCE]");
  }
  absl::StatusOr<LockArgument> lock = ParseLockArgument(arguments[0]);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<uint64_t> txn = ParseNumber("TXN", arguments[1]);
  if (!txn.ok()) return txn.status();
  absl::StatusOr<uint64_t> fence = 0;  // any hold of the txn
  if (arguments.size() == 3) fence = ParseNumber("FENCE", arguments[2]);
  if (!fence.ok()) return fence.status();
  v1::ForceReleaseRequest request;
  request.set_lock_id(lock->id);
  request.set_txn_id(*txn);
  request.set_fence(*fence);
  return Show(daemon.Call(&Stub::ForceRelease, request),
              [&](const v1::ForceReleaseResponse& response) {
                return absl::StrCat("released txn ", *txn, "'s hold on lock ",
                                    FormatLockId(lock->id), " (fence ",
                                    response.fence(), ")\n");
              });
}

absl::StatusOr<uint32_t> ParseClientId(absl::string_view text) {
  uint32_t id = 0;
  if (!absl::SimpleAtoi(text, &id) || id == LOCKD_CLIENT_NONE)
    return absl::InvalidArgumentError(absl::StrCat(
        "a client id is a number from 1 to 4294967295, not \"", text, "\""));
  return id;
}

absl::StatusOr<std::string> SetClientKey(Daemon& daemon,
                                         const std::vector<char*>& operands) {
  if (operands.size() != 1 && operands.size() != 2)
    return absl::InvalidArgumentError("usage: client-key ID [KEY]");
  absl::StatusOr<uint32_t> id = ParseClientId(operands[0]);
  if (!id.ok()) return id.status();
  v1::SetClientKeyRequest request;
  request.set_client_id(*id);
  if (operands.size() == 2) request.set_key(operands[1]);
  return Show(daemon.Call(&Stub::SetClientKey, request),
              [&](const v1::SetClientKeyResponse& response) {
                // The key only when lockd made it: the operator gives it to
                // the client, and nobody can show it again.
                return response.key().empty()
                           ? absl::StrCat("client ", *id, ": key set\n")
                           : absl::StrCat(*id, " ", response.key(), "\n");
              });
}

absl::StatusOr<std::string> RemoveClient(Daemon& daemon,
                                         const std::vector<char*>& operands) {
  if (operands.size() != 1)
    return absl::InvalidArgumentError("usage: client-remove ID");
  absl::StatusOr<uint32_t> id = ParseClientId(operands[0]);
  if (!id.ok()) return id.status();
  v1::RemoveClientRequest request;
  request.set_client_id(*id);
  return Show(daemon.Call(&Stub::RemoveClient, request),
              [&](const v1::RemoveClientResponse&) {
                return absl::StrCat("client ", *id, " removed\n");
              });
}

absl::StatusOr<std::string> Run(const std::vector<char*>& arguments) {
  if (arguments.empty()) return absl::InvalidArgumentError(kUsage);
  const absl::string_view command = arguments[0];
  const std::vector<char*> operands(arguments.begin() + 1, arguments.end());
  auto expect_operands = [&](size_t count) {
    return operands.size() == count
               ? absl::OkStatus()
               : absl::InvalidArgumentError(absl::StrCat(
                     command, " takes ", count, " argument(s)\n", kUsage));
  };

  Daemon daemon;
  if (command == "release") return ForceRelease(daemon, operands);
  if (command == "client-key") return SetClientKey(daemon, operands);
  if (command == "client-remove") return RemoveClient(daemon, operands);
  if (command == "show") {
    if (absl::Status usage = expect_operands(1); !usage.ok()) return usage;
    return ShowLock(daemon, operands[0]);
  }
  if (absl::Status usage = expect_operands(0); !usage.ok()) return usage;
  if (command == "locks") return Show(ListAllLocks(daemon), RenderLocksTable);
  if (command == "stats") {
    return Show(daemon.Call(&Stub::GetStats, v1::GetStatsRequest()),
                RenderStats);
  }
  if (command == "memory" || command == "pool") {
    return Show(daemon.Call(&Stub::GetMemory, v1::GetMemoryRequest()),
                [](const v1::GetMemoryResponse& response) {
                  return RenderMemory(response.memory());
                });
  }
  if (command == "metrics") {
    absl::StatusOr<v1::GetStatsResponse> stats =
        daemon.Call(&Stub::GetStats, v1::GetStatsRequest());
    if (!stats.ok()) return stats.status();
    return RenderPrometheus(*stats);
  }
  if (command == "end-grace") {
    return Show(daemon.Call(&Stub::EndGrace, v1::EndGraceRequest()),
                [](const v1::EndGraceResponse& response) {
                  return response.grace_left_ms() == 0
                             ? std::string("no grace period to end\n")
                             : absl::StrCat("grace period ended ",
                                            response.grace_left_ms(),
                                            " ms early\n");
                });
  }
  if (command == "health") {
    return Show(daemon.Call(&Stub::Health, v1::HealthRequest()), RenderHealth);
  }
  if (command == "clients") {
    return Show(daemon.Call(&Stub::ListClients, v1::ListClientsRequest()),
                RenderClients);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command \"", command, "\"\n", kUsage));
}

// `lock NAME COMMAND...` ("--" ends the flags, so COMMAND may have its own):
// the flags become LockCommandOptions.
int Lock(const std::vector<char*>& arguments) {
  LockCommandOptions options;
  if (absl::Status servers =
          UseServerFlags(absl::GetFlag(FLAGS_lock_servers),
                         absl::GetFlag(FLAGS_server_list_file), options.client);
      !servers.ok()) {
    fprintf(stderr, "lockctl: %s\n", std::string(servers.message()).c_str());
    return kExitUsage;
  }
  if (absl::Status keyed = options.client.UseKey(absl::GetFlag(FLAGS_client_id),
                                                 absl::GetFlag(FLAGS_key_file));
      !keyed.ok()) {
    fprintf(stderr, "lockctl: %s\n", std::string(keyed.message()).c_str());
    return kExitUsage;
  }
  if (arguments.size() > 1) options.lock_name = arguments[1];
  if (arguments.size() > 2)
    options.command.assign(arguments.begin() + 2, arguments.end());
  if (absl::GetFlag(FLAGS_shared)) options.mode = client::Mode::kShared;
  if (std::optional<absl::Duration> timeout = absl::GetFlag(FLAGS_timeout))
    options.timeout = *timeout;
  options.lease = absl::GetFlag(FLAGS_lease);
  options.kill_after = absl::GetFlag(FLAGS_kill_after);
  return RunLockCommand(options);
}

}  // namespace
}  // namespace lockd::lockctl

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(absl::StrCat(
      lockd::lockctl::kUsage, "\n\n", lockd::lockctl::LockCommandUsage()));
  std::vector<char*> arguments = lockd::ParseCommandLineWithHelp(argc, argv);
  arguments.erase(arguments.begin());  // the program name
  if (!arguments.empty() && absl::string_view(arguments[0]) == "lock")
    return lockd::lockctl::Lock(arguments);
  const absl::StatusOr<std::string> output = lockd::lockctl::Run(arguments);
  if (!output.ok()) {
    fprintf(stderr, "lockctl: %s\n",
            std::string(output.status().message()).c_str());
    return absl::IsUnavailable(output.status()) ? 2 : 1;
  }
  fputs(output->c_str(), stdout);
  return 0;
}
