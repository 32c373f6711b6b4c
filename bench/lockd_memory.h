// LockdMemory: lockd's own account of its kernel memory (the datapath's
// maps, segments included, against the budget), sampled through the
// AdminService while a run goes: at the start, at the peak and at the end.
// Also the AdminService queries the tools share.
#ifndef LOCKD_BENCH_LOCKD_MEMORY_H_
#define LOCKD_BENCH_LOCKD_MEMORY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/json_writer.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd::bench {

// An AdminService stub for lockd's gRPC address (no HTTP proxy).
std::unique_ptr<v1::AdminService::Stub> NewAdminStub(
    const std::string& address);

// lockd's memory now (GetMemory), waiting at most `deadline`.
absl::StatusOr<v1::MemoryUsage> QueryMemory(v1::AdminService::Stub& admin,
                                            absl::Duration deadline);

// lockd's counters now (GetStats), by name, waiting at most `deadline`.
absl::StatusOr<std::map<std::string, uint64_t>> QueryCounters(
    v1::AdminService::Stub& admin, absl::Duration deadline);

class LockdMemory {
 public:
  // lockd's gRPC address.
  static absl::StatusOr<std::unique_ptr<LockdMemory>> Create(
      const std::string& address);

  void Sample();  // also the first and the last sample
  // {"start": {...}, "peak": {...}, "end": {...}} under `key`.
  void Write(JsonWriter& json, absl::string_view key) const;

 private:
  explicit LockdMemory(std::unique_ptr<v1::AdminService::Stub> admin)
      : admin_(std::move(admin)) {}
  void Record(const v1::MemoryUsage& now);

  std::unique_ptr<v1::AdminService::Stub> admin_;
  int samples_ = 0;
  v1::MemoryUsage start_, peak_, end_;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_LOCKD_MEMORY_H_
