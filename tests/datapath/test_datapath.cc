#include "tests/datapath/test_datapath.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "abi/codec.h"
#include "absl/strings/str_cat.h"
#include "lockd/test_run.h"

namespace lockd::testing {
namespace {

constexpr int kLoopbackIfindex = 1;

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

bool IsRequestFrame(const Bytes& packet) {
  absl::StatusOr<Message> message = MessageOf(packet);
  return message.ok() && IsRequest(message->opcode);
}

}  // namespace

absl::StatusOr<TestDatapath> TestDatapath::Create(
    DatapathOptions options, SegmentOptions segments,
    const std::string& open_subnet) {
  if (!options.fence_base) options.fence_base = 0;  // fences count from 1
  TestDatapath t;
  absl::StatusOr<std::unique_ptr<Datapath>> loaded = Datapath::Load(options);
  if (!loaded.ok()) return loaded.status();
  t.datapath = std::move(*loaded);
  t.segments = std::make_unique<Segments>(t.datapath.get(), segments);
  if (absl::Status s = t.segments->Start(); !s.ok()) return s;
  t.table = std::make_unique<KernelTable>(t.datapath.get());
  t.counters = std::make_unique<DaemonCounters>();
  t.clients = std::make_unique<Clients>(
      t.table.get(), t.datapath->maps().clients,
      t.datapath->maps().open_subnets, "", t.counters.get());
  if (absl::Status s = t.clients->Load(); !s.ok()) return s;
  if (!open_subnet.empty()) {
    absl::StatusOr<Subnet> subnet = ParseSubnet(open_subnet);
    if (!subnet.ok()) return subnet.status();
    if (absl::Status s = t.clients->OpenSubnets({*subnet}); !s.ok()) return s;
  }
  return t;
}

absl::StatusOr<int> TestDatapath::ServeGrowth() {
  if (!events) {
    // The handler finds this object through the pointer it was made with:
    // a TestDatapath serving growth is not moved any more.
    absl::StatusOr<std::unique_ptr<EventReader>> reader = EventReader::Open(
        datapath->maps().events, [this](const lockd_event& ev) {
          absl::Status s;
          if (ev.type == LOCKD_EVENT_TABLE_GROW) {
            s = segments->AddTableSegment(ev.arg);
            ++growth_requests;
          } else if (ev.type == LOCKD_EVENT_POOL_LOW) {
            s = segments->GrowPool();
            ++growth_requests;
          } else if (ev.type == LOCKD_EVENT_LOCAL_NOTICE) {
            local_notices.push_back(ev.notice);
          }
          if (!s.ok() && growth_error.ok()) growth_error = s;
        });
    if (!reader.ok()) return reader.status();
    events = std::move(*reader);
  }
  absl::StatusOr<int> n = events->Drain();
  if (!n.ok()) return n;
  if (!growth_error.ok()) return growth_error;
  return n;
}

uint64_t TestDatapath::PoolBlocks() const { return segments->Use().pool_live; }

bool Answered(const Delivery& d) {
  return d.hook == Hook::kXdp ? d.verdict == XDP_TX
                              : d.verdict == TC_ACT_REDIRECT;
}

absl::StatusOr<Deliverer> Deliverer::Create(const Datapath* datapath,
                                            bool capture) {
  if (!capture) return Deliverer(datapath, -1);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
  if (fd < 0) return Errno("packet socket");
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = kLoopbackIfindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return Errno("binding the packet socket to lo");
  }
  return Deliverer(datapath, fd);
}

Deliverer::Deliverer(const Datapath* datapath, int capture_fd)
    : datapath_(datapath), capture_fd_(capture_fd) {}

Deliverer::Deliverer(Deliverer&& other) noexcept
    : datapath_(other.datapath_), capture_fd_(other.capture_fd_) {
  other.capture_fd_ = -1;
}

Deliverer::~Deliverer() {
  if (capture_fd_ >= 0) close(capture_fd_);
}

std::vector<Bytes> Deliverer::DrainCaptured() {
  std::vector<Bytes> frames;
  while (capture_fd_ >= 0) {
    Bytes frame(2048);
    sockaddr_ll from{};
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(capture_fd_, frame.data(), frame.size(), 0,
                         reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) break;
    frame.resize(n);
    // Loopback shows each transmitted clone twice, going out and coming
    // back in; a KICK is redirected to ingress and shows only coming in.
    absl::StatusOr<Message> message = MessageOf(frame);
    bool kick = message.ok() && message->opcode == LOCKD_OP_KICK;
    if (from.sll_pkttype == PACKET_OUTGOING ? !kick : kick)
      frames.push_back(std::move(frame));
  }
  return frames;
}

absl::StatusOr<Delivery> Deliverer::RunTc(const Bytes& packet, bool marked) {
  DrainCaptured();
  TestRunOptions options;
  options.ifindex = kLoopbackIfindex;
  if (marked) options.mark = LOCKD_KICK_MARK;
  absl::StatusOr<TestRunResult> run =
      TestRun(datapath_->tc_prog_fd(), packet, options);
  if (!run.ok()) return run.status();
  return Delivery{Hook::kTc, run->verdict, std::move(run->packet),
                  DrainCaptured()};
}

absl::StatusOr<Delivery> Deliverer::RunXdp(const Bytes& packet) {
  absl::StatusOr<TestRunResult> run = TestRun(datapath_->xdp_prog_fd(), packet);
  if (!run.ok()) return run.status();
  return Delivery{Hook::kXdp, run->verdict, std::move(run->packet), {}};
}

absl::StatusOr<Delivery> Deliverer::Deliver(const Bytes& packet) {
  absl::StatusOr<Delivery> xdp = RunXdp(packet);
  if (xdp.ok() && xdp->verdict == XDP_PASS && IsRequestFrame(xdp->out))
    return RunTc(xdp->out);
  return xdp;
}

absl::StatusOr<Delivery> Deliverer::DeliverAll(const Bytes& packet,
                                               std::vector<Bytes>* grants,
                                               int max_kicks) {
  absl::StatusOr<Delivery> first = Deliver(packet);
  if (!first.ok()) return first;
  std::vector<Bytes> pending = first->sent;
  for (int kicks = 0; !pending.empty();) {
    std::vector<Bytes> next;
    for (Bytes& frame : pending) {
      absl::StatusOr<Message> m = MessageOf(frame);
      if (!m.ok() || m->opcode != LOCKD_OP_KICK) {
        grants->push_back(std::move(frame));
        continue;
      }
      if (++kicks > max_kicks) return absl::InternalError("KICKs never stop");
      // The kernel re-injects the clone with the mark TC gave it.
      absl::StatusOr<Delivery> kick = RunTc(frame, /*marked=*/true);
      if (!kick.ok()) return kick.status();
      for (Bytes& f : kick->sent) next.push_back(std::move(f));
    }
    pending = std::move(next);
  }
  return first;
}

}  // namespace lockd::testing
