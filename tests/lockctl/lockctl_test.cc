// The lockctl binary as operators and scripts run it: its exit status and
// what it says when it cannot do its job.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockd {
namespace {

using ::testing::HasSubstr;

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Outcome RunLockctl(const std::string& arguments) {
  const std::string binary =
      absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                   std::getenv("TEST_WORKSPACE"), "/lockctl/lockctl");
  FILE* pipe =
      popen(absl::StrCat(binary, " ", arguments, " 2>&1").c_str(), "r");
  Outcome run;
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t read;
  while ((read = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    run.output.append(buffer, read);
  }
  const int status = pclose(pipe);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

// A loopback TCP port that refuses connections while the object lives: it is
// bound, so nobody else can listen on it, but not listening.
class RefusingPort {
 public:
  RefusingPort() : socket_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    bind(socket_, reinterpret_cast<sockaddr*>(&address), length);
    getsockname(socket_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~RefusingPort() { close(socket_); }

  int port() const { return port_; }

 private:
  int socket_;
  int port_ = 0;
};

TEST(LockctlTest, UnreachableServerExitsTwoNamingTheAddress) {
  RefusingPort refusing;
  ASSERT_GT(refusing.port(), 0);
  const std::string address = absl::StrCat("127.0.0.1:", refusing.port());

  const Outcome run = RunLockctl(absl::StrCat("--server=", address, " health"));

  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("cannot reach lockd at " + address));
}

TEST(LockctlTest, UnknownCommandExitsOneWithUsage) {
  const Outcome run = RunLockctl("frobnicate");

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("unknown command \"frobnicate\""));
  EXPECT_THAT(run.output, HasSubstr("release --force LOCK TXN"));
}

TEST(LockctlTest, ReleaseWithoutForceIsRefusedBeforeAnyCall) {
  RefusingPort refusing;
  const Outcome run = RunLockctl(
      absl::StrCat("--server=127.0.0.1:", refusing.port(), " release 7 1"));

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--force"));
}

TEST(LockctlTest, LockWithoutACommandExitsOneBeforeAnyCall) {
  const Outcome run = RunLockctl("lock jobs/nightly");

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("lock needs a command"));
}

TEST(LockctlTest, LockWithABadServerListExitsOneNamingTheEntry) {
  const Outcome run =
      RunLockctl("--lock_servers=a=10.0.0.1,=10.0.0.2 lock x -- true");

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--lock_servers: entry \"=10.0.0.2\""));
}

TEST(LockctlTest, LockWithBothServerFlagsExitsOne) {
  const Outcome run = RunLockctl(
      "--lock_servers=a=10.0.0.1 --server_list_file=/nonexistent lock x -- "
      "true");

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("give one"));
}

TEST(LockctlTest, LockWithABadServerListFileExitsOneNamingTheLine) {
  const std::string path =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/bad_servers");
  FILE* file = fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  fputs("# lock servers\na=10.0.0.1\nb=10.0.0.2/\n", file);
  fclose(file);

  const Outcome run =
      RunLockctl(absl::StrCat("--server_list_file=", path, " lock x -- true"));

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output,
              HasSubstr(absl::StrCat("server list file ", path,
                                     ": line 3: entry \"b=10.0.0.2/\"")));
}

TEST(LockctlTest, LockWithAMissingServerListFileExitsOne) {
  const Outcome run =
      RunLockctl("--server_list_file=/nonexistent/servers lock x -- true");

  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("server list file /nonexistent/servers"));
}

}  // namespace
}  // namespace lockd
