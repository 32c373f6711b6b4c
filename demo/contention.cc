// Demo workload for the README's main command: one client holds a lock
// exclusively, 8 readers and then 2 writers queue behind it over UDP, and the
// holder's release lets the kernel grant the readers at once, then each
// writer in turn. It pauses with the queue formed (until --resume_file
// exists) so that lockctl can show it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

ABSL_FLAG(std::string, server, "198.18.0.1", "lockd server IPv4 address.");
ABSL_FLAG(uint32_t, port, LOCKD_DEFAULT_PORT, "lockd UDP port.");
ABSL_FLAG(std::string, lock, "inventory/widget-42", "Lock name.");
ABSL_FLAG(int, readers, 8, "Shared waiters.");
ABSL_FLAG(int, writers, 2, "Exclusive waiters.");
ABSL_FLAG(std::string, key_file, "",
          "Client keys (docs/security.md): each demo client signs as its own "
          "client, ids --first_client_id on; empty: unsigned (lab subnets).");
ABSL_FLAG(uint32_t, first_client_id, 1,
          "Client id of the holder; the "
          "readers and writers take the next ones.");
ABSL_FLAG(std::string, resume_file, "",
          "Wait until this file exists before releasing (at most 60 s).");

namespace {

constexpr absl::Duration kReplyTimeout = absl::Seconds(3);

// One client: a UDP socket, a client id and key, and a transaction id.
// Retransmits (each copy with a new seq) until answered; ignores replies not
// signed with its key.
class Client {
 public:
  Client(std::string name, uint64_t txn, const lockd::ClientIdentity& identity)
      : name_(std::move(name)), txn_(txn), identity_(identity) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    server_.sin_family = AF_INET;
    server_.sin_port = htons(absl::GetFlag(FLAGS_port));
    inet_pton(AF_INET, absl::GetFlag(FLAGS_server).c_str(), &server_.sin_addr);
  }
  ~Client() { close(fd_); }

  lockd::Message Request(lockd_opcode opcode, lockd_mode mode,
                         uint64_t lock_id) {
    lockd::Message m;
    m.opcode = opcode;
    m.mode = mode;
    m.lock_id = lock_id;
    m.txn_id = txn_;
    for (int attempt = 0; attempt < 5; ++attempt) {
      const lockd::EncodedMessage bytes = identity_.Sign(m, seqs_.Next());
      sendto(fd_, bytes.data(), bytes.size(), 0,
             reinterpret_cast<sockaddr*>(&server_), sizeof(server_));
      if (auto reply = Receive(kReplyTimeout)) return *reply;
    }
    fprintf(stderr, "%s: no answer from %s\n", name_.c_str(),
            absl::GetFlag(FLAGS_server).c_str());
    exit(1);
  }

  std::optional<lockd::Message> Receive(absl::Duration timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, absl::ToInt64Milliseconds(timeout)) <= 0)
      return std::nullopt;
    uint8_t buffer[256];
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    const auto bytes = absl::MakeConstSpan(buffer, n > 0 ? n : 0);
    absl::StatusOr<lockd::Message> m = lockd::DecodeMessage(bytes);
    if (!m.ok() || !identity_.Accepts(bytes, *m))
      return std::nullopt;  // not from our server
    return *m;
  }

  void Print(const lockd::Message& m) const {
    printf("  %-9s txn %-3lu %-8s", name_.c_str(),
           static_cast<unsigned long>(txn_),
           std::string(lockd::OpcodeName(m.opcode)).c_str());
    if (m.opcode == LOCKD_OP_GRANTED)
      printf(" fence %lu", static_cast<unsigned long>(m.fence));
    if (m.opcode == LOCKD_OP_QUEUED) printf(" position %u", m.queue_pos);
    printf("\n");
  }

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  uint64_t txn_;
  lockd::ClientIdentity identity_;
  lockd::SeqSource seqs_;
  int fd_;
  sockaddr_in server_{};
};

void WaitForGrant(Client& c) {
  std::optional<lockd::Message> g = c.Receive(absl::Seconds(10));
  if (!g || g->opcode != LOCKD_OP_GRANTED) {
    fprintf(stderr, "%s: expected GRANTED\n", c.name().c_str());
    exit(1);
  }
  c.Print(*g);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const uint64_t lock = lockd::LockIdForName(absl::GetFlag(FLAGS_lock));
  printf("lock \"%s\" is id 0x%016lx\n", absl::GetFlag(FLAGS_lock).c_str(),
         static_cast<unsigned long>(lock));

  std::map<uint32_t, lockd::ClientKey> keys;
  if (!absl::GetFlag(FLAGS_key_file).empty()) {
    absl::StatusOr<std::map<uint32_t, lockd::ClientKey>> read =
        lockd::ReadKeyFile(absl::GetFlag(FLAGS_key_file));
    if (!read.ok()) {
      fprintf(stderr, "contention: %s\n", read.status().ToString().c_str());
      return 2;
    }
    keys = *read;
  }
  uint32_t next_id = absl::GetFlag(FLAGS_first_client_id);
  // The next client; unsigned without a key file.
  auto make = [&](std::string name, uint64_t txn) {
    const uint32_t id = keys.empty() ? LOCKD_CLIENT_NONE : next_id++;
    if (id != LOCKD_CLIENT_NONE && keys.count(id) == 0) {
      fprintf(stderr, "contention: the key file has no client %u\n", id);
      exit(2);
    }
    return std::make_unique<Client>(
        std::move(name), txn,
        lockd::ClientIdentity{
            id, id == LOCKD_CLIENT_NONE ? lockd::ClientKey{} : keys.at(id)});
  };
  std::unique_ptr<Client> holder_client = make("holder", 1);
  Client& holder = *holder_client;
  std::vector<std::unique_ptr<Client>> readers, writers;
  for (int i = 0; i < absl::GetFlag(FLAGS_readers); ++i)
    readers.push_back(make(absl::StrCat("reader-", i + 1), 10 + i));
  for (int i = 0; i < absl::GetFlag(FLAGS_writers); ++i)
    writers.push_back(make(absl::StrCat("writer-", i + 1), 100 + i));

  printf("acquire:\n");
  holder.Print(holder.Request(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE, lock));
  for (auto& c : readers)
    c->Print(c->Request(LOCKD_OP_ACQUIRE, LOCKD_MODE_SHARED, lock));
  for (auto& c : writers)
    c->Print(c->Request(LOCKD_OP_ACQUIRE, LOCKD_MODE_EXCLUSIVE, lock));

  const std::string resume = absl::GetFlag(FLAGS_resume_file);
  if (!resume.empty()) {
    printf("queue formed; clients wait\n");
    for (int i = 0; i < 600 && access(resume.c_str(), F_OK) != 0; ++i)
      absl::SleepFor(absl::Milliseconds(100));
  }

  printf("holder releases; the kernel grants every reader at once:\n");
  holder.Print(holder.Request(LOCKD_OP_RELEASE, LOCKD_MODE_NONE, lock));
  for (auto& c : readers) WaitForGrant(*c);
  printf("readers release; the last one wakes writer-1, then writer-2:\n");
  for (auto& c : readers) c->Request(LOCKD_OP_RELEASE, LOCKD_MODE_NONE, lock);
  for (size_t i = 0; i < writers.size(); ++i) {
    WaitForGrant(*writers[i]);
    writers[i]->Request(LOCKD_OP_RELEASE, LOCKD_MODE_NONE, lock);
  }
  printf("done: every waiter granted in FIFO order\n");
  return 0;
}
