/* Reference programs measured beside lockd in the same run: `xdp_empty`
 * passes every packet (the cost of running any XDP program), `xdp_reflect`
 * bounces a lockd request straight back (XDP_TX with addresses swapped and
 * checksums recomputed): the physical ceiling of an XDP lock server. */
#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/reply.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_empty(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_PASS;
}

SEC("xdp")
int xdp_reflect(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct lockd_request req = {};
  if (parse_request(data, data_end, cfg_port, &req) != PARSE_OK)
    return XDP_PASS;
  struct lockd_frame *frame = data;
  if ((void *)(frame + 1) > data_end) return XDP_PASS;
  struct lockd_endpoint us, them;
  frame_dest(frame, &us);
  frame_source(frame, &them);
  struct lockd_reply reply = {
      .opcode = LOCKD_OP_GRANTED,
      .lock_id = req.lock_id,
      .txn_id = req.txn_id,
      .seq = req.seq,
      .mode = req.mode,
      .policy = req.policy,
  };
  frame_write(frame, &us, &them, &reply);
  return XDP_TX;
}
