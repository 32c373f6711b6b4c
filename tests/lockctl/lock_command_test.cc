// `lockctl lock` against a real lockd: the daemon in the server namespace of
// a TestNetwork, lockctl in the client namespace reaching it over the veth
// (UDP, the XDP fast path). Each command checks for itself that no other
// holder is inside, as a protected resource would.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/test_keys.h"

namespace lockd::testing {
namespace {

using ::testing::HasSubstr;

// A guard against hanging, never a measure of speed.
constexpr absl::Duration kPatience = absl::Seconds(60);

class LockCommandTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
    ASSERT_TRUE(lockd.ok()) << lockd.status();
    lockd_ = std::move(*lockd);
  }

  void TearDown() override {
    lockd_.reset();
    DaemonTest::TearDown();
  }

  // Starts `lockctl --lock_servers=<this test's lockd> args...` (or, instead
  // of --lock_servers, `servers_flag`) in the client namespace, its stderr
  // merged into the stdout the test reads.
  absl::StatusOr<std::unique_ptr<NetnsProcess>> StartLockctl(
      const std::vector<std::string>& args,
      const std::string& servers_flag = "") {
    std::vector<std::string> argv = {
        "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1",
        absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                     "/lockctl/lockctl"),
        servers_flag.empty()
            ? absl::StrCat("--lock_servers=server=", net_->link().server.ipv4,
                           ":20231")
            : servers_flag,
        // A client of its own, with the key StartLockd's key file has.
        absl::StrCat("--client_id=", NextTestClientId()),
        absl::StrCat("--key_file=", ::testing::TempDir(), "/clients.keys")};
    argv.insert(argv.end(), args.begin(), args.end());
    return NetnsProcess::Start(net_->client_netns(), argv);
  }

  // StartLockctl, then waits for it to exit.
  absl::StatusOr<netns::CommandResult> RunLockctl(
      const std::vector<std::string>& args) {
    absl::StatusOr<std::unique_ptr<NetnsProcess>> lockctl = StartLockctl(args);
    if (!lockctl.ok()) return lockctl.status();
    absl::StatusOr<int> exit_code = (*lockctl)->Wait(kPatience);
    if (!exit_code.ok()) return exit_code.status();
    return netns::CommandResult{*exit_code, (*lockctl)->output()};
  }

  // A holder of `lock` whose command prints "HELD <pid> <txn>" and then
  // waits for a line on its stdin; `flags` go before `lock`.
  absl::StatusOr<std::unique_ptr<NetnsProcess>> StartHolder(
      const std::vector<std::string>& flags, const std::string& lock) {
    std::vector<std::string> args = flags;
    args.insert(args.end(), {"lock", lock, "--", "sh", "-c",
                             "echo HELD $$ $LOCKD_TXN; read line; echo done"});
    absl::StatusOr<std::unique_ptr<NetnsProcess>> holder = StartLockctl(args);
    if (!holder.ok()) return holder.status();
    absl::StatusOr<std::string> held =
        (*holder)->ReadLineContaining("HELD", kPatience);
    if (!held.ok()) return held.status();
    return holder;
  }

  std::unique_ptr<NetnsProcess> lockd_;
};

TEST_F(LockCommandTest, ConcurrentCommandsNeverOverlapAndFencesGrow) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/overlap");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
  // With noclobber, creating the marker fails while another holder has it.
  const std::string script =
      "set -C; echo \"$LOCKD_FENCE\" > \"$1/inside\" || exit 90; "
      "echo \"$LOCKD_FENCE\" >> \"$1/fences\"; sleep 0.2; rm \"$1/inside\"";
  constexpr int kRounds = 5;
  constexpr int kConcurrent = 2;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::unique_ptr<NetnsProcess>> running;
    for (int i = 0; i < kConcurrent; ++i) {
      absl::StatusOr<std::unique_ptr<NetnsProcess>> lockctl = StartLockctl(
          {"lock", "overlap", "--", "sh", "-c", script, "sh", dir});
      ASSERT_TRUE(lockctl.ok()) << lockctl.status();
      running.push_back(std::move(*lockctl));
    }
    for (std::unique_ptr<NetnsProcess>& lockctl : running) {
      absl::StatusOr<int> exit_code = lockctl->Wait(kPatience);
      ASSERT_TRUE(exit_code.ok()) << exit_code.status();
      EXPECT_EQ(*exit_code, 0) << "round " << round << ":\n"
                               << lockctl->output();
    }
  }

  // Appended by each holder in turn: the order of the holds.
  std::ifstream fences(dir + "/fences");
  std::vector<uint64_t> seen;
  for (std::string line; std::getline(fences, line);) {
    uint64_t fence = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line, &fence)) << "line \"" << line << "\"";
    if (!seen.empty()) {
      EXPECT_GT(fence, seen.back()) << "after " << seen.back();
    }
    seen.push_back(fence);
  }
  EXPECT_EQ(seen.size(), size_t{kRounds * kConcurrent});
}

TEST_F(LockCommandTest, PassesOnTheCommandsExitStatus) {
  absl::StatusOr<netns::CommandResult> seven = RunLockctl(
      {"lock", "status", "--", "sh", "-c",
       "test \"$LOCKD_LOCK $LOCKD_SERVER\" = 'status server' || exit 1; "
       "exit 7"});
  ASSERT_TRUE(seven.ok()) << seven.status();
  EXPECT_EQ(seven->exit_code, 7) << seven->output;

  absl::StatusOr<netns::CommandResult> killed =
      RunLockctl({"lock", "status", "--", "sh", "-c", "kill -KILL $$"});
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->exit_code, 128 + SIGKILL) << killed->output;

  absl::StatusOr<netns::CommandResult> missing =
      RunLockctl({"lock", "status", "--", "/nonexistent/command"});
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->exit_code, 127) << missing->output;
  EXPECT_THAT(missing->output,
              HasSubstr("cannot run \"/nonexistent/command\""));
}

TEST_F(LockCommandTest, TakesItsServersFromAServerListFile) {
  const std::string path = absl::StrCat(getenv("TEST_TMPDIR"), "/servers");
  std::ofstream(path) << "# this test's lockd\nfiled="
                      << net_->link().server.ipv4 << ":20231\n";
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockctl = StartLockctl(
      {"lock", "listed", "--", "sh", "-c",
       "test \"$LOCKD_LOCK $LOCKD_SERVER\" = 'listed filed' || exit 1; "
       "exit 7"},
      absl::StrCat("--server_list_file=", path));
  ASSERT_TRUE(lockctl.ok()) << lockctl.status();
  absl::StatusOr<int> exit_code = (*lockctl)->Wait(kPatience);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 7) << (*lockctl)->output();
}

TEST_F(LockCommandTest, GivesUpAfterTimeoutNamingLockAndServer) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> holder =
      StartHolder({}, "busy");
  ASSERT_TRUE(holder.ok()) << holder.status();

  absl::StatusOr<netns::CommandResult> waited =
      RunLockctl({"--timeout=1s", "lock", "busy", "--", "true"});
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->exit_code, 75) << waited->output;
  EXPECT_THAT(waited->output,
              HasSubstr("lock \"busy\" on server \"server\" was not granted "
                        "within 1s"));

  absl::StatusOr<netns::CommandResult> tried =
      RunLockctl({"--timeout=0", "lock", "busy", "--", "true"});
  ASSERT_TRUE(tried.ok()) << tried.status();
  EXPECT_EQ(tried->exit_code, 75) << tried->output;
  EXPECT_THAT(tried->output, HasSubstr("lock \"busy\" on server \"server\""));

  ASSERT_TRUE(IsOk((*holder)->WriteLine("go")));
  absl::StatusOr<int> holder_exit = (*holder)->Wait(kPatience);
  ASSERT_TRUE(holder_exit.ok()) << holder_exit.status();
  EXPECT_EQ(*holder_exit, 0) << (*holder)->output();
  absl::StatusOr<netns::CommandResult> free =
      RunLockctl({"--timeout=0", "lock", "busy", "--", "true"});
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_EQ(free->exit_code, 0) << free->output;
}

TEST_F(LockCommandTest, SharedHoldersShareAndExcludeWriters) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> reader =
      StartHolder({"--shared"}, "shared");
  ASSERT_TRUE(reader.ok()) << reader.status();

  absl::StatusOr<netns::CommandResult> second_reader =
      RunLockctl({"--shared", "--timeout=0", "lock", "shared", "--", "true"});
  ASSERT_TRUE(second_reader.ok()) << second_reader.status();
  EXPECT_EQ(second_reader->exit_code, 0) << second_reader->output;
  absl::StatusOr<netns::CommandResult> writer =
      RunLockctl({"--timeout=0", "lock", "shared", "--", "true"});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(writer->exit_code, 75) << writer->output;

  ASSERT_TRUE(IsOk((*reader)->WriteLine("go")));
  absl::StatusOr<int> reader_exit = (*reader)->Wait(kPatience);
  ASSERT_TRUE(reader_exit.ok()) << reader_exit.status();
  EXPECT_EQ(*reader_exit, 0) << (*reader)->output();
}

TEST_F(LockCommandTest, PassesSignalsOnAndReleases) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> holder =
      StartHolder({}, "signalled");
  ASSERT_TRUE(holder.ok()) << holder.status();

  ASSERT_TRUE(IsOk((*holder)->Signal(SIGTERM)));
  absl::StatusOr<int> exit_code = (*holder)->Wait(kPatience);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  // The command died of the SIGTERM passed on; lockctl reports it so.
  EXPECT_EQ(*exit_code, 128 + SIGTERM) << (*holder)->output();
  EXPECT_THAT((*holder)->output(), ::testing::Not(HasSubstr("done")));

  absl::StatusOr<netns::CommandResult> next =
      RunLockctl({"--timeout=0", "lock", "signalled", "--", "true"});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->exit_code, 0) << next->output;
}

TEST_F(LockCommandTest, LostHoldKillsTheCommand) {
  // The command ignores SIGTERM, so only the SIGKILL that follows ends it.
  absl::StatusOr<std::unique_ptr<NetnsProcess>> holder = StartLockctl(
      {"--lease=3s", "--kill_after=1s", "lock", "lost", "--", "sh", "-c",
       "trap '' TERM; echo HELD $$ $LOCKD_TXN; "
       "while :; do sleep 0.1; done"});
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<std::string> held =
      (*holder)->ReadLineContaining("HELD", kPatience);
  ASSERT_TRUE(held.ok()) << held.status();
  const std::vector<std::string> words = absl::StrSplit(*held, ' ');
  ASSERT_EQ(words.size(), 3u) << *held;
  int command_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(words[1], &command_pid)) << *held;

  // The operator ends the hold; the next renewal learns it.
  absl::StatusOr<std::string> released =
      LockctlOutput({"release", "--force", "lost", words[2]});
  ASSERT_TRUE(released.ok()) << released.status();

  absl::StatusOr<int> exit_code = (*holder)->Wait(kPatience);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 70) << (*holder)->output();
  EXPECT_THAT((*holder)->output(), HasSubstr("lost lock \"lost\""));
  EXPECT_THAT((*holder)->output(), HasSubstr("sent SIGKILL"));
  // Reaped by lockctl, so not even a zombie is left.
  EXPECT_NE(kill(command_pid, 0), 0);
  EXPECT_EQ(errno, ESRCH);
}

}  // namespace
}  // namespace lockd::testing
