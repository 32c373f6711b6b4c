// The gRPC control plane of one Server: LockService and AdminService on one
// listening address (insecure credentials; loopback by default).
#ifndef LOCKD_LOCKD_GRPC_SERVER_H_
#define LOCKD_LOCKD_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "lockd/grpc_admin_service.h"
#include "lockd/grpc_lock_service.h"
#include "lockd/server.h"

namespace lockd {

class GrpcServer {
 public:
  // Serves `server` on `listen_address` ("127.0.0.1:7451", "[::]:0").
  // Unavailable when the address cannot be bound. `server` must outlive
  // the returned object.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      Server* server, const std::string& listen_address,
      const std::string& admin_token);
  // Shuts down: calls in progress are cancelled (waits with them).
  ~GrpcServer();

  int port() const { return port_; }

 private:
  GrpcServer(Server* server, const std::string& admin_token)
      : lock_service_(&server->lock_service(), &server->clients(),
                      server->admin().info().epoch),
        admin_service_(&server->admin(), &server->clients(), admin_token) {}

  GrpcLockService lock_service_;
  GrpcAdminService admin_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_GRPC_SERVER_H_
