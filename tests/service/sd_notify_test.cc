// SdNotifier against a datagram socket standing in for systemd's: path and
// abstract addresses, no $NOTIFY_SOCKET, and addresses systemd never sets.
#include "lockd/sd_notify.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace lockd {
namespace {

// A bound AF_UNIX datagram socket, as the service manager listens on.
class Listener {
 public:
  explicit Listener(const std::string& address) {
    if (address.size() >= sizeof(sockaddr_un::sun_path)) return;
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, address.data(), address.size());
    socklen_t length = offsetof(sockaddr_un, sun_path) + address.size();
    if (address[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      length += 1;
      unlink(address.c_str());
      path_ = address;
    }
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), length) == 0;
    timeval timeout = {5, 0};  // a missing datagram fails, never hangs
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~Listener() {
    if (fd_ >= 0) close(fd_);
    if (!path_.empty()) unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  std::string Receive() {
    char buffer[512];
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    return n < 0 ? "<nothing>" : std::string(buffer, n);
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  std::string path_;
};

TEST(SdNotifierTest, SendsToAPath) {
  // Bazel's TEST_TMPDIR is too long for sun_path (108 bytes).
  const std::string path = absl::StrCat("/tmp/lockd-sd-notify-", getpid());
  Listener listener(path);
  ASSERT_TRUE(listener.bound());
  absl::StatusOr<SdNotifier> notifier = SdNotifier::ForAddress(path);
  ASSERT_TRUE(notifier.ok()) << notifier.status();
  EXPECT_TRUE(notifier->enabled());
  ASSERT_TRUE(notifier->Notify("READY=1").ok());
  EXPECT_EQ(listener.Receive(), "READY=1");
  ASSERT_TRUE(notifier->Notify("STOPPING=1\nSTATUS=bye").ok());
  EXPECT_EQ(listener.Receive(), "STOPPING=1\nSTATUS=bye");
}

TEST(SdNotifierTest, SendsToAnAbstractName) {
  const std::string name = absl::StrCat("@lockd-sd-notify-test-", getpid());
  Listener listener(name);
  ASSERT_TRUE(listener.bound());
  absl::StatusOr<SdNotifier> notifier = SdNotifier::ForAddress(name);
  ASSERT_TRUE(notifier.ok()) << notifier.status();
  ASSERT_TRUE(notifier->Notify("READY=1").ok());
  EXPECT_EQ(listener.Receive(), "READY=1");
}

TEST(SdNotifierTest, ReadsNotifySocketFromTheEnvironment) {
  const std::string name = absl::StrCat("@lockd-sd-notify-env-", getpid());
  Listener listener(name);
  ASSERT_TRUE(listener.bound());
  setenv("NOTIFY_SOCKET", name.c_str(), 1);
  absl::StatusOr<SdNotifier> notifier = SdNotifier::FromEnvironment();
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(notifier.ok()) << notifier.status();
  // Moving keeps the socket open.
  SdNotifier moved = *std::move(notifier);
  ASSERT_TRUE(moved.Notify("READY=1").ok());
  EXPECT_EQ(listener.Receive(), "READY=1");
}

TEST(SdNotifierTest, WithoutNotifySocketDoesNothing) {
  unsetenv("NOTIFY_SOCKET");
  absl::StatusOr<SdNotifier> notifier = SdNotifier::FromEnvironment();
  ASSERT_TRUE(notifier.ok()) << notifier.status();
  EXPECT_FALSE(notifier->enabled());
  EXPECT_TRUE(notifier->Notify("READY=1").ok());
}

TEST(SdNotifierTest, RejectsAddressesSystemdNeverSets) {
  EXPECT_FALSE(SdNotifier::ForAddress("relative/path").ok());
  EXPECT_FALSE(SdNotifier::ForAddress("@").ok());
  EXPECT_FALSE(
      SdNotifier::ForAddress(absl::StrCat("/", std::string(200, 'x'))).ok());
}

TEST(SdNotifierTest, NobodyListeningIsAnError) {
  absl::StatusOr<SdNotifier> notifier = SdNotifier::ForAddress(
      absl::StrCat("@lockd-sd-notify-nobody-", getpid()));
  ASSERT_TRUE(notifier.ok()) << notifier.status();
  EXPECT_FALSE(notifier->Notify("READY=1").ok());
}

}  // namespace
}  // namespace lockd
