// UdpDriver: lockd's own protocol (abi/lockd_abi.h, docs/semantics.md) over
// a few UDP sockets shared by all sessions of one thread. Owners are
// (lock, txn); each session is a client of its own (bench/signer.h): it signs
// every transmission with its key and a fresh seq from its own counter, and
// drops replies not signed for it. A retransmission repeats its request,
// flagged LOCKD_FLAG_RETRANSMIT, with the ticket of the owner's record, as
// the client library does. Requests without an answer are sent again after
// `retransmit_nanos` (a QUEUED acquire after `queued_retransmit_nanos`: the
// GRANTED may have been lost).
//
// Requests are batched per socket and sent with one sendmmsg per loop round.
//
// Serves three systems: lockd with its fast path, lockd with the fast path
// off (same protocol, answered from user space) and the XDP reflector
// (`reflect`), which answers every request with GRANTED: then any reply
// completes a RELEASE as well. The reflector gets the same signed 72-byte
// requests; its replies are not signed, so they are not checked.
#ifndef LOCKD_BENCH_UDP_DRIVER_H_
#define LOCKD_BENCH_UDP_DRIVER_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "abi/lockd_abi.h"
#include "bench/event_loop.h"
#include "bench/lock_driver.h"
#include "bench/signer.h"

namespace lockd::bench {

struct UdpDriverOptions {
  std::string server;  // IPv4 dotted quad
  uint16_t port = LOCKD_DEFAULT_PORT;
  int sockets = 4;
  lockd_policy policy = LOCKD_POLICY_WAIT;
  bool reflect = false;
  int64_t retransmit_nanos = 200000000;
  int64_t queued_retransmit_nanos = 1000000000;
  // Session i signs as signers[i]; one for each session of Connect.
  std::vector<Signer> signers;
};

class UdpDriver : public LockDriver {
 public:
  UdpDriver(const UdpDriverOptions& options, EventLoop* loop)
      : options_(options), loop_(loop) {}
  ~UdpDriver() override;

  absl::Status Connect(int sessions, DriverListener* listener) override;
  void Acquire(int session, int slot, uint64_t txn_id, uint64_t lock_id,
               lockd_mode mode) override;
  void Release(int session, int slot, uint64_t txn_id,
               uint64_t lock_id) override;
  DriverCounters Counters() const override;

 private:
  struct Pending {
    bool active = false;
    bool queued = false;
    lockd_opcode opcode = LOCKD_OP_ACQUIRE;
    lockd_mode mode = LOCKD_MODE_NONE;
    // Of the request's first transmission: the seq of every answer to it is
    // at least this (later copies have larger ones).
    uint64_t first_seq = 0;
    uint64_t lock_id = 0;
    uint64_t txn_id = 0;
    int64_t sent = 0;
    bool again = false;   // sent before: flagged as a retransmission
    uint64_t ticket = 0;  // where the server keeps the owner's record
  };
  struct SessionState {
    std::vector<Pending> slots;
  };

  void Start(int session, int slot, lockd_opcode opcode, uint64_t txn_id,
             uint64_t lock_id, lockd_mode mode);
  void Send(int session, Pending& pending);
  void Flush();
  void Receive(int fd);
  void Handle(const uint8_t* data, size_t size);
  void Tick();

  UdpDriverOptions options_;
  EventLoop* loop_;
  DriverListener* listener_ = nullptr;
  std::vector<int> fds_;
  std::vector<std::vector<EncodedMessage>> outbox_;  // per socket, unsent
  std::vector<SessionState> sessions_;
  uint64_t sent_ = 0;
  uint64_t send_failed_ = 0;
  uint64_t retransmits_ = 0;
  uint64_t queued_ = 0;
  // REJECTED replies to acquires and to releases, by enum lockd_status.
  std::array<uint64_t, LOCKD_STATUS_COUNT> rejected_{};
  std::array<uint64_t, LOCKD_STATUS_COUNT> release_rejected_{};
  uint64_t stray_ = 0;   // replies matching nothing outstanding
  uint64_t forged_ = 0;  // replies not signed for their session: dropped
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_UDP_DRIVER_H_
