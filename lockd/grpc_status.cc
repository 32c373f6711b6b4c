#include "lockd/grpc_status.h"

#include <string>

#include "lockd/grpc_conventions.h"
#include "lockd/rejection.h"
#include "proto/lockd.pb.h"

namespace lockd {

// The proto's ReplyStatus mirrors the ABI's lockd_status value for value.
static_assert(int{v1::REPLY_STATUS_WAIT_EXPIRED} == LOCKD_STATUS_WAIT_EXPIRED &&
              int{v1::REPLY_STATUS_BAD_REQUEST} == LOCKD_STATUS_BAD_REQUEST &&
              int{v1::ReplyStatus_ARRAYSIZE} == LOCKD_STATUS_COUNT);

grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContextBase& context) {
  if (status.ok()) return grpc::Status::OK;
  if (std::optional<lockd_status> rejected = RejectionStatus(status)) {
    context.AddTrailingMetadata(
        kReplyStatusMetadataKey,
        v1::ReplyStatus_Name(static_cast<v1::ReplyStatus>(*rejected)));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace lockd
