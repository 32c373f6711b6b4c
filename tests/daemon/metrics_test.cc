// lockd's /metrics, scraped over HTTP from a real daemon while UDP clients
// hold and wait: the live gauges and the queue wait histogram say what the
// clients did, the counters move as the workload says, and Prometheus's
// own linter (promtool check metrics) accepts the exposition.
#include <memory>
#include <regex>
#include <string>

#include "abi/codec.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using ::testing::HasSubstr;

class MetricsTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
    ASSERT_TRUE(lockd.ok()) << lockd.status();
    lockd_ = std::move(*lockd);
    std::smatch port;
    ASSERT_TRUE(std::regex_search(ready_line(), port,
                                  std::regex("metrics port (\\d+)")))
        << ready_line();
    url_ = absl::StrCat("http://127.0.0.1:", port[1].str(), "/metrics");
  }
  void TearDown() override {
    lockd_.reset();
    DaemonTest::TearDown();
  }

  absl::StatusOr<std::string> Scrape() {
    absl::StatusOr<netns::CommandResult> got =
        netns::ExecIn(net_->server_netns(), absl::StrCat("curl -sf ", url_));
    if (!got.ok()) return got.status();
    if (got->exit_code != 0)
      return absl::InternalError(absl::StrCat("curl: ", got->output));
    return got->output;
  }

  std::unique_ptr<NetnsProcess> lockd_;
  std::string url_;
};

TEST_F(MetricsTest, GaugesAndCountersFollowTheWorkload) {
  const uint64_t lock = LockIdForName("metrics");
  absl::StatusOr<std::vector<std::unique_ptr<UdpLockClient>>> clients =
      OpenClients(lock, {1, 2, 3});
  ASSERT_TRUE(clients.ok()) << clients.status();
  UdpLockClient& a = *(*clients)[0];
  UdpLockClient& b = *(*clients)[1];
  UdpLockClient& c = *(*clients)[2];
  absl::StatusOr<Message> held = ExpectReply(
      a.Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_GRANTED);
  ASSERT_TRUE(held.ok()) << held.status();
  for (UdpLockClient* waiter : {&b, &c})
    ASSERT_TRUE(
        IsOk(ExpectReply(waiter->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                         LOCKD_OP_QUEUED)
                 .status()));

  absl::StatusOr<std::string> busy = Scrape();
  ASSERT_TRUE(busy.ok()) << busy.status();
  EXPECT_THAT(*busy, HasSubstr("\nlockd_locks 1\n"));
  EXPECT_THAT(*busy, HasSubstr("\nlockd_holders 1\n"));
  EXPECT_THAT(*busy, HasSubstr("\nlockd_waiters 2\n"));
  EXPECT_THAT(*busy, HasSubstr("lockd_queue_wait_seconds_count 0\n"));

  // A, then B, then C release: two waiters granted from the queue.
  for (auto [holder, next] : {std::pair{&a, &b}, std::pair{&b, &c}}) {
    ASSERT_TRUE(
        IsOk(ExpectReply(holder->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED)
                 .status()));
    ASSERT_TRUE(IsOk(ExpectReply(next->Receive(), LOCKD_OP_GRANTED).status()));
  }
  ASSERT_TRUE(
      IsOk(ExpectReply(c.Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED).status()));

  absl::StatusOr<std::string> idle = Scrape();
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_THAT(*idle, HasSubstr("\nlockd_locks 0\n"));
  EXPECT_THAT(*idle, HasSubstr("\nlockd_holders 0\n"));
  EXPECT_THAT(*idle, HasSubstr("\nlockd_waiters 0\n"));
  EXPECT_THAT(*idle, HasSubstr("lockd_queue_wait_seconds_count 2\n"));
  EXPECT_THAT(
      *idle,
      HasSubstr("lockd_datapath_outcomes_total{outcome=\"queued\"} 2\n"));
  EXPECT_THAT(*idle,
              HasSubstr("lockd_datapath_outcomes_total{outcome=\"grant_from_"
                        "queue\"} 2\n"));
  EXPECT_THAT(*idle, HasSubstr("lockd_datapath_outcomes_total{outcome="
                               "\"released\"} 3\n"));
}

TEST_F(MetricsTest, PromtoolAcceptsTheExposition) {
  absl::StatusOr<netns::CommandResult> checked = netns::ExecIn(
      net_->server_netns(),
      absl::StrCat("m=$(curl -sf ", url_,
                   ") && printf '%s\\n' \"$m\" | promtool check metrics"));
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(checked->exit_code, 0) << checked->output;
}

TEST_F(MetricsTest, OtherPathsAreNotFound) {
  std::string other = url_;
  other.replace(other.rfind("/metrics"), 8, "/locks");
  absl::StatusOr<netns::CommandResult> got = netns::ExecIn(
      net_->server_netns(),
      absl::StrCat("curl -s -o /dev/null -w '%{http_code}' ", other));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->output, "404");
}

}  // namespace
}  // namespace lockd::testing
