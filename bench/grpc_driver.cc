#include "bench/grpc_driver.h"

#include <grpcpp/grpcpp.h>

#include <utility>

namespace lockd::bench {
template <typename Request, typename Response>
Call<Request, Response>* GrpcDriver::NewCall(int session, Message request) {
  ++calls_;
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  auto* call = new Call<Request, Response>;
  call->request.set_lock_id(request.lock_id);
  call->request.set_txn_id(request.txn_id);
  const EncodedMessage bytes = options_.signers[session].Sign(request);
  call->request.set_signed_request(bytes.data(), bytes.size());
  return call;
}

GrpcDriver::~GrpcDriver() {
  // Callbacks touch this driver: wait for the calls still out (bounded by
  // the server cancelling waits when the channel goes, or by its answers).
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](int* in_flight) { return *in_flight == 0; }, &in_flight_),
      absl::Seconds(10));
}

absl::Status GrpcDriver::Connect(int /*sessions*/, DriverListener* listener) {
  listener_ = listener;
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options_.server, grpc::InsecureChannelCredentials(), arguments);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(10))) {
    return absl::UnavailableError("cannot connect to " + options_.server);
  }
  stub_ = v1::LockService::NewStub(channel);
  admin_ = v1::AdminService::NewStub(channel);
  return loop_->OnWake([this] { Drain(); });
}

void GrpcDriver::Post(const Completion& completion) {
  {
    absl::MutexLock lock(&mu_);
    inbox_.push_back(completion);
    --in_flight_;
  }
  loop_->Wake();
}

void GrpcDriver::Drain() {
  std::vector<Completion> completions;
  {
    absl::MutexLock lock(&mu_);
    completions.swap(inbox_);
  }
  for (const Completion& completion : completions) {
    if (completion.error) ++errors_;
    if (completion.reply == Reply::kRejected && !completion.error) ++aborted_;
    listener_->OnReply(completion.session, completion.slot, completion.reply);
  }
}

void GrpcDriver::Health(int session, int slot, Reply reply) {
  ++calls_;
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  auto* call = new Call<v1::HealthRequest, v1::HealthResponse>;
  admin_->async()->Health(&call->context, &call->request, &call->response,
                          [this, call, session, slot, reply](grpc::Status s) {
                            delete call;
                            Post({session, slot, reply, !s.ok()});
                          });
}

void GrpcDriver::Acquire(int session, int slot, uint64_t txn_id,
                         uint64_t lock_id, lockd_mode mode) {
  if (options_.health_only) return Health(session, slot, Reply::kGranted);
  Message request;
  request.opcode = LOCKD_OP_ACQUIRE;
  request.mode = mode;
  request.policy = options_.policy;
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  auto* call =
      NewCall<v1::AcquireRequest, v1::AcquireResponse>(session, request);
  call->request.set_mode(static_cast<v1::Mode>(mode));
  call->request.set_policy(static_cast<v1::Policy>(options_.policy));
  stub_->async()->Acquire(
      &call->context, &call->request, &call->response,
      [this, call, session, slot](grpc::Status status) {
        delete call;
        if (status.ok()) {
          Post({session, slot, Reply::kGranted, false});
        } else {
          Post({session, slot, Reply::kRejected,
                status.error_code() != grpc::StatusCode::ABORTED});
        }
      });
}

void GrpcDriver::Release(int session, int slot, uint64_t txn_id,
                         uint64_t lock_id) {
  if (options_.health_only) return Health(session, slot, Reply::kReleased);
  Message request;
  request.opcode = LOCKD_OP_RELEASE;
  request.lock_id = lock_id;
  request.txn_id = txn_id;
  auto* call =
      NewCall<v1::ReleaseRequest, v1::ReleaseResponse>(session, request);
  stub_->async()->Release(
      &call->context, &call->request, &call->response,
      [this, call, session, slot](grpc::Status status) {
        delete call;
        Post({session, slot, Reply::kReleased, !status.ok()});
      });
}

DriverCounters GrpcDriver::Counters() const {
  return {{"grpc_calls", calls_}, {"aborted", aborted_}, {"errors", errors_}};
}

}  // namespace lockd::bench
