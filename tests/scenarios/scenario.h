// The semantics as data: scenario files (tests/scenarios/*.txt) of requests
// in and replies, grants and lock state out, in the style of CockroachDB's
// datadriven tests. One runner, two drivers: the BPF datapath (through
// BPF_PROG_TEST_RUN) and the reference model. Both must print exactly what
// the file expects.
//
// A file is a sequence of cases separated by blank lines:
//
//   # comment
//   acquire c=1 lock=100 txn=1 mode=X
//   ----
//   GRANTED fence=1 lease=10000
//
// Commands (arguments key=value, flags bare):
//   new [default_lease_ms=] [max_lease_ms=] [split_at=] [merge_at=]
//       [quota=] [fence_base=] [grace_ms=]
//                   a fresh table; every file starts with one
//   key id= [v=]    client id gets key version v (default 1), as an
//                   operator provisions or rotates it
//   acquire c= lock= txn= mode=S|X [policy=wait|no_wait|wait_die]
//           [lease=] [wait=] [seq=] [id=] [sig=bad] [reclaim=FENCE]
//   release c= lock= txn= [seq=] [id=] [sig=bad]
//   renew c= lock= txn= [lease=] [seq=] [id=] [sig=bad]
//   kick c= lock= [hops=]
//   retransmit c= [ticket=none]    client c's last request again, flagged
//                                  LOCKD_FLAG_RETRANSMIT (a signed one with
//                                  a new seq, as clients do)
//   replay c= [n=]                 the bytes of client c's n-th request
//                                  (default: its last) again, exactly: a
//                                  captured packet
// id= is the client id the request names (0, the default: unauthenticated,
// from the test segment that the BPF driver opens); a request with an id is
// signed with that client's current key, with sig=old under the key before
// it, or with sig=bad under a wrong one. Replies must be signed with the key
// the request was, notices with the client's current key: the runner checks
// every MAC the BPF driver returns.
//   expire-holder|expire-waiter lock= txn=     control operations (daemon)
//   force lock= txn= [fence=]
//   sleep ms=      time passes (really for BPF, on a virtual clock for the
//                  model): use leases far shorter or far longer than it
//   state lock=    the lock's mode, fence, min_txn (":dirty" while
//                  LOCKD_LOCK_MIN_DIRTY) and members
//   table          locks and queue entries in all
//   counters       the modeled counters that moved since the last one
// Requests get the client's next sequence number (from 1) unless seq= says
// otherwise. The BPF driver sends the ticket of the owner's last reply, as
// a client does; the model needs none.
#ifndef LOCKD_TESTS_SCENARIOS_SCENARIO_H_
#define LOCKD_TESTS_SCENARIOS_SCENARIO_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/lock_model.h"

namespace lockd::testing {

struct ScenarioOptions {
  int32_t client_quota = LOCKD_DEFAULT_CLIENT_QUOTA;
  uint32_t default_lease_ms = LOCKD_DEFAULT_LEASE_MS;
  uint32_t max_lease_ms = LOCKD_MAX_LEASE_MS;
  uint32_t split_at = LOCKD_BUCKET_SLOTS - 1;
  uint32_t merge_at = LOCKD_BUCKET_SLOTS / 4;
  uint64_t fence_base = 0;  // fences count from fence_base + 1
  uint32_t grace_ms = 0;    // the table starts in a grace period this long
};

// A message to a member other than the requester, and who it is.
struct Notice {
  int client = -1;
  lockd_reply reply{};
};

struct Outcome {
  std::optional<lockd_reply> reply;
  std::vector<Notice> notices;
};

struct ControlOutcome {
  uint32_t result = 0;  // enum lockd_ctl_result
  uint64_t fence = 0;   // of the hold ended
  std::vector<Notice> notices;
};

struct MemberDump {
  uint64_t txn_id = 0;
  uint8_t mode = LOCKD_MODE_NONE;
  uint64_t fence = 0;      // holders
  bool cancelled = false;  // waiters
};

struct LockDump {
  uint8_t mode = LOCKD_MODE_NONE;
  uint64_t fence = 0;
  uint64_t min_txn = 0;
  bool min_dirty = false;           // LOCKD_LOCK_MIN_DIRTY
  std::vector<MemberDump> holders;  // by fence
  std::vector<MemberDump> queue;    // head first
};

struct TableDump {
  uint64_t locks = 0;
  uint64_t queue_entries = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;
  virtual absl::Status Reset(const ScenarioOptions& options) = 0;
  // `without_ticket`: send the request as if the client had lost its
  // ticket (BPF driver). With `key`, the request is signed with it once
  // its ticket is in.
  virtual absl::StatusOr<Outcome> Request(int client, const Message& request,
                                          bool without_ticket,
                                          std::optional<ClientKey> key) = 0;
  // The exact bytes of client c's n-th request (from 1; 0: the last)
  // again.
  virtual absl::StatusOr<Outcome> Replay(int client, size_t n) = 0;
  // Whether replies carry the MACs the datapath computes (the runner
  // checks them).
  virtual bool SignsReplies() const = 0;
  virtual absl::StatusOr<ControlOutcome> Control(const lockd_ctl& command) = 0;
  virtual void Sleep(absl::Duration d) = 0;
  virtual absl::StatusOr<std::optional<LockDump>> State(uint64_t lock_id) = 0;
  virtual absl::StatusOr<TableDump> Table() = 0;
  // Totals so far of the modeled counters (LockModel::IsModeledCounter).
  virtual absl::StatusOr<LockModel::Counters> Counters() = 0;
};

std::unique_ptr<Driver> MakeBpfDriver();
std::unique_ptr<Driver> MakeModelDriver();

struct ScenarioCase {
  int line = 0;  // of the command, for messages
  std::string command;
  std::string expected;
};

absl::StatusOr<std::vector<ScenarioCase>> ParseScenario(
    const std::string& text);
// The file's text again with `actual` outputs in place of the expected
// ones (comments and spacing kept).
std::string RewriteScenario(const std::string& text,
                            const std::vector<std::string>& actual);

// Runs every case on `driver`; returns each case's output.
absl::StatusOr<std::vector<std::string>> RunScenario(
    const std::vector<ScenarioCase>& cases, Driver& driver);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_SCENARIOS_SCENARIO_H_
