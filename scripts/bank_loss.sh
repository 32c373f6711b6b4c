#!/usr/bin/env bash
# demo/bank over two lockd servers (64 accounts, 8 threads, signed), with
# LOSS percent of the packets dropped at random both ways in the client
# namespace (nftables), for DURATION: what packet loss costs (issue #12).
#
#   scripts/bank_loss.sh [LOSS [DURATION]]     e.g. scripts/bank_loss.sh 10 20s
#
# Namespaces, veths, pins and daemons are removed on every exit.
set -euo pipefail
loss="${1:-0}" duration="${2:-20s}"
cd "$(dirname "$0")/.."
scripts/setup.sh
bazel build -c opt //lockd:lockd //demo:bank //tests/netns:xdp_pass.o 2>&1 |
  tail -1
readonly servers=2 grpc_port=7451
readonly instance="lossbank-$$" pin_root=/sys/fs/bpf/lockd-lossbank-$$
# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh
lockd_pids=()
cleanup() {
  local status=$? pid
  for pid in "${lockd_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${lockd_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  netns_teardown
  rm -rf "$pin_root" "${work:-}"
  exit "$status"
}
NETNS_CLIENT_XDP_OBJ=bazel-bin/tests/netns/xdp_pass.o netns_setup_servers lossbank "$servers"
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
work=$(mktemp -d /tmp/lossbank.XXXXXX)
keys="$work/keys"; echo "1 $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$keys"
lock_servers=""
for ((i = 0; i < servers; i++)); do
  n=$((i + 1)); ip="${NETNS_SERVER_IPS[i]}"
  lock_servers+="${lock_servers:+,}lock$n=$ip:20231/$ip:$grpc_port"
  bazel-bin/lockd/lockd --netns="${NETNS_SERVERS[i]}" --interface="${NETNS_SERVER_IFS[i]}" \
    --instance="$instance-$n" --pin_root="$pin_root" --keep_state=false --grace_ms=0 \
    --grpc_listen="$ip:$grpc_port" --key_file="$keys" >"$work/lockd$n.log" 2>&1 &
  lockd_pids+=($!)
  for _ in $(seq 100); do grep -q ready "$work/lockd$n.log" && break; sleep 0.1; done
done
netns_client_loss "$loss"
ip netns exec "$NETNS_CLIENT" bazel-bin/demo/bank --lock_servers="$lock_servers" \
  --store="$work/bank" --threads=8 --accounts=64 --duration="$duration" \
  --client_id=1 --key_file="$keys"
