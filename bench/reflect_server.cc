// reflect_server: the physical reference of the benchmarks. Attaches
// xdp_reflect (bpf/baseline.bpf.c: every lockd request bounced straight
// back as GRANTED, addresses swapped, checksums recomputed, XDP_TX) in native
// mode to --interface inside --netns, prints "ready", and detaches on
// SIGTERM or SIGINT. No lock is kept: it is what the wire and XDP cost.
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "bpf/baseline_bpf.skel.h"
#include "tests/netns/test_network.h"

ABSL_FLAG(std::string, netns, "", "Network namespace of the interface.");
ABSL_FLAG(std::string, interface, "", "Interface to attach xdp_reflect to.");

namespace {

int Fail(const std::string& what) {
  fprintf(stderr, "reflect_server: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("reflect_server --netns=NS --interface=IF");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_netns).empty()) {
    absl::Status joined = lockd::netns::JoinNetns(absl::GetFlag(FLAGS_netns));
    if (!joined.ok()) return Fail(joined.ToString());
  }
  const std::string interface = absl::GetFlag(FLAGS_interface);
  const int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex == 0) return Fail(absl::StrCat("no interface ", interface));

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  baseline_bpf* skel = baseline_bpf__open_and_load();
  if (skel == nullptr) return Fail("cannot load baseline_bpf");
  const int prog_fd = bpf_program__fd(skel->progs.xdp_reflect);
  if (bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr) != 0) {
    baseline_bpf__destroy(skel);
    return Fail(
        absl::StrCat("cannot attach xdp_reflect natively to ", interface));
  }
  printf("reflect_server: ready: xdp_reflect on %s (native)\n",
         interface.c_str());
  fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
  baseline_bpf__destroy(skel);
  return 0;
}
