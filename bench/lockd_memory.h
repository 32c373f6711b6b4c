// LockdMemory: lockd's own account of its kernel memory (the datapath's
// maps, segments included, against the budget), sampled through the
// AdminService while a run goes: at the start, at the peak and at the end.
#ifndef LOCKD_BENCH_LOCKD_MEMORY_H_
#define LOCKD_BENCH_LOCKD_MEMORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/json_writer.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd::bench {

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

  std::unique_ptr<v1::AdminService::Stub> admin_;
  int samples_ = 0;
  v1::MemoryUsage start_, peak_, end_;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_LOCKD_MEMORY_H_
