// The service manager's notification protocol (sd_notify(3)) without
// libsystemd: each notification is one datagram of newline-separated
// "KEY=VALUE" assignments ("READY=1", "STOPPING=1", "STATUS=...") sent to
// the AF_UNIX socket that $NOTIFY_SOCKET names, a path or, starting with
// '@', a name in the abstract namespace. systemd sets $NOTIFY_SOCKET for a
// Type=notify service and waits for READY=1 before it counts the service as
// started.
#ifndef LOCKD_LOCKD_SD_NOTIFY_H_
#define LOCKD_LOCKD_SD_NOTIFY_H_

#include <sys/socket.h>
#include <sys/un.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lockd {

class SdNotifier {
 public:
  // Opens a socket for the address in $NOTIFY_SOCKET. Abstract names are
  // looked up in the network namespace the socket was made in: make the
  // notifier before joining another one (lockd --netns). Without
  // $NOTIFY_SOCKET (not started by a service manager) the notifier is
  // disabled and Notify does nothing. An address that is neither a path nor
  // an abstract name, or too long, is an error.
  static absl::StatusOr<SdNotifier> FromEnvironment();

  // The same for `address` instead of $NOTIFY_SOCKET; empty: disabled.
  static absl::StatusOr<SdNotifier> ForAddress(absl::string_view address);

  SdNotifier() = default;  // disabled
  SdNotifier(SdNotifier&& other) noexcept;
  SdNotifier& operator=(SdNotifier&& other) noexcept;
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;
  ~SdNotifier();

  bool enabled() const { return fd_ >= 0; }

  // Sends `state` as one datagram; OK and nothing sent when disabled.
  absl::Status Notify(absl::string_view state) const;

 private:
  int fd_ = -1;
  sockaddr_un address_ = {};
  socklen_t address_length_ = 0;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_SD_NOTIFY_H_
