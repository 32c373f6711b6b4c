// EtcdDriver: etcd v3 locks through etcd's HTTP/JSON gateway, one keep-alive
// HTTP/1.1 connection per session. Each session holds one lease
// (/v3/lease/grant, granted before the run, long enough to outlive it);
// acquire is /v3/lock/lock {name, lease}, which blocks until the lock is
// held (etcd queues by key revision: FIFO) and answers the key that owns it;
// release is /v3/lock/unlock {key}. etcd's locks are exclusive only: a
// shared request is taken exclusively.
#ifndef LOCKD_BENCH_ETCD_DRIVER_H_
#define LOCKD_BENCH_ETCD_DRIVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/event_loop.h"
#include "bench/lock_driver.h"
#include "bench/tcp_connection.h"

namespace lockd::bench {

struct EtcdDriverOptions {
  std::string server;
  uint16_t port = 2379;
  int64_t lease_seconds = 600;
};

// HTTP/1.1: the length of the first complete response in `buffer` (0:
// incomplete). Only Content-Length framing, which etcd's gateway uses.
absl::StatusOr<size_t> FrameHttpResponse(absl::string_view buffer);

class EtcdDriver : public LockDriver {
 public:
  EtcdDriver(const EtcdDriverOptions& options, EventLoop* loop)
      : options_(options), loop_(loop) {}

  absl::Status Connect(int sessions, DriverListener* listener) override;
  void Acquire(int session, int slot, uint64_t txn_id, uint64_t lock_id,
               lockd_mode mode) override;
  void Release(int session, int slot, uint64_t txn_id,
               uint64_t lock_id) override;
  DriverCounters Counters() const override;

 private:
  struct SessionState {
    std::unique_ptr<TcpConnection> connection;
    std::string lease;              // lease id, decimal
    std::vector<std::string> keys;  // per slot: the owner key of a held lock
  };

  std::string Post(absl::string_view path, absl::string_view body) const;

  EtcdDriverOptions options_;
  EventLoop* loop_;
  DriverListener* listener_ = nullptr;
  std::vector<SessionState> sessions_;
  uint64_t requests_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_ETCD_DRIVER_H_
