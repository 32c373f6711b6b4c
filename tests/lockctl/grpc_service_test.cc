// LockService and AdminService end to end: a real lockd::Server (no fast
// path attached; its table is loaded in the kernel, which needs root) behind
// GrpcServer, called over a loopback TCP channel. Checks the gRPC codes, the
// reply-status metadata and the admin token that proto/lockd.proto
// promises, and that a waiting call that goes away leaves nothing behind.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lockd/grpc_conventions.h"
#include "lockd/grpc_server.h"
#include "lockd/server.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd {
namespace {

constexpr char kAdminToken[] = "test-admin-token";

// Server::Start pins its maps under pin_root, which must be a BPF file
// system. The test mounts its own under TEST_TMPDIR, in a private mount
// namespace, so nothing lands in /sys/fs/bpf and no mount or pin outlives the
// test, even when it crashes. Returns why that failed; empty when it worked.
// Must first run before any thread starts: unshare(CLONE_NEWNS) refuses a
// process whose threads share its file system information.
std::string MountPrivateBpffs(const std::string& path) {
  if (unshare(CLONE_NEWNS) != 0) {
    return absl::StrCat("unshare(CLONE_NEWNS): ", strerror(errno));
  }
  // Else the mount below would propagate to the host's namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::StrCat("making / private: ", strerror(errno));
  }
  if (mkdir(path.c_str(), 0700) != 0 ||
      mount("bpf", path.c_str(), "bpf", 0, nullptr) != 0) {
    return absl::StrCat("mounting a BPF file system on ", path, ": ",
                        strerror(errno));
  }
  return "";
}

// Long enough that no assertion depends on how fast the machine is; the
// deadline only turns a hang into a failure.
constexpr absl::Duration kPatience = absl::Seconds(30);

// A finished call: status, response and the rejection's lockd.v1.ReplyStatus
// name from the trailing metadata ("" when there is none).
template <typename Response>
struct Result {
  grpc::Status status;
  Response response;
  std::string reply_status;
  std::string epoch;  // lock calls: the server's, from the trailers
};

// Calls `method` of `stub`; `bearer`, unless empty, is sent as
// "authorization: Bearer <bearer>".
template <typename Stub, typename Request, typename Response>
Result<Response> Call(Stub& stub,
                      grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                   const Request&, Response*),
                      const Request& request,
                      absl::Duration timeout = kPatience,
                      const std::string& bearer = "") {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!bearer.empty()) {
    context.AddMetadata(kAuthorizationMetadataKey,
                        absl::StrCat(kBearerPrefix, bearer));
  }
  Result<Response> result;
  result.status = (stub.*method)(&context, request, &result.response);
  const auto& trailers = context.GetServerTrailingMetadata();
  if (const auto found = trailers.find(kReplyStatusMetadataKey);
      found != trailers.end()) {
    result.reply_status.assign(found->second.data(), found->second.size());
  }
  if (const auto found = trailers.find(kEpochMetadataKey);
      found != trailers.end()) {
    result.epoch.assign(found->second.data(), found->second.size());
  }
  return result;
}

using LockStub = v1::LockService::Stub;
using AdminStub = v1::AdminService::Stub;

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmpdir = std::getenv("TEST_TMPDIR");
    ASSERT_NE(tmpdir, nullptr) << "run under bazel test";
    ServerOptions options;  // no interface: fast path off
    options.instance = absl::StrCat("grpctest-", getpid());
    options.pin_root = absl::StrCat(tmpdir, "/bpf");
    static const std::string* const bpffs_refusal =
        new std::string(MountPrivateBpffs(options.pin_root));
    ASSERT_TRUE(bpffs_refusal->empty())
        << "needs root for a private BPF file system: " << *bpffs_refusal;
    // An ephemeral UDP port: a lockd running on this host keeps its own.
    options.datapath.port = 0;
    // Unsigned calls over loopback are served (a lab); the signed ones
    // are checked against the keys the tests set.
    options.open_subnets = {Subnet{htonl(INADDR_LOOPBACK), 8}};
    key_file_ = absl::StrCat(tmpdir, "/clients-", getpid(), ".keys");
    std::remove(key_file_.c_str());
    std::ofstream(key_file_) << "# none yet\n";
    options.key_file = key_file_;
    Configure(options);
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);

    absl::StatusOr<std::unique_ptr<GrpcServer>> grpc_server =
        GrpcServer::Start(server_.get(), "127.0.0.1:0", kAdminToken);
    ASSERT_TRUE(grpc_server.ok()) << grpc_server.status();
    grpc_server_ = std::move(*grpc_server);
    const int port = grpc_server_->port();

    grpc::ChannelArguments arguments;
    // A proxy from the environment must not intercept a loopback call.
    arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                             grpc::InsecureChannelCredentials(),
                                             arguments);
    locks_ = v1::LockService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
  }

  // What a test's server is started with, beyond the fixture's options.
  virtual void Configure(ServerOptions& /*options*/) {}

  void TearDown() override {
    // The gRPC server borrows server_: it goes first.
    grpc_server_.reset();
    if (server_) server_->Unpin();
    server_.reset();
  }

  Result<v1::AcquireResponse> Acquire(const v1::AcquireRequest& request,
                                      absl::Duration timeout = kPatience) {
    return Call(*locks_, &LockStub::Acquire, request, timeout);
  }

  Result<v1::AcquireResponse> Acquire(uint64_t lock_id, uint64_t txn_id,
                                      v1::Policy policy = v1::POLICY_WAIT,
                                      absl::Duration timeout = kPatience) {
    v1::AcquireRequest request;
    request.set_lock_id(lock_id);
    request.set_txn_id(txn_id);
    request.set_mode(v1::MODE_EXCLUSIVE);
    request.set_policy(policy);
    return Acquire(request, timeout);
  }

  Result<v1::ReleaseResponse> Release(uint64_t lock_id, uint64_t txn_id) {
    v1::ReleaseRequest request;
    request.set_lock_id(lock_id);
    request.set_txn_id(txn_id);
    return Call(*locks_, &LockStub::Release, request);
  }

  Result<v1::GetLockResponse> GetLock(uint64_t lock_id) {
    v1::GetLockRequest request;
    request.set_lock_id(lock_id);
    return Call(*admin_, &AdminStub::GetLock, request);
  }

  Result<v1::ForceReleaseResponse> ForceRelease(uint64_t lock_id,
                                                uint64_t txn_id,
                                                const std::string& bearer,
                                                uint64_t fence = 0) {
    v1::ForceReleaseRequest request;
    request.set_lock_id(lock_id);
    request.set_txn_id(txn_id);
    request.set_fence(fence);
    return Call(*admin_, &AdminStub::ForceRelease, request, kPatience, bearer);
  }

  // `request` signed as `client_id` with `key` and a new seq, as the
  // client library sends it.
  std::string Signed(Message request, uint32_t client_id,
                     const ClientKey& key) {
    const EncodedMessage bytes =
        ClientIdentity{client_id, key}.Sign(request, seqs_.Next());
    return std::string(bytes.begin(), bytes.end());
  }

  // A signed Acquire (exclusive, WAIT) of lock_id for txn_id.
  Result<v1::AcquireResponse> SignedAcquire(uint64_t lock_id, uint64_t txn_id,
                                            uint32_t client_id,
                                            const ClientKey& key) {
    Message m;
    m.opcode = LOCKD_OP_ACQUIRE;
    m.mode = LOCKD_MODE_EXCLUSIVE;
    m.lock_id = lock_id;
    m.txn_id = txn_id;
    v1::AcquireRequest request;
    request.set_signed_request(Signed(m, client_id, key));
    return Acquire(request);
  }

  Result<v1::ReleaseResponse> SignedRelease(uint64_t lock_id, uint64_t txn_id,
                                            uint32_t client_id,
                                            const ClientKey& key) {
    Message m;
    m.opcode = LOCKD_OP_RELEASE;
    m.lock_id = lock_id;
    m.txn_id = txn_id;
    v1::ReleaseRequest request;
    request.set_signed_request(Signed(m, client_id, key));
    return Call(*locks_, &LockStub::Release, request);
  }

  Result<v1::SetClientKeyResponse> SetClientKey(uint32_t client_id,
                                                const std::string& key,
                                                const std::string& bearer) {
    v1::SetClientKeyRequest request;
    request.set_client_id(client_id);
    request.set_key(key);
    return Call(*admin_, &AdminStub::SetClientKey, request, kPatience, bearer);
  }

  std::string KeyFileText() {
    std::ifstream in(key_file_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Polls GetLock until `txn_id` is in the queue (true) or `in_queue` is
  // false and it is not; false when that does not happen in time.
  bool AwaitQueued(uint64_t lock_id, uint64_t txn_id, bool in_queue) {
    const absl::Time give_up = absl::Now() + kPatience;
    while (absl::Now() < give_up) {
      Result<v1::GetLockResponse> lock = GetLock(lock_id);
      bool found = false;
      for (const v1::Waiter& waiter : lock.response.queue()) {
        found |= waiter.txn_id() == txn_id && !waiter.cancelled();
      }
      if (lock.status.ok() && found == in_queue) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<GrpcServer> grpc_server_;
  std::unique_ptr<v1::LockService::Stub> locks_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::string key_file_;
  SeqSource seqs_;
};

TEST_F(GrpcServiceTest, AcquireByNameIsGrantedWithAFence) {
  v1::AcquireRequest request;
  request.set_lock_name("orders/42");
  request.set_txn_id(1);
  request.set_mode(v1::MODE_EXCLUSIVE);
  const Result<v1::AcquireResponse> acquired = Acquire(request);

  ASSERT_TRUE(acquired.status.ok()) << acquired.status.error_message();
  EXPECT_EQ(acquired.response.status(), v1::REPLY_STATUS_OK);
  EXPECT_EQ(acquired.response.lock_id(), LockIdForName("orders/42"));
  EXPECT_GT(acquired.response.fence(), 0u);
  EXPECT_GT(acquired.response.lease_ms(), 0u);

  const Result<v1::GetLockResponse> lock = GetLock(LockIdForName("orders/42"));
  ASSERT_TRUE(lock.status.ok()) << lock.status.error_message();
  ASSERT_EQ(lock.response.holders_size(), 1);
  const v1::Holder& holder = lock.response.holders(0);
  EXPECT_EQ(holder.txn_id(), 1u);
  EXPECT_EQ(holder.mode(), v1::MODE_EXCLUSIVE);
  EXPECT_EQ(holder.fence(), acquired.response.fence());
  EXPECT_GT(holder.lease_left_ms(), 0);
  EXPECT_EQ(holder.client_address(), "grpc");
}

TEST_F(GrpcServiceTest, NoWaitConflictIsAbortedAndNamesLockAndTxn) {
  ASSERT_TRUE(Acquire(7, 1).status.ok());

  const Result<v1::AcquireResponse> rejected =
      Acquire(7, 2, v1::POLICY_NO_WAIT);

  EXPECT_EQ(rejected.status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(rejected.reply_status, "REPLY_STATUS_CONFLICT");
  EXPECT_TRUE(absl::StrContains(rejected.status.error_message(),
                                "lock 0x0000000000000007"))
      << rejected.status.error_message();
  EXPECT_TRUE(absl::StrContains(rejected.status.error_message(), "txn 2"))
      << rejected.status.error_message();
}

TEST_F(GrpcServiceTest, ReleaseByNonHolderIsFailedPrecondition) {
  ASSERT_TRUE(Acquire(7, 1).status.ok());

  const Result<v1::ReleaseResponse> released = Release(7, 2);

  EXPECT_EQ(released.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(released.reply_status, "REPLY_STATUS_NOT_HOLDER");
}

TEST_F(GrpcServiceTest, WaiterIsGrantedWhenTheHolderReleases) {
  const Result<v1::AcquireResponse> first = Acquire(7, 1);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();

  Result<v1::AcquireResponse> second;
  std::thread waiter([&] { second = Acquire(7, 2); });
  ASSERT_TRUE(AwaitQueued(7, 2, /*in_queue=*/true));
  const Result<v1::ReleaseResponse> released = Release(7, 1);
  waiter.join();

  ASSERT_TRUE(released.status.ok()) << released.status.error_message();
  EXPECT_EQ(released.response.fence(), first.response.fence());
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_GT(second.response.fence(), first.response.fence());
}

TEST_F(GrpcServiceTest, RpcDeadlineWhileQueuedCancelsTheWait) {
  ASSERT_TRUE(Acquire(7, 1).status.ok());

  const Result<v1::AcquireResponse> timed_out =
      Acquire(7, 2, v1::POLICY_WAIT, absl::Milliseconds(200));

  EXPECT_EQ(timed_out.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The client gives up at the deadline; the server cancels the wait at the
  // same deadline, a moment later.
  EXPECT_TRUE(AwaitQueued(7, 2, /*in_queue=*/false));
}

TEST_F(GrpcServiceTest, WaitMsCancelsTheWaitWithWaitExpired) {
  ASSERT_TRUE(Acquire(7, 1).status.ok());
  v1::AcquireRequest request;
  request.set_lock_id(7);
  request.set_txn_id(2);
  request.set_mode(v1::MODE_SHARED);
  request.set_wait_ms(100);

  const Result<v1::AcquireResponse> expired = Acquire(request);

  EXPECT_EQ(expired.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(expired.reply_status, "REPLY_STATUS_WAIT_EXPIRED");
  const Result<v1::GetLockResponse> lock = GetLock(7);
  ASSERT_TRUE(lock.status.ok()) << lock.status.error_message();
  EXPECT_EQ(lock.response.queue_size(), 0);
}

TEST_F(GrpcServiceTest, MalformedRequestsAreInvalidArgument) {
  v1::AcquireRequest no_lock;
  no_lock.set_txn_id(1);
  no_lock.set_mode(v1::MODE_EXCLUSIVE);
  v1::AcquireRequest empty_name = no_lock;
  empty_name.set_lock_name("");
  v1::AcquireRequest no_mode;
  no_mode.set_lock_id(7);
  v1::AcquireRequest unknown_policy = no_lock;
  unknown_policy.set_lock_id(7);
  unknown_policy.set_policy(static_cast<v1::Policy>(7));

  for (const v1::AcquireRequest& request :
       {no_lock, empty_name, no_mode, unknown_policy}) {
    EXPECT_EQ(Acquire(request).status.error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << request.ShortDebugString();
  }
}

TEST_F(GrpcServiceTest, GetLockOfAnUnusedLockIsNotFound) {
  EXPECT_EQ(GetLock(12345).status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, ForceReleaseNeedsTheAdminTokenAndGrantsTheNext) {
  const Result<v1::AcquireResponse> holder = Acquire(7, 1);
  ASSERT_TRUE(holder.status.ok()) << holder.status.error_message();
  Result<v1::AcquireResponse> next;
  std::thread waiter([&] { next = Acquire(7, 2); });
  ASSERT_TRUE(AwaitQueued(7, 2, /*in_queue=*/true));

  const Result<v1::ForceReleaseResponse> anonymous = ForceRelease(7, 1, "");
  const Result<v1::ForceReleaseResponse> wrong = ForceRelease(7, 1, "guess");
  const Result<v1::ForceReleaseResponse> stale =
      ForceRelease(7, 1, kAdminToken, holder.response.fence() + 1);
  const Result<v1::ForceReleaseResponse> forced =
      ForceRelease(7, 1, kAdminToken, holder.response.fence());
  waiter.join();

  EXPECT_EQ(anonymous.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stale.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(stale.reply_status, "REPLY_STATUS_NOT_HOLDER");
  ASSERT_TRUE(forced.status.ok()) << forced.status.error_message();
  ASSERT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_GT(next.response.fence(), holder.response.fence());
  // The former holder learns why its hold is gone.
  const Result<v1::ReleaseResponse> late = Release(7, 1);
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(late.reply_status, "REPLY_STATUS_FORCE_RELEASED");
}

TEST_F(GrpcServiceTest, ListLocksPagesThroughEveryLockOnce) {
  // Enough locks that pages of 100 take several segments each.
  std::vector<uint64_t> want;
  for (uint64_t lock_id = 1; lock_id <= 300; ++lock_id) {
    ASSERT_TRUE(Acquire(lock_id, 1).status.ok());
    want.push_back(lock_id);
  }

  std::vector<uint64_t> listed;
  int pages = 0;
  v1::ListLocksRequest request;
  request.set_page_size(100);
  do {
    const Result<v1::ListLocksResponse> page =
        Call(*admin_, &AdminStub::ListLocks, request);
    ASSERT_TRUE(page.status.ok()) << page.status.error_message();
    ++pages;
    const bool last = page.response.next_page_token().empty();
    if (!last) {
      EXPECT_GE(page.response.locks_size(), 100);
    }
    uint64_t previous = 0;
    for (const v1::LockSummary& lock : page.response.locks()) {
      EXPECT_GT(lock.lock_id(), previous) << "a page in lock id order";
      previous = lock.lock_id();
      listed.push_back(lock.lock_id());
      EXPECT_EQ(lock.holders(), 1u);
      EXPECT_EQ(lock.mode(), v1::MODE_EXCLUSIVE);
    }
    request.set_page_token(page.response.next_page_token());
  } while (!request.page_token().empty());

  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, want);
  EXPECT_GE(pages, 2);
}

TEST_F(GrpcServiceTest, ListLocksRejectsAForeignPageToken) {
  v1::ListLocksRequest request;
  request.set_page_token("not-a-token");

  EXPECT_EQ(Call(*admin_, &AdminStub::ListLocks, request).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(GrpcServiceTest, GetStatsHasEveryCounterAndTheMemory) {
  ASSERT_TRUE(Acquire(7, 1).status.ok());
  const Result<v1::GetStatsResponse> stats =
      Call(*admin_, &AdminStub::GetStats, v1::GetStatsRequest());

  ASSERT_TRUE(stats.status.ok()) << stats.status.error_message();
  for (absl::string_view name : StatNames()) {
    EXPECT_EQ(stats.response.counters().count(std::string(name)), 1u) << name;
  }
  EXPECT_EQ(stats.response.counters().at("daemon_grpc_acquire"), 1u);
  const v1::MemoryUsage& memory = stats.response.memory();
  EXPECT_EQ(memory.locks(), 1u);
  EXPECT_GT(memory.total_bytes(), 0u);
  EXPECT_LE(memory.total_bytes(), memory.budget_bytes());
  EXPECT_EQ(memory.total_bytes(),
            memory.fixed_bytes() + memory.table_bytes() + memory.pool_bytes());
  EXPECT_EQ(memory.bytes_per_block(), 96u);

  const Result<v1::GetMemoryResponse> alone =
      Call(*admin_, &AdminStub::GetMemory, v1::GetMemoryRequest());
  ASSERT_TRUE(alone.status.ok()) << alone.status.error_message();
  EXPECT_EQ(alone.response.memory().locks(), 1u);
}

TEST_F(GrpcServiceTest, ReleaseByTheWaiterCancelsItsWaitingAcquire) {
  ASSERT_TRUE(Acquire(7, 1).status.ok());
  Result<v1::AcquireResponse> waited;
  std::thread waiter([&] { waited = Acquire(7, 2); });
  ASSERT_TRUE(AwaitQueued(7, 2, /*in_queue=*/true));

  const Result<v1::ReleaseResponse> cancelled = Release(7, 2);
  waiter.join();

  ASSERT_TRUE(cancelled.status.ok()) << cancelled.status.error_message();
  EXPECT_EQ(cancelled.response.fence(), 0u);  // a wait, not a hold, ended
  EXPECT_EQ(waited.status.error_code(), grpc::StatusCode::CANCELLED)
      << waited.status.error_message();
}

TEST_F(GrpcServiceTest, CallsThatGiveUpLeaveNothingHeldOrQueued) {
  // Many waiters behind one holder give up at their deadlines while the
  // holder releases: whether each call's wait or a grant that raced its
  // cancellation is what remains, it is released.
  const Result<v1::AcquireResponse> first = Acquire(7, 1);
  ASSERT_TRUE(first.status.ok());
  constexpr int kWaiters = 16;
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i)
    waiters.emplace_back([&, i] {
      Acquire(7, 100 + i, v1::POLICY_WAIT, absl::Milliseconds(50 + 10 * i));
    });
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(Release(7, 1).status.ok());
  for (std::thread& waiter : waiters) waiter.join();

  const absl::Time give_up = absl::Now() + kPatience;
  grpc::StatusCode code = grpc::StatusCode::OK;
  while (absl::Now() < give_up) {
    code = GetLock(7).status.error_code();
    if (code == grpc::StatusCode::NOT_FOUND) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND)
      << "a caller that gave up still holds or waits";
}

TEST_F(GrpcServiceTest, ClientKeysAreSetWithTheTokenListedByIdAndRotated) {
  // Without the token: refused.
  EXPECT_EQ(SetClientKey(5, "", "wrong").status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // With it, and no key given: lockd makes one and returns it, once.
  Result<v1::SetClientKeyResponse> made = SetClientKey(5, "", kAdminToken);
  ASSERT_TRUE(made.status.ok()) << made.status.error_message();
  absl::StatusOr<ClientKey> first = ParseClientKey(made.response.key());
  ASSERT_TRUE(first.ok()) << made.response.key();
  EXPECT_NE(KeyFileText().find("\n5 " + made.response.key()), std::string::npos)
      << KeyFileText();
  // Listed by id, never by key.
  Result<v1::ListClientsResponse> listed =
      Call(*admin_, &AdminStub::ListClients, v1::ListClientsRequest());
  ASSERT_TRUE(listed.status.ok()) << listed.status.error_message();
  bool found = false;
  for (const v1::ClientSummary& c : listed.response.clients())
    found |= c.client_id() == 5 && !c.rotating();
  EXPECT_TRUE(found) << listed.response.DebugString();
  EXPECT_EQ(listed.response.DebugString().find(made.response.key()),
            std::string::npos);

  // Its signed calls are served; an unsigned or wrongly signed release of
  // its hold changes nothing.
  Result<v1::AcquireResponse> held = SignedAcquire(50, 1, 5, *first);
  ASSERT_TRUE(held.status.ok()) << held.status.error_message();
  EXPECT_EQ(Release(50, 1).status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // client 0: not its owner
  EXPECT_EQ(SignedRelease(50, 1, 5, ClientKey{first->k0, first->k1 ^ 1})
                .status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // Rotation: the old key works until the client signs with the new one.
  const std::string next_hex = "00112233445566778899aabbccddeeff";
  absl::StatusOr<ClientKey> next = ParseClientKey(next_hex);
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(SetClientKey(5, next_hex, kAdminToken).status.ok());
  EXPECT_TRUE(SignedAcquire(51, 1, 5, *first).status.ok());
  EXPECT_TRUE(SignedAcquire(52, 1, 5, *next).status.ok());
  EXPECT_EQ(SignedAcquire(53, 1, 5, *first).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  for (uint64_t lock : {50, 51, 52})
    EXPECT_TRUE(SignedRelease(lock, 1, 5, *next).status.ok()) << lock;

  // Removed: its requests fail, and the file forgets it.
  v1::RemoveClientRequest remove;
  remove.set_client_id(5);
  ASSERT_TRUE(
      Call(*admin_, &AdminStub::RemoveClient, remove, kPatience, kAdminToken)
          .status.ok());
  EXPECT_EQ(SignedAcquire(54, 1, 5, *next).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(KeyFileText().find("\n5 "), std::string::npos) << KeyFileText();
}

TEST_F(GrpcServiceTest, HealthReportsFastPathOffAndAFreshStart) {
  const Result<v1::HealthResponse> health =
      Call(*admin_, &AdminStub::Health, v1::HealthRequest());

  ASSERT_TRUE(health.status.ok()) << health.status.error_message();
  EXPECT_TRUE(health.response.serving());
  EXPECT_FALSE(health.response.datapath_attached());
  EXPECT_FALSE(health.response.restored());
}

TEST_F(GrpcServiceTest, LockCallsCarryTheServersEpochAnsweredOrRefused) {
  const Result<v1::HealthResponse> health =
      Call(*admin_, &AdminStub::Health, v1::HealthRequest());
  ASSERT_TRUE(health.status.ok()) << health.status.error_message();
  ASSERT_NE(health.response.epoch(), 0u);
  EXPECT_EQ(health.response.grace_left_ms(), 0u);
  const std::string epoch = absl::StrCat(health.response.epoch());

  const Result<v1::AcquireResponse> granted = Acquire(7, 1);
  ASSERT_TRUE(granted.status.ok()) << granted.status.error_message();
  EXPECT_EQ(granted.epoch, epoch);
  const Result<v1::AcquireResponse> refused = Acquire(7, 2, v1::POLICY_NO_WAIT);
  EXPECT_EQ(refused.reply_status, "REPLY_STATUS_CONFLICT");
  EXPECT_EQ(refused.epoch, epoch);
  EXPECT_EQ(Release(7, 3).epoch, epoch);  // not a holder
  EXPECT_EQ(Release(7, 1).epoch, epoch);
}

// A server started without an earlier table, with a grace period.
class GrpcGraceTest : public GrpcServiceTest {
 protected:
  void Configure(ServerOptions& options) override {
    options.datapath.grace_ms = 600'000;
  }
};

TEST_F(GrpcGraceTest, GraceRefusesAcquiresUntilTheOperatorEndsIt) {
  Result<v1::HealthResponse> health =
      Call(*admin_, &AdminStub::Health, v1::HealthRequest());
  ASSERT_TRUE(health.status.ok()) << health.status.error_message();
  EXPECT_GT(health.response.grace_left_ms(), 0u);

  const Result<v1::AcquireResponse> refused = Acquire(7, 1);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.reply_status, "REPLY_STATUS_GRACE");
  EXPECT_EQ(refused.epoch, absl::StrCat(health.response.epoch()));

  // Ending it takes the admin token.
  const Result<v1::EndGraceResponse> no_token =
      Call(*admin_, &AdminStub::EndGrace, v1::EndGraceRequest());
  EXPECT_FALSE(no_token.status.ok());
  EXPECT_TRUE(Acquire(7, 1).reply_status == "REPLY_STATUS_GRACE");

  const Result<v1::EndGraceResponse> ended =
      Call(*admin_, &AdminStub::EndGrace, v1::EndGraceRequest(), kPatience,
           kAdminToken);
  ASSERT_TRUE(ended.status.ok()) << ended.status.error_message();
  EXPECT_GT(ended.response.grace_left_ms(), 0u);
  health = Call(*admin_, &AdminStub::Health, v1::HealthRequest());
  EXPECT_EQ(health.response.grace_left_ms(), 0u);
  EXPECT_TRUE(Acquire(7, 1).status.ok());
  // Nothing left to end.
  EXPECT_EQ(Call(*admin_, &AdminStub::EndGrace, v1::EndGraceRequest(),
                 kPatience, kAdminToken)
                .response.grace_left_ms(),
            0u);
}

}  // namespace
}  // namespace lockd
