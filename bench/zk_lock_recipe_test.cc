#include "bench/zk_lock_recipe.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lockd::bench {
namespace {

// ZooKeeper lists children in no particular order: every case is also
// checked with the list reversed.
ZkLockDecision Decide(std::vector<std::string> children,
                      const std::string& ours) {
  absl::StatusOr<ZkLockDecision> forward = DecideZkLock(children, ours);
  EXPECT_TRUE(forward.ok()) << forward.status();
  std::reverse(children.begin(), children.end());
  absl::StatusOr<ZkLockDecision> backward = DecideZkLock(children, ours);
  EXPECT_TRUE(backward.ok()) << backward.status();
  if (!forward.ok() || !backward.ok()) return {};
  EXPECT_EQ(forward->holds, backward->holds);
  EXPECT_EQ(forward->watch, backward->watch);
  return *forward;
}

TEST(ZkLockSequence, ParsesTheTenDigitSuffix) {
  EXPECT_EQ(*ZkLockSequence("write-0000000042"), 42);
  EXPECT_EQ(*ZkLockSequence("read-2147483647"), 2147483647);
  EXPECT_FALSE(ZkLockSequence("write-42").ok());
  EXPECT_FALSE(ZkLockSequence("lock-0000000042").ok());
  EXPECT_FALSE(ZkLockSequence("read-00000000x2").ok());
}

TEST(DecideZkLock, LowestWriterHolds) {
  const ZkLockDecision d =
      Decide({"write-0000000003", "write-0000000001", "read-0000000002"},
             "write-0000000001");
  EXPECT_TRUE(d.holds);
  EXPECT_EQ(d.watch, "");
}

TEST(DecideZkLock, WriterWaitsForItsImmediatePredecessorOfAnyKind) {
  const std::vector<std::string> children = {
      "write-0000000001", "read-0000000002", "read-0000000004",
      "write-0000000007", "read-0000000009"};
  ZkLockDecision d = Decide(children, "write-0000000007");
  EXPECT_FALSE(d.holds);
  EXPECT_EQ(d.watch, "read-0000000004");  // not the lowest: no herd
}

TEST(DecideZkLock, ReadersShareUntilAWriterPrecedes) {
  const std::vector<std::string> children = {
      "read-0000000010", "read-0000000011",  "write-0000000012",
      "read-0000000013", "write-0000000014", "read-0000000015"};
  EXPECT_TRUE(Decide(children, "read-0000000010").holds);
  EXPECT_TRUE(Decide(children, "read-0000000011").holds);
  ZkLockDecision d = Decide(children, "write-0000000012");
  EXPECT_FALSE(d.holds);
  EXPECT_EQ(d.watch, "read-0000000011");
  d = Decide(children, "read-0000000013");
  EXPECT_FALSE(d.holds);
  EXPECT_EQ(d.watch, "write-0000000012");
  // The nearest preceding writer, not the first one, and never a reader.
  d = Decide(children, "read-0000000015");
  EXPECT_FALSE(d.holds);
  EXPECT_EQ(d.watch, "write-0000000014");
}

TEST(DecideZkLock, GapsLeftByReleasesAreSkipped) {
  // write-0000000003 released and read-0000000005 aborted: the reader waits
  // for the writer still there.
  ZkLockDecision d =
      Decide({"write-0000000001", "read-0000000008"}, "read-0000000008");
  EXPECT_FALSE(d.holds);
  EXPECT_EQ(d.watch, "write-0000000001");
}

TEST(DecideZkLock, OurNodeMustBeThere) {
  const absl::StatusOr<ZkLockDecision> d =
      DecideZkLock({"write-0000000001"}, "write-0000000002");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
}

TEST(DecideZkLock, ForeignChildrenAreErrors) {
  EXPECT_FALSE(
      DecideZkLock({"write-0000000001", "junk"}, "write-0000000001").ok());
  EXPECT_FALSE(DecideZkLock({"read-0000000001"}, "junk").ok());
}

}  // namespace
}  // namespace lockd::bench
