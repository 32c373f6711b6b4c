// The Kerby pool library (bpf/lib/pool.h), run in the kernel through
// bpf/pool_test.bpf.c: allocations spanning several blocks, writes across a
// chain, resize up and down, free, the allocation map, and exhaustion.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf/pool_test_bpf.skel.h"
#include "bpf/pool_test_command.h"
#include "gtest/gtest.h"
#include "lockd/test_run.h"
#include "tests/datapath/bpf_allowed.h"

namespace lockd::testing {
namespace {

constexpr uint32_t kPoolCapacity = 16;

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_UNLESS_BPF_ALLOWED();
    skel_ = pool_test_bpf__open();
    ASSERT_NE(skel_, nullptr);
    ASSERT_EQ(bpf_map__set_max_entries(skel_->maps.pool, kPoolCapacity), 0);
    ASSERT_EQ(pool_test_bpf__load(skel_), 0);
  }
  void TearDown() override { pool_test_bpf__destroy(skel_); }

  pool_command Run(pool_command cmd) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&cmd);
    absl::StatusOr<TestRunResult> run =
        TestRun(bpf_program__fd(skel_->progs.pool_test),
                absl::MakeConstSpan(bytes, sizeof(cmd)));
    EXPECT_TRUE(run.ok()) << run.status();
    pool_command out{};
    if (run.ok()) {
      EXPECT_EQ(run->verdict, static_cast<uint32_t>(XDP_TX));
      EXPECT_EQ(run->packet.size(), sizeof(out));
      memcpy(&out, run->packet.data(), sizeof(out));
    }
    return out;
  }

  pool_command Malloc(uint32_t size) {
    pool_command cmd{};
    cmd.op = POOL_CMD_MALLOC;
    cmd.size = size;
    return Run(cmd);
  }

  // The chain starting at `first`, following `next`, as the map holds it.
  std::vector<lockd_block> Chain(uint64_t first) {
    std::vector<lockd_block> chain;
    for (uint64_t idx = first; idx != 0 && chain.size() < 64;) {
      lockd_block block{};
      if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.pool), &idx, &block))
        break;
      EXPECT_EQ(block.idx, idx);
      chain.push_back(block);
      idx = block.next;
    }
    return chain;
  }

  size_t BlocksInUse() {
    size_t n = 0;
    uint64_t key, next;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(bpf_map__fd(skel_->maps.pool), prev, &next) ==
           0) {
      ++n;
      key = next;
      prev = &key;
    }
    return n;
  }

  pool_test_bpf* skel_ = nullptr;
};

TEST_F(PoolTest, MallocSpansBlocksLinkedInOrder) {
  pool_command one = Malloc(1);
  ASSERT_EQ(one.result, 1);
  EXPECT_EQ(one.idx[0], 1u);  // indexes start at 1: 0 means "no block"

  pool_command four = Malloc(3 * LOCKD_BLOCK_DATA + 1);
  ASSERT_EQ(four.result, 4);
  std::vector<lockd_block> chain = Chain(four.idx[0]);
  ASSERT_EQ(chain.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(chain[i].idx, four.idx[i]);
    EXPECT_GT(four.idx[i], one.idx[0]) << "indexes only grow";
  }
  EXPECT_EQ(chain.back().next, 0u);
  EXPECT_EQ(BlocksInUse(), 5u);
}

TEST_F(PoolTest, UpdateWritesAcrossTheChain) {
  pool_command chain = Malloc(2 * LOCKD_BLOCK_DATA);
  ASSERT_EQ(chain.result, 2);
  pool_command update = chain;
  update.op = POOL_CMD_UPDATE;
  update.blocks = 2;
  for (size_t i = 0; i < sizeof(update.data); ++i) update.data[i] = i * 7;
  ASSERT_EQ(Run(update).result, 0);
  std::vector<lockd_block> blocks = Chain(chain.idx[0]);
  ASSERT_EQ(blocks.size(), 2u);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < LOCKD_BLOCK_DATA; ++i)
      ASSERT_EQ(blocks[b].bytes[i],
                static_cast<uint8_t>((b * LOCKD_BLOCK_DATA + i) * 7))
          << "block " << b << " byte " << i;
}

TEST_F(PoolTest, ResizeGrowsAndShrinksTheChain) {
  pool_command chain = Malloc(2 * LOCKD_BLOCK_DATA);
  ASSERT_EQ(chain.result, 2);

  pool_command grow = chain;
  grow.op = POOL_CMD_RESIZE;
  grow.blocks = 2;
  grow.size = 5 * LOCKD_BLOCK_DATA;
  pool_command grown = Run(grow);
  ASSERT_EQ(grown.result, 5);
  EXPECT_EQ(grown.idx[0], chain.idx[0]);
  EXPECT_EQ(grown.idx[1], chain.idx[1]);
  std::vector<lockd_block> blocks = Chain(grown.idx[0]);
  ASSERT_EQ(blocks.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(blocks[i].idx, grown.idx[i]);
  EXPECT_EQ(BlocksInUse(), 5u);

  pool_command shrink = grown;
  shrink.op = POOL_CMD_RESIZE;
  shrink.blocks = 5;
  shrink.size = LOCKD_BLOCK_DATA + 1;
  pool_command shrunk = Run(shrink);
  ASSERT_EQ(shrunk.result, 2);
  blocks = Chain(shrunk.idx[0]);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks.back().next, 0u);
  EXPECT_EQ(BlocksInUse(), 2u) << "the tail blocks are freed";
}

TEST_F(PoolTest, FreeReturnsEveryBlock) {
  pool_command chain = Malloc(4 * LOCKD_BLOCK_DATA);
  ASSERT_EQ(chain.result, 4);
  pool_command free_cmd = chain;
  free_cmd.op = POOL_CMD_FREE;
  free_cmd.blocks = 4;
  ASSERT_EQ(Run(free_cmd).result, 0);
  EXPECT_EQ(BlocksInUse(), 0u);
  // No free list: the next allocation takes a fresh index.
  pool_command next = Malloc(1);
  ASSERT_EQ(next.result, 1);
  EXPECT_EQ(next.idx[0], chain.idx[3] + 1);
}

TEST_F(PoolTest, AllocationMapRecordsAndDeletesObjects) {
  pool_command chain = Malloc(3 * LOCKD_BLOCK_DATA);
  ASSERT_EQ(chain.result, 3);
  pool_command record = chain;
  record.op = POOL_CMD_ALLOC_UPDATE;
  record.key = 42;
  record.blocks = 3;
  record.size = 3 * LOCKD_BLOCK_DATA;
  ASSERT_EQ(Run(record).result, 0);
  lockd_alloc stored{};
  uint64_t key = 42;
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.allocs), &key, &stored),
            0);
  EXPECT_EQ(stored.size, 3u * LOCKD_BLOCK_DATA);
  EXPECT_EQ(stored.blocks, 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(stored.idx[i], chain.idx[i]);

  pool_command del{};
  del.op = POOL_CMD_ALLOC_DEL;
  del.key = 42;
  ASSERT_EQ(Run(del).result, 0);
  EXPECT_NE(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.allocs), &key, &stored),
            0);
  EXPECT_EQ(BlocksInUse(), 0u) << "alloc_del frees the object's blocks";
  EXPECT_EQ(Run(del).result, -ENOENT);
}

TEST_F(PoolTest, BadSizesAreRefused) {
  EXPECT_EQ(Malloc(0).result, -E2BIG);
  EXPECT_EQ(Malloc(LOCKD_ALLOC_MAX_BLOCKS * LOCKD_BLOCK_DATA + 1).result,
            -E2BIG);
  EXPECT_EQ(BlocksInUse(), 0u);
}

TEST_F(PoolTest, ExhaustionFailsCleanly) {
  // 16 blocks: two 8-block objects fill the pool.
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  EXPECT_EQ(BlocksInUse(), kPoolCapacity);
  pool_command full = Malloc(3 * LOCKD_BLOCK_DATA);
  EXPECT_EQ(full.result, -E2BIG) << "the hash map refuses the insert";
  EXPECT_EQ(BlocksInUse(), kPoolCapacity) << "a failed malloc leaves nothing";
}

TEST_F(PoolTest, PartialFailureRollsBack) {
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  ASSERT_EQ(Malloc(6 * LOCKD_BLOCK_DATA).result, 6);
  // 2 blocks left: a 3-block object gets 2 before failing, then frees them.
  EXPECT_EQ(Malloc(3 * LOCKD_BLOCK_DATA).result, -E2BIG);
  EXPECT_EQ(BlocksInUse(), 14u);
  EXPECT_EQ(Malloc(2 * LOCKD_BLOCK_DATA).result, 2);
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::CheckBpfAllowed(/*private_netns=*/false);
  return RUN_ALL_TESTS();
}
