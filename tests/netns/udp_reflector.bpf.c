/* Test-only stand-in for lockd's fast path: answers every UDP datagram sent
 * to port 7 with XDP_TX, swapping Ethernet, IPv4 and UDP source and
 * destination. Swapping leaves both checksums valid (one's-complement sums do
 * not depend on order), so a reply is exactly as good as its request.
 * test_network_test attaches it natively to a server veth to show that the
 * client end needs the harness's XDP_PASS program for replies to arrive. */
// Kernel headers first: libbpf's use their types.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#define REFLECT_PORT 7

SEC("xdp")
int udp_reflector(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) {
    return XDP_PASS;
  }
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end || ip->ihl != 5 ||
      ip->protocol != IPPROTO_UDP) {
    return XDP_PASS;
  }
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(REFLECT_PORT)) {
    return XDP_PASS;
  }

  unsigned char mac[ETH_ALEN];
  __builtin_memcpy(mac, eth->h_source, ETH_ALEN);
  __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
  __builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
  __be32 addr = ip->saddr;
  ip->saddr = ip->daddr;
  ip->daddr = addr;
  __be16 port = udp->source;
  udp->source = udp->dest;
  udp->dest = port;
  return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
