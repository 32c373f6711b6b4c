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

// The code for a rejection's status: ABORTED for CONFLICT, DIE and
// UPGRADE_CONFLICT; RESOURCE_EXHAUSTED for NO_CAPACITY; FAILED_PRECONDITION
// for NOT_HOLDER and FORCE_RELEASED; DEADLINE_EXCEEDED for LEASE_EXPIRED
// and WAIT_EXPIRED; INVALID_ARGUMENT for BAD_REQUEST.
absl::StatusCode CodeForRejection(lockd_status status);

// "<what>: rejected: <STATUS>", with the status as payload.
absl::Status RejectionError(lockd_status status, absl::string_view what);

// The lockd_status a RejectionError carries, if `error` is one.
std::optional<lockd_status> RejectionStatus(const absl::Status& error);

// `status` with "<what>: " in front of its message; code and payload kept.
absl::Status Annotate(const absl::Status& status, absl::string_view what);

}  // namespace lockd

#endif  // LOCKD_LOCKD_REJECTION_H_
