#include "tests/datapath/bpf_allowed.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "lockd/datapath.h"
#include "tests/datapath/private_netns.h"

namespace lockd::testing {

void RequireBpf(bool private_netns) {
  if (private_netns) {
    absl::Status netns = EnterPrivateNetns();
    if (!netns.ok()) {
      fprintf(stderr,
              "FAILED: the kernel refused a network namespace (run as "
              "root): %s\n",
              std::string(netns.message()).c_str());
      exit(1);
    }
  }
  absl::StatusOr<std::unique_ptr<Datapath>> probe =
      Datapath::Load(DatapathOptions());
  if (!probe.ok()) {
    fprintf(stderr,
            "FAILED: the kernel refused to load the lockd BPF programs "
            "(run as root): %s\n",
            std::string(probe.status().message()).c_str());
    exit(1);
  }
}

}  // namespace lockd::testing
