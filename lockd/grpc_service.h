// lockd's gRPC control plane (proto/lockd.proto): LockService and
// AdminService as thin adapters over lockd::Server. They validate requests,
// resolve lock names to ids, turn the server's answers into responses and
// rejections into gRPC errors with the codes the proto lists, and check the
// admin token of mutating admin calls. The lock semantics are the server's.
#ifndef LOCKD_LOCKD_GRPC_SERVICE_H_
#define LOCKD_LOCKD_GRPC_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lockd/grpc_conventions.h"
#include "lockd/server.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd {

class LockServiceImpl final : public v1::LockService::Service {
 public:
  // `server` must outlive the service.
  explicit LockServiceImpl(Server* server) : server_(server) {}

  grpc::Status Acquire(grpc::ServerContext* context,
                       const v1::AcquireRequest* request,
                       v1::AcquireResponse* response) override;
  grpc::Status Release(grpc::ServerContext* context,
                       const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status Renew(grpc::ServerContext* context,
                     const v1::RenewRequest* request,
                     v1::RenewResponse* response) override;

 private:
  Server* server_;
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  // `server` must outlive the service.
  explicit AdminServiceImpl(Server* server)
      : server_(server), started_(absl::Now()) {}

  grpc::Status ListLocks(grpc::ServerContext* context,
                         const v1::ListLocksRequest* request,
                         v1::ListLocksResponse* response) override;
  grpc::Status GetLock(grpc::ServerContext* context,
                       const v1::GetLockRequest* request,
                       v1::GetLockResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context,
                        const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override;
  grpc::Status GetPool(grpc::ServerContext* context,
                       const v1::GetPoolRequest* request,
                       v1::GetPoolResponse* response) override;
  grpc::Status ForceRelease(grpc::ServerContext* context,
                            const v1::ForceReleaseRequest* request,
                            v1::ForceReleaseResponse* response) override;
  grpc::Status Health(grpc::ServerContext* context,
                      const v1::HealthRequest* request,
                      v1::HealthResponse* response) override;

 private:
  Server* server_;
  absl::Time started_;  // for HealthResponse.uptime_ms
};

// Serves LockService and AdminService over `server` on `listen_address`
// ("127.0.0.1:7451", "[::]:0"; insecure credentials) and stores the bound
// port in `*selected_port` (useful with port 0; may be null). The returned
// grpc::Server owns both services; `server` must outlive it. Unavailable
// when the address cannot be bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(
    Server* server, const std::string& listen_address, int* selected_port);

}  // namespace lockd

#endif  // LOCKD_LOCKD_GRPC_SERVICE_H_
