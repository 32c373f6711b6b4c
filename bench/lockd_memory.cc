#include "bench/lockd_memory.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

namespace lockd::bench {
namespace {

constexpr absl::Duration kFirstAnswerDeadline = absl::Seconds(15);

// A call that ends by `deadline`, and waits for a channel still connecting
// (or backing off) rather than failing at once.
void SetDeadline(grpc::ClientContext& context, absl::Duration deadline) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  context.set_wait_for_ready(true);
}

}  // namespace

std::unique_ptr<v1::AdminService::Stub> NewAdminStub(
    const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  return v1::AdminService::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), arguments));
}

absl::StatusOr<v1::MemoryUsage> QueryMemory(v1::AdminService::Stub& admin,
                                            absl::Duration deadline) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  v1::GetMemoryResponse response;
  grpc::Status status =
      admin.GetMemory(&context, v1::GetMemoryRequest(), &response);
  if (!status.ok())
    return absl::UnavailableError("GetMemory: " + status.error_message());
  return response.memory();
}

absl::StatusOr<std::map<std::string, uint64_t>> QueryCounters(
    v1::AdminService::Stub& admin, absl::Duration deadline) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  v1::GetStatsResponse response;
  grpc::Status status =
      admin.GetStats(&context, v1::GetStatsRequest(), &response);
  if (!status.ok())
    return absl::UnavailableError("GetStats: " + status.error_message());
  return std::map<std::string, uint64_t>(response.counters().begin(),
                                         response.counters().end());
}

absl::StatusOr<std::unique_ptr<LockdMemory>> LockdMemory::Create(
    const std::string& address) {
  std::unique_ptr<LockdMemory> memory(new LockdMemory(NewAdminStub(address)));
  // A daemon just started on a busy machine may take a moment to answer
  // its first call.
  absl::StatusOr<v1::MemoryUsage> first =
      QueryMemory(*memory->admin_, kFirstAnswerDeadline);
  if (!first.ok())
    return absl::UnavailableError(absl::StrCat(
        "no GetMemory answer from ", address, ": ", first.status().message()));
  memory->Record(*first);
  return memory;
}

void LockdMemory::Sample() {
  absl::StatusOr<v1::MemoryUsage> usage =
      QueryMemory(*admin_, absl::Seconds(2));
  if (usage.ok()) Record(*usage);
}

void LockdMemory::Record(const v1::MemoryUsage& now) {
  if (samples_++ == 0) start_ = now;
  if (now.total_bytes() >= peak_.total_bytes()) peak_ = now;
  end_ = now;
}

void LockdMemory::Write(JsonWriter& json, absl::string_view key) const {
  json.Key(key).BeginObject();
  for (const auto& [name, usage] :
       {std::pair{"start", &start_}, std::pair{"peak", &peak_},
        std::pair{"end", &end_}}) {
    json.Key(name).BeginObject();
    json.Field("total_bytes", usage->total_bytes());
    json.Field("table_bytes", usage->table_bytes());
    json.Field("pool_bytes", usage->pool_bytes());
    json.Field("table_segments",
               static_cast<uint64_t>(usage->table_segments()));
    json.Field("pool_segments", static_cast<uint64_t>(usage->pool_segments()));
    json.Field("locks", usage->locks());
    json.Field("pool_live_blocks", usage->pool_live_blocks());
    json.EndObject();
  }
  json.EndObject();
}

}  // namespace lockd::bench
