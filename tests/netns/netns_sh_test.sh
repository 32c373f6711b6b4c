#!/usr/bin/env bash
# Tests scripts/lib/netns.sh: setup under `set -euo pipefail`, traffic, the
# client's XDP program and checksum setting, and cleanup on exit, on SIGTERM
# (with a process left running inside) and of stale leftovers; the same for
# the several-server setup.
set -euo pipefail

readonly lib="scripts/lib/netns.sh"
readonly xdp_obj="tests/netns/xdp_pass.o"
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

netns_exists() {
  ip netns list | cut -d' ' -f1 | grep -qx -- "$1"
}

# Sends one UDP datagram from the client namespace to the server's address
# and prints what the server received.
udp_roundtrip() {
  ip netns exec "$NETNS_SERVER" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(5)
print(s.recv(100).decode())
' "$NETNS_SERVER_IP" &
  local receiver=$!
  # Resend until the receiver is bound, at most 50 times.
  local attempt
  for ((attempt = 0; attempt < 50; attempt++)); do
    ip netns exec "$NETNS_CLIENT" python3 -c '
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (sys.argv[1], 9999))
' "$NETNS_SERVER_IP"
    kill -0 "$receiver" 2>/dev/null || break
    sleep 0.1
  done
  wait "$receiver"
}

tx_checksum_offload() {
  ip netns exec "$1" python3 - "$2" <<'EOF'
import ctypes, fcntl, socket, struct, sys

value = ctypes.create_string_buffer(struct.pack("II", 0x16, 0))  # GTXCSUM
request = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(value))
request += b"\0" * (40 - len(request))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), 0x8946, request)  # SIOCETHTOOL
print(struct.unpack("II", value.raw[:8])[1])
EOF
}

test_setup_traffic_and_exit_cleanup() {
  local names
  names="$(
    bash -c '
      set -euo pipefail
      source "$1"
      NETNS_CLIENT_XDP_OBJ="$2" netns_setup shtest
      echo "$NETNS_SERVER $NETNS_CLIENT"
      echo "ips $NETNS_SERVER_IP $NETNS_CLIENT_IP" >&2
      ip -n "$NETNS_SERVER" -o -4 address show dev "$NETNS_SERVER_IF" >&2
      ip -n "$NETNS_CLIENT" -o link show dev "$NETNS_CLIENT_IF" >&2
      [[ "$NETNS_SERVER_IFINDEX" =~ ^[0-9]+$ ]] || exit 11
      [[ "$NETNS_CLIENT_MAC" =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || exit 12
      ip -o link show type veth | grep -q "$NETNS_SERVER_IF" && exit 13
      [[ "$(udp_roundtrip)" == hello ]] || exit 14
      [[ "$(tx_checksum_offload "$NETNS_CLIENT" "$NETNS_CLIENT_IF")" == 0 ]] ||
        exit 15
      [[ "$(tx_checksum_offload "$NETNS_SERVER" "$NETNS_SERVER_IF")" == 1 ]] ||
        exit 16
      exit 0
    ' _ "$lib" "$xdp_obj" 2>"$TEST_TMPDIR/setup.err"
  )" || fail "setup script exited with $?: $(cat "$TEST_TMPDIR/setup.err")"
  local server client
  read -r server client <<<"$names"
  grep -q "inet 198.18.0.1/24" "$TEST_TMPDIR/setup.err" ||
    fail "server address missing: $(cat "$TEST_TMPDIR/setup.err")"
  grep -qE " xdp qdisc .*prog/xdp id [0-9]+ name xdp_pass" \
    "$TEST_TMPDIR/setup.err" ||
    fail "no native XDP_PASS on the client end: $(cat "$TEST_TMPDIR/setup.err")"
  [[ "$server" == shtest-*-server && "$client" == shtest-*-client ]] ||
    fail "unexpected names '$names'"
  netns_exists "$server" && fail "$server left after exit"
  netns_exists "$client" && fail "$client left after exit"
  return 0
}

test_servers_setup_traffic_and_exit_cleanup() {
  local names
  names="$(
    bash -c '
      set -euo pipefail
      source "$1"
      NETNS_CLIENT_XDP_OBJ="$2" netns_setup_servers shmulti 2
      echo "${NETNS_SERVERS[*]} $NETNS_CLIENT"
      ((${#NETNS_SERVERS[@]} == 2)) || exit 11
      for i in 0 1; do
        ip -n "${NETNS_SERVERS[i]}" -o -4 address show \
          dev "${NETNS_SERVER_IFS[i]}" >&2
        ip -n "$NETNS_CLIENT" -o -4 address show dev "${NETNS_CLIENT_IFS[i]}" >&2
        ip -n "$NETNS_CLIENT" -o link show dev "${NETNS_CLIENT_IFS[i]}" >&2
        [[ "$(NETNS_SERVER="${NETNS_SERVERS[i]}" \
          NETNS_SERVER_IP="${NETNS_SERVER_IPS[i]}" udp_roundtrip)" == hello ]] ||
          exit 14
        [[ "$(tx_checksum_offload "$NETNS_CLIENT" "${NETNS_CLIENT_IFS[i]}")" \
          == 0 ]] || exit 15
      done
      ip -o link show type veth | grep -q "lk$$" && exit 13
      exit 0
    ' _ "$lib" "$xdp_obj" 2>"$TEST_TMPDIR/servers.err"
  )" || fail "servers setup script exited with $?: $(cat "$TEST_TMPDIR/servers.err")"
  local server1 server2 client
  read -r server1 server2 client <<<"$names"
  local expected
  for expected in "inet 198.18.0.1/24" "inet 198.18.0.2/24" \
    "inet 198.18.1.1/24" "inet 198.18.1.2/24"; do
    grep -q "$expected" "$TEST_TMPDIR/servers.err" ||
      fail "$expected missing: $(cat "$TEST_TMPDIR/servers.err")"
  done
  (($(grep -cE " xdp qdisc .*prog/xdp id [0-9]+ name xdp_pass" \
    "$TEST_TMPDIR/servers.err") == 2)) ||
    fail "not both client ends run XDP_PASS: $(cat "$TEST_TMPDIR/servers.err")"
  [[ "$server1" == shmulti-*-server1 && "$server2" == shmulti-*-server2 &&
    "$client" == shmulti-*-client ]] || fail "unexpected names '$names'"
  local ns
  for ns in "$server1" "$server2" "$client"; do
    netns_exists "$ns" && fail "$ns left after exit"
  done
  if bash -c 'set -euo pipefail; source "$1"; netns_setup_servers shmulti 0' \
    _ "$lib" 2>/dev/null; then
    fail "a count of 0 servers was accepted"
  fi
  return 0
}

test_sigterm_cleanup_stops_processes_and_still_kills() {
  local fifo="$TEST_TMPDIR/names"
  rm -f "$fifo"
  mkfifo "$fifo"
  bash -c '
    set -euo pipefail
    source "$1"
    netns_setup shterm
    ip netns exec "$NETNS_SERVER" sleep 300 &
    echo "$NETNS_SERVER $NETNS_CLIENT $!" >"$2"
    # Short sleeps: bash runs the trap between them. Bounded: 60 s.
    for ((i = 0; i < 600; i++)); do sleep 0.1; done
    exit 7
  ' _ "$lib" "$fifo" &
  local script=$!
  local names=""
  read -r -t 20 names <"$fifo" || true
  kill -TERM "$script"
  local status=0
  wait "$script" || status=$?
  local server client inner
  read -r server client inner <<<"$names"
  [[ -n "$server" ]] || fail "setup under SIGTERM test wrote no names"
  ((status == 128 + 15)) || fail "script exited with $status, not by SIGTERM"
  netns_exists "$server" && fail "$server left after SIGTERM"
  netns_exists "$client" && fail "$client left after SIGTERM"
  [[ -n "$inner" ]] && kill -0 "$inner" 2>/dev/null &&
    fail "process $inner inside the namespace survived"
  return 0
}

test_stale_leftovers_are_removed() {
  bash -c 'exit 0' &
  local dead=$!
  wait "$dead"
  local stale="shstale-${dead}-server"
  ip netns add "$stale"
  bash -c 'set -euo pipefail; source "$1"; netns_setup shstale' _ "$lib" ||
    fail "setup with a stale leftover failed"
  if netns_exists "$stale"; then
    fail "stale $stale not removed"
    ip netns delete "$stale"
  fi
  return 0
}

test_bad_prefix_fails() {
  if bash -c 'set -euo pipefail; source "$1"; netns_setup "a-b"' _ "$lib" \
    2>/dev/null; then
    fail "a prefix with '-' was accepted"
  fi
  return 0
}

# The setup script's own bash needs these helpers.
export -f udp_roundtrip tx_checksum_offload

test_setup_traffic_and_exit_cleanup
test_servers_setup_traffic_and_exit_cleanup
test_sigterm_cleanup_stops_processes_and_still_kills
test_stale_leftovers_are_removed
test_bad_prefix_fails

if ((failures > 0)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all netns.sh tests passed"
