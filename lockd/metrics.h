// lockd's counters and memory use in the Prometheus text exposition format
// (version 0.0.4), for scrapers and `lockctl metrics`. It works on the
// GetStats messages, so any client of the AdminService can render them.
#ifndef LOCKD_LOCKD_METRICS_H_
#define LOCKD_LOCKD_METRICS_H_

#include <cstdint>
#include <string>

#include "google/protobuf/map.h"
#include "proto/lockd.pb.h"

namespace lockd {

// Every counter as "lockd_<name>_total" (a Prometheus counter), sorted by
// name, then memory use as gauges. Each metric has its # HELP and # TYPE
// lines.
std::string RenderPrometheus(
    const google::protobuf::Map<std::string, uint64_t>& counters,
    const v1::MemoryUsage& memory);

}  // namespace lockd

#endif  // LOCKD_LOCKD_METRICS_H_
