#include "bench/lockd_memory.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

namespace lockd::bench {

absl::StatusOr<std::unique_ptr<LockdMemory>> LockdMemory::Create(
    const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  auto admin = v1::AdminService::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), arguments));
  std::unique_ptr<LockdMemory> memory(new LockdMemory(std::move(admin)));
  memory->Sample();
  if (memory->samples_ == 0)
    return absl::UnavailableError("no GetMemory answer from " + address);
  return memory;
}

void LockdMemory::Sample() {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
  v1::GetMemoryResponse response;
  if (!admin_->GetMemory(&context, v1::GetMemoryRequest(), &response).ok())
    return;
  const v1::MemoryUsage& now = response.memory();
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
