/* Load-time configuration. The loader sets these in .rodata before the
 * program is loaded, so the verifier sees them as constants and no
 * recompilation is needed to configure a server. State that must survive a
 * restart lives in the "config" map instead (bpf/lib/maps.h). */
#ifndef LOCKD_BPF_LIB_CONFIG_H_
#define LOCKD_BPF_LIB_CONFIG_H_

#include "bpf/lib/common.h"

const volatile __u16 cfg_port = LOCKD_DEFAULT_PORT; /* host order */
const volatile __u32 cfg_default_lease_ms = LOCKD_DEFAULT_LEASE_MS;
const volatile __u32 cfg_max_lease_ms = LOCKD_MAX_LEASE_MS;
/* A bucket with this many locks splits when another lock needs room (tests
 * lower it to exercise growth). The slots above it are spare: a lock takes
 * one while the split waits for its segment. */
const volatile __u32 cfg_split_at = LOCKD_BUCKET_SLOTS - 1;
/* Two sibling buckets holding this many locks or fewer in all merge. */
const volatile __u32 cfg_merge_at = LOCKD_BUCKET_SLOTS / 4;
/* A pool segment this full (percent) asks the daemon for a successor. */
const volatile __u32 cfg_pool_low_water_pct = 75;
/* Holds + waits one client may have at once (LOCKD_STATUS_QUOTA past it). */
const volatile __s32 cfg_client_quota = LOCKD_DEFAULT_CLIENT_QUOTA;

/* The server's epoch, carried by every reply (lockd_epoch_of the table's
 * fence base; struct lockd_msg.wait_ms). */
const volatile __u32 cfg_epoch = 0;

/* 0 asks for the default; anything above the maximum is cut to it. */
static __always_inline __u32 clamp_lease_ms(__u32 asked) {
  __u32 ms = asked ? asked : cfg_default_lease_ms;
  return ms > cfg_max_lease_ms ? cfg_max_lease_ms : ms;
}

#endif /* LOCKD_BPF_LIB_CONFIG_H_ */
