// grpc_lock_client: one transaction over lockd's gRPC LockService, driven by
// a test. Acquires --lock_id exclusively for --txn_id (blocking, policy
// WAIT) and prints "granted <fence>"; then waits for a line on stdin,
// releases, prints "released <fence>" and exits 0. Any failure: the error on
// stderr, "failed <grpc code>" on stdout and exit code 1.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "abi/keys.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "lockd/grpc_conventions.h"
#include "proto/lockd.grpc.pb.h"
#include "tests/test_keys.h"

ABSL_FLAG(std::string, server, lockd::DefaultGrpcAddress(),
          "lockd's gRPC address.");
ABSL_FLAG(uint64_t, lock_id, 0, "Lock to acquire.");
ABSL_FLAG(uint64_t, txn_id, 0, "Transaction (owner) id.");
ABSL_FLAG(uint32_t, client_id, LOCKD_CLIENT_NONE,
          "Test client (tests/test_keys.h) to sign requests as; 0: unsigned.");
ABSL_FLAG(bool, release_only, false,
          "Only release (a hold made some other way, e.g. over UDP).");

namespace {

int Fail(const char* what, const grpc::Status& status) {
  fprintf(stderr, "grpc_lock_client: %s: code %d: %s\n", what,
          static_cast<int>(status.error_code()),
          status.error_message().c_str());
  // For the test, which reads stdout: "failed <code>".
  printf("failed %d\n", static_cast<int>(status.error_code()));
  fflush(stdout);
  return 1;
}

// `request` signed as --client_id with a new seq; empty when unsigned.
std::string Signed(lockd::Message request) {
  const uint32_t client_id = absl::GetFlag(FLAGS_client_id);
  if (client_id == LOCKD_CLIENT_NONE) return "";
  request.lock_id = absl::GetFlag(FLAGS_lock_id);
  request.txn_id = absl::GetFlag(FLAGS_txn_id);
  const lockd::EncodedMessage bytes =
      lockd::testing::TestIdentity(client_id).Sign(
          request, lockd::testing::NextTestSeq());
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

int Release(lockd::v1::LockService::Stub& stub) {
  lockd::v1::ReleaseRequest release;
  release.set_lock_id(absl::GetFlag(FLAGS_lock_id));
  release.set_txn_id(absl::GetFlag(FLAGS_txn_id));
  lockd::Message signed_release;
  signed_release.opcode = LOCKD_OP_RELEASE;
  lockd::v1::ReleaseResponse released;
  // Through a restart of the server the connection breaks: the release is
  // tried again (UNAVAILABLE means it did not reach a server) until it is
  // back.
  grpc::Status done;
  for (int attempt = 0; attempt < 100; ++attempt) {
    grpc::ClientContext release_context;
    release.set_signed_request(Signed(signed_release));  // a new seq each
    release_context.set_wait_for_ready(true);
    release_context.set_deadline(std::chrono::system_clock::now() +
                                 std::chrono::seconds(20));
    done = stub.Release(&release_context, release, &released);
    if (done.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!done.ok()) return Fail("Release", done);
  printf("released %llu\n", static_cast<unsigned long long>(released.fence()));
  return 0;
}

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "grpc_lock_client --server=ADDR --lock_id=N --txn_id=N");
  absl::ParseCommandLine(argc, argv);
  grpc::ChannelArguments arguments;
  // A proxy from the environment must not intercept a loopback call.
  arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::unique_ptr<lockd::v1::LockService::Stub> stub =
      lockd::v1::LockService::NewStub(grpc::CreateCustomChannel(
          absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(),
          arguments));

  if (absl::GetFlag(FLAGS_release_only)) return Release(*stub);

  lockd::v1::AcquireRequest acquire;
  acquire.set_lock_id(absl::GetFlag(FLAGS_lock_id));
  acquire.set_txn_id(absl::GetFlag(FLAGS_txn_id));
  acquire.set_mode(lockd::v1::MODE_EXCLUSIVE);
  acquire.set_policy(lockd::v1::POLICY_WAIT);
  lockd::Message signed_acquire;
  signed_acquire.opcode = LOCKD_OP_ACQUIRE;
  signed_acquire.mode = LOCKD_MODE_EXCLUSIVE;
  acquire.set_signed_request(Signed(signed_acquire));
  lockd::v1::AcquireResponse granted;
  grpc::ClientContext acquire_context;
  // No deadline: the test decides how long a grant may take.
  const grpc::Status acquired =
      stub->Acquire(&acquire_context, acquire, &granted);
  if (!acquired.ok()) return Fail("Acquire", acquired);
  printf("granted %llu\n", static_cast<unsigned long long>(granted.fence()));
  fflush(stdout);

  std::string line;
  std::getline(std::cin, line);
  return Release(*stub);
}
