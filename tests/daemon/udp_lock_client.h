// UdpLockClient: a lockd client over the UDP protocol, as an application on
// a client host would be, for end-to-end tests: one socket in the client
// namespace of a TestNetwork, one transaction on one lock, requests signed
// as test client `client_id` (tests/test_keys.h), each transmission with a
// new sequence number (docs/security.md), and replies checked.
#ifndef LOCKD_TESTS_DAEMON_UDP_LOCK_CLIENT_H_
#define LOCKD_TESTS_DAEMON_UDP_LOCK_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "abi/codec.h"
#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/netns/test_network.h"
#include "tests/test_keys.h"

namespace lockd::testing {

// How long a test waits for one reply: generous, so that only a reply that
// never comes fails a test, however loaded the machine is.
inline constexpr absl::Duration kReplyTimeout = absl::Seconds(10);
// A request unanswered this long is retransmitted (Call).
inline constexpr absl::Duration kRetransmitAfter = absl::Milliseconds(500);

class UdpLockClient {
 public:
  // A socket on the client end of net.link(), talking to lockd's default
  // port on the server end, as transaction `txn_id` on lock `lock_id`.
  // Client LOCKD_CLIENT_NONE sends unsigned requests. `netns` and
  // `local_ipv4`: where to send from; empty: the client namespace and the
  // client end of the link.
  static absl::StatusOr<std::unique_ptr<UdpLockClient>> Open(
      const netns::TestNetwork& net, uint64_t lock_id, uint64_t txn_id,
      uint32_t client_id = kTestClient, const std::string& local_ipv4 = "",
      const std::string& netns = "");

  // Sends one request for this client's lock and txn with the next seq.
  absl::Status Send(lockd_opcode opcode, lockd_mode mode = LOCKD_MODE_NONE,
                    lockd_policy policy = LOCKD_POLICY_WAIT,
                    uint32_t lease_ms = 0, uint32_t wait_ms = 0);

  // The next datagram, which must come from lockd's port on the server, be
  // a well-formed reply signed for this client, and be about this client's
  // lock and txn.
  // DeadlineExceeded when none came within `timeout`.
  absl::StatusOr<Message> Receive(absl::Duration timeout = kReplyTimeout);

  // Send, then Receive; unanswered after kRetransmitAfter, the request is
  // sent again (a new seq, flagged as a retransmission) until
  // kReplyTimeout.
  absl::StatusOr<Message> Call(lockd_opcode opcode,
                               lockd_mode mode = LOCKD_MODE_NONE,
                               lockd_policy policy = LOCKD_POLICY_WAIT,
                               uint32_t lease_ms = 0, uint32_t wait_ms = 0);

  uint64_t lock_id() const { return lock_id_; }
  uint64_t txn_id() const { return txn_id_; }
  uint32_t client_id() const { return client_id_; }

  // `request` as this client sends it: its client id, a new seq, signed.
  EncodedMessage Signed(Message request) const;
  // Sends bytes as they are (for captured or forged packets).
  absl::Status SendBytes(const EncodedMessage& bytes);

 private:
  // The next request of this client.
  Message Request(lockd_opcode opcode, lockd_mode mode, lockd_policy policy,
                  uint32_t lease_ms, uint32_t wait_ms);

  UdpLockClient(netns::UdpSocket socket, std::string server, uint64_t lock_id,
                uint64_t txn_id, uint32_t client_id)
      : socket_(std::move(socket)),
        server_(std::move(server)),
        lock_id_(lock_id),
        txn_id_(txn_id),
        client_id_(client_id) {}

  netns::UdpSocket socket_;
  std::string server_;  // dotted quad
  uint64_t lock_id_;
  uint64_t txn_id_;
  uint32_t client_id_;
};

// `reply` when it is `opcode`; otherwise an error that shows what came.
absl::StatusOr<Message> ExpectReply(absl::StatusOr<Message> reply,
                                    lockd_opcode opcode);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DAEMON_UDP_LOCK_CLIENT_H_
