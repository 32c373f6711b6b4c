// A gRPC client (LockService.Acquire, blocking) and UDP clients share one
// FIFO queue: each is granted in the order it arrived, with fences that
// grow in that order.
#include <memory>
#include <string>

#include "abi/codec.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon/daemon_harness.h"
#include "tests/daemon/udp_lock_client.h"

namespace lockd::testing {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kHolderTxn = 1;
constexpr uint64_t kFirstUdpWaiterTxn = 2;
constexpr uint64_t kGrpcTxn = 3;
constexpr uint64_t kSecondUdpWaiterTxn = 4;

using GrpcContentionTest = DaemonTest;

// The fence in grpc_lock_client's "<word> <fence>" line.
absl::StatusOr<uint64_t> FenceOf(NetnsProcess& client, absl::string_view word) {
  absl::StatusOr<std::string> line =
      client.ReadLineContaining(word, kReplyTimeout);
  if (!line.ok()) return line.status();
  uint64_t fence = 0;
  absl::string_view rest = *line;
  if (!absl::ConsumePrefix(&rest, absl::StrCat(word, " ")) ||
      !absl::SimpleAtoi(rest, &fence)) {
    return absl::InternalError(absl::StrCat("unexpected line: ", *line));
  }
  return fence;
}

TEST_F(GrpcContentionTest, GrpcAndUdpClientsAreGrantedInArrivalOrder) {
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("grpc-contention");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> holder =
      OpenClient(lock, kHolderTxn);
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> u1 =
      OpenClient(lock, kFirstUdpWaiterTxn);
  ASSERT_TRUE(u1.ok()) << u1.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> u2 =
      OpenClient(lock, kSecondUdpWaiterTxn);
  ASSERT_TRUE(u2.ok()) << u2.status();

  absl::StatusOr<Message> h_granted =
      ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(h_granted.ok()) << h_granted.status();
  absl::StatusOr<Message> u1_queued = ExpectReply(
      (*u1)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_QUEUED);
  ASSERT_TRUE(u1_queued.ok()) << u1_queued.status();

  absl::StatusOr<std::unique_ptr<NetnsProcess>> grpc = StartGrpcLockClient(
      {absl::StrCat("--lock_id=", lock), absl::StrCat("--txn_id=", kGrpcTxn)});
  ASSERT_TRUE(grpc.ok()) << grpc.status();
  // U2 must arrive after the gRPC request, which shows once it is queued.
  absl::Status grpc_queued = WaitUntil(
      [&]() -> absl::StatusOr<bool> {
        absl::StatusOr<ShownLock> shown = Show(lock);
        if (!shown.ok()) return shown.status();
        return shown->queue.size() == 2;
      },
      kStartTimeout, "the gRPC client queued behind U1");
  ASSERT_TRUE(grpc_queued.ok()) << grpc_queued;
  absl::StatusOr<Message> u2_queued = ExpectReply(
      (*u2)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE), LOCKD_OP_QUEUED);
  ASSERT_TRUE(u2_queued.ok()) << u2_queued.status();
  EXPECT_EQ(u2_queued->queue_pos, 2u);
  absl::StatusOr<ShownLock> shown = Show(lock);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_THAT(shown->holders, ElementsAre(kHolderTxn));
  EXPECT_THAT(shown->queue,
              ElementsAre(kFirstUdpWaiterTxn, kGrpcTxn, kSecondUdpWaiterTxn));

  ASSERT_TRUE(
      IsOk(ExpectReply((*holder)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED)
               .status()));
  absl::StatusOr<Message> u1_granted =
      ExpectReply((*u1)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(u1_granted.ok()) << u1_granted.status();
  EXPECT_GT(u1_granted->fence, h_granted->fence);

  ASSERT_TRUE(IsOk(
      ExpectReply((*u1)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED).status()));
  absl::StatusOr<uint64_t> grpc_fence = FenceOf(**grpc, "granted");
  ASSERT_TRUE(grpc_fence.ok()) << grpc_fence.status();
  EXPECT_GT(*grpc_fence, u1_granted->fence);

  ASSERT_TRUE(IsOk((*grpc)->WriteLine("release")));
  absl::StatusOr<uint64_t> released_fence = FenceOf(**grpc, "released");
  ASSERT_TRUE(released_fence.ok()) << released_fence.status();
  EXPECT_EQ(*released_fence, *grpc_fence);
  absl::StatusOr<Message> u2_granted =
      ExpectReply((*u2)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(u2_granted.ok()) << u2_granted.status();
  EXPECT_GT(u2_granted->fence, *grpc_fence);
  absl::StatusOr<int> exit_code = (*grpc)->Wait(kStopTimeout);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
  ASSERT_TRUE(IsOk(
      ExpectReply((*u2)->Call(LOCKD_OP_RELEASE), LOCKD_OP_RELEASED).status()));
}

TEST_F(GrpcContentionTest, HoldTakenOverUdpIsReleasedOverGrpc) {
  // The client library falls back to gRPC mid-hold: its release must end
  // the hold, whatever sequence numbers the UDP side used.
  absl::StatusOr<std::unique_ptr<NetnsProcess>> lockd = StartLockd();
  ASSERT_TRUE(lockd.ok()) << lockd.status();
  const uint64_t lock = LockIdForName("udp-then-grpc");
  absl::StatusOr<std::unique_ptr<UdpLockClient>> holder =
      OpenClient(lock, kHolderTxn);
  ASSERT_TRUE(holder.ok()) << holder.status();
  absl::StatusOr<std::unique_ptr<UdpLockClient>> waiter =
      OpenClient(lock, kFirstUdpWaiterTxn);
  ASSERT_TRUE(waiter.ok()) << waiter.status();
  // A few requests first, so the holder's ACQUIRE has a seq above 1.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*holder)->Call(LOCKD_OP_RENEW).ok());  // REJECTED: no hold
  absl::StatusOr<Message> granted =
      ExpectReply((*holder)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                  LOCKD_OP_GRANTED);
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_TRUE(
      IsOk(ExpectReply((*waiter)->Call(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE),
                       LOCKD_OP_QUEUED)
               .status()));

  absl::StatusOr<std::unique_ptr<NetnsProcess>> grpc = StartGrpcLockClient(
      {absl::StrCat("--lock_id=", lock), absl::StrCat("--txn_id=", kHolderTxn),
       "--release_only",
       // The same client as over UDP: only it may end its hold.
       absl::StrCat("--client_id=", (*holder)->client_id())});
  ASSERT_TRUE(grpc.ok()) << grpc.status();
  absl::StatusOr<uint64_t> released = FenceOf(**grpc, "released");
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, granted->fence) << "the hold itself was released";
  absl::StatusOr<Message> next =
      ExpectReply((*waiter)->Receive(), LOCKD_OP_GRANTED);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->fence, granted->fence);
}

}  // namespace
}  // namespace lockd::testing
