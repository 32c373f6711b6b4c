#include "tests/datapath/bpf_allowed.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "lockd/datapath.h"
#include "tests/datapath/private_netns.h"

namespace lockd::testing {
namespace {

std::string& Refusal() {
  static std::string refusal;
  return refusal;
}

}  // namespace

void CheckBpfAllowed(bool private_netns) {
  if (private_netns) {
    absl::Status netns = EnterPrivateNetns();
    if (!netns.ok()) {
      Refusal() = absl::StrCat(
          "kernel refused a network namespace (run as "
          "root): ",
          netns.message());
      fprintf(stderr, "SKIPPING BPF tests: %s\n", Refusal().c_str());
      return;
    }
  }
  absl::StatusOr<std::unique_ptr<Datapath>> probe =
      Datapath::Load(DatapathOptions());
  if (!probe.ok() &&
      probe.status().code() == absl::StatusCode::kPermissionDenied) {
    Refusal() = absl::StrCat(
        "kernel refused to load BPF programs (run as "
        "root): ",
        probe.status().message());
    fprintf(stderr, "SKIPPING BPF tests: %s\n", Refusal().c_str());
  }
}

const std::string& BpfRefusal() { return Refusal(); }

}  // namespace lockd::testing
