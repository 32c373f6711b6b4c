// The control plane's services over the reference model (ModelTable), as
// Server wires them over the kernel's table: for tests that need no root,
// no BPF and no network namespace. Time moves only when a test advances the
// table's clock.
#ifndef LOCKD_TESTS_CONTROL_PLANE_FIXTURE_H_
#define LOCKD_TESTS_CONTROL_PLANE_FIXTURE_H_

#include <memory>
#include <optional>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lockd/daemon_counters.h"
#include "lockd/dispatcher.h"
#include "lockd/expiry.h"
#include "lockd/lock_service.h"
#include "lockd/notifier.h"
#include "lockd/udp_socket.h"
#include "model/model_table.h"

namespace lockd::testing {

inline constexpr uint64_t kMs = 1000000;

// Where an Acquire's `done` puts its answer.
class Answer {
 public:
  AcquireDone Callback() {
    return [this](absl::StatusOr<lockd_reply> answer) {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(answer_.has_value()) << "done ran twice";
      answer_ = std::move(answer);
    };
  }
  // The answer, if done ran.
  std::optional<absl::StatusOr<lockd_reply>> Get() const {
    absl::MutexLock lock(&mu_);
    return answer_;
  }

 private:
  mutable absl::Mutex mu_;
  std::optional<absl::StatusOr<lockd_reply>> answer_ ABSL_GUARDED_BY(mu_);
};

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Port 0: any free port, on every address of this (unprivileged) host.
    absl::StatusOr<std::unique_ptr<UdpSocket>> socket =
        UdpSocket::Open(0, /*epoch=*/1);
    ASSERT_TRUE(socket.ok()) << socket.status();
    socket_ = std::move(*socket);
    notifier_ = std::make_unique<Notifier>(socket_.get(), &calls_, &counters_);
    dispatcher_ =
        std::make_unique<Dispatcher>(&table_, notifier_.get(), &counters_);
    service_ =
        std::make_unique<LockService>(dispatcher_.get(), &calls_, &counters_);
    expiry_ = std::make_unique<Expiry>(dispatcher_.get(), &counters_);
  }
  void TearDown() override {
    EXPECT_TRUE(table_.CheckInvariants().ok()) << table_.CheckInvariants();
  }

  AcquireArgs Exclusive(uint64_t lock, uint64_t txn, uint32_t lease_ms = 0,
                        uint32_t wait_ms = 0) {
    AcquireArgs args;
    args.lock_id = lock;
    args.txn_id = txn;
    args.mode = LOCKD_MODE_EXCLUSIVE;
    args.lease_ms = lease_ms;
    args.wait_ms = wait_ms;
    return args;
  }

  // Acquires and expects an immediate GRANTED; returns its fence.
  uint64_t Hold(uint64_t lock, uint64_t txn, uint32_t lease_ms = 0) {
    Answer answer;
    service_->Acquire(Exclusive(lock, txn, lease_ms), answer.Callback());
    auto got = answer.Get();
    EXPECT_TRUE(got.has_value() && got->ok() &&
                (*got)->opcode == LOCKD_OP_GRANTED);
    return got.has_value() && got->ok() ? (*got)->fence : 0;
  }

  uint64_t Counter(DaemonCounters::Counter c) const { return counters_.Get(c); }

  ModelTable table_;
  DaemonCounters counters_;
  LocalCalls calls_;
  std::unique_ptr<UdpSocket> socket_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<LockService> service_;
  std::unique_ptr<Expiry> expiry_;
};

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_CONTROL_PLANE_FIXTURE_H_
