#!/usr/bin/env bash
# The main job, end to end on this machine: installs what is missing, builds,
# starts lockd on a veth pair between two network namespaces it creates,
# runs a contended workload from the client namespace, and shows lockctl's
# view of the lock while the clients wait. Everything it creates (namespaces,
# veths, pins, the daemon) is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
bazel build //lockd:lockd //lockctl:lockctl //demo:contention \
  //tests/netns:xdp_pass.o 2>&1 | tail -1

work=$(mktemp -d /tmp/lockd-demo.XXXXXX)
instance="demo-$$"
pin_root=/sys/fs/bpf/lockd-demo-$$

# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh
cleanup() {
  local status=$?
  if [[ -n "${lockd_pid:-}" ]] && kill -0 "$lockd_pid" 2>/dev/null; then
    kill -TERM "$lockd_pid" 2>/dev/null || true
    wait "$lockd_pid" 2>/dev/null || true
  fi
  netns_teardown
  rm -rf "$pin_root" "$work"
  exit "$status"
}
NETNS_CLIENT_XDP_OBJ=bazel-bin/tests/netns/xdp_pass.o netns_setup lockddemo
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

lockctl() {
  ip netns exec "$NETNS_SERVER" bazel-bin/lockctl/lockctl "$@"
}

echo "== lockd in namespace $NETNS_SERVER on $NETNS_SERVER_IF ($NETNS_SERVER_IP)"
bazel-bin/lockd/lockd --netns="$NETNS_SERVER" \
  --interface="$NETNS_SERVER_IF" --instance="$instance" \
  --pin_root="$pin_root" --state_root="$work/state" \
  >"$work/lockd.log" 2>&1 &
lockd_pid=$!
for _ in $(seq 100); do
  grep -q ready "$work/lockd.log" && break
  kill -0 "$lockd_pid" 2>/dev/null || { cat "$work/lockd.log"; exit 1; }
  sleep 0.1
done
cat "$work/lockd.log"

echo
echo "== workload in namespace $NETNS_CLIENT ($NETNS_CLIENT_IP)"
ip netns exec "$NETNS_CLIENT" bazel-bin/demo/contention \
  --server="$NETNS_SERVER_IP" --resume_file="$work/resume" \
  >"$work/workload.log" 2>&1 &
workload_pid=$!
for _ in $(seq 100); do
  grep -q "queue formed" "$work/workload.log" && break
  kill -0 "$workload_pid" 2>/dev/null || break
  sleep 0.1
done
cat "$work/workload.log"

echo
echo "== lockctl while the clients wait"
lock_name=inventory/widget-42
lockctl show "$lock_name"
echo
lockctl locks
touch "$work/resume"
wait "$workload_pid"
echo
echo "== workload, continued"
sed -n '/queue formed/,$p' "$work/workload.log" | tail -n +2

echo
echo "== lockctl after the workload"
lockctl pool
echo
lockctl stats | grep -E '^ *(rx|acquire|grant_immediate|queued|release|released|grant_from_queue|grant_sent|release_to_tc|pool_alloc|pool_free) '
