// main() of the daemon end-to-end tests: fails at once, with the reason,
// when the kernel does not let this process load BPF; then runs the tests.
#include "gtest/gtest.h"
#include "tests/datapath/bpf_allowed.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/false);
  return RUN_ALL_TESTS();
}
