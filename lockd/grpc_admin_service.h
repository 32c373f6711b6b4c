// lockd.v1.AdminService over Admin (admin.h) and Clients (clients.h).
// Mutating methods check the admin token, sent as "authorization: Bearer
// <token>" metadata: ForceRelease when the daemon has one; the client key
// methods always (a daemon without a token refuses them).
#ifndef LOCKD_LOCKD_GRPC_ADMIN_SERVICE_H_
#define LOCKD_LOCKD_GRPC_ADMIN_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "lockd/admin.h"
#include "lockd/clients.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd {

class GrpcAdminService final : public v1::AdminService::CallbackService {
 public:
  // `admin` must outlive this object. An empty token lets anyone call the
  // mutating methods (the default listen address is loopback).
  GrpcAdminService(Admin* admin, Clients* clients, std::string admin_token)
      : admin_(admin),
        clients_(clients),
        admin_token_(std::move(admin_token)) {}

  grpc::ServerUnaryReactor* ListLocks(grpc::CallbackServerContext* context,
                                      const v1::ListLocksRequest* request,
                                      v1::ListLocksResponse* response) override;
  grpc::ServerUnaryReactor* GetLock(grpc::CallbackServerContext* context,
                                    const v1::GetLockRequest* request,
                                    v1::GetLockResponse* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::GetStatsResponse* response) override;
  grpc::ServerUnaryReactor* GetMemory(grpc::CallbackServerContext* context,
                                      const v1::GetMemoryRequest* request,
                                      v1::GetMemoryResponse* response) override;
  grpc::ServerUnaryReactor* ForceRelease(
      grpc::CallbackServerContext* context,
      const v1::ForceReleaseRequest* request,
      v1::ForceReleaseResponse* response) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const v1::HealthRequest* request,
                                   v1::HealthResponse* response) override;
  grpc::ServerUnaryReactor* ListClients(
      grpc::CallbackServerContext* context,
      const v1::ListClientsRequest* request,
      v1::ListClientsResponse* response) override;
  grpc::ServerUnaryReactor* SetClientKey(
      grpc::CallbackServerContext* context,
      const v1::SetClientKeyRequest* request,
      v1::SetClientKeyResponse* response) override;
  grpc::ServerUnaryReactor* RemoveClient(
      grpc::CallbackServerContext* context,
      const v1::RemoveClientRequest* request,
      v1::RemoveClientResponse* response) override;
  grpc::ServerUnaryReactor* EndGrace(grpc::CallbackServerContext* context,
                                     const v1::EndGraceRequest* request,
                                     v1::EndGraceResponse* response) override;

 private:
  // OK if the call carries the admin token; `required`: also when the
  // daemon has none (then it is refused).
  absl::Status CheckToken(const grpc::CallbackServerContext& context,
                          absl::string_view what, bool required) const;

  Admin* const admin_;
  Clients* const clients_;
  const std::string admin_token_;
};

// Fill responses from what Admin reports (also used by /metrics).
absl::Status FillMemory(const Admin& admin, v1::MemoryUsage& out);
absl::Status FillStats(const Admin& admin, v1::GetStatsResponse& out);

}  // namespace lockd

#endif  // LOCKD_LOCKD_GRPC_ADMIN_SERVICE_H_
