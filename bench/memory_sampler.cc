#include "bench/memory_sampler.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace lockd::bench {
namespace {

// Elements counted per map while a run goes: a key walk costs a syscall per
// element and would take CPU from the run measured. Past the cap the count
// is unknown (-1) and the map is not walked again until the final count,
// which has no cap.
constexpr int64_t kSampleCountCap = 4096;

// "Name:\t<value> kB"-style field of a /proc text file, as a number.
absl::StatusOr<uint64_t> ProcField(const std::string& path,
                                   absl::string_view field) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, field) ||
        !absl::ConsumePrefix(&rest, ":")) {
      continue;
    }
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, " kB");
    uint64_t value = 0;
    if (absl::SimpleAtoi(rest, &value)) return value;
  }
  return absl::NotFoundError(absl::StrCat(field, " not in ", path));
}

uint64_t ProcessKib(pid_t pid, absl::string_view field) {
  absl::StatusOr<uint64_t> kib =
      ProcField(absl::StrCat("/proc/", pid, "/status"), field);
  return kib.ok() ? *kib : 0;
}

bool IsArray(uint32_t type) {
  return type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

int64_t CountEntries(int fd, const MapMemory& map, int64_t cap) {
  if (IsArray(map.type)) return map.max_entries;
  std::vector<uint8_t> key(256), next(256);
  int64_t count = 0;
  void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, next.data()) == 0) {
    if (++count >= cap) return -1;
    key.swap(next);
    previous = key.data();
  }
  return count;
}

}  // namespace

absl::StatusOr<uint64_t> MapMemlock(int map_fd) {
  return ProcField(absl::StrCat("/proc/self/fdinfo/", map_fd), "memlock");
}

absl::StatusOr<int64_t> PinnedMapEntries(const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("map ", path));
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) {
    const int error = errno;
    close(fd);
    return absl::ErrnoToStatus(error, absl::StrCat("info of map ", path));
  }
  MapMemory map;
  map.type = info.type;
  map.max_entries = info.max_entries;
  const int64_t entries = CountEntries(fd, map, INT64_MAX);
  close(fd);
  return entries;
}

absl::StatusOr<MemorySampler> MemorySampler::Create(
    std::vector<pid_t> pids, std::vector<uint32_t> map_ids) {
  MemorySampler sampler;
  for (pid_t pid : pids) {
    ProcessMemory process;
    process.pid = pid;
    std::ifstream comm(absl::StrCat("/proc/", pid, "/comm"));
    if (!std::getline(comm, process.name)) {
      return absl::NotFoundError(absl::StrCat("no process ", pid));
    }
    sampler.processes_.push_back(process);
  }
  for (uint32_t id : map_ids) {
    const int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("map id ", id));
    sampler.map_fds_.push_back(fd);
    bpf_map_info info{};
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("info of map ", id));
    }
    MapMemory map;
    map.id = id;
    map.name = info.name;
    map.type = info.type;
    map.max_entries = info.max_entries;
    map.value_size = info.value_size;
    sampler.maps_.push_back(map);
  }
  return sampler;
}

MemorySampler::~MemorySampler() {
  for (int fd : map_fds_) close(fd);
}

void MemorySampler::SampleStart() {
  for (ProcessMemory& process : processes_) {
    process.rss_start_kib = ProcessKib(process.pid, "VmRSS");
    process.rss_peak_kib = process.rss_start_kib;
  }
  for (size_t i = 0; i < maps_.size(); ++i) {
    MapMemory& map = maps_[i];
    map.memlock_start = MapMemlock(map_fds_[i]).value_or(0);
    map.entries_start = CountEntries(map_fds_[i], map, kSampleCountCap);
    map.memlock_peak = map.memlock_start;
    map.entries_at_peak = map.entries_start;
  }
}

void MemorySampler::Sample() {
  for (ProcessMemory& process : processes_) {
    process.rss_peak_kib =
        std::max(process.rss_peak_kib, ProcessKib(process.pid, "VmRSS"));
  }
  for (size_t i = 0; i < maps_.size(); ++i) {
    MapMemory& map = maps_[i];
    const uint64_t memlock = MapMemlock(map_fds_[i]).value_or(0);
    if (memlock <= map.memlock_peak) continue;
    map.memlock_peak = memlock;
    if (map.entries_at_peak >= 0) {
      map.entries_at_peak = CountEntries(map_fds_[i], map, kSampleCountCap);
    }
  }
}

void MemorySampler::SampleEnd() {
  Sample();
  for (ProcessMemory& process : processes_) {
    process.hwm_end_kib = ProcessKib(process.pid, "VmHWM");
  }
  for (size_t i = 0; i < maps_.size(); ++i) {
    MapMemory& map = maps_[i];
    map.memlock_end = MapMemlock(map_fds_[i]).value_or(0);
    map.entries_end = CountEntries(map_fds_[i], map, INT64_MAX);
  }
}

}  // namespace lockd::bench
