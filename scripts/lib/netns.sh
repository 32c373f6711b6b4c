# shellcheck shell=bash
# netns.sh: network namespaces joined by veth pairs, for demos and shell
# tests. The shell twin of tests/netns/test_network.
#
#   source scripts/lib/netns.sh
#   netns_setup demo             # demo-<pid>-server, demo-<pid>-client
#   ip netns exec "$NETNS_SERVER" lockd --interface "$NETNS_SERVER_IF" ... &
#   ip netns exec "$NETNS_CLIENT" lockctl --server "$NETNS_SERVER_IP" ...
#
# After netns_setup these are exported:
#   NETNS_SERVER, NETNS_CLIENT              namespace names
#   NETNS_SERVER_IF, NETNS_CLIENT_IF        veth ends inside them
#   NETNS_SERVER_IFINDEX, NETNS_CLIENT_IFINDEX
#   NETNS_SERVER_IP=198.18.0.1, NETNS_CLIENT_IP=198.18.0.2   (both /24)
#   NETNS_SERVER_MAC, NETNS_CLIENT_MAC
#
# Several servers, one client reaching each over a veth pair of its own:
#
#   netns_setup_servers demo 2   # demo-<pid>-server1, -server2, -client
#
# sets NETNS_CLIENT (exported) and these arrays, index i - 1 for server i
# (bash cannot export arrays: they exist in the calling shell only):
#   NETNS_SERVERS                namespace of each server
#   NETNS_SERVER_IFS, NETNS_CLIENT_IFS   the pair's ends: lk<pid>s<i>, lk<pid>c<i>
#   NETNS_SERVER_IPS, NETNS_CLIENT_IPS   198.18.<i-1>.1 and .2 (each pair a /24)
#
# Like the C++ harness: veths are created directly inside the namespaces
# (never in the root one), IPv6 is off in them (the wire carries only ARP and
# what the script sends), and TX checksum offload is off on client ends,
# so client packets carry complete UDP checksums as from a real wire (needs
# python3 for the ethtool ioctl, so ethtool itself is not required). With
# NETNS_CLIENT_XDP_OBJ set to an XDP object (bazel-bin/tests/netns/xdp_pass.o)
# its "xdp" section is attached natively to every client end: veth delivers
# the server's native XDP_TX replies only to an end that runs XDP too.
#
# Cleanup: a setup installs `trap netns_teardown EXIT` and, for INT, TERM
# and HUP, a trap that tears down and then dies of the same signal. A script
# that sets its own EXIT/INT/TERM/HUP trap afterwards replaces these: it must
# call netns_teardown from its own trap. netns_teardown stops processes still
# running inside the namespaces (the script started them there), deletes the
# veths and the namespaces, and may be called any number of times.
# A setup first removes leftovers "<prefix>-<pid>-*" of dead pids
# (netns_cleanup_stale), so even a SIGKILLed run does not leak for long.
#
# Safe under `set -euo pipefail`; one setup per shell at a time.

# Sourcing twice must not forget what an earlier setup created.
[[ -v _NETNS_CREATED ]] || _NETNS_CREATED=() # namespaces, in creation order
[[ -v _NETNS_LINKS ]] || _NETNS_LINKS=()     # "<netns> <veth>", one end each

_netns_fail() {
  echo "netns.sh: $*" >&2
  netns_teardown
  return 1
}

# Removes namespaces named "<prefix>-<pid>-..." whose pid is not alive.
netns_cleanup_stale() {
  local prefix="$1" name pid
  local names
  names="$(ip netns list 2>/dev/null | cut -d' ' -f1)" || return 0
  for name in $names; do
    [[ "$name" =~ ^${prefix}-([0-9]+)- ]] || continue
    pid="${BASH_REMATCH[1]}"
    if [[ ! -d "/proc/$pid" ]]; then
      ip netns delete "$name" 2>/dev/null || true
    fi
  done
}

_netns_on_signal() {
  local signal="$1"
  netns_teardown
  trap - "$signal" EXIT
  kill -s "$signal" "$$"
}

# Terminates what still runs inside namespace $1: TERM, up to 5 s, then KILL.
_netns_stop_processes() {
  local ns="$1" pids attempt
  pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')" || return 0
  [[ -n "${pids// /}" ]] || return 0
  # shellcheck disable=SC2086  # one word per pid
  kill -TERM $pids 2>/dev/null || true
  for ((attempt = 0; attempt < 50; attempt++)); do
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')" || return 0
    [[ -n "${pids// /}" ]] || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

netns_teardown() {
  local ns link
  for ns in "${_NETNS_CREATED[@]}"; do
    _netns_stop_processes "$ns"
  done
  # Deleting one end deletes both, even if something keeps a namespace alive.
  for link in "${_NETNS_LINKS[@]}"; do
    # shellcheck disable=SC2086  # "<netns> <veth>"
    ip -n ${link% *} link delete "${link#* }" 2>/dev/null || true
  done
  for ns in "${_NETNS_CREATED[@]}"; do
    ip netns delete "$ns" 2>/dev/null || true
  done
  _NETNS_CREATED=()
  _NETNS_LINKS=()
}

# Turns TX checksum offload off on interface $2 inside namespace $1
# (SIOCETHTOOL with ETHTOOL_STXCSUM, as `ethtool -K IF tx off` would).
_netns_tx_checksum_off() {
  ip netns exec "$1" python3 - "$2" <<'EOF'
import ctypes, fcntl, socket, struct, sys

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
request = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(value))
request += b"\0" * (40 - len(request))  # sizeof(struct ifreq)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), SIOCETHTOOL, request)
EOF
}

# Echoes "<ifindex> <mac>" of interface $2 inside namespace $1.
_netns_identity() {
  ip netns exec "$1" cat "/sys/class/net/$2/ifindex" "/sys/class/net/$2/address" |
    tr '\n' ' '
}

# Checks the prefix, removes stale leftovers and installs the cleanup traps.
_netns_begin() {
  local prefix="$1" usage="$2"
  if [[ ! "$prefix" =~ ^[A-Za-z0-9_]+$ ]]; then
    echo "usage: $usage   (PREFIX: letters, digits, _)" >&2
    return 1
  fi
  if [[ "${#_NETNS_CREATED[@]}" -gt 0 ]]; then
    echo "netns.sh: already set up; call netns_teardown first" >&2
    return 1
  fi
  netns_cleanup_stale "$prefix"

  trap netns_teardown EXIT
  trap '_netns_on_signal INT' INT
  trap '_netns_on_signal TERM' TERM
  trap '_netns_on_signal HUP' HUP
}

# Creates namespace $1 with lo up and IPv6 off.
_netns_add_namespace() {
  local ns="$1"
  # Recorded first: a signal during `ip netns add` still removes it.
  _NETNS_CREATED+=("$ns")
  ip netns add "$ns" || _netns_fail "cannot create namespace $ns" || return 1
  ip netns exec "$ns" sh -c 'cd /proc/sys/net/ipv6/conf 2>/dev/null || exit 0
      echo 1 >all/disable_ipv6 && echo 1 >default/disable_ipv6' ||
    _netns_fail "cannot turn IPv6 off in $ns" || return 1
  ip -n "$ns" link set lo up || _netns_fail "lo down in $ns" || return 1
}

# A veth pair from server end $2 (address $3/24) in namespace $1 to client
# end $5 ($6/24) in namespace $4, up, the client end set as described above.
_netns_add_link() {
  local server_ns="$1" server_if="$2" server_ip="$3"
  local client_ns="$4" client_if="$5" client_ip="$6"
  _NETNS_LINKS+=("$server_ns $server_if")
  ip link add "$server_if" netns "$server_ns" type veth \
    peer name "$client_if" netns "$client_ns" ||
    _netns_fail "cannot create the veth pair $server_if" || return 1
  ip -n "$server_ns" address add "$server_ip/24" dev "$server_if" &&
    ip -n "$client_ns" address add "$client_ip/24" dev "$client_if" ||
    _netns_fail "cannot assign addresses to $server_if" || return 1
  _netns_tx_checksum_off "$client_ns" "$client_if" ||
    _netns_fail "cannot turn TX checksum offload off on $client_if" ||
    return 1
  if [[ -n "${NETNS_CLIENT_XDP_OBJ:-}" ]]; then
    ip -n "$client_ns" link set dev "$client_if" \
      xdpdrv obj "$NETNS_CLIENT_XDP_OBJ" sec xdp ||
      _netns_fail "cannot attach $NETNS_CLIENT_XDP_OBJ to $client_if" ||
      return 1
  fi
  ip -n "$server_ns" link set "$server_if" up &&
    ip -n "$client_ns" link set "$client_if" up ||
    _netns_fail "cannot bring the veth pair $server_if up" || return 1
}

netns_setup() {
  local prefix="${1:-}"
  _netns_begin "$prefix" "netns_setup PREFIX" || return 1
  export NETNS_SERVER="${prefix}-$$-server"
  export NETNS_CLIENT="${prefix}-$$-client"
  export NETNS_SERVER_IF="lk$$s" NETNS_CLIENT_IF="lk$$c"
  export NETNS_SERVER_IP=198.18.0.1 NETNS_CLIENT_IP=198.18.0.2
  local identity
  _netns_add_namespace "$NETNS_SERVER" || return 1
  _netns_add_namespace "$NETNS_CLIENT" || return 1
  _netns_add_link "$NETNS_SERVER" "$NETNS_SERVER_IF" "$NETNS_SERVER_IP" \
    "$NETNS_CLIENT" "$NETNS_CLIENT_IF" "$NETNS_CLIENT_IP" || return 1

  identity="$(_netns_identity "$NETNS_SERVER" "$NETNS_SERVER_IF")" ||
    _netns_fail "cannot read $NETNS_SERVER_IF" || return 1
  read -r NETNS_SERVER_IFINDEX NETNS_SERVER_MAC <<<"$identity"
  identity="$(_netns_identity "$NETNS_CLIENT" "$NETNS_CLIENT_IF")" ||
    _netns_fail "cannot read $NETNS_CLIENT_IF" || return 1
  read -r NETNS_CLIENT_IFINDEX NETNS_CLIENT_MAC <<<"$identity"
  export NETNS_SERVER_IFINDEX NETNS_SERVER_MAC
  export NETNS_CLIENT_IFINDEX NETNS_CLIENT_MAC
}

netns_setup_servers() {
  local prefix="${1:-}" count="${2:-}" i
  if [[ ! "$count" =~ ^[1-9][0-9]?$ ]]; then
    echo "usage: netns_setup_servers PREFIX COUNT   (COUNT: 1 to 99)" >&2
    return 1
  fi
  _netns_begin "$prefix" "netns_setup_servers PREFIX COUNT" || return 1
  export NETNS_CLIENT="${prefix}-$$-client"
  NETNS_SERVERS=() NETNS_SERVER_IFS=() NETNS_CLIENT_IFS=()
  NETNS_SERVER_IPS=() NETNS_CLIENT_IPS=()
  _netns_add_namespace "$NETNS_CLIENT" || return 1
  for ((i = 1; i <= count; i++)); do
    NETNS_SERVERS+=("${prefix}-$$-server$i")
    NETNS_SERVER_IFS+=("lk$$s$i") NETNS_CLIENT_IFS+=("lk$$c$i")
    NETNS_SERVER_IPS+=("198.18.$((i - 1)).1")
    NETNS_CLIENT_IPS+=("198.18.$((i - 1)).2")
    _netns_add_namespace "${NETNS_SERVERS[i - 1]}" || return 1
    _netns_add_link "${NETNS_SERVERS[i - 1]}" "${NETNS_SERVER_IFS[i - 1]}" \
      "${NETNS_SERVER_IPS[i - 1]}" "$NETNS_CLIENT" \
      "${NETNS_CLIENT_IFS[i - 1]}" "${NETNS_CLIENT_IPS[i - 1]}" || return 1
  done
}

# Drops LOSS percent of the client namespace's packets at random, both ways
# (nftables table lockdloss); 0 removes the rule. Needs netns_setup first.
netns_client_loss() {
  local loss="$1"
  ip netns exec "$NETNS_CLIENT" nft delete table inet lockdloss 2>/dev/null || true
  ((loss > 0)) || return 0
  ip netns exec "$NETNS_CLIENT" nft -f - <<NFT
table inet lockdloss {
  chain in { type filter hook input priority 0; numgen random mod 100 < $loss drop; }
  chain out { type filter hook output priority 0; numgen random mod 100 < $loss drop; }
}
NFT
}
