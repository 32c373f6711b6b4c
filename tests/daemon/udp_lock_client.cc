#include "tests/daemon/udp_lock_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lockd::testing {

absl::StatusOr<std::unique_ptr<UdpLockClient>> UdpLockClient::Open(
    const netns::TestNetwork& net, uint64_t lock_id, uint64_t txn_id,
    uint32_t client_id, const std::string& local_ipv4,
    const std::string& netns) {
  absl::StatusOr<netns::UdpSocket> socket = netns::UdpSocket::Open(
      netns.empty() ? net.client_netns() : netns,
      local_ipv4.empty() ? net.link().client.ipv4 : local_ipv4, 0);
  if (!socket.ok()) return socket.status();
  return std::unique_ptr<UdpLockClient>(new UdpLockClient(
      std::move(*socket), net.link().server.ipv4, lock_id, txn_id, client_id));
}

EncodedMessage UdpLockClient::Signed(Message request) const {
  return TestIdentity(client_id_).Sign(request, NextTestSeq());
}

absl::Status UdpLockClient::SendBytes(const EncodedMessage& bytes) {
  return socket_.SendTo(server_, LOCKD_DEFAULT_PORT, bytes);
}

Message UdpLockClient::Request(lockd_opcode opcode, lockd_mode mode,
                               lockd_policy policy, uint32_t lease_ms,
                               uint32_t wait_ms) {
  Message request;
  request.opcode = opcode;
  request.mode = mode;
  request.policy = policy;
  request.lease_ms = lease_ms;
  request.wait_ms = wait_ms;
  request.lock_id = lock_id_;
  request.txn_id = txn_id_;
  return request;
}

absl::Status UdpLockClient::Send(lockd_opcode opcode, lockd_mode mode,
                                 lockd_policy policy, uint32_t lease_ms,
                                 uint32_t wait_ms) {
  return SendBytes(Signed(Request(opcode, mode, policy, lease_ms, wait_ms)));
}

absl::StatusOr<Message> UdpLockClient::Receive(absl::Duration timeout) {
  const std::string who = absl::StrCat("lock ", lock_id_, " txn ", txn_id_);
  absl::StatusOr<netns::UdpSocket::Datagram> datagram =
      socket_.RecvFrom(timeout);
  if (!datagram.ok()) {
    return absl::Status(datagram.status().code(),
                        absl::StrCat(who, ": ", datagram.status().message()));
  }
  if (datagram->from_ipv4 != server_ ||
      datagram->from_port != LOCKD_DEFAULT_PORT) {
    return absl::InternalError(absl::StrCat(
        who, ": datagram from ", datagram->from_ipv4, ":", datagram->from_port,
        ", not from lockd at ", server_, ":", LOCKD_DEFAULT_PORT));
  }
  absl::StatusOr<Message> reply = DecodeMessage(datagram->payload);
  if (!reply.ok()) {
    return absl::InternalError(
        absl::StrCat(who, ": undecodable reply: ", reply.status().message()));
  }
  if (!TestIdentity(client_id_).Accepts(datagram->payload, *reply)) {
    return absl::InternalError(
        absl::StrCat(who, ": reply not signed for client ", client_id_, ": ",
                     reply->ToString()));
  }
  if (IsRequest(reply->opcode) || reply->lock_id != lock_id_ ||
      reply->txn_id != txn_id_) {
    return absl::InternalError(
        absl::StrCat(who, ": not a reply to this client: ", reply->ToString()));
  }
  return reply;
}

absl::StatusOr<Message> UdpLockClient::Call(lockd_opcode opcode,
                                            lockd_mode mode,
                                            lockd_policy policy,
                                            uint32_t lease_ms,
                                            uint32_t wait_ms) {
  Message request = Request(opcode, mode, policy, lease_ms, wait_ms);
  const absl::Time give_up = absl::Now() + kReplyTimeout;
  for (;;) {
    if (absl::Status sent = SendBytes(Signed(request)); !sent.ok()) return sent;
    absl::StatusOr<Message> reply =
        Receive(std::min(kRetransmitAfter, std::max(give_up - absl::Now(),
                                                    absl::ZeroDuration())));
    if (!absl::IsDeadlineExceeded(reply.status()) || absl::Now() >= give_up)
      return reply;
    // Unanswered (the server was adding memory, or the lock kept changing):
    // the request again, as a client retransmits (with a new seq).
    request.flags |= LOCKD_FLAG_RETRANSMIT;
  }
}

absl::StatusOr<Message> ExpectReply(absl::StatusOr<Message> reply,
                                    lockd_opcode opcode) {
  if (!reply.ok() || reply->opcode == opcode) return reply;
  return absl::InternalError(absl::StrCat("expected ", OpcodeName(opcode),
                                          ", got ", reply->ToString()));
}

}  // namespace lockd::testing
