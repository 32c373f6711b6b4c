/* Includes and small helpers every lockd BPF file needs. */
#ifndef LOCKD_BPF_LIB_COMMON_H_
#define LOCKD_BPF_LIB_COMMON_H_

// Kernel headers first: libbpf's use their types.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>
#include <linux/udp.h>
#include <stdbool.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "abi/lockd_abi.h"

#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef ENOENT
#define ENOENT 2
#endif

#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

static __always_inline __u64 lockd_bswap64(__u64 v) {
  return __builtin_bswap64(v);
}
#define lockd_ntohll(v) lockd_bswap64(v)
#define lockd_htonll(v) lockd_bswap64(v)

#endif /* LOCKD_BPF_LIB_COMMON_H_ */
