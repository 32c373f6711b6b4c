// Tests that load BPF programs need root (CAP_BPF, CAP_NET_ADMIN) and a
// private network namespace. Where the kernel refuses, the test binary
// fails at once with the reason: a test that cannot run never passes.
#ifndef LOCKD_TESTS_DATAPATH_BPF_ALLOWED_H_
#define LOCKD_TESTS_DATAPATH_BPF_ALLOWED_H_

namespace lockd::testing {

// Moves the process into a private network namespace with lo up (when
// asked) and loads the datapath once; on refusal prints why and exits 1.
// Call from main() before any thread starts.
void RequireBpf(bool private_netns);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DATAPATH_BPF_ALLOWED_H_
