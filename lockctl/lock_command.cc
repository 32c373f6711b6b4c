#include "lockctl/lock_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/transaction.h"

extern char** environ;

namespace lockd::lockctl {
namespace {

// Signals that lockctl passes on to the command (and that end it while it
// waits for the lock).
constexpr int kPassedOnSignals[] = {SIGINT, SIGTERM, SIGHUP};

void Complain(absl::string_view message) {
  fprintf(stderr, "lockctl: %s\n", std::string(message).c_str());
}

class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

// A one-way flag that poll() can wait for: raised from any thread, never
// lowered.
class EventFlag {
 public:
  EventFlag() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  bool ok() const { return fd_.get() >= 0; }
  int fd() const { return fd_.get(); }
  void Raise() {
    const uint64_t one = 1;
    // Only fails when the counter would overflow: it is raised already.
    (void)!write(fd_.get(), &one, sizeof(one));
  }

 private:
  OwnedFd fd_;
};

// Raised by the client's renewal thread when the hold is lost.
class LossAlarm {
 public:
  bool ok() const { return flag_.ok(); }
  int fd() const { return flag_.fd(); }
  // LockOptions::on_lost: must not block, so it only records and raises.
  void Raise(const absl::Status& why) {
    {
      absl::MutexLock lock(&mu_);
      why_ = why;
    }
    flag_.Raise();
  }
  absl::Status why() const {
    absl::MutexLock lock(&mu_);
    return why_;
  }

 private:
  EventFlag flag_;
  mutable absl::Mutex mu_;
  absl::Status why_ ABSL_GUARDED_BY(mu_);
};

// The signals lockctl takes through a signalfd: those it passes on, unless
// its parent had them ignored (a background job's SIGINT stays ignored), and
// SIGCHLD.
sigset_t WatchedSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGCHLD);
  for (int signal_number : kPassedOnSignals) {
    struct sigaction action;
    if (sigaction(signal_number, nullptr, &action) == 0 &&
        action.sa_handler == SIG_IGN)
      continue;
    sigaddset(&signals, signal_number);
  }
  return signals;
}

// Signals that arrived, SIGCHLD included, without waiting.
std::vector<int> ReadSignals(int signal_fd) {
  std::vector<int> arrived;
  signalfd_siginfo info;
  while (read(signal_fd, &info, sizeof(info)) == sizeof(info))
    arrived.push_back(static_cast<int>(info.ssi_signo));
  return arrived;
}

bool IsReadable(int fd) {
  pollfd readable{fd, POLLIN, 0};
  return poll(&readable, 1, 0) == 1;
}

// Waits until a signal arrives on `signal_fd`, `fd` (if not -1) is readable
// or `deadline` passes.
void PollUntil(int signal_fd, int fd, absl::Time deadline) {
  pollfd fds[] = {{signal_fd, POLLIN, 0}, {fd, POLLIN, 0}};
  int timeout_ms = -1;
  if (deadline != absl::InfiniteFuture()) {
    timeout_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                deadline - absl::Now(), absl::Milliseconds(1))),
                            0, INT_MAX));
  }
  poll(fds, fd >= 0 ? 2 : 1, timeout_ms);
}

// Ends lockctl by `signal_number`, as if it had not been blocked: the shell
// that started it then sees the usual status.
[[noreturn]] void DieOf(int signal_number) {
  signal(signal_number, SIG_DFL);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, signal_number);
  pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  raise(signal_number);
  _exit(128 + signal_number);
}

// txn.Lock on another thread, so that this one notices signals: one of
// kPassedOnSignals ends lockctl while it waits, as it would have without
// the signalfd.
absl::StatusOr<uint64_t> LockWatchingSignals(
    client::Transaction& txn, const std::string& lock_name, client::Mode mode,
    const client::LockOptions& lock_options, int signal_fd) {
  EventFlag acquired;
  if (!acquired.ok()) return absl::ErrnoToStatus(errno, "eventfd");
  absl::StatusOr<uint64_t> fence;
  std::thread acquirer([&] {
    fence = txn.Lock(lock_name, mode, lock_options);
    acquired.Raise();
  });
  while (!IsReadable(acquired.fd())) {
    PollUntil(signal_fd, acquired.fd(), absl::InfiniteFuture());
    for (int signal_number : ReadSignals(signal_fd)) {
      if (signal_number == SIGCHLD) continue;
      Complain(absl::StrCat(strsignal(signal_number),
                            " while waiting for lock \"", lock_name, "\""));
      DieOf(signal_number);
    }
  }
  acquirer.join();
  return fence;
}

absl::Status Validate(const LockCommandOptions& options) {
  if (options.lock_name.empty())
    return absl::InvalidArgumentError("lock needs a lock name");
  if (options.command.empty())
    return absl::InvalidArgumentError(
        "lock needs a command: lockctl lock NAME -- COMMAND [ARGUMENTS...]");
  if (options.timeout < absl::ZeroDuration())
    return absl::InvalidArgumentError("--timeout must not be negative");
  if (options.lease != absl::ZeroDuration() &&
      (options.lease < absl::Seconds(1) ||
       options.lease >
           absl::Milliseconds(std::numeric_limits<uint32_t>::max())))
    return absl::InvalidArgumentError(
        "--lease must be 0 (the server's default) or at least 1s");
  if (options.kill_after < absl::ZeroDuration())
    return absl::InvalidArgumentError("--kill_after must not be negative");
  return absl::OkStatus();
}

// The environment of the command: lockctl's, with the hold's LOCKD_*
// variables instead of any inherited ones.
std::vector<std::string> CommandEnvironment(
    const std::vector<std::pair<std::string, std::string>>& hold) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view variable = *entry;
    const bool replaced =
        std::any_of(hold.begin(), hold.end(), [&](const auto& name_value) {
          return absl::StartsWith(variable, name_value.first + "=");
        });
    if (!replaced) environment.emplace_back(variable);
  }
  for (const auto& [name, value] : hold)
    environment.push_back(absl::StrCat(name, "=", value));
  return environment;
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const std::string& string : strings)
    pointers.push_back(const_cast<char*>(string.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// Starts the command in a process group of its own. `mask` is the signal
// mask lockctl started with, which the command gets back. An exec failure
// is reported here (NotFound for ENOENT), after reaping the child.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& command,
                            const std::vector<std::string>& environment,
                            const sigset_t& mask) {
  // Prepared before fork: the child of a threaded process may only make
  // async-signal-safe calls.
  std::vector<char*> argv = CStrings(command);
  std::vector<char*> envp = CStrings(environment);
  int exec_error[2];
  if (pipe2(exec_error, O_CLOEXEC) != 0)
    return absl::ErrnoToStatus(errno, "pipe2");
  OwnedFd error_read(exec_error[0]);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(exec_error[1]);
    return absl::ErrnoToStatus(errno, "fork");
  }
  if (pid == 0) {
    setpgid(0, 0);
    // Killed with lockctl: nobody would renew the lease any more.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(kExitLeaseLost);
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    execvpe(argv[0], argv.data(), envp.data());
    const int error = errno;
    (void)!write(exec_error[1], &error, sizeof(error));
    _exit(kExitNotFound);
  }
  // Also here, so that the group exists before any kill(-pid) of ours.
  setpgid(pid, pid);
  close(exec_error[1]);
  int error = 0;
  ssize_t got;
  while ((got = read(error_read.get(), &error, sizeof(error))) < 0 &&
         errno == EINTR) {
  }
  if (got <= 0) return pid;  // exec closed the pipe: the command runs
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return absl::ErrnoToStatus(error,
                             absl::StrCat("cannot run \"", command[0], "\""));
}

// How the command ended, as far as Supervise saw it.
struct Ending {
  // The command exited and is a zombie still: its pid, and so its process
  // group id, cannot be reused until Reap.
  bool exited = false;
  int exit_status = 0;  // 128 + N when signal N ended it, as shells say
  bool lost = false;    // the hold was lost while it ran (Supervise said so)
};

// Whether `pid` exited, without reaping it.
bool Exited(pid_t pid, int* exit_status) {
  siginfo_t info{};
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid != pid)
    return false;
  *exit_status =
      info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
  return true;
}

void Reap(pid_t pid) {
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// Waits for the command to exit, passing on signals, and stops it when the
// hold is lost.
Ending Supervise(pid_t pid, int signal_fd, const LossAlarm& alarm,
                 const LockCommandOptions& options) {
  enum class Stage { kRunning, kTerminating, kKilling };
  Stage stage = Stage::kRunning;
  absl::Time next_step = absl::InfiniteFuture();
  Ending ending;
  for (;;) {
    // The alarm stays readable once raised: watch it only until it is.
    PollUntil(signal_fd, stage == Stage::kRunning ? alarm.fd() : -1, next_step);
    for (int signal_number : ReadSignals(signal_fd))
      if (signal_number != SIGCHLD) kill(-pid, signal_number);
    ending.lost = stage != Stage::kRunning;
    if (Exited(pid, &ending.exit_status)) {
      ending.exited = true;
      return ending;
    }
    const absl::Time now = absl::Now();
    if (stage == Stage::kRunning) {
      if (!IsReadable(alarm.fd())) continue;
      Complain(absl::StrCat("lost lock \"", options.lock_name,
                            "\" while the command ran: ", alarm.why().message(),
                            "; stopping the command (SIGTERM, SIGKILL after ",
                            absl::FormatDuration(options.kill_after), ")"));
      kill(-pid, SIGTERM);
      stage = Stage::kTerminating;
      next_step = now + options.kill_after;
    } else if (now >= next_step) {
      kill(-pid, SIGKILL);
      if (stage == Stage::kKilling) {
        // Only a process stuck in the kernel survives SIGKILL this long.
        Complain(absl::StrCat("the command (pid ", pid,
                              ") did not end after SIGKILL; giving up"));
        return ending;
      }
      Complain("the command outlived SIGTERM: sent SIGKILL");
      stage = Stage::kKilling;
      next_step = now + std::max(options.kill_after, absl::Seconds(1));
    }
  }
}

}  // namespace

std::string LockCommandUsage() {
  return absl::StrCat(
      R"(lockctl lock [--lock_servers=LIST | --server_list_file=FILE] [--shared]
             [--timeout=D] [--lease=D] [--kill_after=D]
             NAME -- COMMAND [ARGUMENTS...]
  Runs COMMAND while holding lock NAME (exclusive; --shared: shared), taken
  from the servers of --lock_servers or of --server_list_file, which is read
  again while COMMAND runs (default: one lockd on this host). The
  lease (--lease, default: the server's) is renewed while COMMAND runs, and
  the lock released when it exits. --timeout: how long to wait for the lock
  (default: no limit; 0: do not wait). COMMAND gets LOCKD_LOCK, LOCKD_FENCE
  (the fencing token to pass to what the lock protects), LOCKD_TXN and
  LOCKD_SERVER in its environment. If the hold is lost, COMMAND's process
  group gets SIGTERM, and SIGKILL --kill_after (10s) later.
  Exit status: COMMAND's (128+N if signal N ended it), or
    )",
      kExitNotAcquired, "  not acquired within --timeout\n    ",
      kExitLockFailed,
      "  not acquired: the server is unreachable or refused\n    ",
      kExitLeaseLost, "  the hold was lost while COMMAND ran\n    ",
      kExitNotFound, "/", kExitCannotRun,
      " COMMAND not found / not executable\n    ", kExitUsage, "   bad usage");
}

int RunLockCommand(const LockCommandOptions& options) {
  if (absl::Status valid = Validate(options); !valid.ok()) {
    Complain(valid.message());
    return kExitUsage;
  }
  // Before the client starts its threads, which inherit the mask: a signal
  // must reach the signalfd, not kill lockctl in some other thread.
  const sigset_t watched = WatchedSignals();
  sigset_t original_mask;
  pthread_sigmask(SIG_BLOCK, &watched, &original_mask);
  const OwnedFd signal_fd(signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK));
  LossAlarm alarm;  // outlives the client, whose thread raises it
  if (signal_fd.get() < 0 || !alarm.ok()) {
    Complain(absl::StrCat("cannot set up: ", strerror(errno)));
    return kExitLockFailed;
  }

  absl::StatusOr<std::unique_ptr<client::Client>> client =
      client::Client::Create(options.client);
  if (!client.ok()) {
    Complain(client.status().message());
    return absl::IsInvalidArgument(client.status()) ? kExitUsage
                                                    : kExitLockFailed;
  }
  const std::string& server =
      (*client)->ServerNameFor(LockIdForName(options.lock_name));

  client::LockOptions lock_options;
  if (options.timeout == absl::ZeroDuration()) {
    lock_options.policy = client::Policy::kNoWait;
  } else if (options.timeout != absl::InfiniteDuration()) {
    lock_options.deadline = absl::Now() + options.timeout;
  }
  lock_options.lease_ms =
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options.lease));
  lock_options.on_lost = [&alarm](const absl::Status& why) {
    alarm.Raise(why);
  };
  client::Transaction txn = (*client)->Begin();
  const absl::StatusOr<uint64_t> fence = LockWatchingSignals(
      txn, options.lock_name, options.mode, lock_options, signal_fd.get());
  if (!fence.ok()) {
    const bool busy = absl::IsDeadlineExceeded(fence.status()) ||
                      absl::IsAborted(fence.status());
    Complain(absl::StrCat(
        "lock \"", options.lock_name, "\" on server \"", server, "\" ",
        !busy ? "could not be acquired"
        : options.timeout == absl::ZeroDuration()
            ? "is taken (--timeout=0 does not wait)"
            : absl::StrCat("was not granted within ",
                           absl::FormatDuration(options.timeout)),
        ": ", fence.status().message()));
    return busy ? kExitNotAcquired : kExitLockFailed;
  }

  absl::StatusOr<pid_t> pid =
      Spawn(options.command,
            CommandEnvironment({{"LOCKD_LOCK", options.lock_name},
                                {"LOCKD_FENCE", absl::StrCat(*fence)},
                                {"LOCKD_TXN", absl::StrCat(txn.txn_id())},
                                {"LOCKD_SERVER", server}}),
            original_mask);
  if (!pid.ok()) {
    Complain(pid.status().message());
    txn.Commit().IgnoreError();  // the command never ran
    return absl::IsNotFound(pid.status()) ? kExitNotFound : kExitCannotRun;
  }
  const Ending ending = Supervise(*pid, signal_fd.get(), alarm, options);
  bool lost = ending.lost;
  if (!lost) {
    const absl::Status released = txn.Commit();
    lost = absl::IsFailedPrecondition(released);
    if (lost) {
      Complain(absl::StrCat("lost lock \"", options.lock_name,
                            "\" as the command ended: ", released.message(),
                            "; its exit status ", ending.exit_status,
                            " is not passed on"));
    } else if (!released.ok()) {
      // The command ran under the lock; others only wait for the lease.
      Complain(absl::StrCat(
          "releasing lock \"", options.lock_name, "\": ", released.message(),
          "; the server ends the hold when its lease runs out"));
    }
  }
  // What the command left running in its group must not go on without the
  // lock either.
  if (lost) kill(-*pid, SIGKILL);
  if (ending.exited) Reap(*pid);
  return lost ? kExitLeaseLost : ending.exit_status;
}

}  // namespace lockd::lockctl
