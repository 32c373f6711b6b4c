#include "tests/client/client_fixture.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/scoped_lock.h"
#include "tests/test_keys.h"

namespace lockd::client::testing {

using lockd::testing::NetnsProcess;

void ClientTest::TearDown() {
  client_.reset();
  daemons_.clear();
  if (!pin_root_.empty()) {
    std::error_code error;
    std::filesystem::remove_all(pin_root_, error);
    EXPECT_FALSE(error) << "removing " << pin_root_ << ": " << error.message();
  }
  net_.reset();
}

std::string ClientTest::LockdPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir == nullptr ? "." : srcdir, "/lockd/lockd/lockd");
}

std::string ClientTest::ServerNetns(size_t server) const {
  return net_->Netns(server_roles_[server]);
}

absl::Status ClientTest::StartServers(
    int count, const std::vector<std::string>& lockd_flags) {
  if (absl::Status built = StartNetwork(count); !built.ok()) return built;
  for (int i = 0; i < count; ++i)
    if (absl::Status started = StartDaemon(i, lockd_flags); !started.ok())
      return started;
  return absl::OkStatus();
}

absl::Status ClientTest::StartNetwork(int count) {
  netns::TestNetwork::Options options;
  options.roles = {"client"};
  options.links.clear();
  for (int i = 0; i < count; ++i) {
    const std::string role =
        count == 1 ? "server" : absl::StrCat("server", i + 1);
    server_roles_.push_back(role);
    options.roles.push_back(role);
    options.links.push_back({role, "client"});
  }
  absl::StatusOr<std::unique_ptr<netns::TestNetwork>> net =
      netns::TestNetwork::Create(options);
  if (!net.ok()) return net.status();
  net_ = std::move(*net);

  lockd::testing::RemoveStalePinRoots("lockd-clienttest-");
  pin_root_ = absl::StrCat("/sys/fs/bpf/lockd-clienttest-", getpid());
  absl::StatusOr<std::string> keys =
      lockd::testing::WriteTestKeyFile(::testing::TempDir());
  if (!keys.ok()) return keys.status();
  key_file_ = *std::move(keys);
  daemons_.resize(count);
  return absl::OkStatus();
}

absl::Status ClientTest::StartDaemon(
    size_t server, const std::vector<std::string>& lockd_flags) {
  const netns::Interface& veth = net_->links()[server].server;
  std::vector<std::string> argv = {
      LockdPath(),
      absl::StrCat("--interface=", veth.name),
      absl::StrCat("--instance=clienttest-", getpid(), "-", server),
      absl::StrCat("--pin_root=", pin_root_),
      // On the veth, not loopback: the client reaches it from its
      // namespace when UDP fails.
      absl::StrCat("--grpc_listen=", veth.ipv4, ":", kGrpcPort),
      absl::StrCat("--key_file=", key_file_),
      // Fresh instances that never served: no grace period to wait out.
      "--grace_ms=0",
  };
  argv.insert(argv.end(), lockd_flags.begin(), lockd_flags.end());
  absl::StatusOr<std::unique_ptr<NetnsProcess>> daemon =
      NetnsProcess::Start(ServerNetns(server), argv);
  if (!daemon.ok()) return daemon.status();
  absl::StatusOr<std::string> ready =
      (*daemon)->ReadLineContaining("ready", lockd::testing::kStartTimeout);
  if (!ready.ok()) return ready.status();
  daemons_[server] = std::move(*daemon);
  return absl::OkStatus();
}

absl::Status ClientTest::StartServersAndClient(
    int count, const std::vector<std::string>& lockd_flags) {
  if (absl::Status started = StartServers(count, lockd_flags); !started.ok())
    return started;
  absl::StatusOr<std::unique_ptr<Client>> client = NewClient(Options());
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  return absl::OkStatus();
}

absl::Status ClientTest::StopDaemon(size_t server) {
  NetnsProcess& daemon = *daemons_[server];
  if (absl::Status signalled = daemon.Signal(SIGTERM); !signalled.ok())
    return signalled;
  absl::StatusOr<int> exit_code = daemon.Wait(lockd::testing::kStopTimeout);
  if (!exit_code.ok()) return exit_code.status();
  if (*exit_code != 0)
    return absl::InternalError(absl::StrCat("lockd of ", server_roles_[server],
                                            " exited with ", *exit_code));
  return absl::OkStatus();
}

absl::Status ClientTest::KillDaemon(size_t server) {
  NetnsProcess& daemon = *daemons_[server];
  if (absl::Status signalled = daemon.Signal(SIGKILL); !signalled.ok())
    return signalled;
  return daemon.Wait(lockd::testing::kStopTimeout).status();
}

absl::Status ClientTest::RemoveState(size_t server) {
  std::error_code error;
  std::filesystem::remove_all(
      absl::StrCat(pin_root_, "/clienttest-", getpid(), "-", server), error);
  if (error)
    return absl::InternalError(absl::StrCat("removing the pins of server ",
                                            server, ": ", error.message()));
  return absl::OkStatus();
}

absl::Status ClientTest::LinkDown(size_t server) {
  const std::string command =
      absl::StrCat("ip -n ", ServerNetns(server), " link set dev ",
                   net_->links()[server].server.name, " down");
  if (std::system(command.c_str()) != 0)
    return absl::InternalError(absl::StrCat("failed: ", command));
  return absl::OkStatus();
}

ClientOptions ClientTest::Options() const {
  ClientOptions options;
  // A client of its own: its sequence numbers are its own.
  options.client_id = lockd::testing::NextTestClientId();
  options.key = lockd::testing::TestKey(options.client_id);
  for (size_t i = 0; i < server_roles_.size(); ++i) {
    const std::string& ip = net_->links()[i].server.ipv4;
    options.servers.push_back({server_roles_[i], absl::StrCat(ip, ":20231"),
                               absl::StrCat(ip, ":", kGrpcPort)});
  }
  return options;
}

absl::StatusOr<std::unique_ptr<Client>> ClientTest::NewClient(
    const ClientOptions& options) {
  absl::StatusOr<std::unique_ptr<Client>> client =
      absl::InternalError("the client thread did not run");
  absl::Status joined =
      netns::RunIn(ClientNetns(), [&] { client = Client::Create(options); });
  if (!joined.ok()) return joined;
  return client;
}

void ClientTest::RunInClient(int threads, const std::function<void(int)>& fn) {
  std::vector<std::thread> running;
  for (int i = 0; i < threads; ++i)
    running.push_back(SpawnInClient([&fn, i] { fn(i); }));
  for (std::thread& thread : running)
    if (thread.joinable()) thread.join();
}

std::thread ClientTest::SpawnInClient(std::function<void()> fn) {
  absl::StatusOr<std::thread> thread = netns::SpawnIn(ClientNetns(), fn);
  if (!thread.ok()) {
    ADD_FAILURE() << "joining the client namespace: " << thread.status();
    return std::thread();
  }
  return std::move(*thread);
}

// --- FencedCounterFile -------------------------------------------------------

namespace {

// The file's content: counter value, then the fence of its last writer.
using CounterRecord = std::array<uint64_t, 2>;

absl::StatusOr<CounterRecord> ReadRecord(int fd, const std::string& path) {
  CounterRecord record{};
  const ssize_t got = pread(fd, record.data(), sizeof(record), 0);
  if (got != static_cast<ssize_t>(sizeof(record)))
    return absl::DataLossError(
        absl::StrCat(path, ": short read (", got, " bytes)"));
  return record;
}

absl::Status WriteRecord(int fd, const std::string& path,
                         const CounterRecord& record) {
  if (pwrite(fd, record.data(), sizeof(record), 0) !=
      static_cast<ssize_t>(sizeof(record)))
    return absl::ErrnoToStatus(errno, absl::StrCat("writing ", path));
  return absl::OkStatus();
}

}  // namespace

bool Eventually(const std::function<bool()>& done) {
  const absl::Time give_up = absl::Now() + kPatience;
  while (!done()) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

DaemonAdmin::DaemonAdmin(const std::string& ip) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  stub_ = v1::AdminService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat(ip, ":", kGrpcPort),
                                grpc::InsecureChannelCredentials(), arguments));
}

namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace

absl::StatusOr<uint64_t> DaemonAdmin::Counter(const std::string& name) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  v1::GetStatsResponse response;
  const grpc::Status status =
      stub_->GetStats(&context, v1::GetStatsRequest(), &response);
  if (!status.ok()) return FromGrpc(status);
  auto it = response.counters().find(name);
  if (it == response.counters().end())
    return absl::NotFoundError(absl::StrCat("no counter ", name));
  return it->second;
}

absl::StatusOr<v1::GetLockResponse> DaemonAdmin::Lock(const std::string& name) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  v1::GetLockRequest request;
  request.set_lock_id(LockIdForName(name));
  v1::GetLockResponse response;
  const grpc::Status status = stub_->GetLock(&context, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return response;
}

absl::StatusOr<v1::HealthResponse> DaemonAdmin::Health() {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  v1::HealthResponse response;
  const grpc::Status status =
      stub_->Health(&context, v1::HealthRequest(), &response);
  if (!status.ok()) return FromGrpc(status);
  return response;
}

absl::Status FencedCounterFile::Reset() {
  netns::ScopedFd fd(
      open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, path_);
  return WriteRecord(fd.get(), path_, {0, 0});
}

absl::Status FencedCounterFile::Increment(uint64_t fence) {
  netns::ScopedFd fd(open(path_.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, path_);
  absl::StatusOr<CounterRecord> record = ReadRecord(fd.get(), path_);
  if (!record.ok()) return record.status();
  if (fence <= (*record)[1])
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": write with fence ", fence,
                     " after a write with fence ", (*record)[1]));
  return WriteRecord(fd.get(), path_, {(*record)[0] + 1, fence});
}

absl::StatusOr<uint64_t> FencedCounterFile::Value() const {
  netns::ScopedFd fd(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, path_);
  absl::StatusOr<CounterRecord> record = ReadRecord(fd.get(), path_);
  if (!record.ok()) return record.status();
  return (*record)[0];
}

absl::Status IncrementUnderLock(Client& client, absl::string_view lock_name,
                                FencedCounterFile& counter, int increments) {
  for (int i = 0; i < increments; ++i) {
    absl::StatusOr<ScopedLock> lock =
        ScopedLock::Acquire(client, lock_name, Mode::kExclusive);
    if (!lock.ok()) return lock.status();
    if (absl::Status incremented = counter.Increment(lock->fence());
        !incremented.ok())
      return incremented;
    if (absl::Status released = lock->Release(); !released.ok())
      return released;
  }
  return absl::OkStatus();
}

}  // namespace lockd::client::testing
