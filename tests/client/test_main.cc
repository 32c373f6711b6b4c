// main() of the client end-to-end tests. Run normally, it fails at once,
// with the reason, when the kernel does not let this process load BPF, and
// runs the tests. Run as
//   <test binary> --counter_worker <udp address> <grpc address> <file>
//                 <lock name> <threads> <increments per thread> <client id>
// it is one of the worker processes of the mutual exclusion test: started
// in the client namespace, it increments the shared counter file under the
// lock and prints "counter worker done" (or why not, exiting 1).
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/client/client_fixture.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/test_keys.h"

namespace lockd::client::testing {
namespace {

int RunCounterWorker(int argc, char** argv) {
  int threads = 0, increments = 0;
  uint32_t client_id = 0;
  if (argc != 9 || !absl::SimpleAtoi(argv[6], &threads) ||
      !absl::SimpleAtoi(argv[7], &increments) ||
      !absl::SimpleAtoi(argv[8], &client_id)) {
    fprintf(stderr, "counter worker: bad arguments\n");
    return 2;
  }
  ClientOptions options;
  options.servers = {{"server", argv[2], argv[3]}};
  options.client_id = client_id;
  options.key = lockd::testing::TestKey(client_id);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) {
    fprintf(stderr, "counter worker: %s\n", client.status().ToString().c_str());
    return 1;
  }
  FencedCounterFile counter(argv[4]);
  absl::Mutex mu;
  absl::Status first_error;
  std::vector<std::thread> running;
  for (int i = 0; i < threads; ++i) {
    running.emplace_back([&] {
      absl::Status done =
          IncrementUnderLock(**client, argv[5], counter, increments);
      absl::MutexLock lock(&mu);
      if (first_error.ok()) first_error = done;
    });
  }
  for (std::thread& thread : running) thread.join();
  if (!first_error.ok()) {
    printf("counter worker failed: %s\n", first_error.ToString().c_str());
    return 1;
  }
  printf("counter worker done\n");
  return 0;
}

}  // namespace
}  // namespace lockd::client::testing

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--counter_worker") == 0)
    return lockd::client::testing::RunCounterWorker(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::RequireBpf(/*private_netns=*/false);
  return RUN_ALL_TESTS();
}
