// Nanoseconds per lockd datapath operation, as the kernel measures them in
// BPF_PROG_TEST_RUN, printed beside reference XDP programs measured in the
// same run. A benchmark, not a test: it needs root and prints a table (and,
// with --json, the same figures as JSON).
//
// Every figure is the kernel's own duration of one repeat=1 run
// (TestRunResult.mean_duration_ns): syscall and copy costs are excluded, but
// the test-run framing around the program (timer, bottom halves off and on)
// is in every figure alike, which is why each is also given as a ratio to the
// empty XDP program. repeat>1 would feed a program its own rewritten output,
// so it is only used, as an extra line, for the empty program.
//
// Each measured call is checked: verdict, the packet out byte for byte, and
// the exact change of every datapath counter. A run that took another path
// than the one being measured aborts the benchmark.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/lockd_abi.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "bpf/baseline_bpf.skel.h"
#include "lockd/datapath.h"
#include "lockd/test_run.h"
#include "tests/datapath/packet.h"

ABSL_FLAG(int32_t, iterations, 10000,
          "measured calls per operation (after a short warm-up)");
ABSL_FLAG(double, max_seconds, 3.0,
          "time limit per operation: whichever of this and --iterations "
          "comes first ends it");
ABSL_FLAG(std::string, json, "", "also write the figures as JSON here");

namespace lockd::bench {
namespace {

using testing::Bytes;
using testing::ClientEndpoint;
using testing::ServerEndpoint;
using Deltas = std::vector<std::pair<lockd_stat, uint64_t>>;

// Loopback of the private namespace: where TC's clones go. Loopback hands
// each clone straight back to its own receive path (where it is dropped,
// being addressed to another host), and the kernel runs that softirq when
// the test run turns bottom halves back on, inside the timed region: TC's
// figures include per clone a transmit and a receive, where a NIC would
// only transmit.
constexpr uint32_t kLoopbackIfindex = 1;
// Unrecorded calls before each operation's measurement, so that first-touch
// costs (map elements allocated for the first time, cold caches) stay out
// of the steady state being compared.
constexpr int kWarmupSteps = 100;
// Waiters queued behind one holder before the queue is drained outside the
// measurement: bounds pool and owner use whatever --iterations says.
constexpr int kQueueBatch = 32;
// Shared waiters woken by one release in the "grants 8" operation.
constexpr int kManyWaiters = 8;
// Each operation has a lock of its own, so that it can count the lock's
// fences from zero.
constexpr uint64_t kReflectLock = 1;
constexpr uint64_t kFreeLock = 2;
constexpr uint64_t kQueueLock = 3;
constexpr uint64_t kGrantOneLock = 4;
constexpr uint64_t kGrantManyLock = 5;
constexpr uint64_t kIdleTcLock = 6;
// Lock of the entries that FillReleased puts in the released map.
constexpr uint64_t kFillerLock = ~0ULL;

// tests/datapath's Deliverer::EnterPrivateNetns does the same, but its
// library is visible to //tests only. Clones sent by TC must reach a private
// loopback and nothing else.
absl::Status EnterPrivateNetns() {
  if (unshare(CLONE_NEWNET) != 0)
    return absl::InternalError(
        absl::StrCat("unshare(CLONE_NEWNET): ", strerror(errno)));
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  int rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  int err = errno;
  close(fd);
  if (rc != 0)
    return absl::InternalError(absl::StrCat("bringing lo up: ", strerror(err)));
  return absl::OkStatus();
}

// Keeps every call on one CPU, so per-CPU state (map element caches, the
// per-CPU counters) stays warm between calls instead of moving around.
absl::StatusOr<int> PinToCurrentCpu() {
  int cpu = sched_getcpu();
  if (cpu < 0)
    return absl::InternalError(absl::StrCat("sched_getcpu: ", strerror(errno)));
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0)
    return absl::InternalError(
        absl::StrCat("sched_setaffinity: ", strerror(errno)));
  return cpu;
}

// A server that has run a while has its recently-released map full, so
// every release evicts an entry to remember its own. Filling it first puts
// each operation in that steady state, whatever its place in the run.
absl::Status FillReleased(const Datapath& datapath) {
  const lockd_released memo{};
  for (uint64_t txn = 1; txn <= datapath.options().released_capacity; ++txn) {
    const lockd_owner_key key{kFillerLock, txn};
    if (bpf_map_update_elem(datapath.released_fd(), &key, &memo, BPF_ANY) != 0)
      return absl::InternalError(
          absl::StrCat("filling the released map: ", strerror(errno)));
  }
  return absl::OkStatus();
}

// ---- Messages and frames, as in tests/datapath/fixtures_test.cc ----------

Message Acquire(uint64_t lock, uint64_t txn, lockd_mode mode) {
  Message m;
  m.opcode = LOCKD_OP_ACQUIRE;
  m.lock_id = lock;
  m.txn_id = txn;
  m.mode = mode;
  m.policy = LOCKD_POLICY_WAIT;
  m.seq = 1;
  return m;
}

Message Release(uint64_t lock, uint64_t txn) {
  Message m;
  m.opcode = LOCKD_OP_RELEASE;
  m.lock_id = lock;
  m.txn_id = txn;
  m.seq = 2;  // after its acquire's, or the release would be stale
  return m;
}

// The reply the datapath writes for `request`.
Message Answer(const Message& request, lockd_opcode opcode,
               uint64_t fence = 0) {
  Message m = request;
  m.opcode = opcode;
  m.status = LOCKD_STATUS_OK;
  m.fence = fence;
  m.lease_ms = 0;
  m.wait_ms = 0;
  m.queue_pos = 0;
  return m;
}

Message Granted(const Message& request, uint64_t fence, uint32_t lease_ms) {
  Message m = Answer(request, LOCKD_OP_GRANTED, fence);
  m.lease_ms = lease_ms;
  return m;
}

Message Queued(const Message& request, uint32_t position) {
  Message m = Answer(request, LOCKD_OP_QUEUED);
  m.queue_pos = position;
  return m;
}

Bytes From(int client, const Message& m) {
  return BuildFrame(ClientEndpoint(client), ServerEndpoint(), m);
}

Bytes To(int client, const Message& m) {
  return BuildFrame(ServerEndpoint(), ClientEndpoint(client), m);
}

// ---- Checked program runs ------------------------------------------------

enum class Hook { kXdp, kTc };

std::string VerdictName(Hook hook, uint32_t verdict) {
  if (hook == Hook::kXdp) {
    switch (verdict) {
      case XDP_ABORTED:
        return "XDP_ABORTED";
      case XDP_DROP:
        return "XDP_DROP";
      case XDP_PASS:
        return "XDP_PASS";
      case XDP_TX:
        return "XDP_TX";
      case XDP_REDIRECT:
        return "XDP_REDIRECT";
    }
  } else {
    switch (verdict) {
      case TC_ACT_OK:
        return "TC_ACT_OK";
      case TC_ACT_SHOT:
        return "TC_ACT_SHOT";
      case TC_ACT_REDIRECT:
        return "TC_ACT_REDIRECT";
    }
  }
  return absl::StrCat("verdict ", verdict);
}

// Runs `program` once on `in` and insists on `verdict` and on `out` byte
// for byte; returns the kernel's duration of the run.
absl::StatusOr<uint32_t> RunChecked(absl::string_view program, int prog_fd,
                                    Hook hook, const Bytes& in,
                                    uint32_t verdict, const Bytes& out,
                                    uint32_t repeat = 1) {
  TestRunOptions options;
  options.repeat = repeat;
  if (hook == Hook::kTc) options.ifindex = kLoopbackIfindex;
  absl::StatusOr<TestRunResult> run = TestRun(prog_fd, in, options);
  if (!run.ok()) return run.status();
  if (run->verdict != verdict)
    return absl::FailedPreconditionError(
        absl::StrCat(program, " returned ", VerdictName(hook, run->verdict),
                     ", want ", VerdictName(hook, verdict), "; packet out:\n",
                     testing::DescribeFrame(run->packet)));
  if (run->packet != out)
    return absl::FailedPreconditionError(
        absl::StrCat(program, " wrote another packet than expected:\n",
                     testing::DiffFrames(out, run->packet)));
  return run->mean_duration_ns;
}

// lockd's programs, each call checked; measured calls also check that every
// counter changed exactly as the measured path changes it.
class Lockd {
 public:
  explicit Lockd(Datapath* datapath) : datapath_(datapath) {}

  // Setup and cleanup, outside the measurement.
  absl::Status Send(Hook hook, const Bytes& in, uint32_t verdict,
                    const Bytes& out) {
    return Run(hook, in, verdict, out).status();
  }

  absl::StatusOr<uint32_t> Measure(Hook hook, const Bytes& in, uint32_t verdict,
                                   const Bytes& out, const Deltas& stats) {
    absl::StatusOr<StatCounters> before = datapath_->ReadStats();
    if (!before.ok()) return before.status();
    absl::StatusOr<uint32_t> ns = Run(hook, in, verdict, out);
    if (!ns.ok()) return ns;
    absl::StatusOr<StatCounters> after = datapath_->ReadStats();
    if (!after.ok()) return after.status();
    StatCounters want{};
    for (const auto& [stat, delta] : stats) want[stat] = delta;
    std::vector<std::string> wrong;
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s) {
      uint64_t delta = (*after)[s] - (*before)[s];
      if (delta != want[s])
        wrong.push_back(absl::StrCat(StatName(static_cast<lockd_stat>(s)),
                                     " changed by ", delta, ", want ",
                                     want[s]));
    }
    if (!wrong.empty())
      return absl::FailedPreconditionError(
          absl::StrCat(ProgramName(hook),
                       " took another path: ", absl::StrJoin(wrong, "; ")));
    return ns;
  }

  uint32_t lease_ms() const { return datapath_->options().default_lease_ms; }

  static absl::string_view ProgramName(Hook hook) {
    return hook == Hook::kXdp ? "lockd_xdp" : "lockd_tc";
  }

 private:
  absl::StatusOr<uint32_t> Run(Hook hook, const Bytes& in, uint32_t verdict,
                               const Bytes& out) {
    int fd =
        hook == Hook::kXdp ? datapath_->xdp_prog_fd() : datapath_->tc_prog_fd();
    return RunChecked(ProgramName(hook), fd, hook, in, verdict, out);
  }

  Datapath* datapath_;
};

// ---- Measurement loop and statistics -------------------------------------

struct Limits {
  size_t iterations = 0;
  absl::Duration time;
};

// One operation's per-call durations.
struct Series {
  std::string id;         // JSON key
  std::string operation;  // table label
  std::string program;
  std::vector<uint32_t> ns;
};

// `step` prepares state, measures one call for each entry of its span (in
// the order of `series`) and cleans up. Runs it kWarmupSteps times
// unrecorded, then records until either limit is reached.
absl::Status Drive(
    const Limits& limits, absl::Span<Series* const> series,
    const std::function<absl::Status(absl::Span<uint32_t>)>& step) {
  std::vector<uint32_t> ns(series.size());
  const absl::Time deadline = absl::Now() + limits.time;
  for (size_t i = 0; i < kWarmupSteps + limits.iterations; ++i) {
    // Past the deadline, stop; but record at least one call.
    if (i > kWarmupSteps && absl::Now() >= deadline) break;
    absl::Status status = step(absl::MakeSpan(ns));
    if (!status.ok()) {
      std::vector<absl::string_view> ids;
      for (const Series* s : series) ids.push_back(s->id);
      return absl::Status(status.code(),
                          absl::StrCat(absl::StrJoin(ids, "+"), ", call ", i,
                                       ": ", status.message()));
    }
    if (i < kWarmupSteps) continue;
    for (size_t k = 0; k < series.size(); ++k) series[k]->ns.push_back(ns[k]);
  }
  return absl::OkStatus();
}

// Nearest-rank percentile of sorted values.
uint32_t Percentile(const std::vector<uint32_t>& sorted, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  return sorted[std::max<size_t>(rank, 1) - 1];
}

struct Figures {
  size_t runs = 0;
  uint32_t median_ns = 0;
  uint32_t p90_ns = 0;
};

Figures Summarize(std::vector<uint32_t> ns) {
  std::sort(ns.begin(), ns.end());
  return {ns.size(), Percentile(ns, 0.5), Percentile(ns, 0.9)};
}

// ---- The operations ------------------------------------------------------

class Bench {
 public:
  Bench(Datapath* datapath, baseline_bpf* baseline, const Limits& limits)
      : lockd_(datapath), baseline_(baseline), limits_(limits) {}

  // The yardsticks: an empty XDP program and one that bounces a request.
  absl::Status Baselines() {
    const Message ask = Acquire(kReflectLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
    const Bytes request = From(0, ask);
    const int empty_fd = bpf_program__fd(baseline_->progs.xdp_empty);
    Series& empty =
        Add("xdp_empty", "empty XDP program (yardstick)", "xdp_empty");
    absl::Status status =
        Drive(limits_, {&empty}, [&](absl::Span<uint32_t> ns) {
          return Record(RunChecked("xdp_empty", empty_fd, Hook::kXdp, request,
                                   XDP_PASS, request),
                        &ns[0]);
        });
    if (!status.ok()) return status;

    // Reflect rewrites the request into a GRANTED to its sender.
    const Bytes reply = To(0, Answer(ask, LOCKD_OP_GRANTED));
    const int reflect_fd = bpf_program__fd(baseline_->progs.xdp_reflect);
    Series& reflect =
        Add("xdp_reflect", "reflect a request as GRANTED", "xdp_reflect");
    status = Drive(limits_, {&reflect}, [&](absl::Span<uint32_t> ns) {
      return Record(RunChecked("xdp_reflect", reflect_fd, Hook::kXdp, request,
                               XDP_TX, reply),
                    &ns[0]);
    });
    if (!status.ok()) return status;

    // The empty program leaves the packet alone, so repeat>1 is sound for
    // it; the gap to its repeat=1 figure is the framing of one call.
    empty_repeat_ = static_cast<uint32_t>(limits_.iterations);
    absl::StatusOr<uint32_t> ns =
        RunChecked("xdp_empty", empty_fd, Hook::kXdp, request, XDP_PASS,
                   request, empty_repeat_);
    if (!ns.ok()) return ns.status();
    empty_repeat_ns_ = *ns;
    return absl::OkStatus();
  }

  // Acquire on a free lock, then its release with nobody waiting: both
  // served by XDP alone.
  absl::Status AcquireFreeAndRelease() {
    uint64_t fence = 0;
    Series& acquire =
        Add("acquire_free", "acquire, lock free -> GRANTED", "lockd_xdp");
    Series& release = Add("release_idle_xdp",
                          "release, nobody waiting -> RELEASED", "lockd_xdp");
    return Drive(limits_, {&acquire, &release}, [&](absl::Span<uint32_t> ns) {
      const Message take = Acquire(kFreeLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
      absl::Status status = Record(
          lockd_.Measure(Hook::kXdp, From(0, take), XDP_TX,
                         To(0, Granted(take, ++fence, lockd_.lease_ms())),
                         {{LOCKD_STAT_RX, 1},
                          {LOCKD_STAT_ACQUIRE, 1},
                          {LOCKD_STAT_GRANT_IMMEDIATE, 1}}),
          &ns[0]);
      if (!status.ok()) return status;
      const Message give = Release(kFreeLock, take.txn_id);
      return Record(
          lockd_.Measure(Hook::kXdp, From(0, give), XDP_TX,
                         To(0, Answer(give, LOCKD_OP_RELEASED, fence)),
                         {{LOCKD_STAT_RX, 1},
                          {LOCKD_STAT_RELEASE, 1},
                          {LOCKD_STAT_RELEASED, 1}}),
          &ns[1]);
    });
  }

  // Acquire on a held lock: the requester joins the queue. Every
  // kQueueBatch calls the queue is drained outside the measurement.
  absl::Status AcquireQueues() {
    Series& queued =
        Add("acquire_queue", "acquire, lock held -> QUEUED", "lockd_xdp");
    std::vector<Message> members;  // holder first, then waiters in order
    uint64_t fence = 0;
    absl::Status status =
        Drive(limits_, {&queued}, [&](absl::Span<uint32_t> ns) {
          if (members.size() == kQueueBatch + 1) {
            absl::Status drained = Drain(kQueueLock, &members, &fence);
            if (!drained.ok()) return drained;
          }
          if (members.empty()) {
            const Message hold =
                Acquire(kQueueLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
            absl::Status held =
                lockd_.Send(Hook::kXdp, From(0, hold), XDP_TX,
                            To(0, Granted(hold, ++fence, lockd_.lease_ms())));
            if (!held.ok()) return held;
            members.push_back(hold);
          }
          const int client = static_cast<int>(members.size());
          const Message wait =
              Acquire(kQueueLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
          absl::Status measured =
              Record(lockd_.Measure(Hook::kXdp, From(client, wait), XDP_TX,
                                    To(client, Queued(wait, client - 1)),
                                    {{LOCKD_STAT_RX, 1},
                                     {LOCKD_STAT_ACQUIRE, 1},
                                     {LOCKD_STAT_QUEUED, 1},
                                     {LOCKD_STAT_POOL_ALLOC, 1}}),
                     &ns[0]);
          if (measured.ok()) members.push_back(wait);
          return measured;
        });
    if (!status.ok()) return status;
    return Drain(kQueueLock, &members, &fence);
  }

  // A release that wakes `waiters` waiters in `mode`: XDP hands it to TC
  // untouched, as in service, then TC releases and sends one GRANTED clone
  // per woken waiter. XDP's part, which every such release pays, is
  // recorded in `handoff` when given; TC's in `release`.
  absl::Status ReleaseGranting(uint64_t lock, int waiters, lockd_mode mode,
                               Series* handoff, Series* release) {
    uint64_t fence = 0;
    std::vector<Series*> series = {release};
    if (handoff != nullptr) series.insert(series.begin(), handoff);
    return Drive(limits_, series, [&](absl::Span<uint32_t> ns) {
      const Message hold = Acquire(lock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
      const uint64_t hold_fence = ++fence;
      absl::Status status =
          lockd_.Send(Hook::kXdp, From(0, hold), XDP_TX,
                      To(0, Granted(hold, hold_fence, lockd_.lease_ms())));
      if (!status.ok()) return status;
      std::vector<Message> queue;
      for (int c = 1; c <= waiters; ++c) {
        const Message wait = Acquire(lock, NextTxn(), mode);
        status = lockd_.Send(Hook::kXdp, From(c, wait), XDP_TX,
                             To(c, Queued(wait, c - 1)));
        if (!status.ok()) return status;
        queue.push_back(wait);
      }

      const Bytes give = From(0, Release(lock, hold.txn_id));
      if (handoff != nullptr) {
        status = Record(
            lockd_.Measure(Hook::kXdp, give, XDP_PASS, give,
                           {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_RELEASE_TO_TC, 1}}),
            &ns[0]);
      } else {
        status = lockd_.Send(Hook::kXdp, give, XDP_PASS, give);
      }
      if (!status.ok()) return status;
      const uint64_t n = static_cast<uint64_t>(waiters);
      status =
          Record(lockd_.Measure(Hook::kTc, give, TC_ACT_REDIRECT,
                                To(0, Answer(Release(lock, hold.txn_id),
                                             LOCKD_OP_RELEASED, hold_fence)),
                                {{LOCKD_STAT_RELEASE, 1},
                                 {LOCKD_STAT_RELEASED, 1},
                                 {LOCKD_STAT_GRANT_FROM_QUEUE, n},
                                 {LOCKD_STAT_GRANT_SENT, n},
                                 {LOCKD_STAT_POOL_FREE, n}}),
                 &ns[series.size() - 1]);
      if (!status.ok()) return status;

      // The woken waiters hold the lock now, each with its own fence; their
      // releases find nobody waiting and XDP answers them.
      for (int c = 1; c <= waiters; ++c) {
        const Message done = Release(lock, queue[c - 1].txn_id);
        status = lockd_.Send(Hook::kXdp, From(c, done), XDP_TX,
                             To(c, Answer(done, LOCKD_OP_RELEASED, ++fence)));
        if (!status.ok()) return status;
      }
      return absl::OkStatus();
    });
  }

  absl::Status ReleaseGrantsOne() {
    Series& handoff = Add("release_handoff_xdp",
                          "release with waiters: hand-off to TC", "lockd_xdp");
    Series& release = Add("release_grant1_tc",
                          "release, grants 1 exclusive waiter", "lockd_tc");
    return ReleaseGranting(kGrantOneLock, 1, LOCKD_MODE_EXCLUSIVE, &handoff,
                           &release);
  }

  absl::Status ReleaseGrantsMany() {
    Series& release =
        Add("release_grant8_tc",
            absl::StrCat("release, grants ", kManyWaiters, " shared waiters"),
            "lockd_tc");
    return ReleaseGranting(kGrantManyLock, kManyWaiters, LOCKD_MODE_SHARED,
                           nullptr, &release);
  }

  // TC's cost without clones, for reading the grant figures: a release
  // with nobody waiting, which in service XDP answers and TC never sees.
  absl::Status ReleaseIdleTc() {
    uint64_t fence = 0;
    Series& release = Add("release_idle_tc",
                          "release, nobody waiting (TC reference)", "lockd_tc");
    return Drive(limits_, {&release}, [&](absl::Span<uint32_t> ns) {
      const Message take =
          Acquire(kIdleTcLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
      absl::Status status =
          lockd_.Send(Hook::kXdp, From(0, take), XDP_TX,
                      To(0, Granted(take, ++fence, lockd_.lease_ms())));
      if (!status.ok()) return status;
      const Message give = Release(kIdleTcLock, take.txn_id);
      return Record(
          lockd_.Measure(Hook::kTc, From(0, give), TC_ACT_REDIRECT,
                         To(0, Answer(give, LOCKD_OP_RELEASED, fence)),
                         {{LOCKD_STAT_RELEASE, 1}, {LOCKD_STAT_RELEASED, 1}}),
          &ns[0]);
    });
  }

  const std::deque<Series>& series() const { return series_; }
  uint32_t empty_repeat() const { return empty_repeat_; }
  uint32_t empty_repeat_ns() const { return empty_repeat_ns_; }

 private:
  Series& Add(absl::string_view id, absl::string_view operation,
              absl::string_view program) {
    series_.push_back(Series{
        std::string(id), std::string(operation), std::string(program), {}});
    return series_.back();
  }

  static absl::Status Record(const absl::StatusOr<uint32_t>& ns,
                             uint32_t* slot) {
    if (!ns.ok()) return ns.status();
    *slot = *ns;
    return absl::OkStatus();
  }

  uint64_t NextTxn() { return ++last_txn_; }

  // Releases every member of a queue built by AcquireQueues through TC,
  // holder first: each release grants the next waiter, which takes the
  // next fence.
  absl::Status Drain(uint64_t lock, std::vector<Message>* members,
                     uint64_t* fence) {
    const uint64_t first_fence = *fence;
    for (size_t k = 0; k < members->size(); ++k) {
      const Message give = Release(lock, (*members)[k].txn_id);
      const int client = static_cast<int>(k);
      absl::Status status = lockd_.Send(
          Hook::kTc, From(client, give), TC_ACT_REDIRECT,
          To(client, Answer(give, LOCKD_OP_RELEASED, first_fence + k)));
      if (!status.ok()) return status;
    }
    if (!members->empty()) *fence = first_fence + members->size() - 1;
    members->clear();
    return absl::OkStatus();
  }

  Lockd lockd_;
  baseline_bpf* baseline_;
  Limits limits_;
  uint64_t last_txn_ = 0;
  std::deque<Series> series_;  // a deque: Add hands out references
  uint32_t empty_repeat_ = 0;
  uint32_t empty_repeat_ns_ = 0;
};

// ---- Report --------------------------------------------------------------

struct Row {
  const Series* series;
  Figures figures;
  double ratio;  // median over the empty program's median
};

std::vector<Row> Rows(const Bench& bench) {
  std::vector<Row> rows;
  for (const Series& s : bench.series())
    rows.push_back({&s, Summarize(s.ns), 0});
  // Baselines() adds the empty program first.
  const double empty = rows.front().figures.median_ns;
  for (Row& row : rows) row.ratio = row.figures.median_ns / empty;
  return rows;
}

void PrintTable(const std::vector<Row>& rows, const Bench& bench,
                absl::string_view kernel, int cpu) {
  absl::PrintF(
      "lockd datapath: ns per call, measured by the kernel "
      "(BPF_PROG_TEST_RUN, repeat=1)\nkernel %s, pinned to CPU %d, TC "
      "clones to lo of a private netns\n\n",
      kernel, cpu);
  absl::PrintF("%-42s %-11s %7s %8s %8s %8s\n", "operation", "program", "runs",
               "median", "p90", "x empty");
  for (const Row& row : rows)
    absl::PrintF("%-42s %-11s %7d %8d %8d %8.2f\n", row.series->operation,
                 row.series->program, row.figures.runs, row.figures.median_ns,
                 row.figures.p90_ns, row.ratio);
  absl::PrintF(
      "\nxdp_empty with repeat=%d in one call: %d ns per run (the rest of "
      "its repeat=1 figure is the framing of one call)\nlockd_tc figures "
      "include each GRANTED clone's transmit on lo and its loopback "
      "receive\n",
      bench.empty_repeat(), bench.empty_repeat_ns());
}

absl::Status WriteJson(const std::string& path, const std::vector<Row>& rows,
                       const Bench& bench, absl::string_view kernel, int cpu,
                       const Limits& limits) {
  std::vector<std::string> operations;
  for (const Row& row : rows)
    operations.push_back(absl::StrFormat(
        "    {\"id\": \"%s\", \"operation\": \"%s\", \"program\": \"%s\", "
        "\"runs\": %d, \"median_ns\": %d, \"p90_ns\": %d, "
        "\"ratio_to_empty\": %.3f}",
        row.series->id, row.series->operation, row.series->program,
        row.figures.runs, row.figures.median_ns, row.figures.p90_ns,
        row.ratio));
  std::string json = absl::StrFormat(
      "{\n  \"kernel\": \"%s\",\n  \"cpu\": %d,\n  \"iterations\": %d,\n"
      "  \"max_seconds\": %.3f,\n  \"measure\": \"kernel duration of one "
      "repeat=1 BPF_PROG_TEST_RUN\",\n  \"yardstick\": \"xdp_empty\",\n"
      "  \"empty_repeat\": {\"repeat\": %d, \"ns_per_run\": %d},\n"
      "  \"operations\": [\n%s\n  ]\n}\n",
      kernel, cpu, limits.iterations, absl::ToDoubleSeconds(limits.time),
      bench.empty_repeat(), bench.empty_repeat_ns(),
      absl::StrJoin(operations, ",\n"));
  std::ofstream file(path);
  file << json;
  file.close();
  if (!file)
    return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

absl::Status Main() {
  const int32_t iterations = absl::GetFlag(FLAGS_iterations);
  const double max_seconds = absl::GetFlag(FLAGS_max_seconds);
  if (iterations <= 0 || max_seconds <= 0)
    return absl::InvalidArgumentError(
        "--iterations and --max_seconds must be positive");
  const Limits limits{static_cast<size_t>(iterations),
                      absl::Seconds(max_seconds)};

  absl::Status netns = EnterPrivateNetns();
  if (!netns.ok()) return netns;
  absl::StatusOr<int> cpu = PinToCurrentCpu();
  if (!cpu.ok()) return cpu.status();

  absl::StatusOr<std::unique_ptr<Datapath>> datapath =
      Datapath::Load(DatapathOptions());
  if (!datapath.ok()) return datapath.status();
  absl::Status filled = FillReleased(**datapath);
  if (!filled.ok()) return filled;
  std::unique_ptr<baseline_bpf, decltype(&baseline_bpf__destroy)> baseline(
      baseline_bpf__open_and_load(), &baseline_bpf__destroy);
  if (baseline == nullptr)
    return absl::InternalError(
        absl::StrCat("loading the baseline BPF programs: ", strerror(errno)));

  Bench bench(datapath->get(), baseline.get(), limits);
  for (absl::Status (Bench::*operation)() :
       {&Bench::Baselines, &Bench::AcquireFreeAndRelease, &Bench::AcquireQueues,
        &Bench::ReleaseGrantsOne, &Bench::ReleaseGrantsMany,
        &Bench::ReleaseIdleTc}) {
    absl::Status status = (bench.*operation)();
    if (!status.ok()) return status;
  }

  utsname uts{};
  uname(&uts);
  const std::vector<Row> rows = Rows(bench);
  PrintTable(rows, bench, uts.release, *cpu);
  const std::string json = absl::GetFlag(FLAGS_json);
  if (json.empty()) return absl::OkStatus();
  return WriteJson(json, rows, bench, uts.release, *cpu, limits);
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures ns per lockd datapath operation through BPF_PROG_TEST_RUN "
      "beside an empty XDP program. Needs root.");
  absl::ParseCommandLine(argc, argv);
  absl::Status status = lockd::bench::Main();
  if (!status.ok()) {
    fprintf(stderr, "datapath_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
