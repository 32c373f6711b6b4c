#include "lockd/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bpf/lockd_bpf.skel.h"
#include "lockd/files.h"

namespace lockd {
namespace {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  return absl::Status(err == EPERM ? absl::StatusCode::kPermissionDenied
                                   : absl::StatusCode::kInternal,
                      absl::StrCat(what, ": ", strerror(err)));
}

// The maps that carry lock state across a daemon restart. Scratch and
// .rodata maps are per program instance.
std::vector<bpf_map*> PinnedMaps(lockd_bpf* skel) {
  return {skel->maps.locks, skel->maps.owners,    skel->maps.released,
          skel->maps.pool,  skel->maps.pool_next, skel->maps.stats};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::Load(
    const DatapathOptions& options) {
  lockd_bpf* skel = lockd_bpf__open();
  if (skel == nullptr) return ErrnoStatus(errno, "opening the lockd skeleton");
  skel->rodata->cfg_port = options.port;
  skel->rodata->cfg_default_lease_ms = options.default_lease_ms;
  skel->rodata->cfg_max_lease_ms = options.max_lease_ms;
  struct {
    bpf_map* map;
    uint32_t entries;
  } const sizes[] = {
      {skel->maps.locks, options.lock_capacity},
      {skel->maps.owners, options.owner_capacity},
      {skel->maps.released, options.released_capacity},
      {skel->maps.pool, options.pool_capacity},
  };
  for (const auto& size : sizes) {
    if (int err = bpf_map__set_max_entries(size.map, size.entries)) {
      lockd_bpf__destroy(skel);
      return ErrnoStatus(err,
                         absl::StrCat("sizing map ", bpf_map__name(size.map)));
    }
  }
  bool reused = false;
  if (!options.pin_dir.empty()) {
    if (absl::Status made = MakeDirs(options.pin_dir); !made.ok()) {
      lockd_bpf__destroy(skel);
      return made;
    }
    for (bpf_map* map : PinnedMaps(skel)) {
      std::string path = absl::StrCat(options.pin_dir, "/", bpf_map__name(map));
      reused = reused || access(path.c_str(), F_OK) == 0;
      if (int err = bpf_map__set_pin_path(map, path.c_str())) {
        lockd_bpf__destroy(skel);
        return ErrnoStatus(err, absl::StrCat("pinning ", path));
      }
    }
  }
  if (int err = lockd_bpf__load(skel)) {
    lockd_bpf__destroy(skel);
    return ErrnoStatus(
        err, reused ? absl::StrCat("loading the lockd BPF programs with the "
                                   "maps pinned in ",
                                   options.pin_dir,
                                   " (were they made with other capacities? "
                                   "remove them to start empty)")
                    : "loading the lockd BPF programs");
  }
  auto datapath = std::unique_ptr<Datapath>(new Datapath(skel, options));
  datapath->reused_pins_ = reused;
  return datapath;
}

void Datapath::Unpin() {
  if (options_.pin_dir.empty()) return;
  for (bpf_map* map : PinnedMaps(skel_)) bpf_map__unpin(map, nullptr);
  rmdir(options_.pin_dir.c_str());
}

absl::StatusOr<lockd_ctl> Datapath::Control(const lockd_ctl& command) {
  absl::MutexLock hold(&control_mu_);
  lockd_ctl result = command;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = &command, .data_out = &result,
              .data_size_in = sizeof(command), .data_size_out = sizeof(result),
              .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.lockd_ctl), &opts) !=
      0)
    return ErrnoStatus(errno, "running a control operation");
  if (opts.data_size_out != sizeof(result))
    return absl::InternalError("control operation returned a short result");
  return result;
}

Datapath::Datapath(lockd_bpf* skel, const DatapathOptions& options)
    : skel_(skel), options_(options) {}

Datapath::~Datapath() {
  Detach();
  lockd_bpf__destroy(skel_);
}

absl::Status Datapath::RememberNetns() {
  if (attach_netns_fd_ >= 0) return absl::OkStatus();
  attach_netns_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (attach_netns_fd_ < 0)
    return ErrnoStatus(errno, "opening the network namespace");
  return absl::OkStatus();
}

absl::StatusOr<XdpMode> Datapath::AttachXdp(int ifindex) {
  if (absl::Status s = RememberNetns(); !s.ok()) return s;
  for (XdpMode mode : {XdpMode::kNative, XdpMode::kGeneric}) {
    // No UPDATE_IF_NOEXIST: a restarted daemon replaces the programs its
    // crashed predecessor left attached (they kept serving meanwhile).
    uint32_t flags =
        mode == XdpMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    int err = bpf_xdp_attach(ifindex, xdp_prog_fd(), flags, nullptr);
    if (err == 0) {
      xdp_ifindex_ = ifindex;
      xdp_flags_ = flags;
      return mode;
    }
    if (mode == XdpMode::kGeneric || err == -EBUSY)
      return ErrnoStatus(err,
                         absl::StrCat("attaching XDP to ifindex ", ifindex));
  }
  return absl::InternalError("unreachable");
}

absl::Status Datapath::AttachTc(int ifindex) {
  if (absl::Status s = RememberNetns(); !s.ok()) return s;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST)
    return ErrnoStatus(err,
                       absl::StrCat("creating clsact on ifindex ", ifindex));
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = tc_prog_fd(),
              .flags = BPF_TC_F_REPLACE, .handle = 1, .priority = 1);
  err = bpf_tc_attach(&hook, &opts);
  if (err)
    return ErrnoStatus(err, absl::StrCat("attaching TC to ifindex ", ifindex));
  tc_ifindex_ = ifindex;
  return absl::OkStatus();
}

void Datapath::Detach() {
  if (attach_netns_fd_ < 0) return;
  // setns() changes only the calling thread: do it in a thread of its own.
  std::thread([this] {
    if (setns(attach_netns_fd_, CLONE_NEWNET) == 0) DetachHere();
  }).join();
  close(attach_netns_fd_);
  attach_netns_fd_ = -1;
}

void Datapath::DetachHere() {
  if (xdp_ifindex_ != 0) {
    bpf_xdp_detach(xdp_ifindex_, xdp_flags_, nullptr);
    xdp_ifindex_ = 0;
  }
  if (tc_ifindex_ != 0) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = tc_ifindex_,
                .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
    bpf_tc_detach(&hook, &opts);
    bpf_tc_hook_destroy(&hook);
    tc_ifindex_ = 0;
  }
}

int Datapath::xdp_prog_fd() const {
  return bpf_program__fd(skel_->progs.lockd_xdp);
}
int Datapath::tc_prog_fd() const {
  return bpf_program__fd(skel_->progs.lockd_tc);
}
int Datapath::locks_fd() const { return bpf_map__fd(skel_->maps.locks); }
int Datapath::owners_fd() const { return bpf_map__fd(skel_->maps.owners); }
int Datapath::released_fd() const { return bpf_map__fd(skel_->maps.released); }
int Datapath::pool_fd() const { return bpf_map__fd(skel_->maps.pool); }
int Datapath::pool_next_fd() const {
  return bpf_map__fd(skel_->maps.pool_next);
}
int Datapath::stats_fd() const { return bpf_map__fd(skel_->maps.stats); }

absl::StatusOr<StatCounters> Datapath::ReadStats() const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return ErrnoStatus(cpus, "counting possible CPUs");
  std::vector<uint64_t> per_cpu(cpus);
  StatCounters totals{};
  for (uint32_t stat = 0; stat < LOCKD_STAT_COUNT; ++stat) {
    if (bpf_map_lookup_elem(stats_fd(), &stat, per_cpu.data()))
      return ErrnoStatus(errno, "reading stats");
    for (uint64_t v : per_cpu) totals[stat] += v;
  }
  return totals;
}

}  // namespace lockd
