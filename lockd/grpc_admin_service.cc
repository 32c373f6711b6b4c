#include "lockd/grpc_admin_service.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "lockd/grpc_conventions.h"
#include "lockd/grpc_status.h"
#include "lockd/rejection.h"

namespace lockd {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

// A duration in whole ms, rounded up: a grace period with any time left
// never shows as 0 (none).
int64_t CeilMs(absl::Duration d) {
  return absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)));
}

// Finishes a call with `status` at once.
grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                               const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status, *context));
  return reactor;
}

void FillSummary(const LockSummary& lock, v1::LockSummary& out) {
  out.set_lock_id(lock.lock_id);
  out.set_mode(static_cast<v1::Mode>(lock.mode));
  out.set_holders(lock.holders);
  out.set_queue_len(lock.queue_len);
  out.set_fence(lock.fence);
}

int64_t MsBetween(uint64_t from_ns, uint64_t to_ns) {
  return (static_cast<int64_t>(to_ns) - static_cast<int64_t>(from_ns)) /
         1000000;
}

absl::Status ListLocks(const Admin& admin, const v1::ListLocksRequest& request,
                       v1::ListLocksResponse& response) {
  if (request.page_size() < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", request.page_size(), " is negative"));
  const int page_size = request.page_size() == 0
                            ? kDefaultPageSize
                            : std::min(request.page_size(), kMaxPageSize);
  // The token is the table segment the next page starts at.
  uint32_t segment = 0;
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &segment) || segment == 0))
    return absl::InvalidArgumentError(
        absl::StrCat("page_token \"", request.page_token(),
                     "\" is not a next_page_token of ListLocks"));
  absl::StatusOr<Admin::Page> page = admin.ListLocks(segment, page_size);
  if (!page.ok()) return Annotate(page.status(), "listing locks");
  for (const LockSummary& lock : page->locks)
    FillSummary(lock, *response.add_locks());
  if (page->next_segment != 0)
    response.set_next_page_token(absl::StrCat(page->next_segment));
  return absl::OkStatus();
}

absl::Status GetLock(const Admin& admin, const v1::GetLockRequest& request,
                     v1::GetLockResponse& response) {
  absl::StatusOr<LockView> view = admin.GetLock(request.lock_id());
  if (!view.ok())
    return Annotate(view.status(),
                    absl::StrFormat("reading lock 0x%016x", request.lock_id()));
  const uint64_t now = admin.NowNs();
  LockSummary summary;
  summary.lock_id = view->lock_id;
  summary.mode = view->state.mode;
  summary.holders = view->state.holders;
  summary.queue_len = view->state.queue_len;
  summary.fence = view->state.fence;
  FillSummary(summary, *response.mutable_summary());
  response.set_min_txn(view->state.min_txn);
  for (const MemberView& holder : view->holders) {
    v1::Holder& out = *response.add_holders();
    out.set_txn_id(holder.m.txn_id);
    out.set_mode(static_cast<v1::Mode>(holder.m.mode));
    out.set_fence(holder.m.fence);
    out.set_lease_left_ms(MsBetween(now, holder.m.expires_ns));
    out.set_client_address(MemberAddress(holder.m));
  }
  for (const MemberView& waiter : view->queue) {
    v1::Waiter& out = *response.add_queue();
    out.set_txn_id(waiter.m.txn_id);
    out.set_mode(static_cast<v1::Mode>(waiter.m.mode));
    out.set_policy(static_cast<v1::Policy>(waiter.m.policy));
    out.set_wait_time_ms(
        std::max<int64_t>(MsBetween(waiter.m.since_ns, now), 0));
    out.set_cancelled(waiter.m.state == LOCKD_MEMBER_CANCELLED);
    out.set_client_address(MemberAddress(waiter.m));
  }
  return absl::OkStatus();
}

// The token of "authorization: Bearer <token>"; empty when there is none.
absl::string_view BearerToken(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find(kAuthorizationMetadataKey);
  if (header == metadata.end()) return "";
  absl::string_view value(header->second.data(), header->second.size());
  return absl::ConsumePrefix(&value, kBearerPrefix) ? value : "";
}

}  // namespace

absl::Status FillMemory(const Admin& admin, v1::MemoryUsage& out) {
  const MemoryUse use = admin.Memory();
  out.set_budget_bytes(use.budget_bytes);
  out.set_total_bytes(use.total_bytes);
  out.set_fixed_bytes(use.fixed_bytes);
  out.set_table_bytes(use.table_bytes);
  out.set_table_segments(use.table_segments);
  out.set_table_depth(use.table_depth);
  out.set_pool_bytes(use.pool_bytes);
  out.set_pool_segments(use.pool_segments);
  out.set_pool_capacity_blocks(use.pool_capacity);
  out.set_pool_live_blocks(use.pool_live);
  out.set_bytes_per_block(sizeof(lockd_block));
  out.set_table_at_budget(use.table_at_budget);
  out.set_pool_at_budget(use.pool_at_budget);
  out.set_table_segments_added(use.table_segments_added);
  out.set_table_segments_removed(use.table_segments_removed);
  out.set_pool_segments_added(use.pool_segments_added);
  out.set_pool_segments_removed(use.pool_segments_removed);
  out.set_growth_refused(use.growth_refused);
  absl::StatusOr<uint64_t> locks = admin.LockCount();
  if (!locks.ok()) return Annotate(locks.status(), "counting locks");
  out.set_locks(*locks);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* GrpcAdminService::ListLocks(
    grpc::CallbackServerContext* context, const v1::ListLocksRequest* request,
    v1::ListLocksResponse* response) {
  return Done(context, lockd::ListLocks(*admin_, *request, *response));
}

grpc::ServerUnaryReactor* GrpcAdminService::GetLock(
    grpc::CallbackServerContext* context, const v1::GetLockRequest* request,
    v1::GetLockResponse* response) {
  return Done(context, lockd::GetLock(*admin_, *request, *response));
}

absl::Status FillStats(const Admin& admin, v1::GetStatsResponse& out) {
  auto counters = admin.Counters();
  if (!counters.ok()) return Annotate(counters.status(), "reading counters");
  for (const auto& [name, value] : *counters)
    (*out.mutable_counters())[name] = value;
  absl::StatusOr<WaitHistogram> waits = admin.Waits();
  if (!waits.ok()) return Annotate(waits.status(), "reading queue waits");
  v1::QueueWait& wait = *out.mutable_queue_wait();
  for (int i = 0; i < LOCKD_WAIT_BUCKETS; ++i) {
    if (i + 1 < LOCKD_WAIT_BUCKETS)
      wait.add_upper_seconds(LOCKD_WAIT_BUCKET0_US * 1e-6 * (1ull << (2 * i)));
    wait.add_counts(waits->counts[i]);
  }
  wait.set_sum_seconds(waits->sum_ns * 1e-9);
  return FillMemory(admin, *out.mutable_memory());
}

grpc::ServerUnaryReactor* GrpcAdminService::GetStats(
    grpc::CallbackServerContext* context,
    const v1::GetStatsRequest* /*request*/, v1::GetStatsResponse* response) {
  return Done(context, FillStats(*admin_, *response));
}

grpc::ServerUnaryReactor* GrpcAdminService::GetMemory(
    grpc::CallbackServerContext* context,
    const v1::GetMemoryRequest* /*request*/, v1::GetMemoryResponse* response) {
  return Done(context, FillMemory(*admin_, *response->mutable_memory()));
}

grpc::ServerUnaryReactor* GrpcAdminService::ForceRelease(
    grpc::CallbackServerContext* context,
    const v1::ForceReleaseRequest* request,
    v1::ForceReleaseResponse* response) {
  if (absl::Status s = CheckToken(
          *context, absl::StrCat("force-releasing lock ", request->lock_id()),
          /*required=*/false);
      !s.ok())
    return Done(context, s);
  absl::StatusOr<uint64_t> fence = admin_->ForceRelease(
      request->lock_id(), request->txn_id(), request->fence());
  if (fence.ok()) {
    response->set_status(v1::REPLY_STATUS_OK);
    response->set_fence(*fence);
  }
  return Done(context, fence.status());
}

absl::Status GrpcAdminService::CheckToken(
    const grpc::CallbackServerContext& context, absl::string_view what,
    bool required) const {
  if (admin_token_.empty()) {
    if (!required) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": the daemon has no --admin_token, so it changes no keys"));
  }
  if (BearerToken(context) == admin_token_) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      what, ": needs the admin token as \"", kAuthorizationMetadataKey, ": ",
      kBearerPrefix, "<token>\" metadata (lockctl --token)"));
}

grpc::ServerUnaryReactor* GrpcAdminService::ListClients(
    grpc::CallbackServerContext* context,
    const v1::ListClientsRequest* /*request*/,
    v1::ListClientsResponse* response) {
  absl::StatusOr<std::vector<ClientInfo>> clients = clients_->List();
  if (clients.ok()) {
    for (const ClientInfo& c : *clients) {
      v1::ClientSummary* out = response->add_clients();
      out->set_client_id(c.client_id);
      out->set_members(c.members);
      out->set_rotating(c.rotating);
      out->set_last_seq(c.last_seq);
    }
  }
  return Done(context, clients.status());
}

grpc::ServerUnaryReactor* GrpcAdminService::SetClientKey(
    grpc::CallbackServerContext* context,
    const v1::SetClientKeyRequest* request,
    v1::SetClientKeyResponse* response) {
  const std::string what =
      absl::StrCat("setting the key of client ", request->client_id());
  if (absl::Status s = CheckToken(*context, what, /*required=*/true); !s.ok())
    return Done(context, s);
  std::string hex = request->key();
  if (hex.empty()) {
    absl::StatusOr<std::string> made = NewKeyHex();
    if (!made.ok()) return Done(context, made.status());
    hex = *made;
    response->set_key(hex);
  }
  absl::StatusOr<ClientKey> key = ParseClientKey(hex);
  if (!key.ok())
    return Done(context, absl::InvalidArgumentError(
                             absl::StrCat(what, ": ", key.status().message())));
  absl::Status set = clients_->Set(request->client_id(), *key);
  if (!set.ok()) response->clear_key();
  return Done(context, Annotate(set, what));
}

grpc::ServerUnaryReactor* GrpcAdminService::RemoveClient(
    grpc::CallbackServerContext* context,
    const v1::RemoveClientRequest* request,
    v1::RemoveClientResponse* /*response*/) {
  const std::string what =
      absl::StrCat("removing client ", request->client_id());
  if (absl::Status s = CheckToken(*context, what, /*required=*/true); !s.ok())
    return Done(context, s);
  return Done(context, Annotate(clients_->Remove(request->client_id()), what));
}

grpc::ServerUnaryReactor* GrpcAdminService::EndGrace(
    grpc::CallbackServerContext* context,
    const v1::EndGraceRequest* /*request*/, v1::EndGraceResponse* response) {
  if (absl::Status s =
          CheckToken(*context, "ending the grace period", /*required=*/true);
      !s.ok())
    return Done(context, s);
  response->set_grace_left_ms(CeilMs(admin_->EndGrace()));
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcAdminService::Health(
    grpc::CallbackServerContext* context, const v1::HealthRequest* /*request*/,
    v1::HealthResponse* response) {
  const ServerInfo& info = admin_->info();
  response->set_serving(true);  // answering at all is what serving means
  response->set_datapath_attached(!info.interface.empty());
  response->set_interface(info.interface);
  response->set_xdp_mode(info.xdp_mode);
  response->set_udp_port(info.udp_port);
  response->set_version(info.version);
  response->set_uptime_ms(
      absl::ToInt64Milliseconds(absl::Now() - info.started));
  response->set_restored(info.restored);
  response->set_epoch(info.epoch);
  response->set_grace_left_ms(CeilMs(admin_->GraceLeft()));
  return Done(context, absl::OkStatus());
}

}  // namespace lockd
