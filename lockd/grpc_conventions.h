// What lockd's gRPC servers and clients agree on beyond proto/lockd.proto:
// the default address and the metadata keys the proto documents. Header only
// and free of the daemon, so lockctl and the client library can use it.
#ifndef LOCKD_LOCKD_GRPC_CONVENTIONS_H_
#define LOCKD_LOCKD_GRPC_CONVENTIONS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace lockd {

inline constexpr uint16_t kDefaultGrpcPort = 7451;

// Loopback only: the admin service can end holds, so reaching it from other
// hosts must be a deliberate choice of listen address.
inline std::string DefaultGrpcAddress() {
  return absl::StrCat("127.0.0.1:", kDefaultGrpcPort);
}

// Trailing metadata of a rejected lock call: the lockd.v1.ReplyStatus name
// ("REPLY_STATUS_DIE"), since one gRPC code covers several rejections.
inline constexpr char kReplyStatusMetadataKey[] = "lockd-reply-status";

// Trailing metadata of every lock call, answered or rejected: the server's
// epoch in decimal, as UDP replies carry it (docs/semantics.md,
// "Restarts").
inline constexpr char kEpochMetadataKey[] = "lockd-epoch";

// Mutating admin calls carry the admin token as "authorization: Bearer
// <token>".
inline constexpr char kAuthorizationMetadataKey[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

}  // namespace lockd

#endif  // LOCKD_LOCKD_GRPC_CONVENTIONS_H_
