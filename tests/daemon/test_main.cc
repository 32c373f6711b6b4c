// main() of the daemon end-to-end tests: probes whether the kernel lets this
// process load BPF (DaemonTest skips with the reason when not), then runs
// the tests.
#include "gtest/gtest.h"
#include "tests/datapath/bpf_allowed.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::CheckBpfAllowed(/*private_netns=*/false);
  return RUN_ALL_TESTS();
}
