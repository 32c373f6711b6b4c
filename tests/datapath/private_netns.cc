#include "tests/datapath/private_netns.h"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockd::testing {

absl::Status EnterPrivateNetns() {
  if (unshare(CLONE_NEWNET) != 0)
    return absl::InternalError(
        absl::StrCat("unshare(CLONE_NEWNET): ", strerror(errno)));
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  const int rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  const int err = errno;
  close(fd);
  if (rc != 0)
    return absl::InternalError(absl::StrCat("bringing lo up: ", strerror(err)));
  return absl::OkStatus();
}

}  // namespace lockd::testing
