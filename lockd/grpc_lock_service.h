// lockd.v1.LockService over LockService (lock_service.h), on gRPC's callback
// API: an Acquire that waits in a queue holds no thread, and a cancelled or
// timed-out call cancels its wait. The adapter validates requests, resolves
// lock names to ids, lets in only signed requests and unsigned ones from
// open subnets (docs/security.md), and turns answers into responses or
// errors.
#ifndef LOCKD_LOCKD_GRPC_LOCK_SERVICE_H_
#define LOCKD_LOCKD_GRPC_LOCK_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "lockd/clients.h"
#include "lockd/lock_service.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd {

class GrpcLockService final : public v1::LockService::CallbackService {
 public:
  // Both must outlive this object. Every answer carries `epoch`
  // (kEpochMetadataKey).
  GrpcLockService(LockService* service, const Clients* clients, uint32_t epoch)
      : service_(service), clients_(clients), epoch_(epoch) {}

  grpc::ServerUnaryReactor* Acquire(grpc::CallbackServerContext* context,
                                    const v1::AcquireRequest* request,
                                    v1::AcquireResponse* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerUnaryReactor* Renew(grpc::CallbackServerContext* context,
                                  const v1::RenewRequest* request,
                                  v1::RenewResponse* response) override;

 private:
  LockService* const service_;
  const Clients* const clients_;
  const uint32_t epoch_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_GRPC_LOCK_SERVICE_H_
