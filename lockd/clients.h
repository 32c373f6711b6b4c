// The server's clients (docs/security.md): their keys, provisioned from the
// key file and by AdminService calls, kept in the datapath's "clients" map
// through the control program (LOCKD_CTL_SET_KEY, under each client's
// guard); and the subnets whose unauthenticated requests are served (labs).
// Keys go into the kernel and the key file, and nowhere else: listings show
// ids only.
#ifndef LOCKD_LOCKD_CLIENTS_H_
#define LOCKD_LOCKD_CLIENTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "abi/keys.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lockd/daemon_counters.h"
#include "lockd/lock_table.h"

namespace lockd {

// An IPv4 subnet, e.g. "198.18.0.0/15".
struct Subnet {
  uint32_t addr = 0;  // network order
  uint32_t prefix_len = 32;
};
absl::StatusOr<Subnet> ParseSubnet(const std::string& text);
std::string SubnetText(const Subnet& subnet);

// A client as an operator sees it: never its key.
struct ClientInfo {
  uint32_t client_id = 0;
  int32_t members = 0;    // holds + waits now
  bool rotating = false;  // the previous key is still accepted
  uint64_t last_seq = 0;  // newest request seq accepted
};

class Clients {
 public:
  // `table` runs SET_KEY; the fds are the datapath's "clients" and
  // "open_subnets" maps. `key_file` ("" = none) is read by Load and
  // rewritten by Set/Remove. All must outlive this object.
  Clients(LockTable* table, int clients_fd, int open_subnets_fd,
          std::string key_file, DaemonCounters* counters)
      : table_(table),
        clients_fd_(clients_fd),
        open_subnets_fd_(open_subnets_fd),
        key_file_(std::move(key_file)),
        counters_(counters) {}

  // Makes the datapath's clients those of the key file (plus the record of
  // the unauthenticated senders): new ones added, changed keys rotated,
  // the others removed. Run at start and on reload.
  absl::Status Load();
  // Serves unauthenticated requests from `subnets` (replacing any before).
  absl::Status OpenSubnets(const std::vector<Subnet>& subnets);

  // Adds a client, or rotates its key (the old one is accepted until the
  // client signs with the new one); the key file is rewritten.
  absl::Status Set(uint32_t client_id, const ClientKey& key);
  // Forgets a client: its requests fail from now on (its holds end with
  // their leases). NotFound if unknown.
  absl::Status Remove(uint32_t client_id);
  absl::StatusOr<std::vector<ClientInfo>> List() const;
  // Whether unauthenticated requests from `addr` (network order) are
  // served.
  bool IsOpen(uint32_t addr) const;

 private:
  absl::Status SetInKernel(uint32_t client_id, const ClientKey& key);
  absl::Status RemoveFromKernel(uint32_t client_id);
  absl::Status WriteKeyFile() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LockTable* const table_;
  const int clients_fd_;
  const int open_subnets_fd_;
  const std::string key_file_;
  DaemonCounters* const counters_;
  mutable absl::Mutex mu_;
  std::map<uint32_t, ClientKey> keys_ ABSL_GUARDED_BY(mu_);
  std::vector<Subnet> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_CLIENTS_H_
