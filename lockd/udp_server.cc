#include "lockd/udp_server.h"

#include <cstdio>

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
  // The control program parses and authenticates it as the packet path
  // does: what the datapath drops is dropped here too, and counted.
  absl::StatusOr<lockd_ctl> run =
      dispatcher_->Wire(datagram.bytes, datagram.from, LOCKD_MEMBER_LOCAL);
  if (!run.ok() || run->result == LOCKD_CTL_MALFORMED) {
    counters_->Add(DaemonCounters::kSocketMalformed);
    return;
  }
  if (run->result == LOCKD_CTL_FORGED) {
    counters_->Add(DaemonCounters::kSocketForged);
    return;
  }
  counters_->Add(DaemonCounters::kSocketRequests);
  // No reply when the table kept changing: the client retransmits, as it
  // would after a lost packet.
  if (run->result != LOCKD_CTL_OK) return;
  (void)socket_->Send(datagram.from, run->reply);
}

}  // namespace lockd
