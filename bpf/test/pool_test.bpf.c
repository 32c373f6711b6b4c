/* Drives the Kerby pool (bpf/lib/pool.h) and its chain API
 * (bpf/test/kerby_chain.h) for their unit tests: the packet is a struct
 * pool_command, executed and written back (XDP_TX), so BPF_PROG_TEST_RUN
 * returns the result. Never attached to an interface. */
#include "bpf/lib/common.h"
#include "bpf/test/kerby_chain.h"
#include "bpf/test/pool_test_command.h"

char LICENSE[] SEC("license") = "GPL";

/* Commands are copied out of the packet into this scratch value, so the
 * library sees ordinary memory as its callers in lockd do. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct pool_command);
} command_scratch SEC(".maps");

SEC("xdp")
int pool_test(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct pool_command *cmd = bpf_map_lookup_elem(&command_scratch, &zero);
  if (!cmd) return XDP_ABORTED;
  if (bpf_xdp_load_bytes(ctx, 0, cmd, sizeof(*cmd))) return XDP_ABORTED;
  __u32 n = cmd->blocks;
  if (n > KERBY_MAX_BLOCKS) n = KERBY_MAX_BLOCKS;
  switch (cmd->op) {
    case POOL_CMD_MALLOC:
      cmd->result = pool_malloc(cmd->size, cmd->idx);
      break;
    case POOL_CMD_FREE:
      cmd->result = pool_free_chain(cmd->idx, n);
      break;
    case POOL_CMD_RESIZE:
      cmd->result = pool_resize(cmd->size, cmd->idx, n);
      break;
    case POOL_CMD_UPDATE:
      cmd->result = pool_update(cmd->idx, n, cmd->data);
      break;
    case POOL_CMD_ALLOC_UPDATE:
      cmd->result = alloc_update(cmd->key, cmd->idx, n, cmd->size);
      break;
    case POOL_CMD_ALLOC_DEL:
      cmd->result = alloc_del(cmd->key);
      break;
    default:
      cmd->result = -EINVAL;
      break;
  }
  if (bpf_xdp_store_bytes(ctx, 0, cmd, sizeof(*cmd))) return XDP_ABORTED;
  return XDP_TX;
}
