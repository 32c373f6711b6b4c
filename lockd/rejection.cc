#include "lockd/rejection.h"

#include <string>

#include "abi/codec.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

constexpr char kPayloadUrl[] = "type.lockd/lockd_status";

}  // namespace

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
