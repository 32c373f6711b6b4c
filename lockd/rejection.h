// A lock request the table answered with REJECTED, as an absl::Status: the
// code says what a caller must do (proto/lockd.proto lists them) and a
// payload keeps the exact lockd_status, which the gRPC boundary turns into
// trailing metadata. Errors stay absl::Status inside the daemon.
#ifndef LOCKD_LOCKD_REJECTION_H_
#define LOCKD_LOCKD_REJECTION_H_

#include <optional>

#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lockd {

// "<what>: rejected: <STATUS>" with the code CodeForRejection
// (abi/codec.h) gives it, and the status as payload.
absl::Status RejectionError(lockd_status status, absl::string_view what);

// The lockd_status a RejectionError carries, if `error` is one.
std::optional<lockd_status> RejectionStatus(const absl::Status& error);

// `status` with "<what>: " in front of its message; code and payload kept.
absl::Status Annotate(const absl::Status& status, absl::string_view what);

}  // namespace lockd

#endif  // LOCKD_LOCKD_REJECTION_H_
