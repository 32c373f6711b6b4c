// A lock server: the datapath with its one lock table in the kernel, and
// the control plane over it, wired together. This file only composes; each
// part is its own file:
//
//   Datapath      datapath.h      load, pin, attach the BPF programs
//   Segments      segments.h      grow and shrink table and pool in a budget
//   KernelTable   kernel_table.h  control operations, lock reads
//   Dispatcher    dispatcher.h    a control operation and what it leaves over
//   Notifier      notifier.h      notices for members the daemon serves
//   LockService   lock_service.h  Acquire/Release/Renew for gRPC callers
//   UdpServer     udp_server.h    requests that reach the daemon's socket
//   Expiry        expiry.h        leases, wait deadlines, remembered endings
//   ControlLoop   control_loop.h  the thread for events and timers
//   Admin         admin.h         what operators ask
//   Clients       clients.h       client keys, lab subnets
//
// The gRPC services (grpc_*.h) and lockctl are adapters over LockService and
// Admin.
#ifndef LOCKD_LOCKD_SERVER_H_
#define LOCKD_LOCKD_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lockd/admin.h"
#include "lockd/clients.h"
#include "lockd/control_loop.h"
#include "lockd/daemon_counters.h"
#include "lockd/datapath.h"
#include "lockd/dispatcher.h"
#include "lockd/expiry.h"
#include "lockd/kernel_table.h"
#include "lockd/lock_service.h"
#include "lockd/notifier.h"
#include "lockd/segments.h"
#include "lockd/udp_server.h"
#include "lockd/udp_socket.h"

namespace lockd {

struct ServerOptions {
  // Interface to attach the fast path to; empty: none (the daemon's socket
  // serves every request, on the same table).
  std::string interface;
  // Names the instance: its pins (<pin_root>/<instance>) do not collide
  // with another instance's.
  std::string instance = "default";
  std::string pin_root = "/sys/fs/bpf/lockd";
  DatapathOptions datapath;  // pin_dir is derived
  SegmentOptions segments;
  ExpiryOptions expiry;
  ControlLoopOptions loop;
  // Client keys (abi/keys.h format); empty: no authenticated client.
  std::string key_file;
  // Subnets whose unauthenticated requests are served (labs only).
  std::vector<Subnet> open_subnets;
};

class Server {
 public:
  // Loads (or, with pins of an earlier run, continues) the table, starts
  // the control plane, then attaches the fast path.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options);
  // Stops the threads and detaches. Pins stay unless Unpin() was called:
  // the next Start of the instance continues every hold, waiter and fence.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Removes the pins: the table goes with this process.
  void Unpin();

  LockService& lock_service() { return *lock_service_; }
  Admin& admin() { return *admin_; }
  Clients& clients() { return *clients_; }
  const ServerOptions& options() const { return options_; }

 private:
  explicit Server(const ServerOptions& options) : options_(options) {}
  absl::Status Init();

  const ServerOptions options_;
  DaemonCounters counters_;
  std::unique_ptr<Datapath> datapath_;
  std::unique_ptr<Segments> segments_;
  std::unique_ptr<KernelTable> table_;
  std::unique_ptr<UdpSocket> socket_;
  LocalCalls calls_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<LockService> lock_service_;
  std::unique_ptr<Expiry> expiry_;
  std::unique_ptr<ControlLoop> loop_;
  std::unique_ptr<UdpServer> udp_server_;
  std::unique_ptr<Admin> admin_;
  std::unique_ptr<Clients> clients_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_SERVER_H_
