#include "bench/udp_driver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"

namespace lockd::bench {
namespace {

constexpr int64_t kTickNanos = 20000000;
constexpr int kReceiveBatch = 64;

}  // namespace

UdpDriver::~UdpDriver() {
  for (int fd : fds_) {
    loop_->Unwatch(fd);
    close(fd);
  }
}

absl::Status UdpDriver::Connect(int sessions, DriverListener* listener) {
  listener_ = listener;
  sessions_.resize(sessions);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(options_.port);
  if (inet_pton(AF_INET, options_.server.c_str(), &server.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad server address ", options_.server));
  }
  for (int i = 0; i < options_.sockets; ++i) {
    const int fd =
        socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
    fds_.push_back(fd);
    const int buffer = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
    if (connect(fd, reinterpret_cast<const sockaddr*>(&server),
                sizeof(server)) != 0) {
      return absl::ErrnoToStatus(errno, "connect");
    }
    absl::Status watched =
        loop_->Watch(fd, EPOLLIN, [this, fd](uint32_t) { Receive(fd); });
    if (!watched.ok()) return watched;
  }
  outbox_.resize(fds_.size());
  loop_->AfterEvents([this] { Flush(); });
  loop_->At(NowNanos() + kTickNanos, [this] { Tick(); });
  return absl::OkStatus();
}

void UdpDriver::Acquire(int session, int slot, uint64_t txn_id,
                        uint64_t lock_id, lockd_mode mode) {
  Start(session, slot, LOCKD_OP_ACQUIRE, txn_id, lock_id, mode);
}

void UdpDriver::Release(int session, int slot, uint64_t txn_id,
                        uint64_t lock_id) {
  Start(session, slot, LOCKD_OP_RELEASE, txn_id, lock_id, LOCKD_MODE_NONE);
}

void UdpDriver::Start(int session, int slot, lockd_opcode opcode,
                      uint64_t txn_id, uint64_t lock_id, lockd_mode mode) {
  SessionState& state = sessions_[session];
  if (state.slots.size() <= static_cast<size_t>(slot)) {
    state.slots.resize(slot + 1);
  }
  Pending& pending = state.slots[slot];
  // A RELEASE names the record its slot's GRANTED named.
  const uint64_t ticket =
      opcode == LOCKD_OP_RELEASE ? state.slots[slot].ticket : LOCKD_TICKET_NONE;
  pending =
      Pending{true, false, opcode, mode, 0, lock_id, txn_id, 0, false, ticket};
  Send(session, pending);
}

void UdpDriver::Send(int session, Pending& pending) {
  Message message;
  message.opcode = pending.opcode;
  message.mode = pending.mode;
  message.policy =
      pending.opcode == LOCKD_OP_ACQUIRE ? options_.policy : LOCKD_POLICY_WAIT;
  message.lock_id = pending.lock_id;
  message.txn_id = pending.txn_id;
  message.ticket = pending.ticket;
  message.flags = pending.again ? LOCKD_FLAG_RETRANSMIT : 0;
  // A session always sends on the same socket, in the order of its seqs.
  outbox_[session % fds_.size()].push_back(
      options_.signers[session].Sign(message));
  if (!pending.again) pending.first_seq = message.seq;
  pending.again = true;
  pending.sent = NowNanos();
}

void UdpDriver::Flush() {
  constexpr size_t kBatch = 64;
  for (size_t socket = 0; socket < fds_.size(); ++socket) {
    std::vector<EncodedMessage>& outbox = outbox_[socket];
    for (size_t first = 0; first < outbox.size(); first += kBatch) {
      const size_t count = std::min(kBatch, outbox.size() - first);
      iovec iov[kBatch];
      mmsghdr messages[kBatch];
      for (size_t i = 0; i < count; ++i) {
        iov[i] = {outbox[first + i].data(), kMessageSize};
        messages[i] = {};
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
      }
      const int sent = sendmmsg(fds_[socket], messages, count, MSG_DONTWAIT);
      // What was not sent is sent again by the retransmission tick.
      const size_t done = sent < 0 ? 0 : static_cast<size_t>(sent);
      sent_ += done;
      send_failed_ += count - done;
    }
    outbox.clear();
  }
}

void UdpDriver::Receive(int fd) {
  uint8_t buffers[kReceiveBatch][kMessageSize + 1];
  iovec iov[kReceiveBatch];
  mmsghdr messages[kReceiveBatch];
  for (int i = 0; i < kReceiveBatch; ++i) {
    iov[i] = {buffers[i], sizeof(buffers[i])};
    messages[i] = {};
    messages[i].msg_hdr.msg_iov = &iov[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  for (;;) {
    const int received =
        recvmmsg(fd, messages, kReceiveBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) return;
    for (int i = 0; i < received; ++i) Handle(buffers[i], messages[i].msg_len);
    if (received < kReceiveBatch) return;
  }
}

void UdpDriver::Handle(const uint8_t* data, size_t size) {
  absl::StatusOr<Message> reply =
      DecodeMessage(absl::MakeConstSpan(data, size));
  if (!reply.ok()) {
    ++stray_;
    return;
  }
  const int session = SessionOfTxn(reply->txn_id);
  if (session >= static_cast<int>(sessions_.size())) {
    ++stray_;
    return;
  }
  if (!options_.reflect && !options_.signers[session].Verify(
                               absl::MakeConstSpan(data, size), *reply)) {
    ++forged_;
    return;
  }
  std::vector<Pending>& slots = sessions_[session].slots;
  for (size_t slot = 0; slot < slots.size(); ++slot) {
    Pending& pending = slots[slot];
    if (!pending.active || pending.lock_id != reply->lock_id ||
        pending.txn_id != reply->txn_id) {
      continue;
    }
    Reply outcome;
    if (pending.opcode == LOCKD_OP_ACQUIRE) {
      if (reply->ticket != LOCKD_TICKET_NONE) pending.ticket = reply->ticket;
      if (reply->opcode == LOCKD_OP_QUEUED) {
        if (!pending.queued) ++queued_;
        pending.queued = true;
        pending.sent = NowNanos();
        return;
      }
      if (reply->opcode == LOCKD_OP_GRANTED) {
        outcome = Reply::kGranted;
      } else if (reply->opcode == LOCKD_OP_REJECTED) {
        ++rejected_[reply->status];
        outcome = Reply::kRejected;
      } else {
        break;
      }
    } else if (reply->opcode == LOCKD_OP_RELEASED ||
               (options_.reflect && reply->seq >= pending.first_seq)) {
      outcome = Reply::kReleased;
    } else if (reply->opcode == LOCKD_OP_REJECTED) {
      ++release_rejected_[reply->status];  // the hold is gone anyway
      outcome = Reply::kReleased;
    } else {
      break;  // a late duplicate GRANTED of the acquire
    }
    pending.active = false;
    listener_->OnReply(session, static_cast<int>(slot), outcome);
    return;
  }
  ++stray_;
}

void UdpDriver::Tick() {
  const int64_t now = NowNanos();
  for (size_t session = 0; session < sessions_.size(); ++session) {
    for (Pending& pending : sessions_[session].slots) {
      if (!pending.active) continue;
      const int64_t timeout = pending.queued ? options_.queued_retransmit_nanos
                                             : options_.retransmit_nanos;
      if (now - pending.sent < timeout) continue;
      ++retransmits_;
      Send(static_cast<int>(session), pending);
    }
  }
  loop_->At(now + kTickNanos, [this] { Tick(); });
}

DriverCounters UdpDriver::Counters() const {
  DriverCounters counters = {
      {"udp_sent", sent_},           {"udp_send_failed", send_failed_},
      {"retransmits", retransmits_}, {"queued", queued_},
      {"stray_replies", stray_},     {"forged_replies", forged_}};
  for (const auto& [prefix, by_status] :
       {std::make_pair("rejected_", &rejected_),
        std::make_pair("release_rejected_", &release_rejected_)}) {
    for (int status = 0; status < LOCKD_STATUS_COUNT; ++status) {
      if ((*by_status)[status] == 0) continue;
      counters.emplace_back(
          absl::StrCat(prefix, StatusName(static_cast<lockd_status>(status))),
          (*by_status)[status]);
    }
  }
  return counters;
}

}  // namespace lockd::bench
