// The bank app (demo/bank.cc) against a real lockd: run from the client
// namespace for a bounded time, it commits transfers and audits, and its
// final check finds the total it started with.
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/test_keys.h"

namespace lockd::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

using BankTest = DaemonTest;

TEST_F(BankTest, KeepsTheTotalAndReportsItsWork) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
  ASSERT_TRUE(lockd.ok()) << lockd.status();

  absl::StatusOr<std::unique_ptr<NetnsProcess>> bank = NetnsProcess::Start(
      net_->client_netns(),
      {absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                    "/demo/bank"),
       absl::StrCat("--lock_servers=server=", net_->link().server.ipv4,
                    ":20231"),
       absl::StrCat("--store=", getenv("TEST_TMPDIR"), "/bank"), "--accounts=8",
       "--initial_balance=500", "--threads=3", "--duration=2s",
       "--audit_percent=20", absl::StrCat("--client_id=", kTestClient),
       absl::StrCat("--key_file=", ::testing::TempDir(), "/clients.keys")});
  ASSERT_TRUE(bank.ok()) << bank.status();
  absl::StatusOr<int> exit_code = (*bank)->Wait(absl::Seconds(60));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();

  const std::string& report = (*bank)->output();
  EXPECT_EQ(*exit_code, 0) << report;
  EXPECT_THAT(report, HasSubstr("4000 == 4000 at the start: OK"));
  // Work was done: a count that is not zero.
  EXPECT_THAT(report, ContainsRegex("transfers +[1-9][0-9]* committed"));
  EXPECT_THAT(report, ContainsRegex("audits +[1-9][0-9]* committed"));
  // The client's counters of the one server: UDP requests went out.
  EXPECT_THAT(report, ContainsRegex("\n  server +[1-9][0-9]* "));
}

}  // namespace
}  // namespace lockd::testing
