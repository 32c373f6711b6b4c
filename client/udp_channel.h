// The client's one UDP socket: every request of every thread goes out
// through it, and a receiver thread hands each datagram that comes back to
// the call waiting for it. Calls block on their own CondVar; nothing polls.
//
// Internal to the client library (client/client_impl.h drives it).
#ifndef LOCKD_CLIENT_UDP_CHANNEL_H_
#define LOCKD_CLIENT_UDP_CHANNEL_H_

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lockd::client {

// Whether two IPv4 socket addresses are the same address and port.
bool SameAddress(const sockaddr_in& a, const sockaddr_in& b);

class UdpChannel {
 public:
  // A request waiting for its answers: one ACQUIRE may get QUEUED and then,
  // much later, GRANTED. Owned by the waiting thread; registered with the
  // channel while it waits.
  struct Call {
    // Where the latest transmission went: only its replies are taken
    // (guarded by the channel's mutex).
    sockaddr_in server{};
    Message request;
    std::vector<uint64_t> seqs;   // of every transmission (channel's mutex)
    std::deque<Message> replies;  // guarded by the channel's mutex
    absl::CondVar replied;
  };

  // Counts replies matched (`forged`: dropped for a wrong MAC), per server
  // address, for ClientStats.
  using ReplyObserver =
      std::function<void(const sockaddr_in& server, bool forged)>;

  // Binds a socket to an ephemeral port on every address of the calling
  // thread's network namespace and starts the receiver thread. Requests go
  // out as `identity`'s, and only replies it accepts are taken.
  static absl::StatusOr<std::unique_ptr<UdpChannel>> Open(
      ReplyObserver on_reply, const ClientIdentity& identity);
  ~UdpChannel();  // stops the receiver; no call may be registered
  UdpChannel(const UdpChannel&) = delete;
  UdpChannel& operator=(const UdpChannel&) = delete;

  // While registered, replies to (request.lock_id, request.txn_id) from
  // call->server whose seq is one of the call's transmissions' (or, for an
  // ACQUIRE, a WAIT_EXPIRED notice, which the daemon may send without a
  // seq) go to `call`. One call per (lock, txn) at a time.
  void Register(Call* call);
  void Unregister(Call* call);

  // Sends call->request to `server` as a new transmission with sequence
  // number `seq` (each transmission has its own: the server's replay window
  // drops a copy of one it has seen). From then on only replies from
  // `server` are the call's (the server may have moved since the last
  // copy).
  absl::Status Send(Call* call, const sockaddr_in& server, uint64_t seq);

  // The oldest reply not yet taken, waiting for one until `deadline`;
  // nullopt when none came in time.
  std::optional<Message> NextReply(Call* call, absl::Time deadline);

 private:
  UdpChannel(int socket_fd, int stop_fd, ReplyObserver on_reply,
             const ClientIdentity& identity);
  void ReceiveUntilStopped();
  void Dispatch(const Message& reply, const sockaddr_in& from);

  const int socket_fd_;
  const int stop_fd_;  // eventfd: wakes the receiver out of poll() to exit
  const ReplyObserver on_reply_;
  const ClientIdentity identity_;
  absl::Mutex mu_;
  std::map<std::pair<uint64_t, uint64_t>, Call*> calls_ ABSL_GUARDED_BY(mu_);
  std::thread receiver_;
};

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_UDP_CHANNEL_H_
