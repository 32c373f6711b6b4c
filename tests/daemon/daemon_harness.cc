#include "tests/daemon/daemon_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "lockd/grpc_conventions.h"
#include "tests/test_keys.h"

namespace lockd::testing {
namespace {

constexpr absl::string_view kBpffs = "/sys/fs/bpf";
constexpr absl::string_view kPinRootPrefix = "lockd-test-";
constexpr absl::Duration kPollInterval = absl::Milliseconds(10);
constexpr absl::Duration kLockctlTimeout = absl::Seconds(30);
// Looking for datagrams that should not be there: those already queued on
// the socket are found at once.
constexpr absl::Duration kLeftoverWait = absl::Milliseconds(1);

// A file of the test's runfiles, e.g. "lockd/lockd".
std::string Runfile(absl::string_view path) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir == nullptr ? "." : srcdir, "/",
                      workspace == nullptr ? "lockd" : workspace, "/", path);
}

std::string ShellQuote(absl::string_view word) {
  return absl::StrCat("'", absl::StrReplaceAll(word, {{"'", "'\\''"}}), "'");
}

// lockctl --json output (or its error) parsed into the response it prints.
template <typename Response>
absl::StatusOr<Response> ParseJson(const absl::StatusOr<std::string>& json) {
  if (!json.ok()) return json.status();
  Response response;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      std::string(*json), &response);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a ", response.GetTypeName(), " in JSON (",
                     parsed.ToString(), "):\n", *json));
  }
  return response;
}

}  // namespace

void RemoveStalePinRoots(absl::string_view prefix) {
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(kBpffs), error)) {
    std::string name = entry.path().filename().string();
    absl::string_view rest = name;
    if (!absl::ConsumePrefix(&rest, prefix)) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid) || pid <= 0)
      continue;
    if (kill(pid, 0) != 0 && errno == ESRCH)
      std::filesystem::remove_all(entry.path(), error);
  }
}

// ---------------------------------------------------------------------------
// NetnsProcess

absl::StatusOr<std::unique_ptr<NetnsProcess>> NetnsProcess::Start(
    absl::string_view netns, const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  absl::StatusOr<netns::ScopedFd> netns_fd = netns::OpenNetns(netns);
  if (!netns_fd.ok()) return netns_fd.status();
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  netns::ScopedFd in_read(in[0]), in_write(in[1]);
  if (pipe2(out, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  netns::ScopedFd out_read(out[0]), out_write(out[1]);
  if (fcntl(out_read.get(), F_SETFL, O_NONBLOCK) != 0)
    return absl::ErrnoToStatus(errno, "fcntl");

  // Everything the child needs is prepared here: between fork and exec it
  // may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(125);
    if (setns(netns_fd->get(), CLONE_NEWNET) != 0) _exit(126);
    if (dup2(in_read.get(), STDIN_FILENO) < 0 ||
        dup2(out_write.get(), STDOUT_FILENO) < 0)
      _exit(126);
    execv(args[0], args.data());
    _exit(127);
  }
  return std::unique_ptr<NetnsProcess>(
      new NetnsProcess(pid, std::move(in_write), std::move(out_read)));
}

NetnsProcess::~NetnsProcess() {
  if (reaped_) return;
  if (Signal(SIGTERM).ok() && Wait(kStopTimeout).ok()) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

bool NetnsProcess::ReadAvailable() {
  char buffer[4096];
  for (;;) {
    const ssize_t got = read(stdout_.get(), buffer, sizeof(buffer));
    if (got > 0) {
      output_.append(buffer, static_cast<size_t>(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    return got < 0;  // 0: end of file; EAGAIN: nothing more for now
  }
}

absl::StatusOr<std::string> NetnsProcess::ReadLineContaining(
    absl::string_view text, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const bool open = ReadAvailable();
    for (size_t end = output_.find('\n', returned_); end != std::string::npos;
         end = output_.find('\n', returned_)) {
      std::string line = output_.substr(returned_, end - returned_);
      returned_ = end + 1;
      if (absl::StrContains(line, text)) return line;
    }
    if (!open) {
      return absl::UnavailableError(absl::StrCat(
          "pid ", pid_, " closed stdout without a line containing \"", text,
          "\"; its output:\n", output_));
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "pid ", pid_, " printed no line containing \"", text, "\" within ",
          absl::FormatDuration(timeout), "; its output:\n", output_));
    }
    pollfd readable{stdout_.get(), POLLIN, 0};
    poll(&readable, 1,
         static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1);
  }
}

absl::Status NetnsProcess::WriteLine(absl::string_view line) {
  const std::string data = absl::StrCat(line, "\n");
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t wrote =
        write(stdin_.get(), data.data() + done, data.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return absl::ErrnoToStatus(errno, "writing to stdin");
    done += static_cast<size_t>(wrote);
  }
  return absl::OkStatus();
}

absl::Status NetnsProcess::Signal(int signal_number) {
  if (reaped_) return absl::FailedPreconditionError("the process was reaped");
  if (kill(pid_, signal_number) != 0) return absl::ErrnoToStatus(errno, "kill");
  return absl::OkStatus();
}

absl::StatusOr<int> NetnsProcess::Wait(absl::Duration timeout) {
  if (reaped_) return absl::FailedPreconditionError("the process was reaped");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done < 0 && errno != EINTR)
      return absl::ErrnoToStatus(errno, "waitpid");
    if (done == pid_) {
      reaped_ = true;
      ReadAvailable();  // what it printed last, for messages
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", pid_, " still running after ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kPollInterval);
  }
}

// ---------------------------------------------------------------------------
// Helpers

absl::StatusOr<ShownLock> ParseShownLock(absl::string_view text) {
  enum class Section { kNone, kHolders, kQueue };
  ShownLock shown;
  Section section = Section::kNone;
  bool header = false;  // the next line is a table header
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "mode ")) {  // "mode EXCLUSIVE, fence 3"
      shown.header = std::string(line);
      continue;
    }
    if (line == "holders:" || line == "queue (head first):") {
      section = line == "holders:" ? Section::kHolders : Section::kQueue;
      header = true;
      continue;
    }
    if (line.empty()) {
      section = Section::kNone;
      continue;
    }
    if (section == Section::kNone) continue;
    if (header) {
      header = false;
      continue;
    }
    // Holders: TXN first. Queue: POS, then TXN.
    std::vector<absl::string_view> cells =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    const size_t column = section == Section::kHolders ? 0 : 1;
    uint64_t txn = 0;
    if (cells.size() <= column || !absl::SimpleAtoi(cells[column], &txn)) {
      return absl::InvalidArgumentError(
          absl::StrCat("no txn id in the row \"", line, "\" of:\n", text));
    }
    (section == Section::kHolders ? shown.holders : shown.queue).push_back(txn);
  }
  if (shown.header.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no \"mode ...\" line in:\n", text));
  }
  return shown;
}

absl::Status ReleaseInFifoOrder(
    UdpLockClient& holder, uint64_t holder_fence,
    const std::vector<std::unique_ptr<UdpLockClient>>& waiters) {
  std::vector<UdpLockClient*> chain = {&holder};
  for (const std::unique_ptr<UdpLockClient>& waiter : waiters)
    chain.push_back(waiter.get());
  uint64_t fence = holder_fence;
  for (size_t i = 0; i < chain.size(); ++i) {
    absl::StatusOr<Message> released =
        ExpectReply(chain[i]->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED);
    if (!released.ok()) return released.status();
    if (released->fence != fence) {
      return absl::InternalError(
          absl::StrCat("txn ", chain[i]->txn_id(), " released fence ",
                       released->fence, ", held ", fence));
    }
    if (i + 1 == chain.size()) break;
    absl::StatusOr<Message> granted =
        ExpectReply(chain[i + 1]->Receive(), LOCKD_OP_GRANTED);
    if (!granted.ok()) {
      return absl::Status(
          granted.status().code(),
          absl::StrCat("after txn ", chain[i]->txn_id(),
                       " released: ", granted.status().message()));
    }
    if (granted->fence <= fence) {
      return absl::InternalError(absl::StrCat("txn ", chain[i + 1]->txn_id(),
                                              " granted fence ", granted->fence,
                                              " after fence ", fence));
    }
    fence = granted->fence;
  }
  for (UdpLockClient* client : chain) {
    absl::StatusOr<Message> extra = client->Receive(kLeftoverWait);
    if (!absl::IsDeadlineExceeded(extra.status())) {
      return absl::InternalError(absl::StrCat(
          "txn ", client->txn_id(), " got more after the chain: ",
          extra.ok() ? extra->ToString() : extra.status().ToString()));
    }
  }
  return absl::OkStatus();
}

::testing::AssertionResult IsOk(const absl::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}

absl::Status WaitUntil(const std::function<absl::StatusOr<bool>()>& condition,
                       absl::Duration timeout, absl::string_view what) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError(
      absl::StrCat("not within ", absl::FormatDuration(timeout), ": ", what));
  for (;;) {
    absl::StatusOr<bool> holds = condition();
    if (holds.ok() && *holds) return absl::OkStatus();
    if (!holds.ok()) last = holds.status();
    if (absl::Now() >= deadline) return last;
    absl::SleepFor(kPollInterval);
  }
}

// ---------------------------------------------------------------------------
// DaemonTest

void DaemonTest::SetUp() {
  static std::atomic<int> tests{0};
  const int n = tests++;
  instance_ = absl::StrCat("t", getpid(), "-", n);
  pin_root_ = absl::StrCat(kBpffs, "/", kPinRootPrefix, getpid(), "-", n);
  RemoveStalePinRoots(kPinRootPrefix);
  std::error_code error;
  std::filesystem::create_directories(pin_root_, error);
  ASSERT_FALSE(error) << pin_root_ << ": " << error.message();
  absl::StatusOr<std::unique_ptr<netns::TestNetwork>> net =
      netns::TestNetwork::Create();
  ASSERT_TRUE(net.ok()) << net.status();
  net_ = std::move(*net);
}

void DaemonTest::TearDown() {
  net_.reset();
  if (pin_root_.empty()) return;
  std::error_code error;
  std::filesystem::remove_all(pin_root_, error);
  EXPECT_FALSE(error) << "removing " << pin_root_ << ": " << error.message();
}

absl::StatusOr<std::unique_ptr<NetnsProcess>> DaemonTest::StartLockd(
    const std::vector<std::string>& flags) {
  absl::StatusOr<std::string> keys = WriteTestKeyFile(::testing::TempDir());
  if (!keys.ok()) return keys.status();
  std::vector<std::string> argv = {
      Runfile("lockd/lockd"),
      absl::StrCat("--interface=", net_->link().server.name),
      absl::StrCat("--instance=", instance_),
      absl::StrCat("--pin_root=", pin_root_),
      absl::StrCat("--grpc_listen=", DefaultGrpcAddress()),
      // UDP clients sign (UdpLockClient); lockctl and the gRPC test client
      // call unsigned over loopback, in the server's namespace.
      absl::StrCat("--key_file=", *keys),
      "--open_subnets=127.0.0.0/8",
      // A fresh instance that never served: no earlier holds to wait for
      // (tests of the grace period pass --grace_ms again, which wins).
      "--grace_ms=0",
  };
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      NetnsProcess::Start(net_->server_netns(), argv);
  if (!lockd.ok()) return lockd.status();
  absl::StatusOr<std::string> ready =
      (*lockd)->ReadLineContaining("ready", kStartTimeout);
  if (!ready.ok()) return ready.status();
  ready_line_ = *ready;
  return lockd;
}

std::string DaemonTest::pin_dir() const {
  return absl::StrCat(pin_root_, "/", instance_);
}

absl::StatusOr<netns::CommandResult> DaemonTest::Lockctl(
    const std::vector<std::string>& args) {
  std::vector<std::string> words = {
      ShellQuote(Runfile("lockctl/lockctl")),
      ShellQuote(absl::StrCat("--server=", DefaultGrpcAddress()))};
  for (const std::string& arg : args) words.push_back(ShellQuote(arg));
  return netns::ExecIn(net_->server_netns(), absl::StrJoin(words, " "),
                       kLockctlTimeout);
}

absl::StatusOr<std::string> DaemonTest::LockctlOutput(
    const std::vector<std::string>& args) {
  absl::StatusOr<netns::CommandResult> result = Lockctl(args);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("lockctl ", absl::StrJoin(args, " "), " exited with ",
                     result->exit_code, ":\n", result->output));
  }
  return result->output;
}

absl::StatusOr<ShownLock> DaemonTest::Show(uint64_t lock_id) {
  absl::StatusOr<std::string> text =
      LockctlOutput({"show", absl::StrCat(lock_id)});
  if (!text.ok()) return text.status();
  return ParseShownLock(*text);
}

absl::StatusOr<v1::GetLockResponse> DaemonTest::ShowJson(uint64_t lock_id) {
  return ParseJson<v1::GetLockResponse>(
      LockctlOutput({"--json", "show", absl::StrCat(lock_id)}));
}

absl::StatusOr<v1::GetStatsResponse> DaemonTest::StatsJson() {
  return ParseJson<v1::GetStatsResponse>(LockctlOutput({"--json", "stats"}));
}

absl::StatusOr<std::unique_ptr<NetnsProcess>> DaemonTest::StartGrpcLockClient(
    const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      Runfile("tests/daemon/grpc_lock_client"),
      absl::StrCat("--server=", DefaultGrpcAddress())};
  argv.insert(argv.end(), args.begin(), args.end());
  return NetnsProcess::Start(net_->server_netns(), argv);
}

absl::StatusOr<std::unique_ptr<UdpLockClient>> DaemonTest::OpenClient(
    uint64_t lock_id, uint64_t txn_id) {
  return UdpLockClient::Open(*net_, lock_id, txn_id);
}

absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>>
DaemonTest::OpenClients(uint64_t lock_id,
                        const std::vector<uint64_t>& txn_ids) {
  std::vector<std::unique_ptr<UdpLockClient>> clients;
  for (uint64_t txn_id : txn_ids) {
    absl::StatusOr<std::unique_ptr<UdpLockClient>> client =
        OpenClient(lock_id, txn_id);
    if (!client.ok()) return client.status();
    clients.push_back(std::move(*client));
  }
  return clients;
}

}  // namespace lockd::testing
