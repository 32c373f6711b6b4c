#include "tests/datapath/fixture.h"

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
#include "absl/strings/str_join.h"
#include "lockd/table_reader.h"
#include "lockd/test_run.h"

namespace lockd::testing {
namespace {

constexpr int kLoopbackIfindex = 1;

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

bool IsUntouchedRequest(const Bytes& packet) {
  absl::StatusOr<Message> message = MessageOf(packet);
  return message.ok() && IsRequest(message->opcode) && message->flags == 0;
}

std::string Txns(const std::vector<uint64_t>& txns) {
  return absl::StrCat("[", absl::StrJoin(txns, ","), "]");
}

}  // namespace

absl::StatusOr<Deliverer> Deliverer::Create(Datapath* datapath, bool capture) {
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

Deliverer::Deliverer(Datapath* datapath, int capture_fd)
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

absl::StatusOr<Delivery> Deliverer::RunTc(const Bytes& packet) {
  DrainCaptured();
  TestRunOptions options;
  options.ifindex = kLoopbackIfindex;
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
  if (xdp.ok() && xdp->verdict == XDP_PASS && IsUntouchedRequest(xdp->out))
    return RunTc(xdp->out);
  return xdp;
}

absl::Status RunFixture(const Fixture& fixture) {
  absl::StatusOr<std::unique_ptr<Datapath>> datapath =
      Datapath::Load(fixture.options);
  if (!datapath.ok()) return datapath.status();
  absl::StatusOr<Deliverer> deliverer = Deliverer::Create(datapath->get());
  if (!deliverer.ok()) return deliverer.status();
  for (size_t i = 0; i < fixture.setup.size(); ++i) {
    absl::StatusOr<Delivery> d = deliverer->Deliver(fixture.setup[i]);
    if (!d.ok())
      return absl::Status(
          d.status().code(),
          absl::StrCat("setup packet ", i, ": ", d.status().message()));
  }
  if (fixture.prepare) {
    absl::Status prepared = fixture.prepare(**datapath);
    if (!prepared.ok()) return prepared;
  }
  absl::StatusOr<StatCounters> before = (*datapath)->ReadStats();
  if (!before.ok()) return before.status();

  absl::StatusOr<Delivery> got = fixture.hook == Hook::kTc
                                     ? deliverer->RunTc(fixture.in)
                                     : deliverer->RunXdp(fixture.in);
  if (!got.ok()) return got.status();

  std::vector<std::string> problems;
  if (got->verdict != fixture.verdict)
    problems.push_back(
        absl::StrCat("verdict ", got->verdict, ", want ", fixture.verdict));
  const Bytes& want_out = fixture.out ? *fixture.out : fixture.in;
  if (got->out != want_out)
    problems.push_back(
        absl::StrCat("packet out differs:\n", DiffFrames(want_out, got->out)));
  if (got->sent.size() != fixture.sent.size())
    problems.push_back(absl::StrCat("sent ", got->sent.size(), " clones, want ",
                                    fixture.sent.size()));
  for (size_t i = 0; i < std::min(got->sent.size(), fixture.sent.size()); ++i) {
    if (got->sent[i] != fixture.sent[i])
      problems.push_back(
          absl::StrCat("clone ", i, " differs:\n",
                       DiffFrames(fixture.sent[i], got->sent[i])));
  }
  for (size_t i = fixture.sent.size(); i < got->sent.size(); ++i)
    problems.push_back(absl::StrCat("unexpected clone ", i, ":\n",
                                    DescribeFrame(got->sent[i])));

  TableReader reader({(*datapath)->locks_fd(), (*datapath)->owners_fd(),
                      (*datapath)->pool_fd()});
  for (const LockExpectation& want : fixture.locks) {
    absl::StatusOr<LockView> view = reader.Read(want.lock_id);
    if (!view.ok()) {
      problems.push_back(
          absl::StrCat("lock ", want.lock_id, ": ", view.status().message()));
      continue;
    }
    std::vector<uint64_t> holders, queue;
    for (const HolderView& h : view->holders) holders.push_back(h.txn_id);
    for (const WaiterView& w : view->queue) queue.push_back(w.waiter.txn_id);
    if (view->state.mode != want.mode || holders != want.holders ||
        queue != want.queue || view->state.fence != want.fence)
      problems.push_back(absl::StrCat(
          "lock ", want.lock_id, ": mode ", view->state.mode, " holders ",
          Txns(holders), " queue ", Txns(queue), " fence ", view->state.fence,
          "; want mode ", want.mode, " holders ", Txns(want.holders), " queue ",
          Txns(want.queue), " fence ", want.fence));
  }
  if (fixture.pool_blocks) {
    absl::StatusOr<uint64_t> blocks = reader.CountPoolBlocks();
    if (!blocks.ok() || *blocks != *fixture.pool_blocks)
      problems.push_back(absl::StrCat("pool blocks ",
                                      blocks.ok() ? absl::StrCat(*blocks) : "?",
                                      ", want ", *fixture.pool_blocks));
  }
  if (fixture.owners) {
    absl::StatusOr<uint64_t> owners = reader.CountOwners();
    if (!owners.ok() || *owners != *fixture.owners)
      problems.push_back(absl::StrCat("owner records ",
                                      owners.ok() ? absl::StrCat(*owners) : "?",
                                      ", want ", *fixture.owners));
  }

  absl::StatusOr<StatCounters> after = (*datapath)->ReadStats();
  if (!after.ok()) return after.status();
  StatCounters want_delta{};
  for (const auto& [stat, delta] : fixture.stats) want_delta[stat] = delta;
  for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s) {
    uint64_t delta = (*after)[s] - (*before)[s];
    if (delta != want_delta[s])
      problems.push_back(
          absl::StrCat("counter ", StatName(static_cast<lockd_stat>(s)),
                       " changed by ", delta, ", want ", want_delta[s]));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "fixture '", fixture.name, "':\n", absl::StrJoin(problems, "\n")));
}

}  // namespace lockd::testing
