// Moves the calling process into a new network namespace whose only device
// is lo, up: programs run through BPF_PROG_TEST_RUN that send packets
// (TC clones, KICKs) then reach nothing but this namespace.
#ifndef LOCKD_TESTS_DATAPATH_PRIVATE_NETNS_H_
#define LOCKD_TESTS_DATAPATH_PRIVATE_NETNS_H_

#include "absl/status/status.h"

namespace lockd::testing {

// Call before starting threads: unshare() moves only the calling thread.
absl::Status EnterPrivateNetns();

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DATAPATH_PRIVATE_NETNS_H_
