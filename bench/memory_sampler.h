// MemorySampler: what the servers under test hold, sampled while a run
// goes: the resident set (VmRSS, and VmHWM at the end) of server processes
// from /proc, and for BPF maps (by id) the kernel's own charge, `memlock`
// from the map's fdinfo, with the number of elements beside it. For
// NO_PREALLOC hashes memlock follows the elements in use, so the samples
// give a per-element cost; preallocated maps are charged in full at
// creation.
#ifndef LOCKD_BENCH_MEMORY_SAMPLER_H_
#define LOCKD_BENCH_MEMORY_SAMPLER_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lockd::bench {

// memlock of an open BPF map, from /proc/self/fdinfo.
absl::StatusOr<uint64_t> MapMemlock(int map_fd);

// Elements in the BPF map pinned at `path`, every one counted.
absl::StatusOr<int64_t> PinnedMapEntries(const std::string& path);

struct MapMemory {
  uint32_t id = 0;
  std::string name;
  uint32_t type = 0;  // enum bpf_map_type
  uint32_t max_entries = 0;
  uint32_t value_size = 0;
  uint64_t memlock_start = 0;
  int64_t entries_start = -1;  // -1: too many to count while sampling
  uint64_t memlock_peak = 0;
  int64_t entries_at_peak = -1;
  uint64_t memlock_end = 0;
  int64_t entries_end = -1;
};

struct ProcessMemory {
  pid_t pid = 0;
  std::string name;
  uint64_t rss_start_kib = 0;
  uint64_t rss_peak_kib = 0;  // largest VmRSS sampled
  uint64_t hwm_end_kib = 0;   // VmHWM at the end: the kernel's own peak
};

class MemorySampler {
 public:
  static absl::StatusOr<MemorySampler> Create(std::vector<pid_t> pids,
                                              std::vector<uint32_t> map_ids);
  MemorySampler(MemorySampler&&) = default;
  MemorySampler& operator=(MemorySampler&&) = default;
  ~MemorySampler();

  void SampleStart();
  void Sample();     // during the run: cheap, elements counted up to a cap
  void SampleEnd();  // after the run: every element counted

  const std::vector<MapMemory>& maps() const { return maps_; }
  const std::vector<ProcessMemory>& processes() const { return processes_; }

 private:
  MemorySampler() = default;

  std::vector<int> map_fds_;
  std::vector<MapMemory> maps_;
  std::vector<ProcessMemory> processes_;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_MEMORY_SAMPLER_H_
