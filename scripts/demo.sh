#!/usr/bin/env bash
# The main job, end to end on this machine: installs what is missing, builds,
# and creates two lock server namespaces and a client namespace joined to
# each by a veth pair; starts lockd in each server namespace, then from the
# client namespace:
#   1. a contended lock on lock1 (one holder, readers and writers queued)
#      and, with `lockctl lock`, a holder and a waiter on a lock of lock2;
#      lockctl shows them while the clients wait, and lists both servers'
#      locks; then the queues drain in FIFO order;
#   2. the bank app (demo/bank.cc) over both servers: transfers and audits
#      on account locks, its throughput and aborts, and the check that no
#      money was created or lost.
# Everything it creates (namespaces, veths, pins, daemons) is removed on
# exit, also on failure or Ctrl-C. LOCKD_DEMO_BANK_SECONDS (default 5) sets
# how long the bank runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
bazel build //lockd:lockd //lockctl:lockctl //demo:contention //demo:bank \
  //tests/netns:xdp_pass.o 2>&1 | tail -1

readonly servers=2 grpc_port=7451
readonly instance="demo-$$" pin_root=/sys/fs/bpf/lockd-demo-$$
# On lock2 with the server names below (rendezvous hashing).
readonly job_lock=jobs/nightly

# shellcheck source=scripts/lib/netns.sh
source scripts/lib/netns.sh
lockd_pids=()
cleanup() {
  local status=$? pid
  for pid in "${lockd_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${lockd_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  netns_teardown
  rm -rf "$pin_root" "${work:-}"
  exit "$status"
}
NETNS_CLIENT_XDP_OBJ=bazel-bin/tests/netns/xdp_pass.o \
  netns_setup_servers lockddemo "$servers"
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
work=$(mktemp -d /tmp/lockd-demo.XXXXXX)

# Client keys (docs/security.md): every client signs its requests. Clients
# 1-11 are the contention demo's, 12 and 13 the lockctl jobs, 14 the bank.
keys="$work/clients.keys"
(
  umask 077
  for id in $(seq 14); do
    echo "$id $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  done >"$keys"
)
admin_token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

# lockctl for server $1 (1, 2, ...), from inside its namespace.
lockctl_on() {
  local i=$(($1 - 1))
  shift
  ip netns exec "${NETNS_SERVERS[i]}" bazel-bin/lockctl/lockctl \
    --server="${NETNS_SERVER_IPS[i]}:$grpc_port" --token="$admin_token" "$@"
}

# Waits (at most 10 s) until file $1 has a line matching $2, while process
# $3 lives.
wait_for_line() {
  local attempt
  for ((attempt = 0; attempt < 100; attempt++)); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "$2" "$1" || { cat "$1"; echo "no \"$2\" in $1" >&2; return 1; }
}

lock_servers=""
for ((i = 0; i < servers; i++)); do
  n=$((i + 1))
  ip="${NETNS_SERVER_IPS[i]}"
  lock_servers+="${lock_servers:+,}lock$n=$ip:20231/$ip:$grpc_port"
  echo "== lockd lock$n in namespace ${NETNS_SERVERS[i]}" \
    "on ${NETNS_SERVER_IFS[i]} ($ip)"
  # gRPC on the veth: the client's fallback path, and lockctl's.
  bazel-bin/lockd/lockd --netns="${NETNS_SERVERS[i]}" \
    --interface="${NETNS_SERVER_IFS[i]}" --instance="$instance-$n" \
    --pin_root="$pin_root" --keep_state=false --grace_ms=0 \
    --grpc_listen="$ip:$grpc_port" --key_file="$keys" \
    --admin_token="$admin_token" >"$work/lockd$n.log" 2>&1 &
  lockd_pids+=($!)
  wait_for_line "$work/lockd$n.log" ready "$!"
  cat "$work/lockd$n.log"
done

echo
echo "== contended lock on lock1, from namespace $NETNS_CLIENT" \
  "(${NETNS_CLIENT_IPS[0]})"
ip netns exec "$NETNS_CLIENT" bazel-bin/demo/contention \
  --server="${NETNS_SERVER_IPS[0]}" --resume_file="$work/resume" \
  --key_file="$keys" --first_client_id=1 >"$work/workload.log" 2>&1 &
workload_pid=$!
wait_for_line "$work/workload.log" "queue formed" "$workload_pid"
cat "$work/workload.log"

echo
echo "== lockctl lock: a job holds \"$job_lock\" until resumed; a second" \
  "one waits for it"
# shellcheck disable=SC2016  # expanded by the job's shell
job='echo "$0 holds $LOCKD_LOCK on $LOCKD_SERVER: fence $LOCKD_FENCE, txn $LOCKD_TXN"
  for _ in $(seq 600); do [ -e "$1" ] && break; sleep 0.1; done'
lockctl_lock=(ip netns exec "$NETNS_CLIENT" bazel-bin/lockctl/lockctl
  --lock_servers="$lock_servers" --key_file="$keys")
"${lockctl_lock[@]}" --client_id=12 lock "$job_lock" -- \
  sh -c "$job" job-1 "$work/resume" >"$work/job1.log" 2>&1 &
job1_pid=$!
wait_for_line "$work/job1.log" holds "$job1_pid"
"${lockctl_lock[@]}" --client_id=13 lock "$job_lock" -- \
  sh -c "$job" job-2 "$work/resume" >"$work/job2.log" 2>&1 &
job2_pid=$!
cat "$work/job1.log"
# Until lock2 lists the waiter at queue position 1.
for _ in $(seq 100); do
  lockctl_on 2 show "$job_lock" 2>/dev/null | grep -q "^1 " && break
  sleep 0.1
done

echo
echo "== lockctl while the clients wait: lock1"
lockctl_on 1 show inventory/widget-42
echo
echo "== lockctl while the clients wait: lock2"
lockctl_on 2 show "$job_lock"
for ((n = 1; n <= servers; n++)); do
  echo
  echo "== lockctl locks on lock$n"
  lockctl_on "$n" locks
done
echo
echo "== lockctl clients on lock1 (ids and holds + waits; keys are never shown)"
lockctl_on 1 clients

touch "$work/resume"
wait "$workload_pid"
wait "$job1_pid"
wait "$job2_pid"
echo
echo "== queues drained"
sed -n '/queue formed/,$p' "$work/workload.log" | tail -n +2
cat "$work/job2.log"

echo
echo "== bank over both servers, from namespace $NETNS_CLIENT"
ip netns exec "$NETNS_CLIENT" bazel-bin/demo/bank \
  --lock_servers="$lock_servers" --store="$work/bank" --threads=4 \
  --accounts=16 --duration="${LOCKD_DEMO_BANK_SECONDS:-5}s" --client_id=14 \
  --key_file="$keys"

for ((n = 1; n <= servers; n++)); do
  echo
  echo "== lockctl stats on lock$n after the workloads"
  lockctl_on "$n" stats |
    grep -E '^ *(rx|grant_immediate|queued|grant_from_queue|grant_sent|reject_die|released|pool_alloc|pool_free|auth_failed|replayed) '
done
