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
//
// Requests come from client 0 on a subnet open to unauthenticated requests
// (tests/datapath/test_datapath.h), but for the "signed" rows: the same
// acquire and release signed by a client with a key (MAC check, replay
// window, signed reply), and what a forged or replayed request costs before
// it is dropped. The difference is what authentication costs per request.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
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
#include "tests/datapath/messages.h"
#include "tests/datapath/packet.h"
#include "tests/datapath/private_netns.h"
#include "tests/datapath/test_datapath.h"

ABSL_FLAG(int32_t, iterations, 10000,
          "measured calls per operation (after a short warm-up)");
ABSL_FLAG(double, max_seconds, 20.0,
          "time limit of the measurement: whichever of this and "
          "--iterations comes first ends it");
ABSL_FLAG(std::string, json, "", "also write the figures as JSON here");
ABSL_FLAG(bool, pool_prealloc, true,
          "preallocated pool segments (lockd's choice) or BPF_F_NO_PREALLOC "
          "ones, to compare the two");

namespace lockd::bench {
namespace {

using testing::Acquire;
using testing::Answer;
using testing::Bytes;
using testing::ClientEndpoint;
using testing::From;
using testing::Granted;
using testing::Queued;
using testing::Release;
using testing::ServerEndpoint;
using testing::To;
using Deltas = std::vector<std::pair<lockd_stat, uint64_t>>;

// Loopback of the private namespace: where TC's clones go. Loopback hands
// each clone straight back to its own receive path (where it is dropped,
// being addressed to another host), and the kernel runs that softirq when
// the test run turns bottom halves back on, inside the timed region: TC's
// figures include per clone a transmit and a receive, where a NIC would
// only transmit.
constexpr uint32_t kLoopbackIfindex = 1;
// Steps each operation takes in a row before the next one's turn (see
// Bench). The first pass is a warm-up and is not recorded, so that
// first-touch costs (map elements allocated for the first time, cold caches)
// stay out of the steady state being compared.
constexpr size_t kPassSteps = 100;
// Waiters queued behind one holder before the queue is drained outside the
// measurement: bounds pool and owner use whatever --iterations says.
constexpr int kQueueBatch = 32;
// Shared waiters woken by one release in the "grants 8" operation.
constexpr int kManyWaiters = 8;
// Each operation has a lock of its own, so that it can count the lock's
// fences from zero (in a bucket of its own: see DistinctBucketsSeed).
constexpr uint64_t kReflectLock = 1;
constexpr uint64_t kFreeLock = 2;
constexpr uint64_t kQueueLock = 3;
constexpr uint64_t kGrantOneLock = 4;
constexpr uint64_t kGrantManyLock = 5;
constexpr uint64_t kIdleTcLock = 6;
constexpr uint64_t kSignedLock = 7;
constexpr uint64_t kLocks[] = {kReflectLock,  kFreeLock,      kQueueLock,
                               kGrantOneLock, kGrantManyLock, kIdleTcLock,
                               kSignedLock};

// A seed of the table's hash that puts every lock of kLocks in a bucket of
// its own (of the base buckets: the benchmark holds too few locks to split
// one). A lock freed in a bucket raises the bucket's fence floor, above which
// a lock created there later starts: with a random seed, two locks sharing a
// bucket made the second one's fences unpredictable.
uint64_t DistinctBucketsSeed() {
  for (uint64_t seed = 1;; ++seed) {
    std::set<uint64_t> buckets;
    for (uint64_t lock : kLocks)
      buckets.insert(lockd_table_hash(lock, seed) &
                     ((1u << LOCKD_TABLE_BASE_DEPTH) - 1));
    if (buckets.size() == std::size(kLocks)) return seed;
  }
}

// The client of the signed rows, and its key.
constexpr uint32_t kSignedClient = 7;
constexpr ClientKey kSignedKey{0x0706050403020100, 0x0f0e0d0c0b0a0908};

// `m` with its MAC under kSignedKey: a request of kSignedClient, or a reply
// for it.
Message Sign(Message m) {
  m.mac = MessageMac(Encode(m), kSignedKey);
  return m;
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

// Whether frame `got` is `want` but for the message's ticket (where the
// server keeps the owner's record: a pool block index the benchmark does
// not predict) and what covers it: the UDP checksum, and the MAC of a reply
// for kSignedClient.
bool SameButTicket(const Bytes& want, const Bytes& got) {
  constexpr size_t kHeaders = 14 + 20 + 8;
  constexpr size_t kUdpCheck = 14 + 20 + 6;
  if (want.size() != got.size() || want.size() < kHeaders + kMessageSize)
    return false;
  for (size_t i = 0; i < kHeaders; ++i)
    if (i != kUdpCheck && i != kUdpCheck + 1 && want[i] != got[i]) return false;
  absl::StatusOr<Message> w =
      DecodeMessage(absl::MakeConstSpan(want).subspan(kHeaders, kMessageSize));
  absl::StatusOr<Message> g =
      DecodeMessage(absl::MakeConstSpan(got).subspan(kHeaders, kMessageSize));
  if (!w.ok() || !g.ok()) return want == got;
  w->ticket = g->ticket;
  if (w->client_id == kSignedClient && !IsRequest(w->opcode)) *w = Sign(*w);
  return *w == *g;
}

// Runs `program` once on `in` and insists on `verdict` and on `out` (but
// for its ticket); returns the kernel's duration of the run.
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
  if (!SameButTicket(out, run->packet))
    return absl::FailedPreconditionError(
        absl::StrCat(program, " wrote another packet than expected:\n",
                     testing::DiffFrames(out, run->packet)));
  return run->mean_duration_ns;
}

// lockd's programs, each call checked; measured calls also check that every
// counter changed exactly as the measured path changes it.
class Lockd {
 public:
  explicit Lockd(testing::TestDatapath* dp)
      : dp_(dp), datapath_(dp->datapath.get()) {}

  // Setup and cleanup, outside the measurement.
  absl::Status Send(Hook hook, const Bytes& in, uint32_t verdict,
                    const Bytes& out) {
    return Run(hook, in, verdict, out).status();
  }

  absl::StatusOr<uint32_t> Measure(Hook hook, const Bytes& in, uint32_t verdict,
                                   const Bytes& out, const Deltas& stats) {
    // The events so far (waiters queued, growth asked) are served, as the
    // daemon does, before the measured run: its own stay in the ring.
    if (absl::StatusOr<int> served = dp_->ServeGrowth(); !served.ok())
      return served.status();
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

  testing::TestDatapath* dp_;
  Datapath* datapath_;
};

// ---- Statistics ----------------------------------------------------------

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

// Measures the operations in turns, kPassSteps steps each, rather than one
// operation to the end and then the next: on a shared machine load drifts,
// and ratios between figures taken seconds apart would carry that drift.
// Turns of many steps (not one) keep each operation's caches as warm as a
// server doing the same thing repeatedly would have them.
class Bench {
 public:
  Bench(testing::TestDatapath* dp, baseline_bpf* baseline)
      : lockd_(dp), baseline_(baseline) {}

  // Declares every operation; the yardstick comes first.
  void AddAll() {
    AddEmpty();
    AddReflect();
    AddAcquireFreeAndRelease();
    AddSigned();
    AddAcquireQueues();
    // Added before the calls, not in their arguments (evaluated in no set
    // order), because the table lists series in the order they are added.
    Series& handoff = Add("release_handoff_xdp",
                          "release with waiters: hand-off to TC", "lockd_xdp");
    Series& grant_one = Add("release_grant1_tc",
                            "release, grants 1 exclusive waiter", "lockd_tc");
    AddReleaseGranting(kGrantOneLock, 1, LOCKD_MODE_EXCLUSIVE, &handoff,
                       &grant_one);
    Series& grant_many =
        Add("release_grant8_tc",
            absl::StrCat("release, grants ", kManyWaiters, " shared waiters"),
            "lockd_tc");
    AddReleaseGranting(kGrantManyLock, kManyWaiters, LOCKD_MODE_SHARED, nullptr,
                       &grant_many);
    AddReleaseIdleTc();
  }

  // A warm-up pass, then recorded passes until either limit is reached
  // (but at least one).
  absl::Status Run(const Limits& limits) {
    const absl::Time deadline = absl::Now() + limits.time;
    for (size_t pass = 0, recorded = 0; recorded < limits.iterations; ++pass) {
      if (recorded > 0 && absl::Now() >= deadline) break;
      const bool record = pass > 0;
      const size_t steps =
          record ? std::min(kPassSteps, limits.iterations - recorded)
                 : kPassSteps;
      for (Operation& op : operations_) {
        std::vector<uint32_t> ns(op.series.size());
        for (size_t i = 0; i < steps; ++i) {
          absl::Status status = op.step(absl::MakeSpan(ns));
          if (!status.ok()) {
            std::vector<absl::string_view> ids;
            for (const Series* s : op.series) ids.push_back(s->id);
            return absl::Status(
                status.code(),
                absl::StrCat(absl::StrJoin(ids, "+"), ", pass ", pass,
                             ", step ", i, ": ", status.message()));
          }
          if (!record) continue;
          for (size_t k = 0; k < ns.size(); ++k)
            op.series[k]->ns.push_back(ns[k]);
        }
      }
      if (record) recorded += steps;
    }
    absl::Status drained = DrainQueue();
    if (!drained.ok()) return drained;

    // The empty program leaves the packet alone, so repeat>1 is sound for
    // it; the gap to its repeat=1 figure is the framing of one call.
    empty_repeat_ = static_cast<uint32_t>(limits.iterations);
    absl::StatusOr<uint32_t> ns = RunChecked(
        "xdp_empty", bpf_program__fd(baseline_->progs.xdp_empty), Hook::kXdp,
        EmptyRequest(), XDP_PASS, EmptyRequest(), empty_repeat_);
    if (!ns.ok()) return ns.status();
    empty_repeat_ns_ = *ns;
    return absl::OkStatus();
  }

  const std::deque<Series>& series() const { return series_; }
  uint32_t empty_repeat() const { return empty_repeat_; }
  uint32_t empty_repeat_ns() const { return empty_repeat_ns_; }

 private:
  // One operation: `step` prepares state, measures one call for each entry
  // of its span (in the order of `series`) and cleans up.
  struct Operation {
    std::vector<Series*> series;
    std::function<absl::Status(absl::Span<uint32_t>)> step;
  };

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

  // `m` as kSignedClient sends it: a fresh seq, signed.
  Message SignedRequest(Message m) {
    m.client_id = kSignedClient;
    m.seq = ++signed_seq_;
    return Sign(m);
  }

  // Grants on `lock` so far, hence the fence of its next grant minus one.
  uint64_t& Fence(uint64_t lock) { return fences_[lock]; }

  static Bytes EmptyRequest() {
    return From(0, Acquire(kReflectLock, 1, LOCKD_MODE_EXCLUSIVE));
  }

  void AddEmpty() {
    const Bytes request = EmptyRequest();
    const int fd = bpf_program__fd(baseline_->progs.xdp_empty);
    operations_.push_back(
        {{&Add("xdp_empty", "empty XDP program (yardstick)", "xdp_empty")},
         [request, fd](absl::Span<uint32_t> ns) {
           return Record(RunChecked("xdp_empty", fd, Hook::kXdp, request,
                                    XDP_PASS, request),
                         &ns[0]);
         }});
  }

  // Reflect rewrites a request into a GRANTED to its sender.
  void AddReflect() {
    const Message ask = Acquire(kReflectLock, 1, LOCKD_MODE_EXCLUSIVE);
    const Bytes request = From(0, ask);
    Message granted = Answer(ask, LOCKD_OP_GRANTED);
    granted.wait_ms = 0;  // the reflector has no table: no epoch
    const Bytes reply = To(0, granted);
    const int fd = bpf_program__fd(baseline_->progs.xdp_reflect);
    operations_.push_back(
        {{&Add("xdp_reflect", "reflect a request as GRANTED", "xdp_reflect")},
         [request, reply, fd](absl::Span<uint32_t> ns) {
           return Record(RunChecked("xdp_reflect", fd, Hook::kXdp, request,
                                    XDP_TX, reply),
                         &ns[0]);
         }});
  }

  // Acquire on a free lock, then its release with nobody waiting: both
  // served by XDP alone.
  void AddAcquireFreeAndRelease() {
    Series& acquire =
        Add("acquire_free", "acquire, lock free -> GRANTED", "lockd_xdp");
    Series& release = Add("release_idle_xdp",
                          "release, nobody waiting -> RELEASED", "lockd_xdp");
    operations_.push_back(
        {{&acquire, &release}, [this](absl::Span<uint32_t> ns) {
           const Message take =
               Acquire(kFreeLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
           const uint64_t fence = ++Fence(kFreeLock);
           absl::Status status = Record(
               lockd_.Measure(Hook::kXdp, From(0, take), XDP_TX,
                              To(0, Granted(take, fence, lockd_.lease_ms())),
                              {{LOCKD_STAT_RX, 1},
                               {LOCKD_STAT_ACQUIRE, 1},
                               {LOCKD_STAT_GRANT_IMMEDIATE, 1},
                               {LOCKD_STAT_LOCK_CREATED, 1}}),
               &ns[0]);
           if (!status.ok()) return status;
           const Message give = Release(kFreeLock, take.txn_id);
           return Record(lockd_.Measure(Hook::kXdp, From(0, give), XDP_TX,
                                        To(0, Answer(give, LOCKD_OP_RELEASED,
                                                     LOCKD_STATUS_OK, fence)),
                                        {{LOCKD_STAT_RX, 1},
                                         {LOCKD_STAT_RELEASE, 1},
                                         {LOCKD_STAT_RELEASED, 1},
                                         {LOCKD_STAT_HOLD_ENDED, 1},
                                         {LOCKD_STAT_LOCK_FREED, 1}}),
                         &ns[1]);
         }});
  }

  // AddAcquireFreeAndRelease's acquire and release signed by kSignedClient,
  // and between them two requests dropped after their MAC was checked: a
  // copy of the acquire (its seq seen: replayed) and an acquire whose MAC is
  // wrong (forged).
  void AddSigned() {
    Series& acquire = Add("acquire_free_signed",
                          "acquire, lock free -> GRANTED, signed", "lockd_xdp");
    Series& replayed =
        Add("replayed_xdp", "signed acquire replayed -> dropped", "lockd_xdp");
    Series& forged =
        Add("forged_xdp", "acquire, MAC forged -> dropped", "lockd_xdp");
    Series& release =
        Add("release_idle_signed",
            "release, nobody waiting -> RELEASED, signed", "lockd_xdp");
    operations_.push_back(
        {{&acquire, &replayed, &forged, &release},
         [this](absl::Span<uint32_t> ns) {
           const Message take = SignedRequest(
               Acquire(kSignedLock, NextTxn(), LOCKD_MODE_EXCLUSIVE));
           const uint64_t fence = ++Fence(kSignedLock);
           const Bytes take_in = From(0, take);
           absl::Status status = Record(
               lockd_.Measure(Hook::kXdp, take_in, XDP_TX,
                              To(0, Granted(take, fence, lockd_.lease_ms())),
                              {{LOCKD_STAT_RX, 1},
                               {LOCKD_STAT_ACQUIRE, 1},
                               {LOCKD_STAT_GRANT_IMMEDIATE, 1},
                               {LOCKD_STAT_LOCK_CREATED, 1}}),
               &ns[0]);
           if (!status.ok()) return status;
           status = Record(
               lockd_.Measure(Hook::kXdp, take_in, XDP_DROP, take_in,
                              {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_REPLAYED, 1}}),
               &ns[1]);
           if (!status.ok()) return status;
           Message forged = SignedRequest(
               Acquire(kSignedLock, NextTxn(), LOCKD_MODE_EXCLUSIVE));
           forged.mac = ~forged.mac;
           const Bytes forged_in = From(0, forged);
           status =
               Record(lockd_.Measure(
                          Hook::kXdp, forged_in, XDP_DROP, forged_in,
                          {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_AUTH_FAILED, 1}}),
                      &ns[2]);
           if (!status.ok()) return status;
           const Message give =
               SignedRequest(Release(kSignedLock, take.txn_id));
           return Record(lockd_.Measure(Hook::kXdp, From(0, give), XDP_TX,
                                        To(0, Answer(give, LOCKD_OP_RELEASED,
                                                     LOCKD_STATUS_OK, fence)),
                                        {{LOCKD_STAT_RX, 1},
                                         {LOCKD_STAT_RELEASE, 1},
                                         {LOCKD_STAT_RELEASED, 1},
                                         {LOCKD_STAT_HOLD_ENDED, 1},
                                         {LOCKD_STAT_LOCK_FREED, 1}}),
                         &ns[3]);
         }});
  }

  // Acquire on a held lock: the requester joins the queue. Every
  // kQueueBatch calls the queue is drained outside the measurement.
  void AddAcquireQueues() {
    operations_.push_back(
        {{&Add("acquire_queue", "acquire, lock held -> QUEUED", "lockd_xdp")},
         [this](absl::Span<uint32_t> ns) {
           if (queue_members_.size() == kQueueBatch + 1) {
             absl::Status drained = DrainQueue();
             if (!drained.ok()) return drained;
           }
           if (queue_members_.empty()) {
             const Message hold =
                 Acquire(kQueueLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
             absl::Status held = lockd_.Send(
                 Hook::kXdp, From(0, hold), XDP_TX,
                 To(0, Granted(hold, ++Fence(kQueueLock), lockd_.lease_ms())));
             if (!held.ok()) return held;
             queue_members_.push_back(hold);
           }
           const int client = static_cast<int>(queue_members_.size());
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
           if (measured.ok()) queue_members_.push_back(wait);
           return measured;
         }});
  }

  // Releases every member of the queue built by AddAcquireQueues through
  // TC, holder first: each release grants the next waiter, which takes the
  // next fence.
  absl::Status DrainQueue() {
    for (size_t k = 0; k < queue_members_.size(); ++k) {
      const Message give = Release(kQueueLock, queue_members_[k].txn_id);
      const int client = static_cast<int>(k);
      // The holder's fence was handed out when it acquired; each waiter's
      // is handed out by the release before its own.
      const uint64_t fence = k == 0 ? Fence(kQueueLock) : ++Fence(kQueueLock);
      absl::Status status = lockd_.Send(
          Hook::kTc, From(client, give), TC_ACT_REDIRECT,
          To(client, Answer(give, LOCKD_OP_RELEASED, LOCKD_STATUS_OK, fence)));
      if (!status.ok()) return status;
    }
    queue_members_.clear();
    return absl::OkStatus();
  }

  // A release that wakes `waiters` waiters in `mode`: XDP hands it to TC
  // untouched, as in service, then TC releases and sends one GRANTED clone
  // per woken waiter. XDP's part, which every such release pays, is
  // recorded in `handoff` when given; TC's in `release`.
  void AddReleaseGranting(uint64_t lock, int waiters, lockd_mode mode,
                          Series* handoff, Series* release) {
    std::vector<Series*> series = {release};
    if (handoff != nullptr) series.insert(series.begin(), handoff);
    const bool record_handoff = handoff != nullptr;
    operations_.push_back(
        {series,
         [this, lock, waiters, mode, record_handoff](absl::Span<uint32_t> ns) {
           const Message hold = Acquire(lock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
           const uint64_t hold_fence = ++Fence(lock);
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

           const Message give = Release(lock, hold.txn_id);
           const Bytes in = From(0, give);
           if (record_handoff) {
             status = Record(lockd_.Measure(Hook::kXdp, in, XDP_PASS, in,
                                            {{LOCKD_STAT_RX, 1},
                                             {LOCKD_STAT_RELEASE_TO_TC, 1}}),
                             &ns[0]);
           } else {
             status = lockd_.Send(Hook::kXdp, in, XDP_PASS, in);
           }
           if (!status.ok()) return status;
           const uint64_t n = static_cast<uint64_t>(waiters);
           status =
               Record(lockd_.Measure(Hook::kTc, in, TC_ACT_REDIRECT,
                                     To(0, Answer(give, LOCKD_OP_RELEASED,
                                                  LOCKD_STATUS_OK, hold_fence)),
                                     {{LOCKD_STAT_RELEASE, 1},
                                      {LOCKD_STAT_RELEASED, 1},
                                      {LOCKD_STAT_HOLD_ENDED, 1},
                                      {LOCKD_STAT_GRANT_FROM_QUEUE, n},
                                      {LOCKD_STAT_GRANT_SENT, n},
                                      // the first granted waiter moves
                                      // into the lock's slot: its block goes
                                      {LOCKD_STAT_POOL_FREE, 1}}),
                      &ns[ns.size() - 1]);
           if (!status.ok()) return status;

           // The woken waiters hold the lock now, each with its own fence;
           // their releases find nobody waiting and XDP answers them.
           for (int c = 1; c <= waiters; ++c) {
             const Message done = Release(lock, queue[c - 1].txn_id);
             status =
                 lockd_.Send(Hook::kXdp, From(c, done), XDP_TX,
                             To(c, Answer(done, LOCKD_OP_RELEASED,
                                          LOCKD_STATUS_OK, ++Fence(lock))));
             if (!status.ok()) return status;
           }
           return absl::OkStatus();
         }});
  }

  // TC's cost without clones, for reading the grant figures: a release
  // with nobody waiting, which in service XDP answers and TC never sees.
  void AddReleaseIdleTc() {
    operations_.push_back(
        {{&Add("release_idle_tc", "release, nobody waiting (TC reference)",
               "lockd_tc")},
         [this](absl::Span<uint32_t> ns) {
           const Message take =
               Acquire(kIdleTcLock, NextTxn(), LOCKD_MODE_EXCLUSIVE);
           const uint64_t fence = ++Fence(kIdleTcLock);
           absl::Status status =
               lockd_.Send(Hook::kXdp, From(0, take), XDP_TX,
                           To(0, Granted(take, fence, lockd_.lease_ms())));
           if (!status.ok()) return status;
           const Message give = Release(kIdleTcLock, take.txn_id);
           return Record(
               lockd_.Measure(Hook::kTc, From(0, give), TC_ACT_REDIRECT,
                              To(0, Answer(give, LOCKD_OP_RELEASED,
                                           LOCKD_STATUS_OK, fence)),
                              {{LOCKD_STAT_RELEASE, 1},
                               {LOCKD_STAT_RELEASED, 1},
                               {LOCKD_STAT_HOLD_ENDED, 1},
                               {LOCKD_STAT_LOCK_FREED, 1}}),
               &ns[0]);
         }});
  }

  Lockd lockd_;
  baseline_bpf* baseline_;
  std::deque<Series> series_;  // a deque: Add hands out references
  std::vector<Operation> operations_;
  uint64_t last_txn_ = 0;
  uint64_t signed_seq_ = 0;
  std::map<uint64_t, uint64_t> fences_;
  std::vector<Message> queue_members_;  // holder first, then waiters
  uint32_t empty_repeat_ = 0;
  uint32_t empty_repeat_ns_ = 0;
};

// ---- Report --------------------------------------------------------------

struct Row {
  const Series* series;
  Figures figures;
  double ratio;  // median over the empty program's median
};

// What authentication adds to one request: the signed row against the same
// request from client 0 on an open subnet, medians.
struct AuthCost {
  absl::string_view request;
  const Row* open;
  const Row* signed_row;
  int64_t delta_ns() const {
    return static_cast<int64_t>(signed_row->figures.median_ns) -
           open->figures.median_ns;
  }
};

std::vector<AuthCost> AuthCosts(const std::vector<Row>& rows) {
  auto find = [&](absl::string_view id) {
    return &*std::find_if(rows.begin(), rows.end(),
                          [&](const Row& r) { return r.series->id == id; });
  };
  return {{"acquire", find("acquire_free"), find("acquire_free_signed")},
          {"release", find("release_idle_xdp"), find("release_idle_signed")}};
}

std::vector<Row> Rows(const Bench& bench) {
  std::vector<Row> rows;
  for (const Series& s : bench.series())
    rows.push_back({&s, Summarize(s.ns), 0});
  // AddAll() declares the empty program first.
  const double empty = rows.front().figures.median_ns;
  for (Row& row : rows) row.ratio = row.figures.median_ns / empty;
  return rows;
}

void PrintTable(const std::vector<Row>& rows, const Bench& bench,
                absl::string_view kernel, int cpu) {
  const std::vector<AuthCost> auth = AuthCosts(rows);
  absl::PrintF(
      "lockd datapath: ns per call, measured by the kernel "
      "(BPF_PROG_TEST_RUN, repeat=1)\nkernel %s, pinned to CPU %d, TC "
      "clones to lo of a private netns, %s pool segments\n\n",
      kernel, cpu,
      absl::GetFlag(FLAGS_pool_prealloc) ? "preallocated" : "NO_PREALLOC");
  absl::PrintF("%-44s %-11s %7s %8s %8s %8s\n", "operation", "program", "runs",
               "median", "p90", "x empty");
  for (const Row& row : rows)
    absl::PrintF("%-44s %-11s %7d %8d %8d %8.2f\n", row.series->operation,
                 row.series->program, row.figures.runs, row.figures.median_ns,
                 row.figures.p90_ns, row.ratio);
  absl::PrintF(
      "\nxdp_empty with repeat=%d in one call: %d ns per run (the rest of "
      "its repeat=1 figure is the framing of one call)\nlockd_tc figures "
      "include each GRANTED clone's transmit on lo and its loopback "
      "receive\n",
      bench.empty_repeat(), bench.empty_repeat_ns());
  absl::PrintF(
      "\nauthentication per request (signed by a client key, against client "
      "0 from an open subnet; medians):\n");
  for (const AuthCost& a : auth)
    absl::PrintF("  %-8s %+5d ns (%d signed, %d unsigned)\n", a.request,
                 a.delta_ns(), a.signed_row->figures.median_ns,
                 a.open->figures.median_ns);
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
  std::vector<std::string> auth;
  for (const AuthCost& a : AuthCosts(rows))
    auth.push_back(absl::StrFormat(
        "    {\"request\": \"%s\", \"unsigned_id\": \"%s\", "
        "\"signed_id\": \"%s\", \"delta_ns\": %d}",
        a.request, a.open->series->id, a.signed_row->series->id, a.delta_ns()));
  std::string json = absl::StrFormat(
      "{\n  \"kernel\": \"%s\",\n  \"cpu\": %d,\n  \"iterations\": %d,\n"
      "  \"max_seconds\": %.3f,\n  \"measure\": \"kernel duration of one "
      "repeat=1 BPF_PROG_TEST_RUN\",\n  \"yardstick\": \"xdp_empty\",\n"
      "  \"empty_repeat\": {\"repeat\": %d, \"ns_per_run\": %d},\n"
      "  \"operations\": [\n%s\n  ],\n  \"auth_cost\": [\n%s\n  ]\n}\n",
      kernel, cpu, limits.iterations, absl::ToDoubleSeconds(limits.time),
      bench.empty_repeat(), bench.empty_repeat_ns(),
      absl::StrJoin(operations, ",\n"), absl::StrJoin(auth, ",\n"));
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

  absl::Status netns = lockd::testing::EnterPrivateNetns();
  if (!netns.ok()) return netns;
  absl::StatusOr<int> cpu = PinToCurrentCpu();
  if (!cpu.ok()) return cpu.status();

  DatapathOptions options;
  options.pool_prealloc = absl::GetFlag(FLAGS_pool_prealloc);
  options.hash_seed = DistinctBucketsSeed();
  absl::StatusOr<testing::TestDatapath> loaded =
      testing::TestDatapath::Create(options);
  if (!loaded.ok()) return loaded.status();
  if (absl::Status keyed = loaded->clients->Set(kSignedClient, kSignedKey);
      !keyed.ok())
    return keyed;

  std::unique_ptr<baseline_bpf, decltype(&baseline_bpf__destroy)> baseline(
      baseline_bpf__open_and_load(), &baseline_bpf__destroy);
  if (baseline == nullptr)
    return absl::InternalError(
        absl::StrCat("loading the baseline BPF programs: ", strerror(errno)));

  Bench bench(&*loaded, baseline.get());
  bench.AddAll();
  absl::Status measured = bench.Run(limits);
  if (!measured.ok()) return measured;

  utsname uts{};
  uname(&uts);
  const std::vector<Row> rows = Rows(bench);
  PrintTable(rows, bench, uts.release, *cpu);
  std::string json = absl::GetFlag(FLAGS_json);
  if (json.empty()) return absl::OkStatus();
  // `bazel run` starts us in the runfiles tree; a relative path means the
  // directory the command was typed in.
  const char* cwd = getenv("BUILD_WORKING_DIRECTORY");
  if (json.front() != '/' && cwd != nullptr)
    json = absl::StrCat(cwd, "/", json);
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
