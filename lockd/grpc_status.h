// The one place absl::Status becomes grpc::Status: the codes share values,
// and a rejection's lockd_status (rejection.h) becomes the trailing
// metadata "lockd-reply-status" (grpc_conventions.h).
#ifndef LOCKD_LOCKD_GRPC_STATUS_H_
#define LOCKD_LOCKD_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace lockd {

grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContextBase& context);

}  // namespace lockd

#endif  // LOCKD_LOCKD_GRPC_STATUS_H_
