// Tests that load BPF programs need root (CAP_BPF, CAP_NET_ADMIN). Where the
// kernel refuses, they are skipped with the reason, never passed silently.
#ifndef LOCKD_TESTS_DATAPATH_BPF_ALLOWED_H_
#define LOCKD_TESTS_DATAPATH_BPF_ALLOWED_H_

#include <string>

#include "gtest/gtest.h"

namespace lockd::testing {

// Probes once (loading the lockd datapath) and, when asked, moves the
// process into a private network namespace with lo up. Call from main()
// before any thread starts.
void CheckBpfAllowed(bool private_netns);
// Empty when BPF tests can run; otherwise why not.
const std::string& BpfRefusal();

}  // namespace lockd::testing

#define SKIP_UNLESS_BPF_ALLOWED()                     \
  do {                                                \
    if (!::lockd::testing::BpfRefusal().empty())      \
      GTEST_SKIP() << ::lockd::testing::BpfRefusal(); \
  } while (0)

#endif  // LOCKD_TESTS_DATAPATH_BPF_ALLOWED_H_
