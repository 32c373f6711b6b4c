#!/usr/bin/env bash
# Grant latency and goodput through the client library under packet loss
# (issue #12): bench/client_latency.cc (8 threads, one-lock transactions on
# 4 hot locks, so most grants come from a queue) against one lockd server,
# once per loss rate, with that percentage of packets dropped at random both
# ways in the client namespace (nftables). Prints, per loss rate, committed
# transactions/s and grant latency p50/p99/p99.9 (first transmission of the
# ACQUIRE to the GRANTED the library took), each with its ratio to the 0 %
# run of the same invocation, and the client's retransmissions.
#
#   bench/loss_latency.sh [--duration=10s] [--json=FILE] [LOSS...]
#                                      default LOSS: 0 1 10
#
# The rates run back to back against one server; --json appends one JSON
# object per rate to FILE (for scripts/bench.sh). Namespaces, veths, pins,
# the daemon and the nftables table (it lives in the client namespace) are
# removed on every exit.
set -euo pipefail
duration=10s json=""
losses=()
for arg in "$@"; do
  case "$arg" in
    --duration=*) duration="${arg#--duration=}" ;;
    --json=*) json="${arg#--json=}" ;;
    -*)
      echo "usage: bench/loss_latency.sh [--duration=10s] [--json=FILE] [LOSS...]" >&2
      exit 2
      ;;
    *) losses+=("$arg") ;;
  esac
done
((${#losses[@]} > 0)) || losses=(0 1 10)
for loss in "${losses[@]}"; do
  if [[ ! "$loss" =~ ^[0-9]+$ ]] || ((loss >= 100)); then
    echo "loss_latency: LOSS is a percentage 0-99, not \"$loss\"" >&2
    exit 2
  fi
done
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
bazel build -c opt //lockd:lockd //bench:client_latency //tests/netns:xdp_pass.o 2>&1 |
  tail -1
readonly threads=8 locks=4 grpc_port=7451 instance="losslat-$$" pin_root=/sys/fs/bpf/lockd-losslat-$$
# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh
lockd_pid=""
cleanup() {
  local status=$?
  if [[ -n "$lockd_pid" ]]; then
    kill -TERM "$lockd_pid" 2>/dev/null || true
    wait "$lockd_pid" 2>/dev/null || true
  fi
  netns_teardown
  rm -rf "$pin_root" "${work:-}"
  exit "$status"
}
NETNS_CLIENT_XDP_OBJ=bazel-bin/tests/netns/xdp_pass.o netns_setup_servers losslat 1
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
work=$(mktemp -d /tmp/losslat.XXXXXX)
keys="$work/keys"
echo "1 $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$keys"
ip="${NETNS_SERVER_IPS[0]}"
bazel-bin/lockd/lockd --netns="${NETNS_SERVERS[0]}" --interface="${NETNS_SERVER_IFS[0]}" \
  --instance="$instance" --pin_root="$pin_root" --keep_state=false --grace_ms=0 \
  --grpc_listen="$ip:$grpc_port" --key_file="$keys" >"$work/lockd.log" 2>&1 &
lockd_pid=$!
for _ in $(seq 100); do grep -q ready "$work/lockd.log" && break; sleep 0.1; done
grep -q ready "$work/lockd.log" || {
  cat "$work/lockd.log" >&2
  exit 1
}

results="$work/results.jsonl"
for loss in "${losses[@]}"; do
  netns_client_loss "$loss"
  line=$(ip netns exec "$NETNS_CLIENT" bazel-bin/bench/client_latency \
    --lock_servers="lock1=$ip:20231/$ip:$grpc_port" --client_id=1 \
    --key_file="$keys" --threads="$threads" --locks="$locks" --duration="$duration")
  echo "{\"loss_percent\": $loss, ${line#\{}" >>"$results"
done
[[ -z "$json" ]] || cat "$results" >>"$json"
python3 - "$results" "$threads" "$locks" "$duration" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
threads, locks, duration = sys.argv[2:]
base = next((r for r in runs if r["loss_percent"] == 0), None)
def ratio(run, key):
    return f"{run[key] / base[key]:.2f}x" if base and base[key] else "-"
print(f"client_latency: {threads} threads, {locks} hot locks, {duration} per loss rate; "
      "ratios against the 0 % run")
print(f"{'LOSS':>5} {'COMMITS/S':>10} {'RATIO':>6} {'GRANT_P50':>10} {'RATIO':>6} "
      f"{'GRANT_P99':>10} {'RATIO':>6} {'P99.9':>9} {'RETRANS':>8}")
for r in runs:
    print(f"{r['loss_percent']:>4}% {r['commits_per_s']:>10.0f} {ratio(r, 'commits_per_s'):>6} "
          f"{r['grant_p50_us']:>8.0f}us {ratio(r, 'grant_p50_us'):>6} "
          f"{r['grant_p99_us']:>8.0f}us {ratio(r, 'grant_p99_us'):>6} "
          f"{r['grant_p999_us']:>7.0f}us {r['udp_retransmissions']:>8}")
PY
