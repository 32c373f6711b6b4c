// The Kerby pool (bpf/lib/pool.h) and its chain API (bpf/test/kerby_chain.h),
// run in the kernel through bpf/test/pool_test.bpf.c: allocations spanning
// several blocks, writes across a chain, resize up and down, free, the
// allocation map, exhaustion, and the low-water mark that asks for a
// successor segment.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf/pool_test_bpf.skel.h"
#include "bpf/test/pool_test_command.h"
#include "gtest/gtest.h"
#include "lockd/test_run.h"
#include "tests/datapath/bpf_allowed.h"

namespace lockd::testing {
namespace {

constexpr uint32_t kPoolCapacity = 16;
constexpr uint32_t kSegmentId = 1;
constexpr uint64_t kFirstIndex = uint64_t{kSegmentId} << LOCKD_POOL_SEG_SHIFT;

class PoolTest : public ::testing::Test {
 protected:
  // One pool segment of kPoolCapacity blocks, made current as the daemon
  // does (lockd/segments.cc).
  void SetUp() override {
    skel_ = pool_test_bpf__open();
    ASSERT_NE(skel_, nullptr);
    ASSERT_EQ(pool_test_bpf__load(skel_), 0);
    segment_ =
        bpf_map_create(BPF_MAP_TYPE_HASH, "pool_test_seg", sizeof(uint64_t),
                       sizeof(lockd_block), kPoolCapacity, nullptr);
    ASSERT_GE(segment_, 0) << strerror(errno);
    uint32_t slot = kSegmentId % LOCKD_POOL_SLOTS, zero = 0;
    lockd_pool_seg info{};
    info.id = kSegmentId;
    info.capacity = kPoolCapacity;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.pool_info), &slot,
                                  &info, BPF_ANY),
              0);
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.pool_segments), &slot,
                                  &segment_, BPF_ANY),
              0);
    lockd_config config{};
    config.pool_current = kSegmentId;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.config), &zero,
                                  &config, BPF_ANY),
              0);
  }
  void TearDown() override {
    pool_test_bpf__destroy(skel_);
    if (segment_ >= 0) close(segment_);
  }

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
      if (bpf_map_lookup_elem(segment_, &idx, &block)) break;
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
    while (bpf_map_get_next_key(segment_, prev, &next) == 0) {
      ++n;
      key = next;
      prev = &key;
    }
    return n;
  }

  // The segment's bookkeeping as the datapath keeps it.
  lockd_pool_seg Info() {
    uint32_t slot = kSegmentId % LOCKD_POOL_SLOTS;
    lockd_pool_seg info{};
    EXPECT_EQ(
        bpf_map_lookup_elem(bpf_map__fd(skel_->maps.pool_info), &slot, &info),
        0);
    return info;
  }

  pool_test_bpf* skel_ = nullptr;
  int segment_ = -1;
};

TEST_F(PoolTest, MallocSpansBlocksLinkedInOrder) {
  pool_command one = Malloc(1);
  ASSERT_EQ(one.result, 1);
  // The segment's id in the high bits: never 0 ("no block") nor 1 (the
  // ticket of a holder kept in its lock's slot).
  EXPECT_EQ(one.idx[0], kFirstIndex);

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
  kerby_alloc stored{};
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
  EXPECT_EQ(Malloc(KERBY_MAX_BLOCKS * LOCKD_BLOCK_DATA + 1).result, -E2BIG);
  EXPECT_EQ(BlocksInUse(), 0u);
}

TEST_F(PoolTest, ExhaustionFailsCleanly) {
  // 16 blocks: two 8-block objects fill the pool.
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  EXPECT_EQ(BlocksInUse(), kPoolCapacity);
  pool_command full = Malloc(3 * LOCKD_BLOCK_DATA);
  EXPECT_EQ(full.result, -ENOMEM) << "the segment refuses the insert";
  EXPECT_EQ(BlocksInUse(), kPoolCapacity) << "a failed malloc leaves nothing";
  EXPECT_EQ(Info().live, static_cast<int64_t>(kPoolCapacity));
}

TEST_F(PoolTest, LowWaterMarkAsksForASuccessorOnce) {
  // 75 % of 16 is 12: the 12th block asks, the 13th does not ask again.
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  EXPECT_EQ(Info().low_water_signalled, 0u);
  ASSERT_EQ(Malloc(3 * LOCKD_BLOCK_DATA).result, 3);
  EXPECT_EQ(Info().low_water_signalled, 0u);
  ASSERT_EQ(Malloc(1).result, 1);
  EXPECT_EQ(Info().low_water_signalled, 1u);
  ASSERT_EQ(Malloc(1).result, 1);
  EXPECT_EQ(Info().live, 13);
  int events = 0;
  ring_buffer* ring = ring_buffer__new(
      bpf_map__fd(skel_->maps.events),
      [](void* ctx, void* data, size_t) {
        const auto* ev = static_cast<const lockd_event*>(data);
        if (ev->type == LOCKD_EVENT_POOL_LOW && ev->arg == kSegmentId)
          ++*static_cast<int*>(ctx);
        return 0;
      },
      &events, nullptr);
  ASSERT_NE(ring, nullptr);
  ring_buffer__consume(ring);
  ring_buffer__free(ring);
  EXPECT_EQ(events, 1);
}

TEST_F(PoolTest, PartialFailureRollsBack) {
  ASSERT_EQ(Malloc(8 * LOCKD_BLOCK_DATA).result, 8);
  ASSERT_EQ(Malloc(6 * LOCKD_BLOCK_DATA).result, 6);
  // 2 blocks left: a 3-block object gets 2 before failing, then frees them.
  EXPECT_EQ(Malloc(3 * LOCKD_BLOCK_DATA).result, -ENOMEM);
  EXPECT_EQ(BlocksInUse(), 14u);
  EXPECT_EQ(Info().live, 14);
  EXPECT_EQ(Malloc(2 * LOCKD_BLOCK_DATA).result, 2);
}

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/false);
  return RUN_ALL_TESTS();
}
