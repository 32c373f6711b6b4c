#include "lockd/grpc_lock_service.h"

#include <arpa/inet.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "abi/codec.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "lockd/grpc_conventions.h"
#include "lockd/grpc_status.h"
#include "lockd/rejection.h"

namespace lockd {
namespace {

static_assert(int{v1::MODE_SHARED} == LOCKD_MODE_SHARED &&
              int{v1::MODE_EXCLUSIVE} == LOCKD_MODE_EXCLUSIVE);
static_assert(int{v1::POLICY_NO_WAIT} == LOCKD_POLICY_NO_WAIT &&
              int{v1::POLICY_WAIT_DIE} == LOCKD_POLICY_WAIT_DIE &&
              int{v1::Policy_ARRAYSIZE} == LOCKD_POLICY_COUNT);

// A lock call's answer: `status` with the server's epoch in the trailers.
grpc::Status Answer(const absl::Status& status, uint32_t epoch,
                    grpc::ServerContextBase& context) {
  context.AddTrailingMetadata(kEpochMetadataKey, absl::StrCat(epoch));
  return ToGrpcStatus(status, context);
}

// A lock as a request named it; the name is kept for messages.
struct LockRef {
  uint64_t id = 0;
  std::string name;
};

std::string Describe(const LockRef& lock) {
  std::string out = absl::StrFormat("lock 0x%016x", lock.id);
  if (!lock.name.empty()) absl::StrAppendFormat(&out, " (\"%s\")", lock.name);
  return out;
}

// The three requests share the `lock` oneof.
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

// The IPv4 address (network order) of a gRPC peer ("ipv4:a.b.c.d:port", or
// an IPv4-mapped IPv6 one); 0 if it has none.
uint32_t PeerAddress(const std::string& peer) {
  std::string host;
  if (absl::StartsWith(peer, "ipv4:")) {
    host = peer.substr(5, peer.rfind(':') - 5);
  } else if (absl::StartsWith(peer, "ipv6:[::ffff:")) {
    host = peer.substr(13, peer.find(']') - 13);
  }
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1 ? addr.s_addr : 0;
}

// Who calls (see LockService in proto/lockd.proto): the signed request,
// decoded, whose opcode must be `opcode`; or nothing for an unsigned call
// from an open subnet. UNAUTHENTICATED otherwise.
absl::StatusOr<std::optional<Message>> Caller(
    const grpc::CallbackServerContext& context, const Clients& clients,
    const std::string& signed_request, lockd_opcode opcode) {
  if (signed_request.empty()) {
    if (clients.IsOpen(PeerAddress(context.peer()))) return std::nullopt;
    return absl::UnauthenticatedError(absl::StrCat(
        "an unsigned request from ", context.peer(),
        ", which is not in the daemon's --open_subnets: sign requests with a "
        "client key (signed_request)"));
  }
  absl::StatusOr<Message> m = DecodeMessage(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(signed_request.data()),
      signed_request.size()));
  if (!m.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("signed_request: ", m.status().message()));
  if (m->opcode != opcode)
    return absl::InvalidArgumentError(
        absl::StrCat("signed_request is a ", OpcodeName(m->opcode), ", not a ",
                     OpcodeName(opcode)));
  return std::optional<Message>(*m);
}

// The lock a call names: the signed request's, or the request's own.
template <typename Request>
absl::StatusOr<LockRef> CallerLock(
    const absl::StatusOr<std::optional<Message>>& caller,
    const Request& request) {
  if (!caller.ok()) return caller.status();
  if (caller->has_value()) return LockRef{(*caller)->lock_id, ""};
  return ResolveLock(request);
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()),
                             s.size());
}

// The reply when it is `expected`, else the error a caller sees.
absl::StatusOr<lockd_reply> Expect(absl::StatusOr<lockd_reply> reply,
                                   lockd_opcode expected,
                                   absl::string_view what) {
  if (!reply.ok()) return Annotate(reply.status(), what);
  if (reply->opcode == expected) return reply;
  if (reply->opcode == LOCKD_OP_REJECTED)
    return RejectionError(static_cast<lockd_status>(reply->status), what);
  return absl::InternalError(
      absl::StrCat(what, ": unexpected answer ",
                   OpcodeName(static_cast<lockd_opcode>(reply->opcode))));
}

// One Acquire call. Alive until both Start has returned and gRPC is done
// with it (OnDone), whichever is last: the answer may come, and finish the
// call, before LockService::Acquire returns.
class AcquireCall final : public grpc::ServerUnaryReactor {
 public:
  AcquireCall(LockService* service, const Clients* clients, uint32_t epoch,
              grpc::CallbackServerContext* context,
              const v1::AcquireRequest* request, v1::AcquireResponse* response)
      : service_(service),
        clients_(clients),
        epoch_(epoch),
        context_(context),
        request_(request),
        response_(response) {}

  void Start() {
    absl::Status valid = Prepare();
    if (!valid.ok()) {
      Finish(Answer(valid, epoch_, *context_));
    } else {
      std::shared_ptr<PendingAcquire> pending =
          service_->Acquire(args_, [this](absl::StatusOr<lockd_reply> answer) {
            Complete(std::move(answer));
          });
      bool cancelled;
      {
        absl::MutexLock lock(&mu_);
        pending_ = pending;
        cancelled = cancelled_;
      }
      if (cancelled) service_->Cancel(pending);
    }
    Unref();
  }

  void OnCancel() override {
    std::shared_ptr<PendingAcquire> pending;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      pending = pending_;
    }
    if (pending) service_->Cancel(pending);
  }

  void OnDone() override { Unref(); }

 private:
  absl::Status Prepare() {
    absl::StatusOr<std::optional<Message>> caller = Caller(
        *context_, *clients_, request_->signed_request(), LOCKD_OP_ACQUIRE);
    if (!caller.ok()) return caller.status();
    if (caller->has_value()) {
      const Message& m = **caller;
      what_ = absl::StrCat("client ", m.client_id, " txn ", m.txn_id,
                           " acquiring ", Describe(LockRef{m.lock_id, ""}));
      args_.lock_id = m.lock_id;
      args_.txn_id = m.txn_id;
      args_.mode = m.mode;
      args_.policy = m.policy;
      args_.lease_ms = m.lease_ms;
      args_.wait_ms = m.wait_ms;
      args_.client_id = m.client_id;
      args_.seq = m.seq;
      args_.signed_request.assign(request_->signed_request().begin(),
                                  request_->signed_request().end());
      return absl::OkStatus();
    }
    absl::StatusOr<LockRef> lock = ResolveLock(*request_);
    if (!lock.ok()) return lock.status();
    what_ =
        absl::StrCat("txn ", request_->txn_id(), " acquiring ", Describe(*lock),
                     " in ", v1::Mode_Name(request_->mode()));
    if (request_->mode() != v1::MODE_SHARED &&
        request_->mode() != v1::MODE_EXCLUSIVE)
      return absl::InvalidArgumentError(
          absl::StrCat(what_,
                       ": not a mode to acquire in: use MODE_SHARED or "
                       "MODE_EXCLUSIVE"));
    if (!v1::Policy_IsValid(request_->policy()))
      return absl::InvalidArgumentError(
          absl::StrCat(what_, ": policy ", request_->policy(), " is unknown"));
    args_.lock_id = lock->id;
    args_.txn_id = request_->txn_id();
    args_.mode = static_cast<lockd_mode>(request_->mode());
    args_.policy = static_cast<lockd_policy>(request_->policy());
    args_.lease_ms = request_->lease_ms();
    args_.wait_ms = request_->wait_ms();
    return absl::OkStatus();
  }

  void Complete(absl::StatusOr<lockd_reply> answer) {
    answer = Expect(std::move(answer), LOCKD_OP_GRANTED, what_);
    if (answer.ok()) {
      response_->set_status(v1::REPLY_STATUS_OK);
      response_->set_lock_id(args_.lock_id);
      response_->set_fence(answer->fence);
      response_->set_lease_ms(answer->lease_ms);
    }
    Finish(Answer(answer.status(), epoch_, *context_));
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  LockService* const service_;
  const Clients* const clients_;
  const uint32_t epoch_;
  grpc::CallbackServerContext* const context_;
  const v1::AcquireRequest* const request_;
  v1::AcquireResponse* const response_;
  AcquireArgs args_;
  std::string what_;
  std::atomic<int> refs_{2};  // Start, and gRPC until OnDone
  absl::Mutex mu_;
  std::shared_ptr<PendingAcquire> pending_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerUnaryReactor* GrpcLockService::Acquire(
    grpc::CallbackServerContext* context, const v1::AcquireRequest* request,
    v1::AcquireResponse* response) {
  auto* call =
      new AcquireCall(service_, clients_, epoch_, context, request, response);
  call->Start();
  return call;
}

grpc::ServerUnaryReactor* GrpcLockService::Release(
    grpc::CallbackServerContext* context, const v1::ReleaseRequest* request,
    v1::ReleaseResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::optional<Message>> caller =
      Caller(*context, *clients_, request->signed_request(), LOCKD_OP_RELEASE);
  absl::StatusOr<LockRef> lock = CallerLock(caller, *request);
  absl::Status status = lock.status();
  if (lock.ok()) {
    const uint64_t txn_id =
        caller->has_value() ? (*caller)->txn_id : request->txn_id();
    absl::StatusOr<lockd_reply> reply = Expect(
        service_->Release(lock->id, txn_id, Bytes(request->signed_request())),
        LOCKD_OP_RELEASED,
        absl::StrCat("txn ", txn_id, " releasing ", Describe(*lock)));
    status = reply.status();
    if (reply.ok()) {
      response->set_status(v1::REPLY_STATUS_OK);
      response->set_fence(reply->fence);
    }
  }
  reactor->Finish(Answer(status, epoch_, *context));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcLockService::Renew(
    grpc::CallbackServerContext* context, const v1::RenewRequest* request,
    v1::RenewResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::optional<Message>> caller =
      Caller(*context, *clients_, request->signed_request(), LOCKD_OP_RENEW);
  absl::StatusOr<LockRef> lock = CallerLock(caller, *request);
  absl::Status status = lock.status();
  if (lock.ok()) {
    const bool signed_call = caller->has_value();
    const uint64_t txn_id = signed_call ? (*caller)->txn_id : request->txn_id();
    const uint32_t lease_ms =
        signed_call ? (*caller)->lease_ms : request->lease_ms();
    absl::StatusOr<lockd_reply> reply =
        Expect(service_->Renew(lock->id, txn_id, lease_ms,
                               Bytes(request->signed_request())),
               LOCKD_OP_RENEWED,
               absl::StrCat("txn ", txn_id, " renewing ", Describe(*lock)));
    status = reply.status();
    if (reply.ok()) {
      response->set_status(v1::REPLY_STATUS_OK);
      response->set_fence(reply->fence);
      response->set_lease_ms(reply->lease_ms);
    }
  }
  reactor->Finish(Answer(status, epoch_, *context));
  return reactor;
}

}  // namespace lockd
