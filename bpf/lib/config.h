/* Load-time configuration. The loader sets these in .rodata before the
 * program is loaded (map capacities are set the same way, through
 * bpf_map__set_max_entries), so the verifier sees them as constants. */
#ifndef LOCKD_BPF_LIB_CONFIG_H_
#define LOCKD_BPF_LIB_CONFIG_H_

#include "bpf/lib/common.h"

const volatile __u16 cfg_port = LOCKD_DEFAULT_PORT; /* host order */
const volatile __u32 cfg_default_lease_ms = 10000;
const volatile __u32 cfg_max_lease_ms = 300000;

/* 0 asks for the default; anything above the maximum is cut to it. */
static __always_inline __u32 clamp_lease_ms(__u32 asked) {
  __u32 ms = asked ? asked : cfg_default_lease_ms;
  return ms > cfg_max_lease_ms ? cfg_max_lease_ms : ms;
}

#endif /* LOCKD_BPF_LIB_CONFIG_H_ */
