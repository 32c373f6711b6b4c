#include "lockd/rejection.h"

#include <string>

#include "abi/codec.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

constexpr char kPayloadUrl[] = "type.lockd/lockd_status";

}  // namespace

absl::StatusCode CodeForRejection(lockd_status status) {
  switch (status) {
    case LOCKD_STATUS_CONFLICT:
    case LOCKD_STATUS_DIE:
    case LOCKD_STATUS_UPGRADE_CONFLICT:
      return absl::StatusCode::kAborted;
    case LOCKD_STATUS_NO_CAPACITY:
      return absl::StatusCode::kResourceExhausted;
    case LOCKD_STATUS_NOT_HOLDER:
    case LOCKD_STATUS_FORCE_RELEASED:
      return absl::StatusCode::kFailedPrecondition;
    case LOCKD_STATUS_LEASE_EXPIRED:
    case LOCKD_STATUS_WAIT_EXPIRED:
      return absl::StatusCode::kDeadlineExceeded;
    case LOCKD_STATUS_BAD_REQUEST:
      return absl::StatusCode::kInvalidArgument;
    case LOCKD_STATUS_OK:
    case LOCKD_STATUS_COUNT:
      break;
  }
  return absl::StatusCode::kInternal;  // a rejection must give a reason
}

absl::Status RejectionError(lockd_status status, absl::string_view what) {
  absl::Status error(CodeForRejection(status),
                     absl::StrCat(what, ": rejected: ", StatusName(status)));
  error.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(int{status})));
  return error;
}

std::optional<lockd_status> RejectionStatus(const absl::Status& error) {
  auto payload = error.GetPayload(kPayloadUrl);
  if (!payload) return std::nullopt;
  const int value = std::stoi(std::string(*payload));
  if (value <= LOCKD_STATUS_OK || value >= LOCKD_STATUS_COUNT)
    return std::nullopt;
  return static_cast<lockd_status>(value);
}

absl::Status Annotate(const absl::Status& status, absl::string_view what) {
  absl::Status out(status.code(), absl::StrCat(what, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

}  // namespace lockd
