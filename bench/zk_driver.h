// ZkDriver: ZooKeeper locks as JVM shops take them through Apache Curator's
// recipes (bench/zk_lock_recipe.h), with Debian's multi-threaded C client
// (libzookeeper_mt) against a standalone ZooKeeper server.
//
// A lock is the znode <root>/<lock id, 16 hex digits>, a CONTAINER node as
// Curator makes lock parents: the first acquire that finds it missing
// creates it (ZNODEEXISTS from a concurrent creator is fine) and ZooKeeper
// removes it once it has been emptied. An acquire creates
// <lock>/read-<seq> (shared) or <lock>/write-<seq> (exclusive),
// EPHEMERAL|SEQUENTIAL; lists the lock's children; holds it, or sets an
// exists watch on the one child the recipe says it waits for and lists
// again when that child goes. A release deletes the child. ZooKeeper never
// refuses a waiter: only errors reject an acquire (and delete its child).
// Closing the ZooKeeper sessions (the driver's destructor) removes whatever
// children are left.
//
// Threads: the _mt client runs two threads per ZooKeeper handle, one for
// the socket and one for completions and watch events. (zookeeper_interest
// and zookeeper_process, which would let the EventLoop own the socket,
// belong to the single-threaded library.) Completions and watch events are
// handed to the loop through a LoopInbox; the recipe's state lives on the
// loop's thread only, and requests are sent from there (the _mt calls are
// thread-safe: they queue the request and wake the I/O thread). A reply
// thus costs two thread hand-offs before the loop sees it, as replies to
// lockd's gRPC driver do.
//
// ZooKeeper sessions: `handles` per driver, i.e. per load generator thread
// (1 by default), the load generator's sessions spread over them; 0: one per
// load generator session, each with its own TCP connection as Redis and
// etcd sessions have. The recipe allows sharing: a lock's owner is its child
// znode, not the session (the locks of one JVM share one Curator client), so
// sessions of one handle queue on a lock like any others. Ephemeral
// children die with the handle's session, and ZooKeeper answers a session's
// requests in order. Sharing also keeps the client's threads few (two per
// handle), so that they take little of the cores the server shares.
#ifndef LOCKD_BENCH_ZK_DRIVER_H_
#define LOCKD_BENCH_ZK_DRIVER_H_

#include <zookeeper/zookeeper.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/event_loop.h"
#include "bench/lock_driver.h"
#include "bench/loop_inbox.h"

namespace lockd::bench {

struct ZkDriverOptions {
  std::string server;  // IPv4 dotted quad
  uint16_t port = 2181;
  int handles = 1;  // ZooKeeper sessions; 0: one per load generator session
  int session_timeout_ms = 30000;
  absl::Duration connect_timeout = absl::Seconds(20);
  std::string root = "/lockd-bench";  // parent of every lock znode
};

class ZkDriver : public LockDriver {
 public:
  ZkDriver(const ZkDriverOptions& options, EventLoop* loop)
      : options_(options), inbox_(loop) {}
  // Closes the ZooKeeper sessions: the server deletes their ephemeral nodes.
  ~ZkDriver() override;

  // Opens the handles, waits until every one has its session and creates
  // the root znode (if no one did yet).
  absl::Status Connect(int sessions, DriverListener* listener) override;
  void Acquire(int session, int slot, uint64_t txn_id, uint64_t lock_id,
               lockd_mode mode) override;
  void Release(int session, int slot, uint64_t txn_id,
               uint64_t lock_id) override;
  DriverCounters Counters() const override;

  // The znode of a lock.
  std::string LockPath(uint64_t lock_id) const;

 private:
  enum class Phase { kIdle, kCreating, kListing, kWatching, kHeld, kReleasing };
  struct Slot {
    Phase phase = Phase::kIdle;
    // Bumped by every request sent for the slot: an answer (or a watch
    // event) carrying an older step is stale and dropped.
    uint32_t step = 0;
    lockd_mode mode = LOCKD_MODE_EXCLUSIVE;
    std::string lock;  // the lock's znode
    std::string node;  // our child's path, once created
  };
  struct SessionState {
    zhandle_t* handle = nullptr;
    std::vector<Slot> slots;
  };
  // What a completion carries back: the slot and its step at sending.
  struct Ref {
    ZkDriver* driver;
    int session;
    int slot;
    uint32_t step;
  };

  Slot& SlotOf(int session, int slot);
  // The slot `ref` points to, or null if the answer is stale.
  Slot* Current(const Ref& ref);
  Ref* NewRef(int session, int slot);

  void Create(int session, int slot);
  void CreateParent(int session, int slot);
  void List(int session, int slot);
  void Watch(int session, int slot, const std::string& path);
  void Fail(int session, int slot, int rc);

  void Created(const Ref& ref, int rc, const std::string& path);
  void ParentCreated(const Ref& ref, int rc);
  void Listed(const Ref& ref, int rc, const std::vector<std::string>& children);
  void Existed(const Ref& ref, int rc);
  void Fired(const Ref& ref, int type);
  void Deleted(const Ref& ref, int rc);

  // The C client's callbacks, on its completion thread: they post to inbox_.
  static void CreateDone(int rc, const char* path, const void* data);
  static void ParentDone(int rc, const char* path, const void* data);
  static void ChildrenDone(int rc, const String_vector* children,
                           const void* data);
  static void ExistsDone(int rc, const Stat* stat, const void* data);
  static void DeleteDone(int rc, const void* data);
  static void CleanupDone(int rc, const void* data);
  static void WatchFired(zhandle_t* zh, int type, int state, const char* path,
                         void* context);
  static void SessionEvent(zhandle_t* zh, int type, int state, const char* path,
                           void* context);

  ZkDriverOptions options_;
  LoopInbox inbox_;
  DriverListener* listener_ = nullptr;
  std::vector<zhandle_t*> handles_;
  std::vector<SessionState> sessions_;
  uint64_t requests_ = 0;
  uint64_t lists_ = 0;
  uint64_t relists_ = 0;
  uint64_t watches_ = 0;
  uint64_t watches_fired_ = 0;
  uint64_t predecessor_gone_ = 0;
  uint64_t parent_creates_ = 0;
  uint64_t session_events_ = 0;
  uint64_t stale_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_ZK_DRIVER_H_
