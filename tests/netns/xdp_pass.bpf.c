/* The smallest XDP program: passes every frame on. The test harness attaches
 * it natively to the client end of each veth pair because veth delivers a
 * native XDP_TX frame from one end only when the other end runs an XDP
 * program too (see docs in test_network.h). */
// Kernel headers first: libbpf's use their types.
// clang-format off
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>
// clang-format on

SEC("xdp")
int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }

char LICENSE[] SEC("license") = "GPL";
