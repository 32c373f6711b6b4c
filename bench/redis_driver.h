// RedisDriver: locks as teams build them on Redis (redis.io's single-
// instance lock pattern): acquire is SET <key> <token> NX PX <lease>; a busy
// lock is polled again after a random exponential backoff until it is
// free; release runs a Lua script (EVALSHA) that deletes the key only if it
// still holds the caller's token. The token is the txn id. Such locks are
// exclusive only: a shared request is taken exclusively. RESP is spoken
// directly over one TCP connection per session.
#ifndef LOCKD_BENCH_REDIS_DRIVER_H_
#define LOCKD_BENCH_REDIS_DRIVER_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/backoff.h"
#include "bench/event_loop.h"
#include "bench/lock_driver.h"
#include "bench/tcp_connection.h"

namespace lockd::bench {

struct RedisDriverOptions {
  std::string server;
  uint16_t port = 6379;
  uint32_t lease_ms = 10000;
  Backoff backoff;  // before polling a busy lock again
  uint64_t seed = 1;
};

// RESP: the request encoding of `args`, and the length of the first complete
// reply in `buffer` (0: incomplete).
std::string EncodeRespCommand(const std::vector<std::string>& args);
absl::StatusOr<size_t> FrameRespReply(absl::string_view buffer);

class RedisDriver : public LockDriver {
 public:
  RedisDriver(const RedisDriverOptions& options, EventLoop* loop)
      : options_(options), loop_(loop), rng_(options.seed) {}

  absl::Status Connect(int sessions, DriverListener* listener) override;
  void Acquire(int session, int slot, uint64_t txn_id, uint64_t lock_id,
               lockd_mode mode) override;
  void Release(int session, int slot, uint64_t txn_id,
               uint64_t lock_id) override;
  DriverCounters Counters() const override;

 private:
  void TrySet(int session, int slot, uint64_t txn_id, uint64_t lock_id,
              int attempt);

  RedisDriverOptions options_;
  EventLoop* loop_;
  DriverListener* listener_ = nullptr;
  std::mt19937_64 rng_;
  std::string release_sha_;
  std::vector<std::unique_ptr<TcpConnection>> connections_;  // per session
  uint64_t commands_ = 0;
  uint64_t busy_polls_ = 0;
  uint64_t release_not_owner_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_REDIS_DRIVER_H_
