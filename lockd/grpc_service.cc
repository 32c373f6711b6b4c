#include "lockd/grpc_service.h"

#include <grpcpp/impl/server_initializer.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace lockd {
namespace {

// The proto enums mirror the ABI's value for value (proto/lockd.proto), which
// is what makes the casts below conversions.
static_assert(int{v1::MODE_SHARED} == LOCKD_MODE_SHARED &&
              int{v1::MODE_EXCLUSIVE} == LOCKD_MODE_EXCLUSIVE);
static_assert(int{v1::POLICY_NO_WAIT} == LOCKD_POLICY_NO_WAIT &&
              int{v1::POLICY_WAIT_DIE} == LOCKD_POLICY_WAIT_DIE &&
              int{v1::Policy_ARRAYSIZE} == LOCKD_POLICY_COUNT);
static_assert(int{v1::REPLY_STATUS_WAIT_EXPIRED} == LOCKD_STATUS_WAIT_EXPIRED &&
              int{v1::REPLY_STATUS_BAD_REQUEST} == LOCKD_STATUS_BAD_REQUEST &&
              int{v1::ReplyStatus_ARRAYSIZE} == LOCKD_STATUS_COUNT);

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

// Type URL of the absl::Status payload that carries a rejection's
// lockd_status to the gRPC boundary, where it becomes trailing metadata.
constexpr char kReplyStatusPayloadUrl[] = "type.lockd/lockd.v1.ReplyStatus";

// A lock as a request named it: the name is kept for error messages.
struct LockRef {
  uint64_t id = 0;
  std::string name;  // empty when the request gave an id
};

std::string Describe(const LockRef& lock) {
  std::string description = absl::StrFormat("lock 0x%016x", lock.id);
  if (!lock.name.empty()) {
    absl::StrAppendFormat(&description, " (\"%s\")", lock.name);
  }
  return description;
}

// The three lock requests share the `lock` oneof, hence one template.
template <typename Request>
absl::StatusOr<LockRef> ResolveLock(const Request& request) {
  switch (request.lock_case()) {
    case Request::kLockId:
      return LockRef{request.lock_id(), ""};
    case Request::kLockName:
      if (request.lock_name().empty()) break;
      return LockRef{LockIdForName(request.lock_name()), request.lock_name()};
    case Request::LOCK_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "txn ", request.txn_id(),
      ": the request names no lock: set lock_id or a non-empty lock_name"));
}

absl::StatusOr<lockd_mode> ModeToAcquire(v1::Mode mode) {
  if (mode != v1::MODE_SHARED && mode != v1::MODE_EXCLUSIVE) {
    return absl::InvalidArgumentError(
        absl::StrCat("mode ", mode,
                     " is not a mode to acquire in: use MODE_SHARED or "
                     "MODE_EXCLUSIVE"));
  }
  return static_cast<lockd_mode>(mode);
}

absl::StatusOr<lockd_policy> PolicyToAcquire(v1::Policy policy) {
  if (!v1::Policy_IsValid(policy)) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy ", policy, " is unknown"));
  }
  return static_cast<lockd_policy>(policy);
}

// Which gRPC code a client sees for a rejection (proto/lockd.proto).
absl::StatusCode CodeForRejection(lockd_status status) {
  switch (status) {
    case LOCKD_STATUS_CONFLICT:
    case LOCKD_STATUS_DIE:
    case LOCKD_STATUS_UPGRADE_CONFLICT:
      return absl::StatusCode::kAborted;
    case LOCKD_STATUS_NO_CAPACITY:
      return absl::StatusCode::kResourceExhausted;
    case LOCKD_STATUS_NOT_HOLDER:
    case LOCKD_STATUS_FORCE_RELEASED:
      return absl::StatusCode::kFailedPrecondition;
    case LOCKD_STATUS_LEASE_EXPIRED:
    case LOCKD_STATUS_WAIT_EXPIRED:
      return absl::StatusCode::kDeadlineExceeded;
    case LOCKD_STATUS_BAD_REQUEST:
      return absl::StatusCode::kInvalidArgument;
    case LOCKD_STATUS_OK:
    case LOCKD_STATUS_COUNT:
      break;
  }
  return absl::StatusCode::kInternal;  // a rejection must give a reason
}

absl::Status RejectionError(lockd_status status, absl::string_view what) {
  absl::Status error(CodeForRejection(status),
                     absl::StrCat(what, ": rejected: ", StatusName(status)));
  error.SetPayload(
      kReplyStatusPayloadUrl,
      absl::Cord(v1::ReplyStatus_Name(static_cast<v1::ReplyStatus>(status))));
  return error;
}

// Prefixes an error of the server with what was asked of it.
absl::Status Annotate(const absl::Status& status, absl::string_view what) {
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

// The server's answer when it is `expected`, else the error a client sees.
absl::StatusOr<LockAnswer> ExpectAnswer(absl::StatusOr<LockAnswer> answer,
                                        lockd_opcode expected,
                                        absl::string_view what) {
  if (!answer.ok()) return Annotate(answer.status(), what);
  if (answer->opcode == expected) return answer;
  if (answer->opcode == LOCKD_OP_REJECTED) {
    return RejectionError(static_cast<lockd_status>(answer->status), what);
  }
  return absl::InternalError(
      absl::StrCat(what, ": unexpected answer ", OpcodeName(answer->opcode)));
}

// The only place absl codes become gRPC codes; the two enums share values.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContext& context) {
  if (status.ok()) return grpc::Status::OK;
  if (const auto reply_status = status.GetPayload(kReplyStatusPayloadUrl)) {
    context.AddTrailingMetadata(kReplyStatusMetadataKey,
                                std::string(*reply_status));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Time RpcDeadline(const grpc::ServerContext& context) {
  // gRPC reports "no deadline" as the largest time point.
  if (context.deadline() == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(context.deadline());
}

absl::Status Acquire(Server& server, const v1::AcquireRequest& request,
                     grpc::ServerContext& context,
                     v1::AcquireResponse& response) {
  const absl::Time rpc_deadline = RpcDeadline(context);
  absl::StatusOr<LockRef> lock = ResolveLock(request);
  if (!lock.ok()) return lock.status();
  const std::string what =
      absl::StrCat("txn ", request.txn_id(), " acquiring ", Describe(*lock),
                   " in ", v1::Mode_Name(request.mode()));
  absl::StatusOr<lockd_mode> mode = ModeToAcquire(request.mode());
  if (!mode.ok()) return Annotate(mode.status(), what);
  absl::StatusOr<lockd_policy> policy = PolicyToAcquire(request.policy());
  if (!policy.ok()) return Annotate(policy.status(), what);

  const absl::Time wait_deadline =
      request.wait_ms() == 0
          ? absl::InfiniteFuture()
          : absl::Now() + absl::Milliseconds(request.wait_ms());
  absl::StatusOr<LockAnswer> answer =
      server.Acquire(lock->id, request.txn_id(), *mode, *policy,
                     request.lease_ms(), std::min(wait_deadline, rpc_deadline),
                     [&context] { return context.IsCancelled(); });
  if (absl::IsDeadlineExceeded(answer.status())) {
    // The server has cancelled the wait; say which limit ended it.
    if (wait_deadline < rpc_deadline) {
      return RejectionError(
          LOCKD_STATUS_WAIT_EXPIRED,
          absl::StrCat(what, ": not granted within wait_ms ", request.wait_ms(),
                       "; the wait is cancelled"));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        what, ": not granted before the RPC deadline; the wait is cancelled"));
  }
  answer = ExpectAnswer(std::move(answer), LOCKD_OP_GRANTED, what);
  if (!answer.ok()) return answer.status();
  response.set_status(v1::REPLY_STATUS_OK);
  response.set_lock_id(lock->id);
  response.set_fence(answer->fence);
  response.set_lease_ms(answer->lease_ms);
  return absl::OkStatus();
}

absl::Status Release(Server& server, const v1::ReleaseRequest& request,
                     v1::ReleaseResponse& response) {
  absl::StatusOr<LockRef> lock = ResolveLock(request);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<LockAnswer> answer = ExpectAnswer(
      server.Release(lock->id, request.txn_id()), LOCKD_OP_RELEASED,
      absl::StrCat("txn ", request.txn_id(), " releasing ", Describe(*lock)));
  if (!answer.ok()) return answer.status();
  response.set_status(v1::REPLY_STATUS_OK);
  response.set_fence(answer->fence);
  return absl::OkStatus();
}

absl::Status Renew(Server& server, const v1::RenewRequest& request,
                   v1::RenewResponse& response) {
  absl::StatusOr<LockRef> lock = ResolveLock(request);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<LockAnswer> answer = ExpectAnswer(
      server.Renew(lock->id, request.txn_id(), request.lease_ms()),
      LOCKD_OP_RENEWED,
      absl::StrCat("txn ", request.txn_id(), " renewing ", Describe(*lock)));
  if (!answer.ok()) return answer.status();
  response.set_status(v1::REPLY_STATUS_OK);
  response.set_fence(answer->fence);
  response.set_lease_ms(answer->lease_ms);
  return absl::OkStatus();
}

void FillSummary(const LockInfo& info, v1::LockSummary& summary) {
  summary.set_lock_id(info.lock_id);
  summary.set_mode(static_cast<v1::Mode>(info.mode));
  summary.set_holders(info.holders.size());
  summary.set_queue_len(info.queue.size());
  summary.set_fence(info.fence);
  summary.set_user_owned(info.user_owned);
}

absl::StatusOr<int> PageSize(int32_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", requested, " is negative"));
  }
  if (requested == 0) return kDefaultPageSize;
  return std::min<int>(requested, kMaxPageSize);
}

absl::Status ListLocks(const Server& server,
                       const v1::ListLocksRequest& request,
                       v1::ListLocksResponse& response) {
  absl::StatusOr<int> page_size = PageSize(request.page_size());
  if (!page_size.ok()) return page_size.status();
  // The token is the last lock id of the previous page: locks that come and
  // go between pages neither shift nor repeat the ones after it.
  uint64_t last_seen = 0;
  const bool first_page = request.page_token().empty();
  if (!first_page && !absl::SimpleAtoi(request.page_token(), &last_seen)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token \"", request.page_token(),
                     "\" is not a next_page_token of ListLocks"));
  }
  absl::StatusOr<std::vector<uint64_t>> ids = server.ListLockIds();
  if (!ids.ok()) return Annotate(ids.status(), "listing locks");
  std::sort(ids->begin(), ids->end());
  auto next = first_page
                  ? ids->begin()
                  : std::upper_bound(ids->begin(), ids->end(), last_seen);
  for (; next != ids->end(); ++next) {
    if (response.locks_size() == *page_size) {
      response.set_next_page_token(
          absl::StrCat(response.locks(response.locks_size() - 1).lock_id()));
      break;
    }
    absl::StatusOr<LockInfo> info = server.GetLock(*next);
    if (absl::IsNotFound(info.status())) continue;  // went idle meanwhile
    if (!info.ok()) {
      return Annotate(info.status(),
                      absl::StrFormat("reading lock 0x%016x", *next));
    }
    FillSummary(*info, *response.add_locks());
  }
  return absl::OkStatus();
}

absl::Status GetLock(const Server& server, const v1::GetLockRequest& request,
                     v1::GetLockResponse& response) {
  absl::StatusOr<LockInfo> info = server.GetLock(request.lock_id());
  if (!info.ok()) {
    return Annotate(info.status(),
                    absl::StrFormat("reading lock 0x%016x", request.lock_id()));
  }
  FillSummary(*info, *response.mutable_summary());
  for (const HolderInfo& holder : info->holders) {
    v1::Holder& out = *response.add_holders();
    out.set_txn_id(holder.txn_id);
    out.set_mode(static_cast<v1::Mode>(holder.mode));
    out.set_fence(holder.fence);
    out.set_lease_left_ms(holder.lease_left_ms);
    out.set_client_address(holder.client);
  }
  for (const WaiterInfo& waiter : info->queue) {
    v1::Waiter& out = *response.add_queue();
    out.set_txn_id(waiter.txn_id);
    out.set_mode(static_cast<v1::Mode>(waiter.mode));
    out.set_policy(static_cast<v1::Policy>(waiter.policy));
    out.set_wait_time_ms(std::max<int64_t>(waiter.waited_ms, 0));
    out.set_cancelled(waiter.cancelled);
    out.set_client_address(waiter.client);
  }
  return absl::OkStatus();
}

absl::Status FillPool(const Server& server, v1::PoolUsage& usage) {
  absl::StatusOr<PoolInfo> pool = server.Pool();
  if (!pool.ok()) return Annotate(pool.status(), "reading pool usage");
  usage.set_blocks_in_use(pool->blocks_in_use);
  usage.set_block_capacity(pool->block_capacity);
  usage.set_allocated_total(pool->blocks_allocated);
  usage.set_freed_total(pool->blocks_freed);
  usage.set_bytes_per_block(pool->bytes_per_block);
  usage.set_table_entries(pool->locks);
  usage.set_table_capacity(pool->lock_capacity);
  usage.set_owners_entries(pool->owners);
  usage.set_owners_capacity(pool->owner_capacity);
  usage.set_user_owned_locks(pool->user_owned_locks);
  usage.set_user_waiters(pool->user_waiters);
  return absl::OkStatus();
}

absl::Status GetStats(const Server& server, v1::GetStatsResponse& response) {
  auto counters = server.Counters();
  if (!counters.ok()) return Annotate(counters.status(), "reading counters");
  for (const auto& [name, value] : *counters) {
    (*response.mutable_counters())[name] = value;
  }
  return FillPool(server, *response.mutable_pool());
}

// The token of "authorization: Bearer <token>"; empty when there is none.
absl::string_view BearerToken(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find(kAuthorizationMetadataKey);
  if (header == metadata.end()) return "";
  absl::string_view value(header->second.data(), header->second.size());
  return absl::ConsumePrefix(&value, kBearerPrefix) ? value : "";
}

// Refuses to end a hold other than the one the operator saw (its fence).
absl::Status CheckFence(const Server& server, uint64_t lock_id, uint64_t txn_id,
                        uint64_t fence, absl::string_view what) {
  absl::StatusOr<LockInfo> info = server.GetLock(lock_id);
  if (!info.ok()) return Annotate(info.status(), what);
  for (const HolderInfo& holder : info->holders) {
    if (holder.txn_id != txn_id) continue;
    if (holder.fence == fence) return absl::OkStatus();
    return RejectionError(
        LOCKD_STATUS_NOT_HOLDER,
        absl::StrCat(what, ": its hold has fence ", holder.fence,
                     ", not the one given (", fence,
                     "): it was released and re-acquired since"));
  }
  return RejectionError(LOCKD_STATUS_NOT_HOLDER,
                        absl::StrCat(what, ": the txn holds no such lock"));
}

absl::Status ForceRelease(Server& server, absl::string_view admin_token,
                          const v1::ForceReleaseRequest& request,
                          v1::ForceReleaseResponse& response) {
  const std::string what =
      absl::StrFormat("force-releasing lock 0x%016x held by txn %d",
                      request.lock_id(), request.txn_id());
  if (!server.AdminAllowed(admin_token)) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, ": needs the admin token as \"", kAuthorizationMetadataKey, ": ",
        kBearerPrefix, "<token>\" metadata (lockctl --token)"));
  }
  if (request.token() != 0) {
    absl::Status fence_matches = CheckFence(
        server, request.lock_id(), request.txn_id(), request.token(), what);
    if (!fence_matches.ok()) return fence_matches;
  }
  absl::Status released =
      server.ForceRelease(request.lock_id(), request.txn_id());
  if (!released.ok()) return Annotate(released, what);
  response.set_status(v1::REPLY_STATUS_OK);
  return absl::OkStatus();
}

// A grpc::Server only borrows the services registered on its builder, but
// keeps those a builder plugin registers (shared_ptr, the way gRPC's own
// reflection and health services live). Registering ours through a plugin
// lets StartGrpcServer return a plain grpc::Server that owns its services.
class OwnedServicesPlugin final : public grpc::ServerBuilderPlugin {
 public:
  explicit OwnedServicesPlugin(
      std::vector<std::shared_ptr<grpc::Service>> services)
      : services_(std::move(services)) {}

  std::string name() override { return "lockd_owned_services"; }
  void InitServer(grpc::ServerInitializer* initializer) override {
    for (const std::shared_ptr<grpc::Service>& service : services_) {
      initializer->RegisterService(service);
    }
  }
  void Finish(grpc::ServerInitializer* /*initializer*/) override {}
  void ChangeArguments(const std::string& /*name*/, void* /*value*/) override {}
  // Makes the builder start the threads that serve synchronous methods.
  bool has_sync_methods() const override { return true; }

 private:
  std::vector<std::shared_ptr<grpc::Service>> services_;
};

// The public way to add a plugin to one builder.
class OwnedServicesOption final : public grpc::ServerBuilderOption {
 public:
  explicit OwnedServicesOption(
      std::vector<std::shared_ptr<grpc::Service>> services)
      : services_(std::move(services)) {}

  void UpdateArguments(grpc::ChannelArguments* /*arguments*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    plugins->push_back(
        std::make_unique<OwnedServicesPlugin>(std::move(services_)));
  }

 private:
  std::vector<std::shared_ptr<grpc::Service>> services_;
};

}  // namespace

grpc::Status LockServiceImpl::Acquire(grpc::ServerContext* context,
                                      const v1::AcquireRequest* request,
                                      v1::AcquireResponse* response) {
  return ToGrpcStatus(lockd::Acquire(*server_, *request, *context, *response),
                      *context);
}

grpc::Status LockServiceImpl::Release(grpc::ServerContext* context,
                                      const v1::ReleaseRequest* request,
                                      v1::ReleaseResponse* response) {
  return ToGrpcStatus(lockd::Release(*server_, *request, *response), *context);
}

grpc::Status LockServiceImpl::Renew(grpc::ServerContext* context,
                                    const v1::RenewRequest* request,
                                    v1::RenewResponse* response) {
  return ToGrpcStatus(lockd::Renew(*server_, *request, *response), *context);
}

grpc::Status AdminServiceImpl::ListLocks(grpc::ServerContext* context,
                                         const v1::ListLocksRequest* request,
                                         v1::ListLocksResponse* response) {
  return ToGrpcStatus(lockd::ListLocks(*server_, *request, *response),
                      *context);
}

grpc::Status AdminServiceImpl::GetLock(grpc::ServerContext* context,
                                       const v1::GetLockRequest* request,
                                       v1::GetLockResponse* response) {
  return ToGrpcStatus(lockd::GetLock(*server_, *request, *response), *context);
}

grpc::Status AdminServiceImpl::GetStats(grpc::ServerContext* context,
                                        const v1::GetStatsRequest* /*request*/,
                                        v1::GetStatsResponse* response) {
  return ToGrpcStatus(lockd::GetStats(*server_, *response), *context);
}

grpc::Status AdminServiceImpl::GetPool(grpc::ServerContext* context,
                                       const v1::GetPoolRequest* /*request*/,
                                       v1::GetPoolResponse* response) {
  return ToGrpcStatus(FillPool(*server_, *response->mutable_pool()), *context);
}

grpc::Status AdminServiceImpl::ForceRelease(
    grpc::ServerContext* context, const v1::ForceReleaseRequest* request,
    v1::ForceReleaseResponse* response) {
  return ToGrpcStatus(
      lockd::ForceRelease(*server_, BearerToken(*context), *request, *response),
      *context);
}

grpc::Status AdminServiceImpl::Health(grpc::ServerContext* /*context*/,
                                      const v1::HealthRequest* /*request*/,
                                      v1::HealthResponse* response) {
  const ServerOptions& options = server_->options();
  response->set_serving(true);  // answering at all is what serving means
  response->set_datapath_attached(server_->fast_path());
  response->set_interface(options.interface);
  response->set_udp_port(options.datapath.port);
  response->set_uptime_ms(absl::ToInt64Milliseconds(absl::Now() - started_));
  response->set_restored(server_->restored());
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(
    Server* server, const std::string& listen_address, int* selected_port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen_address, grpc::InsecureServerCredentials(),
                           selected_port);
  builder.SetOption(std::make_unique<OwnedServicesOption>(
      std::vector<std::shared_ptr<grpc::Service>>{
          std::make_shared<LockServiceImpl>(server),
          std::make_shared<AdminServiceImpl>(server)}));
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on \"", listen_address,
                     "\": the address is malformed or in use"));
  }
  return grpc_server;
}

}  // namespace lockd
