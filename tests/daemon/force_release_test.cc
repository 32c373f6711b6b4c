// An operator ends a hold with `lockctl release --force`: refused without
// the daemon's admin token, and refused for a fence other than the hold's
// (the hold the operator did not look at); done with both right, the
// waiter is granted and the old holder is told FORCE_RELEASED.
#include <memory>
#include <string>

#include "abi/codec.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ForceReleaseTest = DaemonTest;

TEST_F(ForceReleaseTest, NeedsTheAdminTokenThenGrantsTheWaiter) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd =
      StartLockd({"--admin_token=secret"});
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("force-release");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> holder = OpenClient(lock, 1);
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter = OpenClient(lock, 2);
  ASSERT_TRUE(waiter.ok()) << waiter.status();
  absl::StatusOr<Message> h_granted =
      ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(h_granted.ok()) << h_granted.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_QUEUED)
               .status()));
  const std::vector<std::string> release = {"release", "--force",
                                            absl::StrCat(lock), "1"};

  absl::StatusOr<netns::CommandResult> refused = Lockctl(release);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_NE(refused->exit_code, 0) << refused->output;
  EXPECT_THAT(absl::AsciiStrToLower(refused->output), HasSubstr("permission"));
  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(1));
  EXPECT_THAT(shown->queue, ElementsAre(2));

  std::vector<std::string> with_token = {"--token=secret"};
  std::vector<std::string> wrong_fence = with_token;
  wrong_fence.insert(wrong_fence.end(), release.begin(), release.end());
  wrong_fence.push_back(absl::StrCat(h_granted->fence + 1));
  absl::StatusOr<netns::CommandResult> mismatch = Lockctl(wrong_fence);
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_NE(mismatch->exit_code, 0) << mismatch->output;
  EXPECT_THAT(mismatch->output, HasSubstr("another fence"));
  shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(1));

  with_token.insert(with_token.end(), release.begin(), release.end());
  with_token.push_back(absl::StrCat(h_granted->fence));
  absl::StatusOr<std::string> done = LockctlOutput(with_token);
  ASSERT_TRUE(done.ok()) << done.status();
  absl::StatusOr<Message> w_granted =
      ExpectReply((*waiter)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(w_granted.ok()) << w_granted.status();
  EXPECT_GT(w_granted->fence, h_granted->fence);

  absl::StatusOr<Message> late_release =
      ExpectReply((*holder)->Call(LOCKD_OP_RELEASE), LOCKD_OP_REJECTED);
  ASSERT_TRUE(late_release.ok()) << late_release.status();
  EXPECT_EQ(late_release->status, LOCKD_STATUS_FORCE_RELEASED) << *late_release;
  absl::StatusOr<Message> late_renew =
      ExpectReply((*holder)->Call(LOCKD_OP_RENEW), LOCKD_OP_REJECTED);
  ASSERT_TRUE(late_renew.ok()) << late_renew.status();
  EXPECT_EQ(late_renew->status, LOCKD_STATUS_FORCE_RELEASED) << *late_renew;
  shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(2));
  EXPECT_THAT(shown->queue, ElementsAre());
}

}  // namespace
}  // namespace lockd::testing
