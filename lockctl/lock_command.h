// `lockctl lock`: runs a command while holding a lockd lock, as flock(1)
// does with a file lock or `etcdctl lock` with an etcd lease:
//
//   lockctl lock --timeout=30s jobs/nightly -- ./nightly.sh
//
// The lock is taken through the client library (client/scoped_lock.h), which
// renews its lease in the background while the command runs, and released
// when the command exits. The command learns its fencing token from the
// environment and passes it to whatever the lock protects, so that a holder
// whose lease ran out cannot write after the next holder:
//
//   LOCKD_LOCK    the lock's name
//   LOCKD_FENCE   the fence of this hold (decimal; grows with every grant)
//   LOCKD_TXN     the holding transaction (decimal, as `lockctl show` and
//                 `lockctl release --force` name it)
//   LOCKD_SERVER  the name of the server that serves the lock
//
// If the hold is lost while the command runs (the server rejects a renewal,
// or cannot be reached before the lease runs out, or an operator
// force-releases it), the command is stopped: SIGTERM to its process group,
// SIGKILL `kill_after` later. Until it is gone it may still act, which is why
// the protected resource must check the fence. The command runs in its own
// process group so that all of it can be stopped; it therefore does not own
// the terminal (interactive programs cannot read from it). SIGINT, SIGTERM
// and SIGHUP sent to lockctl are passed on to that group. While lockctl still
// waits for the lock, they end it as usual (a wait without --timeout then
// stays queued on the server until granted, and the hold until its lease
// runs out: the client library cannot cancel a wait from outside).
//
// The command is the direct child of lockctl and is SIGKILLed if lockctl
// dies (PR_SET_PDEATHSIG), since nobody would renew the lease any more.
#ifndef LOCKD_LOCKCTL_LOCK_COMMAND_H_
#define LOCKD_LOCKCTL_LOCK_COMMAND_H_

#include <string>
#include <vector>

#include "abi/keys.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace lockd::lockctl {

// Exit statuses of `lockctl lock` other than the command's own (which is
// passed on, or 128 + N when a signal N ended it, as shells report it).
// sysexits.h numbers, unlikely to be a command's own.
inline constexpr int kExitUsage = 1;         // as every lockctl command
inline constexpr int kExitLockFailed = 69;   // EX_UNAVAILABLE: not acquired
inline constexpr int kExitLeaseLost = 70;    // the hold ended under the command
inline constexpr int kExitNotAcquired = 75;  // EX_TEMPFAIL: not within timeout
inline constexpr int kExitCannotRun = 126;   // as shells: not executable
inline constexpr int kExitNotFound = 127;    // as shells: no such command

struct LockCommandOptions {
  // The servers (`servers` or `server_list_file`, which is followed while
  // the command runs) and who lockctl is to them (`client_id` and `key`).
  client::ClientOptions client;
  std::string lock_name;
  client::Mode mode = client::Mode::kExclusive;
  // How long to wait for the lock: infinite waits as long as it takes, zero
  // does not wait at all (a try-lock).
  absl::Duration timeout = absl::InfiniteDuration();
  // Lease asked for, renewed in the background; zero: the server's default.
  // At least a second: the client counts a lease granted from the queue from
  // its last probe of the queue (client/transaction.h).
  absl::Duration lease = absl::ZeroDuration();
  // Between SIGTERM and SIGKILL when the hold was lost.
  absl::Duration kill_after = absl::Seconds(10);
  // argv of the command; argv[0] is looked up in PATH.
  std::vector<std::string> command;
};

// What `lockctl lock --help` says about the command: arguments, environment
// and exit statuses.
std::string LockCommandUsage();

// Takes the lock, runs the command while holding it, releases it, and returns
// lockctl's exit status: the command's, or one of the kExit* codes above
// (messages, naming the lock and the server, go to stderr). Only for a
// process of its own, like lockctl: it blocks SIGINT, SIGTERM, SIGHUP and
// SIGCHLD in every thread to receive them through a signalfd.
int RunLockCommand(const LockCommandOptions& options);

}  // namespace lockd::lockctl

#endif  // LOCKD_LOCKCTL_LOCK_COMMAND_H_
