// The bank's fenced store: writes need a fence above the last one, and a
// refused write changes nothing.
#include "demo/account_store.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd::demo {
namespace {

using ::testing::HasSubstr;

AccountStore NewStore(const std::string& name) {
  return AccountStore(absl::StrCat(getenv("TEST_TMPDIR"), "/", name));
}

TEST(AccountStoreTest, CreateSetsEveryAccountWithFenceZero) {
  const AccountStore store = NewStore("create");
  ASSERT_TRUE(store.Create(3, 250).ok());
  for (int account = 0; account < 3; ++account) {
    absl::StatusOr<AccountRecord> record = store.Read(account);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_EQ(record->balance, 250);
    EXPECT_EQ(record->fence, 0u);
  }
  EXPECT_FALSE(store.Read(3).ok());
}

TEST(AccountStoreTest, WritesWithGrowingFencesAreStored) {
  const AccountStore store = NewStore("growing");
  ASSERT_TRUE(store.Create(1, 100).ok());
  ASSERT_TRUE(store.Write(0, 60, 5).ok());
  ASSERT_TRUE(store.Write(0, -3, 6).ok());

  absl::StatusOr<AccountRecord> record = store.Read(0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->balance, -3);
  EXPECT_EQ(record->fence, 6u);
  std::ifstream file(store.PathOf(0));
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(text.str(), "-3 6\n");
}

TEST(AccountStoreTest, RefusesAStaleFenceAndKeepsTheNewerWrite) {
  const AccountStore store = NewStore("stale");
  ASSERT_TRUE(store.Create(1, 100).ok());
  ASSERT_TRUE(store.Write(0, 70, 9).ok());

  for (uint64_t stale : {uint64_t{9}, uint64_t{8}}) {
    const absl::Status refused = store.Write(0, 1000, stale);
    EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
    EXPECT_THAT(refused.message(),
                HasSubstr(absl::StrCat("refused a write with fence ", stale)));
  }
  absl::StatusOr<AccountRecord> record = store.Read(0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->balance, 70);
  EXPECT_EQ(record->fence, 9u);
}

TEST(AccountStoreTest, AMalformedFileIsDataLoss) {
  const AccountStore store = NewStore("malformed");
  ASSERT_TRUE(store.Create(1, 1).ok());
  std::ofstream(store.PathOf(0)) << "lots of money\n";
  EXPECT_TRUE(absl::IsDataLoss(store.Read(0).status()));
  EXPECT_TRUE(absl::IsDataLoss(store.Write(0, 5, 1)));
}

}  // namespace
}  // namespace lockd::demo
