/* The command a pool unit test sends to bpf/test/pool_test.bpf.c (C and
 * C++), and the Kerby allocation record (bpf/test/kerby_chain.h). */
#ifndef LOCKD_BPF_TEST_POOL_TEST_COMMAND_H_
#define LOCKD_BPF_TEST_POOL_TEST_COMMAND_H_

#include "abi/lockd_abi.h"

#define KERBY_MAX_BLOCKS 8
LOCKD_STATIC_ASSERT((KERBY_MAX_BLOCKS & (KERBY_MAX_BLOCKS - 1)) == 0,
                    "KERBY_MAX_BLOCKS must be a power of two");

/* Kerby allocation map (map "allocs"): key -> the blocks of one object. */
struct kerby_alloc {
  __u32 size;   /* bytes */
  __u32 blocks; /* used entries of idx */
  __u64 idx[KERBY_MAX_BLOCKS];
};
LOCKD_ASSERT_SIZE(struct kerby_alloc, 8 + 8 * KERBY_MAX_BLOCKS);

enum pool_command_op {
  POOL_CMD_MALLOC = 1,
  POOL_CMD_FREE = 2,
  POOL_CMD_RESIZE = 3,
  POOL_CMD_UPDATE = 4,
  POOL_CMD_ALLOC_UPDATE = 5,
  POOL_CMD_ALLOC_DEL = 6,
};

struct pool_command {
  __u32 op;     /* enum pool_command_op */
  __s32 result; /* block count or 0 on success, negative errno on error */
  __u32 size;   /* bytes */
  __u32 blocks; /* valid entries of idx (input) */
  __u64 key;    /* alloc_update / alloc_del */
  __u64 idx[KERBY_MAX_BLOCKS];
  __u8 data[KERBY_MAX_BLOCKS * LOCKD_BLOCK_DATA];
};
LOCKD_ASSERT_SIZE(struct pool_command, 24 + 8 * KERBY_MAX_BLOCKS +
                                           KERBY_MAX_BLOCKS * LOCKD_BLOCK_DATA);

#endif /* LOCKD_BPF_TEST_POOL_TEST_COMMAND_H_ */
