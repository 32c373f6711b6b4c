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
