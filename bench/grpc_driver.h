// GrpcDriver: lockd's gRPC LockService (proto/lockd.proto) with the callback
// API: Acquire blocks on the server until granted (WAIT) or answers ABORTED
// (NO_WAIT conflict, WAIT_DIE death); Release ends the hold. One channel per
// thread, shared by its sessions. gRPC completes calls on its own threads;
// completions are handed to the loop through a locked inbox and a wake-up.
// Each session is a client of its own (bench/signer.h): its calls carry the
// request as a wire message signed with its key (`signed_request`), as the
// client library sends them.
//
// With `health_only`, every Acquire and Release is an AdminService.Health
// call instead, answered as granted and released: the same RPCs, driven
// the same way, with nothing behind them (the yardstick of what gRPC itself
// costs).
#ifndef LOCKD_BENCH_GRPC_DRIVER_H_
#define LOCKD_BENCH_GRPC_DRIVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/event_loop.h"
#include "bench/lock_driver.h"
#include "bench/signer.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd::bench {

// What one call keeps alive until its callback ran.
template <typename Request, typename Response>
struct Call {
  grpc::ClientContext context;
  Request request;
  Response response;
};

struct GrpcDriverOptions {
  std::string server;  // host:port
  lockd_policy policy = LOCKD_POLICY_WAIT;
  bool health_only = false;
  // Session i signs as signers[i]; one for each session of Connect.
  std::vector<Signer> signers;
};

class GrpcDriver : public LockDriver {
 public:
  GrpcDriver(const GrpcDriverOptions& options, EventLoop* loop)
      : options_(options), loop_(loop) {}
  ~GrpcDriver() override;

  absl::Status Connect(int sessions, DriverListener* listener) override;
  void Acquire(int session, int slot, uint64_t txn_id, uint64_t lock_id,
               lockd_mode mode) override;
  void Release(int session, int slot, uint64_t txn_id,
               uint64_t lock_id) override;
  DriverCounters Counters() const override;

 private:
  struct Completion {
    int session;
    int slot;
    Reply reply;
    bool error;  // an RPC failure other than ABORTED
  };

  // A call for `request`'s (lock, txn), signed by `session`, counted in
  // flight until Post.
  template <typename Request, typename Response>
  Call<Request, Response>* NewCall(int session, Message request);
  void Post(const Completion& completion);
  // A Health call standing in for a lock call; `reply` when it succeeds.
  void Health(int session, int slot, Reply reply);
  void Drain();

  GrpcDriverOptions options_;
  EventLoop* loop_;
  DriverListener* listener_ = nullptr;
  std::unique_ptr<v1::LockService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  absl::Mutex mu_;
  std::vector<Completion> inbox_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t calls_ = 0;
  uint64_t aborted_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_GRPC_DRIVER_H_
