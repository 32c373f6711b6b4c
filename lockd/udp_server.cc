#include "lockd/udp_server.h"

#include <cstdio>

#include "abi/codec.h"

namespace lockd {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(100);
constexpr size_t kBatch = 64;

}  // namespace

void UdpServer::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void UdpServer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void UdpServer::Loop() {
  while (!stop_) {
    absl::StatusOr<std::vector<Datagram>> batch =
        socket_->Receive(kPollInterval, kBatch);
    if (!batch.ok()) {
      fprintf(stderr, "lockd: %s\n", batch.status().ToString().c_str());
      absl::SleepFor(kPollInterval);
      continue;
    }
    for (const Datagram& d : *batch) Serve(d);
  }
}

void UdpServer::Serve(const Datagram& datagram) {
  // What the datapath calls malformed is dropped here too, and counted.
  absl::StatusOr<Message> message = DecodeMessage(datagram.bytes);
  if (!message.ok() || !IsRequest(message->opcode) ||
      (message->opcode == LOCKD_OP_ACQUIRE &&
       message->mode == LOCKD_MODE_NONE)) {
    counters_->Add(DaemonCounters::kSocketMalformed);
    return;
  }
  counters_->Add(DaemonCounters::kSocketRequests);
  lockd_request request = ToRequest(*message, datagram.from);
  request.member_flags = LOCKD_MEMBER_LOCAL;
  absl::StatusOr<lockd_ctl> run = dispatcher_->Request(request);
  // No reply when the table kept changing: the client retransmits, as it
  // would after a lost packet.
  if (!run.ok() || run->result != LOCKD_CTL_OK) return;
  (void)socket_->Send(datagram.from, run->reply);
}

}  // namespace lockd
