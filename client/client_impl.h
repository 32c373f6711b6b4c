// Inside the client library: the request machinery (UDP with retransmission,
// fallback to gRPC, probing back to UDP), holds and their lease renewal.
// Transaction and ScopedLock are thin layers over Client::Impl.
#ifndef LOCKD_CLIENT_CLIENT_IMPL_H_
#define LOCKD_CLIENT_CLIENT_IMPL_H_

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "abi/codec.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/rendezvous.h"
#include "client/udp_channel.h"
#include "proto/lockd.grpc.pb.h"

namespace lockd::client {

// How a request reached its server.
enum class Path { kUdp, kGrpc };

using LostCallback = std::function<void(const absl::Status& why)>;

// A lock as the application named it, and the server that serves it.
struct LockTarget {
  size_t server = 0;
  uint64_t lock_id = 0;
  std::string name;  // empty when the application gave an id
};

// A lock one transaction holds, shared between the transaction and the
// lease renewal thread.
struct Hold {
  Hold(LockTarget target, uint64_t txn_id, uint32_t requested_lease_ms,
       LostCallback on_lost)
      : target(std::move(target)),
        txn_id(txn_id),
        requested_lease_ms(requested_lease_ms),
        on_lost(std::move(on_lost)) {}

  const LockTarget target;
  const uint64_t txn_id;
  const uint32_t requested_lease_ms;  // 0 = the server's default
  const LostCallback on_lost;

  // Held across each network operation on the hold (renewal, upgrade,
  // release), so the server sees one request of this owner at a time and
  // the UDP channel one call per (lock, txn). Taken before `mu`.
  absl::Mutex operation_mu;

  mutable absl::Mutex mu;
  lockd_mode mode ABSL_GUARDED_BY(mu) = LOCKD_MODE_NONE;
  uint64_t fence ABSL_GUARDED_BY(mu) = 0;
  // Where the server keeps the hold (its last GRANTED): echoed in renewals,
  // upgrades and the release so that the server finds it in O(1).
  uint64_t ticket ABSL_GUARDED_BY(mu) = LOCKD_TICKET_NONE;
  Path path ABSL_GUARDED_BY(mu) = Path::kUdp;  // renew and release this way
  // The server's epoch when it last granted or renewed the hold (0: not
  // known, a gRPC answer): a later reply with another epoch means the server
  // lost its state, and the hold is reclaimed (docs/semantics.md,
  // "Restarts").
  uint32_t epoch ABSL_GUARDED_BY(mu) = 0;
  absl::Time lease_end ABSL_GUARDED_BY(mu);  // the client's conservative view
  absl::Time next_renewal ABSL_GUARDED_BY(mu);
  absl::Status last_renewal_error ABSL_GUARDED_BY(mu);
  // Not OK once the hold is lost: FailedPrecondition saying why.
  absl::Status lost ABSL_GUARDED_BY(mu);
  // The server said the hold is over (a rejected renewal): nothing to
  // release.
  bool ended_by_server ABSL_GUARDED_BY(mu) = false;
  bool released ABSL_GUARDED_BY(mu) = false;
};

class Client::Impl {
 public:
  static absl::StatusOr<std::unique_ptr<Impl>> Create(ClientOptions options);
  ~Impl();

  LockTarget Target(uint64_t lock_id, std::string name) const;
  size_t ServerIndexFor(uint64_t lock_id) const;
  const std::string& ServerName(size_t server) const;
  uint64_t NewTxnId();
  ClientStats Stats() const;
  void PauseRenewals(bool paused);

  // Asks for `mode` of `target` for `txn_id` until it is granted, rejected
  // or `deadline` passes (the wait is then cancelled on the server). The
  // new hold is renewed in the background until Release.
  absl::StatusOr<std::shared_ptr<Hold>> Acquire(
      const LockTarget& target, uint64_t txn_id, lockd_mode mode,
      lockd_policy policy, uint32_t lease_ms, absl::Time deadline,
      LostCallback on_lost);
  // S -> X on a held lock; the fence changes (docs/semantics.md, upgrade).
  absl::StatusOr<uint64_t> Upgrade(Hold& hold, lockd_policy policy,
                                   absl::Time deadline);
  // Ends the hold on the server (unless the server ended it already). OK,
  // or FailedPrecondition when the hold had been lost before, or the error
  // of a release the server could not be reached for.
  absl::Status Release(const std::shared_ptr<Hold>& hold);

  // "txn 0x...": how messages name a transaction.
  static std::string DescribeTxn(uint64_t txn_id);
  // "lock "name" (0x...)" or "lock 0x...".
  static std::string DescribeLock(const LockTarget& target);

 private:
  struct Server;
  // A request's successful end: the final reply (GRANTED, RELEASED or
  // RENEWED; never QUEUED or REJECTED).
  struct Answer {
    Message reply;
    Path path = Path::kUdp;
    // Earliest moment the server can have granted or renewed the lease.
    absl::Time lease_start;
    // The grant's time is unknown (a gRPC wait): renew at once to learn it.
    bool renew_now = false;
  };
  // How a UDP exchange ended.
  struct UdpOutcome {
    enum class Kind { kAnswered, kUnanswered, kDeadline } kind;
    Message reply;
    absl::Time lease_start;
    int transmissions = 0;
  };

  static absl::StatusOr<std::vector<std::unique_ptr<Server>>> MakeServers(
      const ClientOptions& options);
  Impl(ClientOptions options, std::vector<std::unique_ptr<Server>> servers);

  // Sends `request` for `target` through `path` (UDP first unless the
  // server's UDP path is down, falling back to gRPC) and waits for its
  // final answer until `deadline`. Rejections become errors with the codes
  // of client/transaction.h; `what` starts every message.
  absl::StatusOr<Answer> Exchange(const LockTarget& target, Message request,
                                  absl::Time deadline, Path path,
                                  const std::string& what);
  UdpOutcome ExchangeUdp(Server& server, const Message& request,
                         absl::Time deadline);
  // The gRPC path: one RPC, asked again while the server refuses it for
  // its grace period (GRACE), until `deadline`.
  absl::StatusOr<Answer> ExchangeGrpc(Server& server, const Message& request,
                                      absl::Time deadline,
                                      const std::string& what,
                                      const std::string& udp_failure);
  // One RPC; `rejection` says why the server refused it, if it did.
  absl::StatusOr<Answer> ExchangeGrpcOnce(
      Server& server, const Message& request, absl::Time deadline,
      const std::string& what, const std::string& udp_failure,
      std::optional<lockd_status>* rejection);
  // Cancels a wait whose deadline passed (a RELEASE by the waiter).
  void CancelWait(const LockTarget& target, uint64_t txn_id);

  bool UseUdp(Server& server);
  // The server now at `address`, or null.
  Server* ServerAt(const sockaddr_in& address) const;
  // Takes the epoch of a reply from `server` (0: it did not say).
  static void NoteEpoch(Server& server, uint32_t epoch);
  // Whether `server` is in another epoch than a hold granted in
  // `hold_epoch`: it restarted without its state since.
  static bool Restarted(const Server& server, uint32_t hold_epoch);

  // Reads options_.server_list_file every server_list_poll_interval until
  // the client stops, and takes each change of its content that only moves
  // servers to other addresses (UseServerList); other changes are refused.
  void WatchServerList();
  void ReloadServerList();
  absl::Status UseServerList(absl::string_view content)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(list_mu_);
  uint64_t NextSeq() { return seqs_.Next(); }

  // A request of `opcode` about `hold`: its lock, txn, ticket and (but for
  // a RELEASE) the lease asked.
  static Message HoldRequest(Hold& hold, lockd_opcode opcode);
  // Takes a hold's grant (new, or an upgrade) into its state.
  void Granted(Hold& hold, const Answer& answer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hold.mu);
  void StartRenewing(std::shared_ptr<Hold> hold);
  void StopRenewing(const std::shared_ptr<Hold>& hold);
  void RenewUntilStopped();
  void RenewOrLose(const std::shared_ptr<Hold>& hold);
  // Asks the restarted server for the hold again, with its fence, during
  // the server's grace period: the answer, or why it could not.
  absl::StatusOr<Answer> Reclaim(Hold& hold, absl::Time lease_end,
                                 const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hold.operation_mu);

  const ClientOptions options_;
  const ClientIdentity identity_;  // every request's, on every path
  std::vector<std::unique_ptr<Server>> servers_;
  Rendezvous rendezvous_;
  std::unique_ptr<UdpChannel> udp_;
  SeqSource seqs_;  // of every request, on every path
  const uint64_t txn_random_bits_;

  absl::Mutex txn_mu_;
  uint64_t last_txn_micros_ ABSL_GUARDED_BY(txn_mu_) = 0;

  absl::Mutex renew_mu_;
  absl::CondVar renew_changed_;  // a hold came, or the client is stopping
  std::set<std::shared_ptr<Hold>> renewing_ ABSL_GUARDED_BY(renew_mu_);
  bool stopping_ ABSL_GUARDED_BY(renew_mu_) = false;
  std::atomic<bool> renewals_paused_{false};
  std::thread renewer_;

  absl::Notification stop_watching_;
  std::thread list_watcher_;  // with a server list file only
  mutable absl::Mutex list_mu_;
  // The file's content when last read, or why it could not be read.
  absl::StatusOr<std::string> list_read_ ABSL_GUARDED_BY(list_mu_);
  uint64_t list_reloads_ ABSL_GUARDED_BY(list_mu_) = 0;
  uint64_t list_errors_ ABSL_GUARDED_BY(list_mu_) = 0;
  std::string list_error_ ABSL_GUARDED_BY(list_mu_);
};

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_CLIENT_IMPL_H_
