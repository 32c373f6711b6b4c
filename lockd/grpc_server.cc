#include "lockd/grpc_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace lockd {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    Server* server, const std::string& listen_address,
    const std::string& admin_token) {
  std::unique_ptr<GrpcServer> grpc_server(new GrpcServer(server, admin_token));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen_address, grpc::InsecureServerCredentials(),
                           &grpc_server->port_);
  builder.RegisterService(&grpc_server->lock_service_);
  builder.RegisterService(&grpc_server->admin_service_);
  grpc_server->server_ = builder.BuildAndStart();
  if (grpc_server->server_ == nullptr || grpc_server->port_ == 0)
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on \"", listen_address,
                     "\": the address is malformed or in use"));
  return grpc_server;
}

GrpcServer::~GrpcServer() {
  if (server_ == nullptr) return;
  // Waiting Acquires are cancelled at once (their waits released), rather
  // than waited for.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

}  // namespace lockd
