#include "lockd/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lockd {

absl::StatusOr<SdNotifier> SdNotifier::FromEnvironment() {
  const char* address = getenv("NOTIFY_SOCKET");
  return ForAddress(address == nullptr ? "" : address);
}

absl::StatusOr<SdNotifier> SdNotifier::ForAddress(absl::string_view address) {
  SdNotifier notifier;
  if (address.empty()) return notifier;
  if (address[0] != '/' && address[0] != '@') {
    return absl::InvalidArgumentError(
        absl::StrCat("NOTIFY_SOCKET \"", address,
                     "\" is neither a path nor an abstract socket name"));
  }
  // A path needs its terminating NUL; an abstract name has none.
  const size_t limit =
      sizeof(notifier.address_.sun_path) - (address[0] == '/' ? 1 : 0);
  if (address.size() > limit || address.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("NOTIFY_SOCKET \"", address, "\" has a bad length"));
  }
  notifier.address_.sun_family = AF_UNIX;
  memcpy(notifier.address_.sun_path, address.data(), address.size());
  if (address[0] == '@') notifier.address_.sun_path[0] = '\0';
  notifier.address_length_ =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                             (address[0] == '/' ? 1 : 0));
  notifier.fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (notifier.fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("socket(AF_UNIX) for NOTIFY_SOCKET: ", strerror(errno)));
  }
  return notifier;
}

SdNotifier::SdNotifier(SdNotifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(other.address_),
      address_length_(other.address_length_) {}

SdNotifier& SdNotifier::operator=(SdNotifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    address_ = other.address_;
    address_length_ = other.address_length_;
  }
  return *this;
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) close(fd_);
}

absl::Status SdNotifier::Notify(absl::string_view state) const {
  if (fd_ < 0) return absl::OkStatus();
  ssize_t sent;
  do {
    sent =
        sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&address_), address_length_);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    return absl::UnavailableError(
        absl::StrCat("notifying the service manager: ", strerror(errno)));
  }
  if (static_cast<size_t>(sent) != state.size())
    return absl::UnavailableError("notifying the service manager: short send");
  return absl::OkStatus();
}

}  // namespace lockd
