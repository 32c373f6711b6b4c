#!/usr/bin/env bash
# Finds which capabilities lockd needs, empirically: runs a lockd binary
# under `setpriv` with a reduced bounding set (as root, what systemd's
# CapabilityBoundingSet= gives the service), inside a throwaway server
# namespace joined by a veth pair (198.18.200.0/24) to a client namespace,
# and checks each thing the daemon does:
#
#   start   loads the BPF programs and maps, pins them in bpffs, attaches
#           XDP (native) and TC to the veth, serves gRPC
#   health  lockctl health (gRPC, map reads)
#   lock    lockctl lock from the client namespace over UDP (the XDP fast
#           path answers; BPF_PROG_TEST_RUN control calls on release)
#   stop    SIGTERM: exit 0, XDP and TC detached, pins removed
#
# Each run uses one capability set; the sets are the unit's
# (lockd.service's CapabilityBoundingSet=) and that set less each one of its
# capabilities in turn, with and without --netns (without it, lockd is put in
# the namespace by nsenter, keeping the host's mount namespace).
#
#   packaging/probe_capabilities.sh LOCKD LOCKCTL XDP_PASS_OBJ [UNIT]
#
# Prints one line per run and exits 0 when the unit's set passes every check
# and every smaller set fails one (the set is then minimal). Root only.
set -euo pipefail

# Bazel's strict action environment leaves the sbin directories out (ip, tc,
# ldconfig for dpkg).
export PATH="/usr/local/sbin:/usr/sbin:/sbin:${PATH}"

readonly lockd="$1" lockctl="$2" xdp_obj="$3"
readonly unit="${4:-$(dirname "${BASH_SOURCE[0]}")/lockd.service}"
readonly server_ns="capprobe-$$-s" client_ns="capprobe-$$-c"
readonly server_if="lkcp$$s" client_if="lkcp$$c"
readonly server_ip=198.18.200.1 client_ip=198.18.200.2
readonly instance="capprobe-$$"
readonly pin_root="/sys/fs/bpf/lockd-capprobe-$$"
work="$(mktemp -d)"
readonly work
daemon_pid=""

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  if [[ -n "${daemon_pid}" ]] && kill -0 "${daemon_pid}" 2>/dev/null; then
    kill -KILL "${daemon_pid}" 2>/dev/null || true
    wait "${daemon_pid}" 2>/dev/null || true
  fi
  ip -n "${server_ns}" link delete "${server_if}" 2>/dev/null || true
  ip netns delete "${server_ns}" 2>/dev/null || true
  ip netns delete "${client_ns}" 2>/dev/null || true
  rm -rf "${pin_root}" "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[[ "$(id -u)" -eq 0 ]] || {
  echo "probe: needs root" >&2
  exit 1
}

# The unit's capabilities, e.g. "sys_admin net_admin".
unit_caps() {
  local cap names=() listed=()
  read -r -a listed <<<"$(sed -n 's/^CapabilityBoundingSet=//p' "${unit}")"
  for cap in "${listed[@]}"; do
    cap="${cap#CAP_}"
    names+=("${cap,,}")
  done
  echo "${names[*]}"
}

ip netns add "${server_ns}"
ip netns add "${client_ns}"
ip -n "${server_ns}" link set lo up
ip -n "${client_ns}" link set lo up
ip link add "${server_if}" netns "${server_ns}" type veth \
  peer name "${client_if}" netns "${client_ns}"
ip -n "${server_ns}" address add "${server_ip}/24" dev "${server_if}"
ip -n "${client_ns}" address add "${client_ip}/24" dev "${client_if}"
# veth hands a native XDP_TX frame only to a peer that runs XDP itself.
ip -n "${client_ns}" link set dev "${client_if}" xdpdrv obj "${xdp_obj}" sec xdp
ip -n "${server_ns}" link set "${server_if}" up
ip -n "${client_ns}" link set "${client_if}" up

# One client key, for lockctl lock.
readonly keys="${work}/clients.keys"
echo "1 $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"${keys}"

# Runs lockd with capability set $1 (comma-separated, "" for none), joining
# the namespace itself when $2 is "netns"; prints the first failing check or
# "ok".
probe() {
  local caps="$1" how="$2" bounding="-all" cap log="${work}/lockd.log"
  for cap in ${caps//,/ }; do bounding+=",+${cap}"; done
  local -a run=(setpriv --bounding-set="${bounding}" --inh-caps=-all
    --ambient-caps=-all --no-new-privs -- "${lockd}"
    --interface="${server_if}" --instance="${instance}"
    --pin_root="${pin_root}" --keep_state=false --key_file="${keys}"
    --grace_ms=0) # a fresh instance that never served: no grace to wait out
  if [[ "${how}" == netns ]]; then
    run+=(--netns="${server_ns}")
  else
    run=(nsenter --net="/run/netns/${server_ns}" -- "${run[@]}")
  fi
  "${run[@]}" >"${log}" 2>&1 &
  daemon_pid=$!
  local attempt
  for ((attempt = 0; attempt < 100; attempt++)); do
    grep -q ' ready: ' "${log}" && break
    kill -0 "${daemon_pid}" 2>/dev/null || break
    sleep 0.1
  done
  local result=ok
  if ! grep -q ' ready: ' "${log}"; then
    result="start: $(grep -v '^libbpf: *$' "${log}" | tail -1)"
  elif ! ip netns exec "${server_ns}" "${lockctl}" --timeout=5s health \
    >/dev/null 2>&1; then
    result="health"
  elif ! timeout 20 ip netns exec "${client_ns}" "${lockctl}" \
    --lock_servers="probe=${server_ip}:20231" --client_id=1 \
    --key_file="${keys}" lock capprobe/x --timeout=5s \
    -- true >/dev/null 2>&1; then
    result="lock"
  fi
  kill -TERM "${daemon_pid}" 2>/dev/null || true
  local status=0
  for ((attempt = 0; attempt < 100; attempt++)); do
    kill -0 "${daemon_pid}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${daemon_pid}" 2>/dev/null || true
  wait "${daemon_pid}" 2>/dev/null || status=$?
  daemon_pid=""
  if [[ "${result}" == ok ]]; then
    if ((status != 0)); then
      result="stop: exit status ${status}"
    elif ip -n "${server_ns}" link show dev "${server_if}" | grep -q 'prog/xdp'; then
      result="stop: XDP program left attached"
    elif [[ -n "$(tc -n "${server_ns}" filter show dev "${server_if}" ingress)" ]]; then
      result="stop: TC program left attached"
    elif [[ -n "$(ls -A "${pin_root}/${instance}" 2>/dev/null)" ]]; then
      result="stop: pins left in ${pin_root}/${instance}"
    fi
  fi
  # Whatever a failed run left must not help the next one.
  ip -n "${server_ns}" link set dev "${server_if}" xdp off 2>/dev/null || true
  tc -n "${server_ns}" qdisc delete dev "${server_if}" clsact 2>/dev/null || true
  rm -rf "${pin_root}"
  echo "${result}"
}

read -r -a needed <<<"$(unit_caps)"
((${#needed[@]} > 0)) || {
  echo "probe: no CapabilityBoundingSet= in ${unit}" >&2
  exit 1
}
echo "probe: the unit's set: ${needed[*]}"
verdict=0
declare -A required=()
for how in netns nsenter; do
  all="$(
    IFS=,
    echo "${needed[*]}"
  )"
  result="$(probe "${all}" "${how}")"
  echo "probe: ${how}: {${all}}: ${result}"
  [[ "${result}" == ok ]] || verdict=1
  for drop in "${needed[@]}"; do
    rest=()
    for cap in "${needed[@]}"; do [[ "${cap}" == "${drop}" ]] || rest+=("${cap}"); done
    subset="$(
      IFS=,
      echo "${rest[*]}"
    )"
    result="$(probe "${subset}" "${how}")"
    echo "probe: ${how}: without ${drop}: ${result}"
    [[ "${result}" == ok ]] || required["${drop}"]=1
  done
done
for cap in "${needed[@]}"; do
  if [[ -z "${required[${cap}]:-}" ]]; then
    echo "probe: ${cap} is not needed: lockd passed every check without it"
    verdict=1
  fi
done
if ((verdict == 0)); then
  echo "probe: {${needed[*]}} is minimal: lockd passes with it and fails without any one"
fi
exit "${verdict}"
