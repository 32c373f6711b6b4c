// Rendezvous placement of locks on servers: stable, balanced, and moving
// only what it must when the server list changes.
#include "client/rendezvous.h"

#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace lockd::client {
namespace {

constexpr int kLocks = 20000;

std::vector<size_t> Placement(const std::vector<std::string>& servers) {
  Rendezvous rendezvous(servers);
  std::vector<size_t> placement;
  for (int i = 0; i < kLocks; ++i)
    placement.push_back(
        rendezvous.ServerFor(LockIdForName(absl::StrCat("lock/", i))));
  return placement;
}

TEST(RendezvousTest, EveryServerGetsAFairShare) {
  const std::vector<size_t> placement = Placement({"a", "b", "c", "d"});
  std::vector<int> per_server(4);
  for (size_t server : placement) ++per_server[server];
  // Expected 5000 each; a binomial standard deviation is about 61.
  for (int count : per_server) {
    EXPECT_GT(count, kLocks / 4 - 500);
    EXPECT_LT(count, kLocks / 4 + 500);
  }
}

TEST(RendezvousTest, AddingAServerMovesAboutOneInNToItOnly) {
  const std::vector<size_t> before = Placement({"a", "b", "c"});
  const std::vector<size_t> after = Placement({"a", "b", "c", "d"});
  int moved = 0;
  for (int i = 0; i < kLocks; ++i) {
    if (before[i] == after[i]) continue;
    ++moved;
    EXPECT_EQ(after[i], 3u) << "lock " << i << " moved between old servers";
  }
  // Expected a quarter: 5000, standard deviation about 61.
  EXPECT_GT(moved, kLocks / 4 - 500);
  EXPECT_LT(moved, kLocks / 4 + 500);
}

TEST(RendezvousTest, RemovingAServerMovesOnlyItsLocks) {
  const std::vector<size_t> before = Placement({"a", "b", "c", "d"});
  const std::vector<size_t> after = Placement({"a", "b", "d"});
  const std::vector<size_t> index_after = {0, 1, 0, 2};  // c is gone
  for (int i = 0; i < kLocks; ++i) {
    if (before[i] == 2) continue;  // c's locks go anywhere
    EXPECT_EQ(after[i], index_after[before[i]]) << "lock " << i;
  }
}

TEST(RendezvousTest, ListOrderDoesNotMatter) {
  const std::vector<size_t> forward = Placement({"a", "b", "c"});
  const std::vector<size_t> backward = Placement({"c", "b", "a"});
  for (int i = 0; i < kLocks; ++i) EXPECT_EQ(forward[i], 2 - backward[i]);
}

}  // namespace
}  // namespace lockd::client
