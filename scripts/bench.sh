#!/usr/bin/env bash
# Benchmarks side by side: lockd (fast path; fast path off; gRPC; NO_WAIT),
# Redis locks, etcd locks, ZooKeeper locks (Curator's recipes) and an XDP
# program that only reflects packets, all driven by one load generator
# (bench/loadgen.cc) from a client network namespace over a veth pair to a
# server namespace. Writes bench/out/results.json, docs/img/*.png and
# docs/benchmarks.md.
#
# Every lockd it starts has a key file of fresh client keys
# (bench/make_key_file.cc); the tools sign as those clients, each load
# generator session as a client of its own. lockd-open is the one exception:
# unsigned requests from a subnet opened to them, to show what
# authentication costs.
#
#   scripts/bench.sh           every workload (about 12 minutes on 2 cores)
#   scripts/bench.sh --quick   a small subset (about 2 minutes)
#
# Installs what is missing (scripts/setup.sh; redis-server, etcd-server,
# zookeeper, libzookeeper-mt-dev and gnuplot-nox; any system-wide service
# they bring is stopped and disabled), builds every binary it runs with
# `bazel build -c opt`, and removes everything it creates (namespaces, veths,
# pins, servers, data directories) on every way out.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
  "") ;;
  --quick) quick=1 ;;
  *)
    echo "usage: scripts/bench.sh [--quick]" >&2
    exit 2
    ;;
esac
readonly quick
command_line="scripts/bench.sh${1:+ $1}"
readonly command_line

# ---------------------------------------------------------------------------
# Packages and build
# ---------------------------------------------------------------------------

scripts/setup.sh

readonly BENCH_PACKAGES=(redis-server etcd-server zookeeper libzookeeper-mt-dev
  gnuplot-nox)
# zookeeper itself starts no service; zookeeperd's would be "zookeeper".
readonly BENCH_SERVICES=(redis-server etcd zookeeper)
missing=()
for package in "${BENCH_PACKAGES[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The packages enable (and on some systems start) system-wide services; the
# benchmark runs its own servers inside its namespace only.
for service in "${BENCH_SERVICES[@]}"; do
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  elif [[ -x "/etc/init.d/$service" ]]; then
    "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done
echo "bench: ok: ${BENCH_PACKAGES[*]} installed, their services stopped"

# Optimized, as one would deploy them. The BPF objects are always built
# with clang -O2, whatever the mode.
readonly BUILD_MODE=opt
bazel build -c "$BUILD_MODE" //lockd:lockd //lockctl:lockctl //bench:loadgen \
  //bench:reflect_server //bench:prealloc_memory //bench:datapath_bench \
  //bench:churn_bench //bench:burst //bench:fuzz //bench:make_key_file \
  //tests/netns:xdp_pass.o 2>&1 | tail -1
# What bazel-bin now points to (bazel-out/k8-opt/bin): the mode of every
# binary below, for the report.
build_mode=$(basename "$(dirname "$(readlink -f bazel-bin)")")
build_mode=${build_mode#*-}
readonly build_mode
echo "bench: binaries from bazel-out/*-$build_mode"

# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------

# Systems run back to back on each workload, each with a fresh server, so
# that other load on the machine drifting over the run skews every system of
# a workload alike; the ratios are computed within a workload.
readonly ALL_WORKLOADS=(uniform zipf09_x0 zipf09_x10 zipf09_x50 zipf099_x0
  zipf099_x10 zipf099_x50 hot1 hot10 hot100 hot1000 hot10000)
if ((quick)); then
  warmup=0.3s duration=1s zk_warmup=3s
  workloads=(uniform zipf099_x50 hot1)
  declare -A systems_of=(
    [uniform]="lockd lockd-open lockd-user lockd-nowait lockd-grpc lockd-grpc-health xdp-reflect redis etcd zk"
    [zipf099_x50]="lockd lockd-nowait redis zk"
    [hot1]="lockd lockd-open lockd-user lockd-nowait lockd-grpc lockd-grpc-health xdp-reflect redis etcd zk")
  open_rates=(2000)
  churn_duration=1s distinct=1000000 iterations=2000 fuzz_packets=100000
  loss_duration=2s
else
  warmup=1s duration=4s zk_warmup=5s
  workloads=("${ALL_WORKLOADS[@]}")
  declare -A systems_of
  for workload in "${workloads[@]}"; do
    systems_of[$workload]="lockd lockd-user lockd-nowait redis zk"
  done
  systems_of[uniform]+=" lockd-open lockd-grpc lockd-grpc-health xdp-reflect etcd"
  systems_of[zipf099_x50]+=" lockd-grpc"
  systems_of[hot1]+=" lockd-open lockd-grpc lockd-grpc-health xdp-reflect etcd"
  systems_of[hot100]+=" etcd"
  open_rates=(1000 2500 5000)
  churn_duration=4s distinct=10000000 iterations=10000 fuzz_packets=1000000
  loss_duration=10s
fi
readonly OPEN_LOOP_SYSTEMS=(lockd lockd-user redis zk)
# Enough outstanding requests to saturate 2 cores without drowning the
# latency in socket queues; gRPC and etcd are slower per request.
readonly UDP_SESSIONS=32 REDIS_SESSIONS=32 GRPC_SESSIONS=16 ETCD_SESSIONS=16
readonly ZK_SESSIONS=16
# lockd's clients: one per load generator session, ids 1..KEY_CLIENTS.
readonly KEY_CLIENTS=64
# One ZooKeeper session per load generator thread, shared by its sessions,
# as one Curator client serves every lock of a JVM (bench/zk_driver.h).
readonly ZK_HANDLES=1
# The JVM compiles ZooKeeper's hot paths during its first seconds under
# load: its runs are warmed up longer (after 1 s they still made 30-50 %
# fewer locks/s than after 3-5 s).
readonly zk_warmup
readonly GRPC_PORT=7451 REDIS_PORT=6379 ETCD_PORT=2379 ZK_PORT=2181

# ---------------------------------------------------------------------------
# Namespaces, servers, cleanup
# ---------------------------------------------------------------------------

out=bench/out
mkdir -p "$out"
runs="$out/runs.jsonl"
: >"$runs"
work=""
shm_dir=""
readonly instance="bench-$$"
readonly pin_root="/sys/fs/bpf/lockd-bench-$$"
server_pid=""

# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

cleanup() {
  local status=$?
  stop_server
  netns_teardown
  rm -rf "$pin_root" ${work:+"$work"} ${shm_dir:+"$shm_dir"}
  exit "$status"
}
NETNS_CLIENT_XDP_OBJ=bazel-bin/tests/netns/xdp_pass.o netns_setup lockdbench
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
work=$(mktemp -d /tmp/lockd-bench.XXXXXX)
# On tmpfs: etcd's and ZooKeeper's data directories (fsync costs nothing
# there: their best case).
shm_dir=$(mktemp -d /dev/shm/lockd-bench.XXXXXX)
# The key file of every lockd started here, and how the tools sign with it.
readonly keys="$work/keys"
bazel-bin/bench/make_key_file --clients="$KEY_CLIENTS" --out="$keys"
readonly sign=(--key_file="$keys" --client_id=1)

# Waits (at most 20 s) for `text` in the server's log; fails if it died.
await_server() {
  local text="$1" log="$2"
  await_probe "$log" grep -q "$text" "$log"
}

# Waits (at most 20 s) until the command after LOG succeeds; fails, showing
# LOG, if the server died.
await_probe() {
  local log="$1" deadline=$((SECONDS + 20))
  shift
  while ((SECONDS < deadline)); do
    "$@" 2>/dev/null && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "bench: server not ready after 20 s" >&2
  cat "$log" >&2
  return 1
}

# Ids of the BPF maps lockd uses: those its XDP program references (when
# attached) and those it pinned.
map_ids="" lockd_admin=""

# lockd in the server namespace; $1 = fast | off (fast path on or off),
# lockd flags after it.
start_lockd() {
  local interface=""
  [[ "$1" == fast ]] && interface="$NETNS_SERVER_IF"
  shift
  bazel-bin/lockd/lockd --netns="$NETNS_SERVER" --interface="$interface" \
    --instance="$instance" --pin_root="$pin_root" --keep_state=false --grace_ms=0 \
    --grpc_listen="$NETNS_SERVER_IP:$GRPC_PORT" --key_file="$keys" "$@" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  await_server ready "$work/server.log"
  # lockd's kernel memory, segments included, as lockd accounts for it.
  map_ids=""
  lockd_admin="$NETNS_SERVER_IP:$GRPC_PORT"
}

start_reflect() {
  bazel-bin/bench/reflect_server --netns="$NETNS_SERVER" \
    --interface="$NETNS_SERVER_IF" >"$work/server.log" 2>&1 &
  server_pid=$!
  await_server ready "$work/server.log"
  map_ids=""
  lockd_admin=""
}

start_redis() {
  ip netns exec "$NETNS_SERVER" redis-server --bind "$NETNS_SERVER_IP" \
    --port "$REDIS_PORT" --save "" --appendonly no --protected-mode no \
    --dir "$work" >"$work/server.log" 2>&1 &
  server_pid=$!
  await_server "Ready to accept connections" "$work/server.log"
  map_ids=""
  lockd_admin=""
}

start_etcd() {
  rm -rf "${shm_dir:?}/etcd"
  ip netns exec "$NETNS_SERVER" etcd --name bench --data-dir "$shm_dir/etcd" \
    --listen-client-urls "http://$NETNS_SERVER_IP:$ETCD_PORT" \
    --advertise-client-urls "http://$NETNS_SERVER_IP:$ETCD_PORT" \
    --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster bench=http://127.0.0.1:2380 \
    --log-level info >"$work/server.log" 2>&1 &
  server_pid=$!
  await_server "ready to serve client requests" "$work/server.log"
  map_ids=""
  lockd_admin=""
}

# ZooKeeper's answer to the four-letter word `srvr` in the server namespace
# (nothing if it does not answer within 1 s).
zk_srvr() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  ip netns exec "$NETNS_SERVER" timeout 1 bash -c \
    'exec 3<>"/dev/tcp/$0/$1" && printf srvr >&3 && cat <&3' \
    "$NETNS_SERVER_IP" "$ZK_PORT" 2>/dev/null || true
}

zk_ready() {
  [[ "$(zk_srvr)" == *"Mode: standalone"* ]]
}

# ZooKeeper standalone (bench/zk_server.sh), its data on tmpfs, started
# afresh for every run as etcd is.
start_zk() {
  rm -rf "${shm_dir:?}/zookeeper"
  ip netns exec "$NETNS_SERVER" bench/zk_server.sh "$shm_dir/zookeeper" \
    "$NETNS_SERVER_IP" "$ZK_PORT" >"$work/server.log" 2>&1 &
  server_pid=$!
  await_probe "$work/server.log" zk_ready
  map_ids=""
  lockd_admin=""
}

# Runs the load generator once and appends its JSON line to $runs.
#   load SYSTEM DRIVER WORKLOAD SESSIONS [loadgen flags...]
load() {
  local system="$1" driver="$2" workload="$3" sessions="$4"
  shift 4
  local result
  printf 'bench: %-14s %-12s %s\n' "$system" "$workload" "$*" >&2
  if ! result=$(timeout --kill-after=5 120 bazel-bin/bench/loadgen \
    --netns="$NETNS_CLIENT" --server="$NETNS_SERVER_IP" --system="$system" \
    --driver="$driver" --workload="$workload" --sessions="$sessions" \
    --warmup="$warmup" --duration="$duration" --server_pids="$server_pid" \
    --bpf_map_ids="$map_ids" ${lockd_admin:+--lockd_admin="$lockd_admin"} \
    "$@"); then
    echo "bench: $system $workload failed" >&2
    return 1
  fi
  echo "$result" >>"$runs"
  python3 -c 'import json, sys
r = json.loads(sys.argv[1])
print("       %9.0f locks/s %8.0f commits/s  abort %.3f  grant p50 %.0f us p99 %.0f us  Jain %.3f" % (
    r["locks_per_s"], r["goodput_txn_per_s"], r["abort_rate"],
    r["grant_latency"]["p50_us"], r["grant_latency"]["p99_us"], r["jain_fairness"]))' "$result" >&2
}

# One run of SYSTEM on WORKLOAD with a fresh server (lockd's lock table
# only grows; Redis, etcd and ZooKeeper start empty), loadgen flags after
# them.
#   run SYSTEM WORKLOAD [loadgen flags...]
run() {
  local system="$1" workload="$2"
  shift 2
  case "$system" in
    lockd)
      start_lockd fast
      load "$system" udp "$workload" "$UDP_SESSIONS" --policy=wait "${sign[@]}" "$@"
      ;;
    lockd-open)
      # Unsigned (client 0) from a subnet opened to them: labs only.
      start_lockd fast --open_subnets="$NETNS_CLIENT_IP/32"
      load "$system" udp "$workload" "$UDP_SESSIONS" --policy=wait "$@"
      ;;
    lockd-user)
      start_lockd off
      load "$system" udp "$workload" "$UDP_SESSIONS" --policy=wait "${sign[@]}" "$@"
      ;;
    lockd-nowait)
      start_lockd fast
      load "$system" udp "$workload" "$UDP_SESSIONS" --policy=no_wait "${sign[@]}" "$@"
      ;;
    lockd-grpc)
      start_lockd fast
      load "$system" grpc "$workload" "$GRPC_SESSIONS" --policy=wait \
        --port="$GRPC_PORT" "${sign[@]}" "$@"
      ;;
    lockd-grpc-health)
      # The same calls, each a Health RPC: what gRPC itself costs.
      start_lockd fast
      load "$system" grpc_health "$workload" "$GRPC_SESSIONS" \
        --port="$GRPC_PORT" "$@"
      ;;
    xdp-reflect)
      # The same signed 72-byte requests as lockd gets.
      start_reflect
      load "$system" reflect "$workload" "$UDP_SESSIONS" "${sign[@]}" "$@"
      ;;
    redis)
      start_redis
      load "$system" redis "$workload" "$REDIS_SESSIONS" --port="$REDIS_PORT" "$@"
      ;;
    etcd)
      start_etcd
      load "$system" etcd "$workload" "$ETCD_SESSIONS" --port="$ETCD_PORT" "$@"
      ;;
    zk)
      start_zk
      warmup=$zk_warmup load "$system" zk "$workload" "$ZK_SESSIONS" \
        --port="$ZK_PORT" --zk_handles="$ZK_HANDLES" "$@"
      ;;
  esac
  stop_server
}

# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

echo "== prealloc: fixed slots sized for the worst case; pool segments"
bazel-bin/bench/prealloc_memory >"$out/prealloc.json"

echo "== datapath: ns per operation (BPF_PROG_TEST_RUN), pool preallocated or not"
bazel-bin/bench/datapath_bench --iterations="$iterations" \
  --json="$out/datapath.json"
bazel-bin/bench/datapath_bench --iterations="$iterations" \
  --pool_prealloc=false --json="$out/datapath_noprealloc.json"

echo "== churn in the kernel: $distinct distinct lock ids, 10000 held at once"
bazel-bin/bench/churn_bench --distinct="$distinct" --live=10000 \
  --json="$out/churn_bench.json"

echo "== idle: a fresh lockd with default flags"
start_lockd fast
sleep 2
ip netns exec "$NETNS_SERVER" bazel-bin/lockctl/lockctl \
  --server="$NETNS_SERVER_IP:$GRPC_PORT" --json memory >"$out/idle.json"
stop_server

echo "== burst: 10x the pool's first segment of waiters on 100 locks"
start_lockd fast
bazel-bin/bench/burst --netns="$NETNS_CLIENT" --server="$NETNS_SERVER_IP" \
  --grpc="$NETNS_SERVER_IP:$GRPC_PORT" "${sign[@]}" --json="$out/burst.json"
stop_server

echo "== fuzz: $fuzz_packets packets without a key, then $fuzz_packets random signed requests"
# Leases of at most 2 s, so that everything the signed requests leave ends.
start_lockd fast --max_lease_ms=2000
bazel-bin/bench/fuzz --netns="$NETNS_CLIENT" --server="$NETNS_SERVER_IP" \
  --grpc="$NETNS_SERVER_IP:$GRPC_PORT" --pid="$server_pid" "${sign[@]}" \
  --pin_dir="$pin_root/$instance" --packets="$fuzz_packets" \
  --signed_packets="$fuzz_packets" --json="$out/fuzz.json"
stop_server

echo "== packet loss: grant latency through the client library at 0, 1 and 10 % loss"
# Namespaces and a lockd of its own (bench/loss_latency.sh), removed on exit.
: >"$out/loss.jsonl"
bench/loss_latency.sh --duration="$loss_duration" --json="$out/loss.jsonl"

echo "== churn through the network: uniform, five runs back to back on one lockd"
start_lockd fast
for i in 1 2 3 4 5; do
  warmup=0s duration=$churn_duration load "lockd-churn-$i" udp uniform \
    "$UDP_SESSIONS" --policy=wait "${sign[@]}"
done
stop_server

for workload in "${workloads[@]}"; do
  echo "== $workload (closed loop)"
  for system in ${systems_of[$workload]}; do
    run "$system" "$workload"
  done
done
for rate in "${open_rates[@]}"; do
  echo "== uniform, open loop at $rate transactions/s"
  for system in "${OPEN_LOOP_SYSTEMS[@]}"; do
    run "$system" uniform --rate="$rate"
  done
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

# The plots are committed beside the document that shows them.
mkdir -p docs/img
python3 bench/report.py --runs "$runs" --prealloc "$out/prealloc.json" \
  --datapath "$out/datapath.json" --datapath_noprealloc "$out/datapath_noprealloc.json" \
  --churn_bench "$out/churn_bench.json" --idle "$out/idle.json" \
  --burst "$out/burst.json" --fuzz "$out/fuzz.json" --loss "$out/loss.jsonl" \
  --command "$command_line" --results "$out/results.json" \
  --markdown docs/benchmarks.md --plot_dir docs/img --data_dir "$out" \
  --reading bench/reading.md --build_mode "$build_mode"
echo "bench: wrote $out/results.json, docs/img/*.png and docs/benchmarks.md"
