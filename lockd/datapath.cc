#include "lockd/datapath.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <sched.h>
#include <sys/mman.h>
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

// The maps that carry lock state across a daemon restart. Scratch and
// .rodata maps are per program instance.
std::vector<bpf_map*> PinnedMaps(lockd_bpf* skel) {
  return {skel->maps.config,         skel->maps.table_segments,
          skel->maps.table_seg_live, skel->maps.table_seg_state,
          skel->maps.pool_segments,  skel->maps.pool_info,
          skel->maps.ended,          skel->maps.events,
          skel->maps.stats,          skel->maps.clients};
}

void* MapShared(int fd, size_t bytes) {
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return mem == MAP_FAILED ? nullptr : mem;
}

size_t PageRound(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// The inner map of an outer one, as the object describes it. Read before
// loading: libbpf drops the inner map once the outer map exists.
SegmentTemplate TemplateOf(bpf_map* outer) {
  const bpf_map* inner = bpf_map__inner_map(outer);
  SegmentTemplate t;
  t.map_type = bpf_map__type(inner);
  t.key_size = bpf_map__key_size(inner);
  t.value_size = bpf_map__value_size(inner);
  t.key_type_id = bpf_map__btf_key_type_id(inner);
  t.value_type_id = bpf_map__btf_value_type_id(inner);
  t.map_flags = bpf_map__map_flags(inner);
  return t;
}

}  // namespace

absl::StatusOr<int> CreateSegmentMap(const SegmentTemplate& t, const char* name,
                                     uint32_t entries, absl::string_view what) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .btf_fd = static_cast<__u32>(t.btf_fd),
              .btf_key_type_id = t.key_type_id,
              .btf_value_type_id = t.value_type_id, .map_flags = t.map_flags);
  int fd = bpf_map_create(static_cast<bpf_map_type>(t.map_type), name,
                          t.key_size, t.value_size, entries, &opts);
  if (fd < 0) return ErrnoStatus(errno, what);
  return fd;
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  return absl::Status(err == EPERM ? absl::StatusCode::kPermissionDenied
                                   : absl::StatusCode::kInternal,
                      absl::StrCat(what, ": ", strerror(err)));
}

uint64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::Load(
    const DatapathOptions& options) {
  lockd_bpf* skel = lockd_bpf__open();
  if (skel == nullptr) return ErrnoStatus(errno, "opening the lockd skeleton");
  auto fail = [&](absl::Status status) {
    lockd_bpf__destroy(skel);
    return status;
  };
  skel->rodata->cfg_port = options.port;
  skel->rodata->cfg_default_lease_ms = options.default_lease_ms;
  skel->rodata->cfg_max_lease_ms = options.max_lease_ms;
  skel->rodata->cfg_split_at = options.split_at;
  skel->rodata->cfg_merge_at = options.merge_at;
  skel->rodata->cfg_pool_low_water_pct = options.pool_low_water_pct;
  skel->rodata->cfg_client_quota = static_cast<int32_t>(options.client_quota);
  if (int err =
          bpf_map__set_max_entries(skel->maps.clients, options.max_clients))
    return fail(ErrnoStatus(err, "sizing the clients map"));
  if (int err =
          bpf_map__set_max_entries(skel->maps.ended, options.ended_capacity))
    return fail(ErrnoStatus(err, "sizing the ended map"));
  if (int err =
          bpf_map__set_max_entries(skel->maps.events, options.events_bytes))
    return fail(ErrnoStatus(err, "sizing the events ring"));

  bool reused = false;
  if (!options.pin_dir.empty()) {
    if (absl::Status made = MakeDirs(options.pin_dir); !made.ok())
      return fail(made);
    for (bpf_map* map : PinnedMaps(skel)) {
      std::string path = absl::StrCat(options.pin_dir, "/", bpf_map__name(map));
      reused = reused || access(path.c_str(), F_OK) == 0;
      if (int err = bpf_map__set_pin_path(map, path.c_str()))
        return fail(ErrnoStatus(err, absl::StrCat("pinning ", path)));
    }
  }
  // The pool segments' flags: a pinned table keeps the choice it was made
  // with (its config says which); a fresh one takes the option.
  // So do its fence base and epoch: a fresh table's base is the time, so
  // that its fences start above those of any table before it on this
  // machine or (clocks in sync) the one it replaces.
  uint32_t pool_flags = options.pool_prealloc ? 0 : BPF_F_NO_PREALLOC;
  uint64_t fence_base = options.fence_base.value_or(ClockNs(CLOCK_TAI));
  if (reused) {
    std::string path = absl::StrCat(options.pin_dir, "/config");
    int fd = bpf_obj_get(path.c_str());
    lockd_config pinned{};
    uint32_t zero = 0;
    if (fd >= 0 && bpf_map_lookup_elem(fd, &zero, &pinned) == 0) {
      pool_flags = pinned.pool_map_flags;
      fence_base = pinned.fence_base;
    }
    if (fd >= 0) close(fd);
  }
  skel->rodata->cfg_epoch = lockd_epoch_of(fence_base);
  bpf_map__set_map_flags(bpf_map__inner_map(skel->maps.pool_segments),
                         pool_flags);
  SegmentTemplate table_template = TemplateOf(skel->maps.table_segments);
  SegmentTemplate pool_template = TemplateOf(skel->maps.pool_segments);

  if (int err = lockd_bpf__load(skel)) {
    return fail(absl::Status(
        reused ? absl::StatusCode::kFailedPrecondition
               : absl::StatusCode::kInternal,
        reused ? absl::StrCat("loading the lockd BPF programs with the maps "
                              "pinned in ",
                              options.pin_dir, " failed (", strerror(-err),
                              "): were they made by another lockd version? "
                              "remove them to start empty")
               : absl::StrCat("loading the lockd BPF programs: ",
                              strerror(-err))));
  }
  auto datapath = std::unique_ptr<Datapath>(new Datapath(skel, options));
  datapath->reused_pins_ = reused;
  datapath->fence_base_ = fence_base;
  table_template.btf_fd = pool_template.btf_fd = bpf_object__btf_fd(skel->obj);
  datapath->table_template_ = table_template;
  datapath->pool_template_ = pool_template;
  if (absl::Status s = datapath->MapShared(); !s.ok()) return s;
  return datapath;
}

Datapath::Datapath(lockd_bpf* skel, const DatapathOptions& options)
    : skel_(skel), options_(options) {
  maps_.config = bpf_map__fd(skel->maps.config);
  maps_.table_segments = bpf_map__fd(skel->maps.table_segments);
  maps_.table_seg_live = bpf_map__fd(skel->maps.table_seg_live);
  maps_.table_seg_state = bpf_map__fd(skel->maps.table_seg_state);
  maps_.pool_segments = bpf_map__fd(skel->maps.pool_segments);
  maps_.pool_info = bpf_map__fd(skel->maps.pool_info);
  maps_.ended = bpf_map__fd(skel->maps.ended);
  maps_.events = bpf_map__fd(skel->maps.events);
  maps_.stats = bpf_map__fd(skel->maps.stats);
  maps_.clients = bpf_map__fd(skel->maps.clients);
  maps_.open_subnets = bpf_map__fd(skel->maps.open_subnets);
}

absl::Status Datapath::MapShared() {
  config_ = static_cast<lockd_config*>(
      lockd::MapShared(maps_.config, PageRound(sizeof(lockd_config))));
  pool_info_ = static_cast<lockd_pool_seg*>(lockd::MapShared(
      maps_.pool_info, PageRound(sizeof(lockd_pool_seg) * LOCKD_POOL_SLOTS)));
  seg_live_ = static_cast<int64_t*>(
      lockd::MapShared(maps_.table_seg_live,
                       PageRound(sizeof(int64_t) * LOCKD_TABLE_MAX_SEGMENTS)));
  seg_state_ = static_cast<uint32_t*>(
      lockd::MapShared(maps_.table_seg_state,
                       PageRound(sizeof(uint32_t) * LOCKD_TABLE_MAX_SEGMENTS)));
  if (!config_ || !pool_info_ || !seg_live_ || !seg_state_)
    return ErrnoStatus(errno, "mapping the datapath's shared maps");
  return absl::OkStatus();
}

Datapath::~Datapath() {
  Detach();
  if (config_) munmap(config_, PageRound(sizeof(lockd_config)));
  if (pool_info_)
    munmap(pool_info_, PageRound(sizeof(lockd_pool_seg) * LOCKD_POOL_SLOTS));
  if (seg_live_)
    munmap(seg_live_, PageRound(sizeof(int64_t) * LOCKD_TABLE_MAX_SEGMENTS));
  if (seg_state_)
    munmap(seg_state_, PageRound(sizeof(uint32_t) * LOCKD_TABLE_MAX_SEGMENTS));
  lockd_bpf__destroy(skel_);
}

void Datapath::Unpin() {
  if (options_.pin_dir.empty()) return;
  for (bpf_map* map : PinnedMaps(skel_)) bpf_map__unpin(map, nullptr);
  rmdir(options_.pin_dir.c_str());
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
int Datapath::ctl_prog_fd() const {
  return bpf_program__fd(skel_->progs.lockd_ctl);
}

namespace {

// Entries [first, first + n) of the per-CPU "stats" map, summed over CPUs.
absl::Status SumStats(int fd, uint32_t first, uint32_t n, uint64_t* out) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return ErrnoStatus(cpus, "counting possible CPUs");
  std::vector<uint64_t> per_cpu(cpus);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t key = first + i;
    if (bpf_map_lookup_elem(fd, &key, per_cpu.data()))
      return ErrnoStatus(errno, "reading stats");
    out[i] = 0;
    for (uint64_t v : per_cpu) out[i] += v;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StatCounters> Datapath::ReadStats() const {
  StatCounters totals{};
  if (absl::Status s =
          SumStats(maps_.stats, 0, LOCKD_STAT_COUNT, totals.data());
      !s.ok())
    return s;
  return totals;
}

absl::StatusOr<WaitHistogram> Datapath::ReadWaits() const {
  WaitHistogram waits;
  if (absl::Status s = SumStats(maps_.stats, LOCKD_STAT_WAIT_FIRST,
                                LOCKD_WAIT_BUCKETS, waits.counts.data());
      !s.ok())
    return s;
  if (absl::Status s =
          SumStats(maps_.stats, LOCKD_STAT_WAIT_SUM_NS, 1, &waits.sum_ns);
      !s.ok())
    return s;
  return waits;
}

}  // namespace lockd
