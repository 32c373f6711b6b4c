// prealloc_memory: the memory a preallocated fixed-slot lock table costs,
// measured on real BPF maps rather than computed. Creates the ARRAY maps a
// worst-case-sized design needs and prints, as JSON, the kernel's memlock
// charge of each (from fdinfo), then frees them:
//   dint_slots     DINT-Lock's slot table, {busy, num_ex, num_sh} (16 B),
//                  one per lock
//   fixed_locks    one struct lockd_lock (120 B) per lock
//   fixed_waiters  --waiter_slots struct lockd_member (64 B) per lock: a
//                  queue of fixed slots, sized for the longest queue
// lockd's own per-element costs come from its maps in the runs
// (scripts/bench.sh); this is the other side of that comparison.
//
// It also measures the choice lockd made for its pool segments (HASH maps of
// struct lockd_block keyed by a u64 block index): preallocated against
// BPF_F_NO_PREALLOC, each empty and full, at the capacities of a first and
// a grown segment (the "pool_segments" entries).
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "abi/lockd_abi.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/json_writer.h"
#include "bench/memory_sampler.h"

ABSL_FLAG(uint32_t, locks, 1 << 20, "Locks the table is sized for.");
ABSL_FLAG(uint32_t, waiter_slots, 64, "Waiter slots per lock.");

namespace lockd::bench {
namespace {

constexpr uint32_t kDintSlotSize = 16;

struct Measured {
  std::string name;
  uint32_t value_size;
  uint64_t entries;
  uint64_t memlock;
};

absl::StatusOr<Measured> Measure(const std::string& name, uint32_t value_size,
                                 uint64_t entries) {
  if (entries > UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": too many entries"));
  }
  const int fd =
      bpf_map_create(BPF_MAP_TYPE_ARRAY, name.c_str(), sizeof(uint32_t),
                     value_size, static_cast<uint32_t>(entries), nullptr);
  if (fd < 0)
    return absl::ErrnoToStatus(errno, absl::StrCat("creating ", name));
  absl::StatusOr<uint64_t> memlock = MapMemlock(fd);
  close(fd);
  if (!memlock.ok()) return memlock.status();
  return Measured{name, value_size, entries, *memlock};
}

int Run() {
  const uint64_t locks = absl::GetFlag(FLAGS_locks);
  const uint64_t slots = absl::GetFlag(FLAGS_waiter_slots);
  std::vector<Measured> maps;
  for (const auto& [name, value_size, entries] :
       std::vector<std::tuple<std::string, uint32_t, uint64_t>>{
           {"dint_slots", kDintSlotSize, locks},
           {"fixed_locks", sizeof(struct lockd_lock), locks},
           {"fixed_waiters", sizeof(struct lockd_member), locks * slots}}) {
    absl::StatusOr<Measured> measured = Measure(name, value_size, entries);
    if (!measured.ok()) {
      fprintf(stderr, "prealloc_memory: %s\n",
              std::string(measured.status().message()).c_str());
      return 1;
    }
    maps.push_back(*measured);
  }
  struct PoolSegment {
    bool prealloc;
    uint32_t capacity;
    uint32_t filled;
    uint64_t memlock;
  };
  std::vector<PoolSegment> pool;
  for (bool prealloc : {true, false}) {
    for (uint32_t capacity : {1024u, 16384u}) {
      for (uint32_t filled : {0u, capacity}) {
        LIBBPF_OPTS(bpf_map_create_opts, opts,
                    .map_flags = prealloc ? 0u : uint32_t{BPF_F_NO_PREALLOC});
        const int fd =
            bpf_map_create(BPF_MAP_TYPE_HASH, "pool_probe", sizeof(uint64_t),
                           sizeof(struct lockd_block), capacity, &opts);
        if (fd < 0) {
          perror("prealloc_memory: creating a pool segment");
          return 1;
        }
        struct lockd_block block = {};
        for (uint64_t key = 0; key < filled; ++key)
          bpf_map_update_elem(fd, &key, &block, BPF_NOEXIST);
        absl::StatusOr<uint64_t> memlock = MapMemlock(fd);
        close(fd);
        if (!memlock.ok()) return 1;
        pool.push_back({prealloc, capacity, filled, *memlock});
      }
    }
  }
  JsonWriter json;
  json.BeginObject();
  json.Field("locks", locks);
  json.Field("waiter_slots_per_lock", slots);
  json.Key("maps").BeginArray();
  for (const Measured& map : maps) {
    json.BeginObject();
    json.Field("name", map.name);
    json.Field("type", std::string("array"));
    json.Field("value_size", map.value_size);
    json.Field("max_entries", map.entries);
    json.Field("memlock", map.memlock);
    json.EndObject();
  }
  json.EndArray();
  json.Key("pool_segments").BeginArray();
  for (const PoolSegment& p : pool) {
    json.BeginObject();
    json.Field("prealloc", p.prealloc);
    json.Field("capacity", static_cast<uint64_t>(p.capacity));
    json.Field("filled", static_cast<uint64_t>(p.filled));
    json.Field("memlock", p.memlock);
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  printf("%s\n", json.str().c_str());
  return 0;
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "prealloc_memory [--locks=N] [--waiter_slots=N]");
  absl::ParseCommandLine(argc, argv);
  return lockd::bench::Run();
}
