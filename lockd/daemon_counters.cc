#include "lockd/daemon_counters.h"

namespace lockd {
namespace {

struct Entry {
  const char* name;
  const char* help;
};

#define LOCKD_DAEMON_COUNTER_ENTRY(e, name, help) {name, help},
constexpr Entry kEntries[] = {
    LOCKD_DAEMON_COUNTERS(LOCKD_DAEMON_COUNTER_ENTRY)};
#undef LOCKD_DAEMON_COUNTER_ENTRY

static_assert(sizeof(kEntries) / sizeof(kEntries[0]) == DaemonCounters::kCount);

}  // namespace

std::vector<std::pair<std::string, uint64_t>> DaemonCounters::Snapshot() const {
  std::vector<std::pair<std::string, uint64_t>> out;
  out.reserve(kCount);
  for (int i = 0; i < kCount; ++i)
    out.emplace_back(kEntries[i].name, Get(static_cast<Counter>(i)));
  return out;
}

std::string DaemonCounters::Help(const std::string& name) {
  for (const Entry& e : kEntries)
    if (name == e.name) return e.help;
  return "";
}

}  // namespace lockd
