// lockd client library: what transactional applications link to take locks
// from one or many lockd servers.
//
//   lockd::client::ClientOptions options;
//   options.servers = {{"lock1", "10.0.0.1:20231", "10.0.0.1:7451"}};
//   absl::StatusOr<std::unique_ptr<lockd::client::Client>> client =
//       lockd::client::Client::Create(options);
//   lockd::client::Transaction txn = (*client)->Begin();
//   absl::StatusOr<uint64_t> fence =
//       txn.Lock("account/42", lockd::client::Mode::kExclusive);
//   ... write, passing *fence to the storage so it rejects stale writers ...
//   absl::Status committed = txn.Commit();
//
// Transactions (client/transaction.h) and the single-lock guard ScopedLock
// (client/scoped_lock.h) are the API; Client is the shared connection to the
// servers that they run on. Lock semantics are those of docs/semantics.md.
//
// Which server serves a lock: lock names hash to ids with LockIdForName
// (abi/codec.h) and each id belongs to one server chosen by rendezvous
// (highest-random-weight) hashing over the server names
// (client/rendezvous.h). Adding a server to a list of n moves about 1/(n+1)
// of the locks, all of them to the new server; removing one moves only its
// own locks. Every client of a lock must be configured with the same server
// names, or two clients could take "the same" lock on different servers.
//
// Replacing a server: with ClientOptions::server_list_file the servers come
// from a file (client/server_list.h) that the client reads again every
// `server_list_poll_interval`. A server whose address changed there (UDP,
// gRPC or both) is reached at its new address from then on, by every later
// transmission, retransmissions of calls in flight included; its round-trip
// estimate and UDP-down state start over. The names must stay the same: a
// file that names other servers, or fails to parse, is refused and the old
// list stays in use (ClientStats counts reloads and refusals, and says why
// the last change was refused).
//
// Transport: every request goes over the UDP fast path first (one socket for
// the whole Client, shared by all threads; a receiver thread hands each reply
// and GRANTED packet to the waiting call by lock and txn id). Requests are
// retransmitted with exponential backoff, each retransmission reusing the
// request's seq, so the server answers it idempotently. A request the UDP
// path does not answer within its budget, or that the server hands back as
// one it cannot serve (REJECTED/NO_CAPACITY), continues through the server's
// gRPC LockService with the same txn id: the daemon keeps one FIFO per lock
// for both paths (lockd/server.h). After such a failure the server's calls
// go to gRPC directly, and every `udp_probe_interval` one call tries UDP
// again; the first UDP answer brings the server's calls back to UDP. A hold
// is renewed and released through the path that acquired it (gRPC holds
// always; UDP holds fall back to gRPC when UDP does not answer).
//
// Leases: while a lock is held, a background thread renews it every third of
// the lease the server granted. When the server rejects a renewal
// (LEASE_EXPIRED, FORCE_RELEASED, NOT_HOLDER), or the lease runs out before
// the client could reach the server, the hold is *lost*: its lost() turns
// true, its on_lost callback runs, and the transaction can no longer commit.
// The client counts a lease from the earliest moment the server could have
// granted it (up to network transit), so it never believes in a lease the
// server has already ended by more than a transit time. (A wait that went
// through gRPC does not say when it was granted: its lease is counted from
// the end of the call and renewed at once, which pins it down.)
//
// Restarts (docs/semantics.md, "Restarts"): every UDP reply (and every
// gRPC answer, in its trailers) carries the server's epoch, which changes when
// the server starts without its state (a reboot, a replacement machine). A
// renewal refused by a server in another epoch than the one that granted the
// hold reclaims the hold: an ACQUIRE flagged RECLAIM with the hold's fence,
// which the server grants in its grace period; only a hold that could not be
// reclaimed is lost. A request the server refuses because of its grace period
// (GRACE) is asked again when the grace ends (over gRPC: every
// queued_probe_interval); a queued request is queued again then.
//
// Thread safety: Client is thread-safe. A Transaction or ScopedLock is used
// by one thread at a time.
#ifndef LOCKD_CLIENT_CLIENT_H_
#define LOCKD_CLIENT_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi/keys.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lockd::client {

class Transaction;
struct TransactionOptions;

enum class Mode { kShared, kExclusive };

// What a lock request does when the lock is held in a conflicting mode or
// others are already waiting (docs/semantics.md, ACQUIRE).
enum class Policy {
  kWait,     // queue until granted (or until the call's deadline)
  kNoWait,   // fail at once with ABORTED (a try-lock)
  kWaitDie,  // wait if older than every holder and waiter, else ABORTED
};

// One lock server.
struct ServerConfig {
  // Identity for rendezvous hashing and for error messages. It must be the
  // same in every client and stay the same when addresses change: renaming
  // a server moves its locks. Empty: the UDP address is the name.
  std::string name;
  // IPv4 "a.b.c.d:port" of the UDP fast path; ":port" may be left out for
  // LOCKD_DEFAULT_PORT (20231).
  std::string udp_address;
  // gRPC LockService target ("a.b.c.d:7451", any gRPC target string).
  // Empty: no fallback, the server is reached by UDP only.
  std::string grpc_address;
};

struct ClientOptions {
  // The lock servers; or, instead, `server_list_file`.
  std::vector<ServerConfig> servers;
  // A server list file (client/server_list.h), read by Create and again
  // every `server_list_poll_interval` while the client runs. A change that
  // keeps the names and changes addresses is taken (ClientStats::
  // server_list_reloads); any other change, or a file that cannot be read
  // or parsed, is refused and the old list stays (server_list_errors,
  // server_list_error). Replace the file atomically (write a new one and
  // rename it over the old) so that the client never reads half of it.
  std::string server_list_file;
  absl::Duration server_list_poll_interval = absl::Seconds(1);

  // Who this client is (docs/security.md): every request is signed with
  // `key`, and replies not signed with it are dropped. The servers know the
  // key under `client_id` (their key file). LOCKD_CLIENT_NONE: unsigned
  // requests, served only from a server's lab subnets (--open_subnets).
  // One client id belongs to one running Client at a time (its requests'
  // sequence numbers must only grow; they start from the wall clock).
  uint32_t client_id = LOCKD_CLIENT_NONE;
  ClientKey key;
  // Sets client_id, and its key from a key file (abi/keys.h); client id
  // LOCKD_CLIENT_NONE leaves the client unauthenticated (no file read).
  absl::Status UseKey(uint32_t id, const std::string& key_file);

  // UDP retransmission of one request: the first retransmission after the
  // server's retransmission timeout, then at doubling intervals of at most
  // `udp_max_timeout`, until `udp_max_transmissions` are sent or
  // `udp_budget` has passed since the first. Then the request continues
  // over gRPC (or fails UNAVAILABLE without a gRPC address). The timeout is
  // TCP's (RFC 6298): smoothed round trip plus four deviations, measured
  // per server from the replies, at least `udp_min_timeout`;
  // `udp_initial_timeout` until the first reply. The floor, twice a LAN
  // round trip (about 50 us between namespaces), binds only while round
  // trips are steady; their deviation keeps the timeout above it otherwise
  // (200-300 us on 2 busy cores). So a lost packet costs a fraction of a
  // millisecond, and a copy sent too early costs the server one idempotent
  // answer. With round trips far below the floor, the budget, not the
  // count, ends the retransmissions: 16 copies take over a second.
  absl::Duration udp_initial_timeout = absl::Milliseconds(20);
  absl::Duration udp_min_timeout = absl::Microseconds(100);
  absl::Duration udp_max_timeout = absl::Milliseconds(250);
  int udp_max_transmissions = 16;
  absl::Duration udp_budget = absl::Seconds(1);
  // While an ACQUIRE is queued the client waits for the GRANTED packet, and
  // asks again (the server answers QUEUED again, or GRANTED with the same
  // fence), so a lost GRANTED is recovered and a dead server noticed: first
  // two retransmission timeouts after the QUEUED, then at doubling
  // intervals of at most 8 timeouts (kQueuedProbeMaxRtos) and at most this.
  // A lost GRANTED thus costs at most 8 timeouts however long the wait
  // (a few milliseconds on a LAN), for one probe per waiter every 8
  // timeouts.
  // A queued request whose server stops answering (a restart) keeps
  // waiting, probing at this interval, until its deadline.
  absl::Duration queued_probe_interval = absl::Milliseconds(500);
  // After the UDP path of a server failed, its calls use gRPC; this long
  // after, one call tries UDP first again.
  absl::Duration udp_probe_interval = absl::Seconds(1);
  // Deadline of gRPC calls that do not wait for a lock (Release, Renew, and
  // Acquire with policy NO_WAIT).
  absl::Duration grpc_timeout = absl::Seconds(5);
};

// Request counters of one server, as this client saw them.
struct ServerStats {
  std::string name;
  uint64_t udp_requests = 0;         // first transmissions
  uint64_t udp_retransmissions = 0;  // same seq again
  uint64_t udp_replies = 0;          // replies and GRANTED packets matched
  uint64_t udp_fallbacks = 0;        // requests that gave up on UDP
  uint64_t udp_forged = 0;           // replies dropped: wrong MAC
  uint64_t grpc_requests = 0;        // RPCs started
  uint64_t renewals = 0;             // leases renewed
  uint64_t leases_lost = 0;
  uint64_t epoch_changes = 0;  // the server restarted without its state
  uint64_t reclaims = 0;       // holds re-established after such a restart
  uint64_t grace_retries = 0;  // requests refused during its grace period
  uint32_t epoch = 0;          // the server's, from its last reply
  bool udp_path_up = true;     // false while calls go to gRPC first
  // Where the server is reached now ("a.b.c.d:port"; empty gRPC: no
  // fallback); empty in the total.
  std::string udp_address;
  std::string grpc_address;
};

struct ClientStats {
  // In ClientOptions::servers order (that of the server list file when
  // the client was created).
  std::vector<ServerStats> servers;
  ServerStats total;  // sums; name "total"
  // Changes of ClientOptions::server_list_file taken, and refused (each
  // content of the file counts once).
  uint64_t server_list_reloads = 0;
  uint64_t server_list_errors = 0;
  // Why the last change was refused; empty once a change is taken.
  std::string server_list_error;
};

class Client {
 public:
  // Opens the UDP socket and the gRPC channels in the calling thread's
  // network namespace, and starts the receiver and lease renewal threads
  // (and the server list file's watcher). InvalidArgument for a bad server
  // list or server list file, or for both `servers` and `server_list_file`.
  // gRPC connects from the threads that call it and from its own threads,
  // which keep the namespace of the thread that started them: a process
  // that uses several network namespaces calls a Client only from threads
  // in the namespace it was created in (the watcher, which opens the gRPC
  // channels of moved servers, is started by Create).
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  // Transactions and ScopedLocks must be gone first.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A new transaction with a new txn id (see NewTxnId).
  Transaction Begin(const TransactionOptions& options);
  Transaction Begin();

  // Index (in ClientOptions::servers, or the server list file as Create
  // read it) and name of the server of a lock.
  size_t ServerIndexFor(uint64_t lock_id) const;
  const std::string& ServerNameFor(uint64_t lock_id) const;

  // A txn id: microseconds since 2024-01-01 UTC in the high 50 bits (so a
  // smaller id is an older transaction, which WAIT_DIE favours) and a number
  // drawn at random once per Client in the low 14 bits (so clients that
  // start transactions in the same microsecond differ). Strictly increasing
  // within one Client. Transaction::Restart keeps its id, so a transaction
  // that died ages and eventually wins.
  uint64_t NewTxnId();

  ClientStats Stats() const;

  // Test hook: while paused, leases are not renewed; they run out and their
  // holds are reported lost as if the server were unreachable.
  void PauseRenewalsForTesting(bool paused);

 private:
  class Impl;  // client/client_impl.h
  friend class Transaction;

  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockd::client

#endif  // LOCKD_CLIENT_CLIENT_H_
