// The zk driver against Debian's ZooKeeper server (bench/zk_server.sh), run
// on the loopback of a private network namespace: FIFO hand-over of an
// exclusive lock, shared readers that do not overtake a waiting writer,
// lazily created lock znodes, children gone after release and after the
// sessions close, and mutual exclusion under contention. Needs root and the
// zookeeper package: without either it fails (it never skips).
#include "bench/zk_driver.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/event_loop.h"
#include "gtest/gtest.h"
#include "tests/datapath/private_netns.h"

namespace lockd::bench {
namespace {

constexpr char kAddress[] = "127.0.0.1";
constexpr uint16_t kPort = 2181;
// The JVM may start slowly while other tests share the 2 cores.
constexpr absl::Duration kConnectTimeout = absl::Seconds(90);
constexpr absl::Duration kStepTimeout = absl::Seconds(20);

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// The ZooKeeper server of the whole test, in the test's own namespace.
class ZkServer {
 public:
  static absl::Status Start() {
    if (absl::Status entered = lockd::testing::EnterPrivateNetns();
        !entered.ok()) {
      return entered;
    }
    const std::string data = absl::StrCat(TempDir(), "/zk-data");
    log_ = absl::StrCat(TempDir(), "/zk-server.log");
    const std::string port = absl::StrCat(kPort);
    const char* argv[] = {"bench/zk_server.sh", data.c_str(), kAddress,
                          port.c_str(), nullptr};
    const int log_fd =
        open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) return absl::ErrnoToStatus(errno, "opening the log");
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) return absl::ErrnoToStatus(errno, "fork");
    if (pid_ == 0) {
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent ||
          dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0) {
        _exit(126);
      }
      execv(argv[0], const_cast<char* const*>(argv));
      _exit(127);
    }
    close(log_fd);
    return absl::OkStatus();
  }

  static void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
  }

  // The server's log, for failure messages.
  static std::string Log() {
    std::ifstream file(log_);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

 private:
  static inline pid_t pid_ = 0;
  static inline std::string log_;
};

struct Event {
  int session;
  int slot;
  Reply reply;
};

class Recorder : public DriverListener {
 public:
  void OnReply(int session, int slot, Reply reply) override {
    events.push_back({session, slot, reply});
    if (on_reply) on_reply(session, slot, reply);
  }
  int Count(int session, int slot, Reply reply) const {
    int count = 0;
    for (const Event& e : events) {
      count += e.session == session && e.slot == slot && e.reply == reply;
    }
    return count;
  }
  bool Holds(int session) const {
    return Count(session, 0, Reply::kGranted) >
           Count(session, 0, Reply::kReleased);
  }
  std::vector<Event> events;
  std::function<void(int, int, Reply)> on_reply;
};

uint64_t Counter(const LockDriver& driver, const std::string& name) {
  for (const auto& [key, value] : driver.Counters()) {
    if (key == name) return value;
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

class ZkDriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_status_ = ZkServer::Start(); }
  static void TearDownTestSuite() { ZkServer::Stop(); }

  void SetUp() override {
    ASSERT_TRUE(server_status_.ok()) << server_status_;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
  }

  // A driver of `sessions` load generator sessions over `handles`
  // ZooKeeper sessions (0: one each).
  std::unique_ptr<ZkDriver> Connect(int sessions, int handles) {
    ZkDriverOptions options;
    options.server = kAddress;
    options.port = kPort;
    options.handles = handles;
    options.connect_timeout = kConnectTimeout;
    options.root = "/lockd-test";
    auto driver = std::make_unique<ZkDriver>(options, loop_.get());
    const absl::Status connected = driver->Connect(sessions, &recorder_);
    EXPECT_TRUE(connected.ok()) << connected << "\n" << ZkServer::Log();
    return connected.ok() ? std::move(driver) : nullptr;
  }

  // Runs the loop until `done` or the timeout; returns `done()`.
  bool RunUntil(const std::function<bool()>& done,
                absl::Duration timeout = kStepTimeout) {
    const int64_t deadline = NowNanos() + absl::ToInt64Nanoseconds(timeout);
    while (!done() && NowNanos() < deadline) {
      EXPECT_TRUE(loop_->Run(std::min(deadline, NowNanos() + 2000000)).ok());
    }
    return done();
  }
  void RunFor(absl::Duration duration) {
    RunUntil([] { return false; }, duration);
  }

  // The children of `path`, read through a ZooKeeper session of the test's.
  std::vector<std::string> Children(const std::string& path) {
    const std::string host = absl::StrCat(kAddress, ":", kPort);
    zhandle_t* zh =
        zookeeper_init(host.c_str(), nullptr, 10000, nullptr, nullptr, 0);
    EXPECT_NE(zh, nullptr);
    if (zh == nullptr) return {"(no handle)"};
    const absl::Time deadline = absl::Now() + kConnectTimeout;
    while (zoo_state(zh) != ZOO_CONNECTED_STATE && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    String_vector children{};
    const int rc = zoo_get_children(zh, path.c_str(), 0, &children);
    std::vector<std::string> names;
    if (rc == ZOK) {
      names.assign(children.data, children.data + children.count);
      deallocate_String_vector(&children);
    } else if (rc != ZNONODE) {  // a container already reaped is empty
      ADD_FAILURE() << "listing " << path << ": " << zerror(rc);
    }
    zookeeper_close(zh);
    return names;
  }

  static inline absl::Status server_status_;
  std::unique_ptr<EventLoop> loop_;
  Recorder recorder_;
};

TEST_F(ZkDriverTest, ExclusiveLockHandsOverInCreationOrder) {
  // One ZooKeeper session: requests reach the server in the order sent.
  std::unique_ptr<ZkDriver> driver = Connect(3, 1);
  ASSERT_NE(driver, nullptr);
  constexpr uint64_t kLock = 0x11;
  driver->Acquire(0, 0, 1, kLock, LOCKD_MODE_EXCLUSIVE);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(0); }));
  EXPECT_EQ(Counter(*driver, "parent_creates"), 1u);
  driver->Acquire(1, 0, 2, kLock, LOCKD_MODE_EXCLUSIVE);
  driver->Acquire(2, 0, 3, kLock, LOCKD_MODE_EXCLUSIVE);
  ASSERT_TRUE(RunUntil([&] { return Counter(*driver, "watches") == 2; }));
  RunFor(absl::Milliseconds(300));
  EXPECT_FALSE(recorder_.Holds(1));
  EXPECT_FALSE(recorder_.Holds(2));
  EXPECT_EQ(Children(driver->LockPath(kLock)).size(), 3u);

  driver->Release(0, 0, 1, kLock);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(1); }));
  EXPECT_FALSE(recorder_.Holds(0));
  RunFor(absl::Milliseconds(300));
  EXPECT_FALSE(recorder_.Holds(2));  // woken only by its own predecessor

  driver->Release(1, 0, 2, kLock);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(2); }));
  driver->Release(2, 0, 3, kLock);
  ASSERT_TRUE(RunUntil([&] { return !recorder_.Holds(2); }));

  EXPECT_TRUE(Children(driver->LockPath(kLock)).empty());
  EXPECT_EQ(Counter(*driver, "parent_creates"), 1u);
  EXPECT_EQ(Counter(*driver, "watches_fired"), 2u);
  EXPECT_EQ(Counter(*driver, "errors"), 0u);
}

TEST_F(ZkDriverTest, ReadersShareButQueueBehindAWaitingWriter) {
  std::unique_ptr<ZkDriver> driver = Connect(4, 0);  // a session each
  ASSERT_NE(driver, nullptr);
  constexpr uint64_t kLock = 0x22;
  driver->Acquire(0, 0, 1, kLock, LOCKD_MODE_SHARED);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(0); }));
  driver->Acquire(1, 0, 2, kLock, LOCKD_MODE_SHARED);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(1); }));
  driver->Acquire(2, 0, 3, kLock, LOCKD_MODE_EXCLUSIVE);
  ASSERT_TRUE(RunUntil([&] { return Counter(*driver, "watches") == 1; }));
  driver->Acquire(3, 0, 4, kLock, LOCKD_MODE_SHARED);
  ASSERT_TRUE(RunUntil([&] { return Counter(*driver, "watches") == 2; }));
  RunFor(absl::Milliseconds(300));
  EXPECT_FALSE(recorder_.Holds(2));
  EXPECT_FALSE(recorder_.Holds(3));  // readers hold, but a writer is queued

  driver->Release(0, 0, 1, kLock);
  RunFor(absl::Milliseconds(300));
  EXPECT_FALSE(recorder_.Holds(2));  // reader 1 still holds

  driver->Release(1, 0, 2, kLock);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(2); }));
  RunFor(absl::Milliseconds(300));
  EXPECT_FALSE(recorder_.Holds(3));

  driver->Release(2, 0, 3, kLock);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(3); }));
  driver->Release(3, 0, 4, kLock);
  ASSERT_TRUE(RunUntil([&] { return !recorder_.Holds(3); }));
  EXPECT_TRUE(Children(driver->LockPath(kLock)).empty());
  EXPECT_EQ(Counter(*driver, "errors"), 0u);
}

TEST_F(ZkDriverTest, ClosingTheSessionsRemovesTheirChildren) {
  std::unique_ptr<ZkDriver> driver = Connect(2, 0);
  ASSERT_NE(driver, nullptr);
  constexpr uint64_t kLock = 0x33;
  const std::string path = driver->LockPath(kLock);
  driver->Acquire(0, 0, 1, kLock, LOCKD_MODE_EXCLUSIVE);
  ASSERT_TRUE(RunUntil([&] { return recorder_.Holds(0); }));
  driver->Acquire(1, 0, 2, kLock, LOCKD_MODE_EXCLUSIVE);
  ASSERT_TRUE(RunUntil([&] { return Counter(*driver, "watches") == 1; }));
  EXPECT_EQ(Children(path).size(), 2u);
  driver.reset();
  EXPECT_TRUE(Children(path).empty());
}

// Sessions over a few shared handles take two locks again and again, in
// both modes; the listener checks that no exclusive hold ever overlaps
// another hold of the same lock.
TEST_F(ZkDriverTest, ContendedLocksStayMutuallyExclusive) {
  constexpr int kSessions = 8;
  constexpr int kRounds = 25;
  std::unique_ptr<ZkDriver> driver = Connect(kSessions, 3);
  ASSERT_NE(driver, nullptr);
  const uint64_t locks[] = {0x44, 0x55};
  std::map<uint64_t, int> readers, writers;
  std::vector<int> rounds(kSessions, 0);
  std::vector<uint64_t> lock_of(kSessions);
  std::vector<lockd_mode> mode_of(kSessions);
  int violations = 0;
  int done = 0;
  auto start = [&](int session) {
    const int round = rounds[session];
    lock_of[session] = locks[(session + round) % 2];
    mode_of[session] = (session * 7 + round) % 3 == 0 ? LOCKD_MODE_SHARED
                                                      : LOCKD_MODE_EXCLUSIVE;
    driver->Acquire(session, 0, round, lock_of[session], mode_of[session]);
  };
  recorder_.on_reply = [&](int session, int /*slot*/, Reply reply) {
    if (reply == Reply::kGranted) {
      const uint64_t lock = lock_of[session];
      const bool exclusive = mode_of[session] == LOCKD_MODE_EXCLUSIVE;
      if (writers[lock] > 0 || (exclusive && readers[lock] > 0)) ++violations;
      ++(exclusive ? writers : readers)[lock];
      // Hold for a moment, then release (from the loop, not from here). The
      // hold ends when the release is sent: the delete's answer may come
      // after the next holder's grant.
      loop_->At(NowNanos() + 200000, [&, session, lock, exclusive] {
        --(exclusive ? writers : readers)[lock];
        driver->Release(session, 0, rounds[session], lock);
      });
    } else if (reply == Reply::kReleased) {
      if (++rounds[session] < kRounds) {
        start(session);
      } else {
        ++done;
      }
    } else {
      ++violations;  // ZooKeeper never rejects a waiter
    }
  };
  for (int s = 0; s < kSessions; ++s) start(s);
  ASSERT_TRUE(RunUntil([&] { return done == kSessions; }, absl::Seconds(60)))
      << done << " of " << kSessions << " sessions finished";
  EXPECT_EQ(violations, 0);
  EXPECT_EQ(Counter(*driver, "errors"), 0u);
  EXPECT_GT(Counter(*driver, "watches_fired"), 0u);  // there was contention
  for (uint64_t lock : locks) {
    EXPECT_TRUE(Children(driver->LockPath(lock)).empty());
  }
}

}  // namespace
}  // namespace lockd::bench
