#include "lockd/clients.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lockd/datapath.h"
#include "lockd/files.h"

namespace lockd {
namespace {

// The LPM trie's key (bpf/lib/maps.h struct open_subnet_key).
struct SubnetKey {
  uint32_t prefix_len;
  uint32_t addr;
};

}  // namespace

absl::StatusOr<Subnet> ParseSubnet(const std::string& text) {
  const size_t slash = text.find('/');
  const std::string addr = text.substr(0, slash);
  Subnet subnet;
  if (inet_pton(AF_INET, addr.c_str(), &subnet.addr) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 subnet: \"", text, "\""));
  if (slash != std::string::npos &&
      (!absl::SimpleAtoi(text.substr(slash + 1), &subnet.prefix_len) ||
       subnet.prefix_len > 32))
    return absl::InvalidArgumentError(
        absl::StrCat("bad prefix length in \"", text, "\""));
  return subnet;
}

std::string SubnetText(const Subnet& subnet) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &subnet.addr, buf, sizeof(buf));
  return absl::StrCat(buf, "/", subnet.prefix_len);
}

absl::Status Clients::SetInKernel(uint32_t client_id, const ClientKey& key) {
  lockd_ctl command{};
  command.op = LOCKD_CTL_SET_KEY;
  command.req.client_id = client_id;
  command.key[0] = key.k0;
  command.key[1] = key.k1;
  absl::StatusOr<lockd_ctl> run = table_->Execute(command);
  if (!run.ok()) return run.status();
  if (run->result != LOCKD_CTL_OK)
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for client ", client_id,
                     ": the server's clients are at "
                     "--max_clients"));
  return absl::OkStatus();
}

absl::Status Clients::RemoveFromKernel(uint32_t client_id) {
  if (bpf_map_delete_elem(clients_fd_, &client_id) != 0 && errno != ENOENT)
    return ErrnoStatus(errno, absl::StrCat("removing client ", client_id));
  return absl::OkStatus();
}

absl::Status Clients::Load() {
  // One change of the clients at a time (Set and Remove take it too).
  absl::MutexLock lock(&mu_);
  std::map<uint32_t, ClientKey> keys;
  if (!key_file_.empty()) {
    absl::StatusOr<std::map<uint32_t, ClientKey>> read = ReadKeyFile(key_file_);
    if (!read.ok()) return read.status();
    keys = std::move(*read);
  }
  // The unauthenticated senders' record: it counts their holds and waits.
  if (absl::Status s = SetInKernel(LOCKD_CLIENT_NONE, ClientKey{}); !s.ok())
    return s;
  for (const auto& [id, key] : keys)
    if (absl::Status s = SetInKernel(id, key); !s.ok()) return s;
  // Clients the kernel knows (a restart keeps them pinned) and the file no
  // longer lists go.
  uint32_t id = 0, next = 0;
  std::vector<uint32_t> gone;
  for (const uint32_t* prev = nullptr;
       bpf_map_get_next_key(clients_fd_, prev, &next) == 0; prev = &id) {
    id = next;
    if (id != LOCKD_CLIENT_NONE && keys.count(id) == 0) gone.push_back(id);
  }
  for (uint32_t g : gone)
    if (absl::Status s = RemoveFromKernel(g); !s.ok()) return s;
  keys_ = std::move(keys);
  return absl::OkStatus();
}

absl::Status Clients::OpenSubnets(const std::vector<Subnet>& subnets) {
  absl::MutexLock lock(&mu_);
  for (const Subnet& old : open_) {
    SubnetKey key{old.prefix_len, old.addr};
    bpf_map_delete_elem(open_subnets_fd_, &key);
  }
  open_.clear();
  for (const Subnet& subnet : subnets) {
    SubnetKey key{subnet.prefix_len, subnet.addr};
    uint8_t open = 1;
    if (bpf_map_update_elem(open_subnets_fd_, &key, &open, BPF_ANY) != 0)
      return ErrnoStatus(errno, absl::StrCat("opening ", SubnetText(subnet)));
    open_.push_back(subnet);
  }
  return absl::OkStatus();
}

bool Clients::IsOpen(uint32_t addr) const {
  absl::MutexLock lock(&mu_);
  for (const Subnet& subnet : open_) {
    const uint32_t mask =
        subnet.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - subnet.prefix_len);
    if ((ntohl(addr) & mask) == (ntohl(subnet.addr) & mask)) return true;
  }
  return false;
}

absl::Status Clients::WriteKeyFile() const {
  if (key_file_.empty()) return absl::OkStatus();
  return WriteFileAtomically(key_file_, KeyFileText(keys_));
}

absl::Status Clients::Set(uint32_t client_id, const ClientKey& key) {
  if (client_id == LOCKD_CLIENT_NONE)
    return absl::InvalidArgumentError(
        "client id 0 is reserved for unauthenticated senders");
  if (key.k0 == 0 && key.k1 == 0)
    return absl::InvalidArgumentError("an all-zero key is not a key");
  absl::MutexLock lock(&mu_);
  if (absl::Status s = SetInKernel(client_id, key); !s.ok()) return s;
  keys_[client_id] = key;
  counters_->Add(DaemonCounters::kKeysSet);
  return WriteKeyFile();
}

absl::Status Clients::Remove(uint32_t client_id) {
  absl::MutexLock lock(&mu_);
  if (keys_.erase(client_id) == 0)
    return absl::NotFoundError(absl::StrCat("no client ", client_id));
  if (absl::Status s = RemoveFromKernel(client_id); !s.ok()) return s;
  counters_->Add(DaemonCounters::kClientsRemoved);
  return WriteKeyFile();
}

absl::StatusOr<std::vector<ClientInfo>> Clients::List() const {
  std::vector<ClientInfo> out;
  uint32_t id = 0, next = 0;
  for (const uint32_t* prev = nullptr;
       bpf_map_get_next_key(clients_fd_, prev, &next) == 0; prev = &id) {
    id = next;
    lockd_client c{};
    if (bpf_map_lookup_elem(clients_fd_, &id, &c) != 0) continue;
    out.push_back(ClientInfo{id, c.members, c.has_old_key != 0, c.seq_top});
  }
  std::sort(out.begin(), out.end(),
            [](const ClientInfo& a, const ClientInfo& b) {
              return a.client_id < b.client_id;
            });
  return out;
}

}  // namespace lockd
