// Harness for end-to-end tests of the real lockd binary: the daemon runs in
// the server namespace of a TestNetwork, attached to the server end of the
// veth pair, UDP clients (UdpLockClient) run in the client namespace, and
// the real lockctl (and tests/daemon:grpc_lock_client) talk gRPC to the
// daemon on the server namespace's loopback.
//
// Hygiene: every test gets its own lockd instance name, bpffs pin root
// (/sys/fs/bpf/lockd-test-<pid>-<n>, removed in TearDown, also after a
// SIGKILL left pins behind; roots of dead test processes are removed by the
// next SetUp). Child processes die with
// the test process (PR_SET_PDEATHSIG) and are stopped and reaped by their
// destructor on every exit path.
#ifndef LOCKD_TESTS_DAEMON_DAEMON_HARNESS_H_
#define LOCKD_TESTS_DAEMON_DAEMON_HARNESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/lockd.pb.h"
#include "tests/daemon/udp_lock_client.h"
#include "tests/netns/test_network.h"

namespace lockd::testing {

// Removes pin roots under /sys/fs/bpf named "<prefix><pid>[-...]" whose test
// process died without its teardown (SIGKILL), so killed runs do not leak.
void RemoveStalePinRoots(absl::string_view prefix);

// How long a test waits for a daemon to start, stop, or reach a state.
inline constexpr absl::Duration kStartTimeout = absl::Seconds(20);
inline constexpr absl::Duration kStopTimeout = absl::Seconds(20);

// A child process that runs a binary inside a network namespace, with its
// stdin and stdout piped to the test (stderr goes to the test's log).
class NetnsProcess {
 public:
  // Forks; the child joins `netns` (setns: only the child moves, and it
  // keeps the test's mount namespace, hence bpffs at /sys/fs/bpf) and execs
  // argv[0], a path. The child is killed if the test process dies.
  static absl::StatusOr<std::unique_ptr<NetnsProcess>> Start(
      absl::string_view netns, const std::vector<std::string>& argv);

  // Unless it was reaped already: SIGTERM, up to kStopTimeout to exit, then
  // SIGKILL. Always reaps.
  ~NetnsProcess();
  NetnsProcess(const NetnsProcess&) = delete;
  NetnsProcess& operator=(const NetnsProcess&) = delete;

  // Reads stdout until a line (after those returned before) contains `text`
  // and returns it. Fails when the process closes stdout first or `timeout`
  // passes; the error shows the output so far.
  absl::StatusOr<std::string> ReadLineContaining(absl::string_view text,
                                                 absl::Duration timeout);
  absl::Status WriteLine(absl::string_view line);
  absl::Status Signal(int signal_number);
  // Waits up to `timeout` for the process to exit and reaps it: its exit
  // code, or 128 + the signal that killed it.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }  // stdout so far

 private:
  NetnsProcess(pid_t pid, netns::ScopedFd to_stdin, netns::ScopedFd stdout)
      : pid_(pid), stdin_(std::move(to_stdin)), stdout_(std::move(stdout)) {}

  // Appends what stdout has now; false at end of file.
  bool ReadAvailable();

  pid_t pid_;
  netns::ScopedFd stdin_;
  netns::ScopedFd stdout_;  // non-blocking
  std::string output_;
  size_t returned_ = 0;  // output_ up to here was returned as lines
  bool reaped_ = false;
};

// `lockctl show` as printed: its mode line, holders and queue in the order
// of the tables (the TXN columns).
struct ShownLock {
  std::string header;  // "mode EXCLUSIVE, fence 3"
  std::vector<uint64_t> holders;
  std::vector<uint64_t> queue;
};
absl::StatusOr<ShownLock> ParseShownLock(absl::string_view text);

// Hands an exclusive lock down its FIFO queue: `holder` releases (RELEASED
// with `holder_fence`), then each of `waiters` in order must be sent GRANTED
// with a fence above the one before, and releases in turn. Finally no
// client may have a datagram left over (a grant sent twice or to the wrong
// waiter).
absl::Status ReleaseInFifoOrder(
    UdpLockClient& holder, uint64_t holder_fence,
    const std::vector<std::unique_ptr<UdpLockClient>>& waiters);

// For ASSERT_TRUE and EXPECT_TRUE: whether `status` is OK, failing with it.
::testing::AssertionResult IsOk(const absl::Status& status);

// Polls `condition` until it returns true, at most until `timeout` passes.
// Fails with the last error or `what` when it never held.
absl::Status WaitUntil(const std::function<absl::StatusOr<bool>()>& condition,
                       absl::Duration timeout, absl::string_view what);

// One test: a fresh TestNetwork, instance name and pin root.
class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts lockd in the server namespace, attached to the server veth, on
  // this test's instance and pin root, gRPC on the server
  // namespace's 127.0.0.1, with `flags` added; returns once it printed its
  // ready line (ready_line() then has it).
  absl::StatusOr<std::unique_ptr<NetnsProcess>> StartLockd(
      const std::vector<std::string>& flags = {});
  const std::string& ready_line() const { return ready_line_; }
  // Where lockd keeps this test's pins.
  std::string pin_dir() const;

  // Runs lockctl --server=<this test's lockd> `args` in the server
  // namespace. A non-zero exit is not an error here: check exit_code.
  absl::StatusOr<netns::CommandResult> Lockctl(
      const std::vector<std::string>& args);
  // The same, but its stdout on exit code 0 and an error otherwise.
  absl::StatusOr<std::string> LockctlOutput(
      const std::vector<std::string>& args);

  // `lockctl show <lock>`, parsed from its tables.
  absl::StatusOr<ShownLock> Show(uint64_t lock_id);
  // `lockctl --json show <lock>` and `lockctl --json stats`, parsed into
  // the proto responses they print.
  absl::StatusOr<v1::GetLockResponse> ShowJson(uint64_t lock_id);
  absl::StatusOr<v1::GetStatsResponse> StatsJson();

  // tests/daemon:grpc_lock_client in the server namespace, for this test's
  // lockd, with `args` (--lock_id, --txn_id) added.
  absl::StatusOr<std::unique_ptr<NetnsProcess>> StartGrpcLockClient(
      const std::vector<std::string>& args);

  absl::StatusOr<std::unique_ptr<UdpLockClient>> OpenClient(uint64_t lock_id,
                                                            uint64_t txn_id);
  // One client per txn, in that order.
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> OpenClients(
      uint64_t lock_id, const std::vector<uint64_t>& txn_ids);

  std::unique_ptr<netns::TestNetwork> net_;

 private:
  std::string instance_;
  std::string pin_root_;
  std::string ready_line_;
};

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DAEMON_DAEMON_HARNESS_H_
