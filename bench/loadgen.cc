// loadgen: the benchmarks' load generator. Runs strict-2PL transactions of
// one workload (bench/workload.h) against one lock service through one
// driver, closed loop or at a fixed offered rate, for a fixed time, and
// prints one JSON object: throughput (locks/s, transactions/s), goodput
// (commits/s), abort and retry rates, grant and transaction latency
// percentiles, Jain's fairness index over sessions, the driver's counters,
// and the memory held by the servers (VmRSS of --server_pids, memlock of
// --bpf_map_ids). scripts/bench.sh runs it; it never asserts on time.
//
// Sessions are spread over --threads threads, each an epoll loop with its
// own driver. Against lockd (udp, grpc) and the reflector, session i speaks
// as client --client_id + i with that client's key from --key_file
// (bench/signer.h); without --key_file, unsigned (served only from lockd's
// --open_subnets). With --netns it joins that network namespace first, keeping
// the host's mount namespace (so bpffs and /proc stay the host's).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "bench/etcd_driver.h"
#include "bench/event_loop.h"
#include "bench/grpc_driver.h"
#include "bench/json_writer.h"
#include "bench/lockd_memory.h"
#include "bench/memory_sampler.h"
#include "bench/redis_driver.h"
#include "bench/signer.h"
#include "bench/txn_runner.h"
#include "bench/udp_driver.h"
#include "bench/workload.h"
#include "bench/zk_driver.h"
#include "lockd/grpc_conventions.h"
#include "tests/netns/test_network.h"

ABSL_FLAG(std::string, netns, "", "Network namespace to run in.");
ABSL_FLAG(std::string, driver, "udp",
          "udp (lockd's protocol), reflect (the XDP reflector), redis, etcd, "
          "zk (ZooKeeper), grpc, or grpc_health (a Health call in place of "
          "every lock call: what gRPC alone costs).");
ABSL_FLAG(std::string, system, "",
          "Name of the system under test, for the "
          "report (default: the driver's name).");
ABSL_FLAG(std::string, server, "198.18.0.1", "Server IPv4 address.");
ABSL_FLAG(uint32_t, port, 0, "Server port; 0: the driver's default.");
ABSL_FLAG(std::string, policy, "wait",
          "lockd acquire policy: wait, no_wait or wait_die.");
ABSL_FLAG(std::string, workload, "uniform", "See bench/workload.h.");
ABSL_FLAG(int32_t, threads, 2, "Event loop threads.");
ABSL_FLAG(int32_t, sessions, 64,
          "Client sessions in all (split over threads).");
ABSL_FLAG(int32_t, sockets, 4, "UDP sockets per thread.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Not measured.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Measured time.");
ABSL_FLAG(absl::Duration, drain, absl::Seconds(2),
          "Longest wait for sessions to finish after the measured time.");
ABSL_FLAG(double, rate, 0,
          "Offered load in transactions/s (open loop); 0: closed loop.");
ABSL_FLAG(absl::Duration, hold, absl::ZeroDuration(),
          "Time a transaction holds all its locks before releasing.");
ABSL_FLAG(absl::Duration, backoff_base, absl::Microseconds(20),
          "Backoff before a retry (and before polling a busy lock again): "
          "random up to base * 2^attempt ...");
ABSL_FLAG(absl::Duration, backoff_cap, absl::Milliseconds(2),
          "... at most this.");
ABSL_FLAG(std::string, server_pids, "",
          "Comma-separated pids to sample VmRSS of.");
ABSL_FLAG(std::string, bpf_map_ids, "",
          "Comma-separated BPF map ids to sample memlock and elements of.");
ABSL_FLAG(std::string, lockd_admin, "",
          "lockd's gRPC address: its own account of its kernel memory is "
          "sampled (start, peak, end).");
ABSL_FLAG(uint64_t, seed, 1, "Random seed.");
ABSL_FLAG(std::string, key_file, "",
          "udp, reflect, grpc: lockd key file holding the sessions' keys; "
          "empty: unsigned requests.");
ABSL_FLAG(uint32_t, client_id, 1,
          "With --key_file: the client id of the first session; session i "
          "signs as client_id + i (each its own seq counter).");
ABSL_FLAG(int32_t, zk_handles, 1,
          "zk: ZooKeeper sessions per thread, shared by its sessions (as one "
          "Curator client serves every lock of a JVM); 0: one per load "
          "generator session.");

namespace lockd::bench {
namespace {

constexpr absl::Duration kSampleInterval = absl::Milliseconds(250);

// Whether this binary was compiled with optimization (bazel -c opt); the
// report checks it against the mode it was told.
#ifdef __OPTIMIZE__
constexpr bool kOptimized = true;
#else
constexpr bool kOptimized = false;
#endif

template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& text) {
  std::vector<T> values;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    T value;
    if (!absl::SimpleAtoi(part, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("not a number: ", part));
    }
    values.push_back(value);
  }
  return values;
}

absl::StatusOr<lockd_policy> ParsePolicy(const std::string& name) {
  if (name == "wait") return LOCKD_POLICY_WAIT;
  if (name == "no_wait") return LOCKD_POLICY_NO_WAIT;
  if (name == "wait_die") return LOCKD_POLICY_WAIT_DIE;
  return absl::InvalidArgumentError(absl::StrCat("unknown policy ", name));
}

Backoff FlagBackoff() {
  Backoff backoff;
  backoff.base_nanos =
      absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_backoff_base));
  backoff.cap_nanos =
      absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_backoff_cap));
  return backoff;
}

// The driver of one thread; `signers` sign its sessions' requests (lockd's
// and the reflector's drivers).
absl::StatusOr<std::unique_ptr<LockDriver>> MakeDriver(
    const std::string& name, lockd_policy policy, uint64_t seed,
    std::vector<Signer> signers, EventLoop* loop) {
  const uint32_t port = absl::GetFlag(FLAGS_port);
  const std::string server = absl::GetFlag(FLAGS_server);
  if (name == "redis") {
    RedisDriverOptions options;
    options.server = server;
    if (port != 0) options.port = static_cast<uint16_t>(port);
    options.backoff = FlagBackoff();
    options.seed = seed;
    return std::make_unique<RedisDriver>(options, loop);
  }
  if (name == "etcd") {
    EtcdDriverOptions options;
    options.server = server;
    if (port != 0) options.port = static_cast<uint16_t>(port);
    return std::make_unique<EtcdDriver>(options, loop);
  }
  if (name == "zk") {
    ZkDriverOptions options;
    options.server = server;
    if (port != 0) options.port = static_cast<uint16_t>(port);
    options.handles = absl::GetFlag(FLAGS_zk_handles);
    return std::make_unique<ZkDriver>(options, loop);
  }
  if (name == "grpc" || name == "grpc_health") {
    GrpcDriverOptions options;
    options.server =
        absl::StrCat(server, ":", port != 0 ? port : kDefaultGrpcPort);
    options.policy = policy;
    options.health_only = name == "grpc_health";
    options.signers = std::move(signers);
    return std::make_unique<GrpcDriver>(options, loop);
  }
  if (name == "udp" || name == "reflect") {
    UdpDriverOptions options;
    options.server = server;
    if (port != 0) options.port = static_cast<uint16_t>(port);
    options.sockets = absl::GetFlag(FLAGS_sockets);
    options.policy = policy;
    options.reflect = name == "reflect";
    options.signers = std::move(signers);
    return std::make_unique<UdpDriver>(options, loop);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown driver ", name));
}

// One thread's share of the run.
struct Worker {
  int sessions = 0;
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<LockDriver> driver;
  std::unique_ptr<TxnRunner> runner;
  absl::Status status;
};

// Sessions of thread t when `sessions` are spread over `threads`.
int SessionsOfThread(int sessions, int threads, int t) {
  return sessions / threads + (t < sessions % threads ? 1 : 0);
}

// The 1-minute load average: other work on the machine shows here.
double LoadAverage() {
  double load = -1;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

void WriteLatency(JsonWriter& json, absl::string_view key,
                  const LatencyHistogram& histogram) {
  json.Key(key).BeginObject();
  json.Field("count", histogram.count());
  json.Field("mean_us", histogram.MeanNanoseconds() / 1e3);
  json.Field("p50_us", histogram.Percentile(0.50) / 1e3);
  json.Field("p99_us", histogram.Percentile(0.99) / 1e3);
  json.Field("p999_us", histogram.Percentile(0.999) / 1e3);
  json.EndObject();
}

void WriteMemory(JsonWriter& json, const MemorySampler& sampler) {
  json.Key("processes").BeginArray();
  for (const ProcessMemory& process : sampler.processes()) {
    json.BeginObject();
    json.Field("pid", static_cast<int64_t>(process.pid));
    json.Field("name", process.name);
    json.Field("rss_start_kib", process.rss_start_kib);
    json.Field("rss_peak_kib", process.rss_peak_kib);
    json.Field("hwm_end_kib", process.hwm_end_kib);
    json.EndObject();
  }
  json.EndArray();
  json.Key("maps").BeginArray();
  for (const MapMemory& map : sampler.maps()) {
    json.BeginObject();
    json.Field("id", map.id);
    json.Field("name", map.name);
    json.Field("type", map.type);
    json.Field("max_entries", map.max_entries);
    json.Field("value_size", map.value_size);
    json.Field("memlock_start", map.memlock_start);
    json.Field("entries_start", map.entries_start);
    json.Field("memlock_peak", map.memlock_peak);
    json.Field("entries_at_peak", map.entries_at_peak);
    json.Field("memlock_end", map.memlock_end);
    json.Field("entries_end", map.entries_end);
    json.EndObject();
  }
  json.EndArray();
}

absl::Status Run() {
  if (!absl::GetFlag(FLAGS_netns).empty()) {
    if (absl::Status joined = netns::JoinNetns(absl::GetFlag(FLAGS_netns));
        !joined.ok())
      return joined;
  }
  absl::StatusOr<lockd_policy> policy =
      ParsePolicy(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) return policy.status();
  absl::StatusOr<WorkloadSpec> spec =
      ParseWorkload(absl::GetFlag(FLAGS_workload));
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::unique_ptr<Workload>> workload = Workload::Create(*spec);
  if (!workload.ok()) return workload.status();
  absl::StatusOr<std::vector<pid_t>> pids =
      ParseList<pid_t>(absl::GetFlag(FLAGS_server_pids));
  if (!pids.ok()) return pids.status();
  absl::StatusOr<std::vector<uint32_t>> map_ids =
      ParseList<uint32_t>(absl::GetFlag(FLAGS_bpf_map_ids));
  if (!map_ids.ok()) return map_ids.status();
  absl::StatusOr<MemorySampler> sampler =
      MemorySampler::Create(*std::move(pids), *std::move(map_ids));
  if (!sampler.ok()) return sampler.status();
  std::unique_ptr<LockdMemory> lockd_memory;
  if (!absl::GetFlag(FLAGS_lockd_admin).empty()) {
    absl::StatusOr<std::unique_ptr<LockdMemory>> created =
        LockdMemory::Create(absl::GetFlag(FLAGS_lockd_admin));
    if (!created.ok()) return created.status();
    lockd_memory = std::move(*created);
  }

  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  const int sessions = std::max(threads, absl::GetFlag(FLAGS_sessions));
  const std::string driver_name = absl::GetFlag(FLAGS_driver);
  absl::StatusOr<std::vector<Signer>> signers = MakeSigners(
      absl::GetFlag(FLAGS_key_file), absl::GetFlag(FLAGS_client_id), sessions);
  if (!signers.ok()) return signers.status();
  std::vector<Worker> workers(threads);
  for (int t = 0, first = 0; t < threads; ++t) {
    Worker& worker = workers[t];
    worker.sessions = SessionsOfThread(sessions, threads, t);
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    if (!loop.ok()) return loop.status();
    worker.loop = *std::move(loop);
    absl::StatusOr<std::unique_ptr<LockDriver>> driver = MakeDriver(
        driver_name, *policy, absl::GetFlag(FLAGS_seed) + t,
        std::vector<Signer>(signers->begin() + first,
                            signers->begin() + first + worker.sessions),
        worker.loop.get());
    if (!driver.ok()) return driver.status();
    worker.driver = *std::move(driver);
    first += worker.sessions;
  }

  const int64_t epoch = NowNanos();
  RunConfig config;
  config.epoch = epoch;
  config.offered_rate = absl::GetFlag(FLAGS_rate) / threads;
  config.hold_nanos = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_hold));
  config.backoff = FlagBackoff();
  for (int t = 0; t < threads; ++t) {
    Worker& worker = workers[t];
    config.thread_index = t;
    config.sessions = worker.sessions;
    config.seed = absl::GetFlag(FLAGS_seed) * 1000003 + t;
    worker.runner = std::make_unique<TxnRunner>(
        config, workload->get(), worker.loop.get(), worker.driver.get());
    if (absl::Status connected =
            worker.driver->Connect(config.sessions, worker.runner.get());
        !connected.ok()) {
      return connected;
    }
  }

  sampler->SampleStart();
  const double loadavg_before = LoadAverage();
  const int64_t start =
      NowNanos() + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_warmup));
  const int64_t end =
      start + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
  const int64_t drain_deadline =
      end + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_drain));
  std::vector<std::thread> running;
  for (Worker& worker : workers) {
    running.emplace_back([&worker, start, end, drain_deadline] {
      worker.runner->SetWindow(start, end);
      worker.runner->Start();
      worker.status = worker.loop->Run(drain_deadline);
    });
  }
  absl::Notification done;
  std::thread sampling([&] {
    while (!done.WaitForNotificationWithTimeout(kSampleInterval)) {
      sampler->Sample();
      if (lockd_memory) lockd_memory->Sample();
    }
  });
  for (std::thread& thread : running) thread.join();
  done.Notify();
  sampling.join();
  sampler->SampleEnd();
  if (lockd_memory) lockd_memory->Sample();

  RunStats stats;
  DriverCounters counters;
  for (Worker& worker : workers) {
    if (!worker.status.ok()) return worker.status;
    stats.Merge(worker.runner->stats());
    for (const auto& [name, value] : worker.driver->Counters()) {
      auto it = std::find_if(counters.begin(), counters.end(),
                             [&](const auto& c) { return c.first == name; });
      if (it == counters.end()) {
        counters.emplace_back(name, value);
      } else {
        it->second += value;
      }
    }
  }

  const double seconds = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration));
  JsonWriter json;
  json.BeginObject();
  const std::string system = absl::GetFlag(FLAGS_system);
  json.Field("system", system.empty() ? driver_name : system);
  json.Field("driver", driver_name);
  json.Field("workload", (*workload)->spec().name);
  json.Field("policy", absl::GetFlag(FLAGS_policy));
  json.Field("signed", !absl::GetFlag(FLAGS_key_file).empty());
  json.Field("mode",
             std::string(absl::GetFlag(FLAGS_rate) > 0 ? "open" : "closed"));
  json.Field("offered_txn_per_s", absl::GetFlag(FLAGS_rate));
  json.Field("threads", threads);
  json.Field("sessions", sessions);
  json.Field("duration_s", seconds);
  json.Field("warmup_s", absl::ToDoubleSeconds(absl::GetFlag(FLAGS_warmup)));
  json.Field("loadgen_optimized", kOptimized);
  json.Field("hold_us", absl::ToDoubleMicroseconds(absl::GetFlag(FLAGS_hold)));
  json.Field("loadavg_before", loadavg_before);
  json.Field("locks_per_s", stats.grants / seconds);
  json.Field("txn_attempts_per_s", stats.attempts / seconds);
  json.Field("goodput_txn_per_s", stats.commits / seconds);
  json.Field("commits", stats.commits);
  json.Field("aborts", stats.aborts);
  json.Field("abort_rate",
             stats.attempts ? static_cast<double>(stats.aborts) / stats.attempts
                            : 0.0);
  json.Field(
      "retries_per_commit",
      stats.commits ? static_cast<double>(stats.aborts) / stats.commits : 0.0);
  json.Field("arrivals", stats.arrivals);
  json.Field("arrivals_dropped", stats.arrivals_dropped);
  json.Field("jain_fairness", JainIndex(stats.commits_per_session));
  WriteLatency(json, "grant_latency", stats.grant_latency);
  WriteLatency(json, "txn_latency", stats.txn_latency);
  json.Key("driver_counters").BeginObject();
  for (const auto& [name, value] : counters) json.Field(name, value);
  json.EndObject();
  json.Key("memory").BeginObject();
  WriteMemory(json, *sampler);
  if (lockd_memory) lockd_memory->Write(json, "lockd");
  json.EndObject();
  json.EndObject();
  printf("%s\n", json.str().c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "loadgen --netns=NS --driver=udp --server=IP --workload=uniform ...");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = lockd::bench::Run();
  if (!status.ok()) {
    fprintf(stderr, "loadgen: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
