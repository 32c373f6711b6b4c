#!/usr/bin/env bash
# The Debian package as an operator gets it: installs it with dpkg, checks
# its files, permissions and conffile, verifies the installed unit with
# systemd-analyze, runs the packaged lockd with the packaged configuration
# the way the unit does (its capability bounding set, no new privileges,
# Type=notify) in a network namespace of its own with a veth pair, checks
# it serves (lockctl health, lockctl lock), stops it (the pinned table stays
# for the next start), kills a second run to leave attached programs behind,
# purges the package and checks that nothing is left. Root only. Fails, never skips, when it cannot run,
# and fails without touching anything when a lockd package is installed.
set -euo pipefail

# Bazel's strict action environment leaves the sbin directories out (ip, tc,
# ldconfig for dpkg).
export PATH="/usr/local/sbin:/usr/sbin:/sbin:${PATH}"

readonly deb="$1"
readonly ns="pkgtest-$$"
readonly veth="lkpk$$s" veth_peer="lkpk$$c"
readonly instance="pkgtest-$$"
readonly notify_name="@lockd-pkgtest-$$"
work="$(mktemp -d)"
readonly work
installed=0
daemon_pid=""
listener_pid=""
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Ends the test at once: for checks the rest depends on.
die() {
  echo "FAIL: $*" >&2
  exit 1
}

stop_process() {
  local pid="$1" attempt
  [[ -n "${pid}" ]] || return 0
  kill -TERM "${pid}" 2>/dev/null || return 0
  for ((attempt = 0; attempt < 100; attempt++)); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
}

cleanup() {
  stop_process "${daemon_pid}"
  stop_process "${listener_pid}"
  if ((installed)); then
    dpkg --purge lockd >/dev/null 2>&1 || true
  fi
  ip -n "${ns}" link delete "${veth}" 2>/dev/null || true
  ip netns delete "${ns}" 2>/dev/null || true
  rm -rf "/sys/fs/bpf/lockd/${instance}" "/run/lockd/${instance}"
  rmdir /sys/fs/bpf/lockd /run/lockd 2>/dev/null || true
  rm -rf "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[[ "$(id -u)" -eq 0 ]] || die "must run as root (dpkg -i, bpf(), namespaces)"
for tool in dpkg dpkg-query systemd-analyze setpriv ip python3; do
  command -v "${tool}" >/dev/null || die "${tool} missing: run scripts/setup.sh"
done
[[ -f "${deb}" ]] || die "no package at ${deb}"

# --- Refuse to clobber ------------------------------------------------------
status="$(dpkg-query -W -f='${db:Status-Abbrev}' lockd 2>/dev/null || true)"
if [[ -n "${status// /}" && "${status}" != "un "* && "${status}" != "pn "* ]]; then
  die "a lockd package is already on this machine (dpkg status '${status}'):" \
    "this test installs and purges lockd, so it will not run here;" \
    "remove it first (dpkg --purge lockd)"
fi
for path in /usr/sbin/lockd /usr/bin/lockctl /etc/lockd \
  /lib/systemd/system/lockd.service; do
  [[ ! -e "${path}" ]] ||
    die "${path} exists outside any package: refusing to overwrite it"
done

# --- Install ------------------------------------------------------------------
# Another dpkg or apt may hold the lock for a while: retry, at most 3 min.
dpkg_locked_retry() {
  local attempt output
  for ((attempt = 0; attempt < 90; attempt++)); do
    if output="$("$@" 2>&1)"; then
      return 0
    fi
    [[ "${output}" == *"lock"* ]] || {
      echo "${output}" >&2
      return 1
    }
    sleep 2
  done
  echo "${output}" >&2
  return 1
}

installed=1
if ! dpkg_locked_retry dpkg -i "${deb}"; then
  # Only missing runtime libraries may be fetched.
  dpkg_locked_retry env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=120 install -f -y -q \
    --no-install-recommends || die "dpkg -i ${deb} failed"
fi
[[ "$(dpkg-query -W -f='${db:Status-Abbrev}' lockd)" == "ii "* ]] ||
  die "lockd is not installed after dpkg -i"

# --- Files, permissions, conffile ---------------------------------------------
check_file() {
  local path="$1" mode="$2" actual
  actual="$(stat -c '%a %U:%G %F' "${path}" 2>/dev/null)" ||
    {
      fail "${path} missing"
      return 0
    }
  [[ "${actual}" == "${mode} root:root regular file" ]] ||
    fail "${path}: ${actual}, expected ${mode} root:root"
}
check_file /usr/sbin/lockd 755
check_file /usr/bin/lockctl 755
check_file /lib/systemd/system/lockd.service 644
check_file /etc/lockd/lockd.conf 640
# Empty until the operator adds clients, and private.
[[ "$(stat -c '%a %U:%G %s' /etc/lockd/clients.keys 2>/dev/null)" == "600 root:root 0" ]] ||
  fail "/etc/lockd/clients.keys: $(stat -c '%a %U:%G %s' /etc/lockd/clients.keys 2>&1), expected an empty file, 600 root:root"
check_file /usr/share/man/man8/lockd.8.gz 644
check_file /usr/share/man/man1/lockctl.1.gz 644
check_file /usr/share/doc/lockd/copyright 644
check_file /usr/share/doc/lockd/changelog.Debian.gz 644
dpkg-query -W -f='${Conffiles}\n' lockd | grep -q '^ /etc/lockd/lockd.conf ' ||
  fail "/etc/lockd/lockd.conf is not a conffile"
[[ -z "$(dpkg --verify lockd)" ]] || fail "dpkg --verify lockd: $(dpkg --verify lockd)"
grep -q -- '--flagfile=/etc/lockd/lockd.conf' /lib/systemd/system/lockd.service ||
  fail "the unit does not read /etc/lockd/lockd.conf"
gzip -t /usr/share/man/man8/lockd.8.gz /usr/share/man/man1/lockctl.1.gz ||
  fail "a man page is not gzip"
mapfile -t package_files < <(dpkg -L lockd)
/usr/sbin/lockd --help >/dev/null || fail "lockd --help exited $?"
/usr/bin/lockctl -h >/dev/null || fail "lockctl -h exited $?"

# --- The unit -----------------------------------------------------------------
if ! output="$(systemd-analyze verify /lib/systemd/system/lockd.service 2>&1)"; then
  fail "systemd-analyze verify: ${output}"
fi
echo "systemd-analyze verify: ok${output:+ (${output})}"
caps="$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/lockd.service)"
[[ -n "${caps}" ]] || die "the unit sets no CapabilityBoundingSet="
bounding="-all"
for cap in ${caps}; do
  cap="${cap#CAP_}"
  bounding+=",+${cap,,}"
done
grep -q '^NoNewPrivileges=yes' /lib/systemd/system/lockd.service ||
  fail "the unit lacks NoNewPrivileges=yes"
grep -q '^Type=notify' /lib/systemd/system/lockd.service ||
  fail "the unit is not Type=notify"

# --- A namespace with a veth pair for the fast path ---------------------------
ip netns add "${ns}"
ip -n "${ns}" link set lo up
ip -n "${ns}" link add "${veth}" type veth peer name "${veth_peer}"
ip -n "${ns}" address add 198.18.0.1/24 dev "${veth}"
ip -n "${ns}" address add 198.18.0.2/24 dev "${veth_peer}"
ip -n "${ns}" link set "${veth}" up
ip -n "${ns}" link set "${veth_peer}" up

# The service manager's end of Type=notify: an abstract socket in this
# namespace (lockd makes its notifier before it joins --netns).
python3 - "${notify_name}" "${work}/notify" <<'PYTHON' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1][1:])
s.settimeout(120)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode() + "\n")
PYTHON
listener_pid=$!

# Starts the packaged lockd as lockd.service does, plus $@.
start_lockd() {
  : >"${work}/notify"
  NOTIFY_SOCKET="${notify_name}" setpriv --bounding-set="${bounding}" \
    --inh-caps=-all --ambient-caps=-all --no-new-privs -- \
    /usr/sbin/lockd --flagfile=/etc/lockd/lockd.conf "$@" \
    >"${work}/lockd.log" 2>&1 &
  daemon_pid=$!
  local attempt
  for ((attempt = 0; attempt < 200; attempt++)); do
    grep -qx 'READY=1' "${work}/notify" && return 0
    kill -0 "${daemon_pid}" 2>/dev/null || break
    sleep 0.1
  done
  die "lockd did not notify READY=1 within 20 s: $(cat "${work}/lockd.log")"
}

in_ns() {
  timeout 60 ip netns exec "${ns}" "$@"
}

# --- Serve, lock, stop cleanly ------------------------------------------------
# A client, as an operator adds one.
echo "1 $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >>/etc/lockd/clients.keys
# A first start: nothing served before, no grace period to wait out.
start_lockd --instance="${instance}" --netns="${ns}" --interface="${veth}" --grace_ms=0
grep -q "ready: .*fast path on ${veth}" "${work}/lockd.log" ||
  fail "no ready line with the fast path: $(cat "${work}/lockd.log")"
ip -n "${ns}" link show dev "${veth}" | grep -q 'prog/xdp' ||
  fail "no XDP program on ${veth}"
[[ -n "$(ls -A "/sys/fs/bpf/lockd/${instance}" 2>/dev/null)" ]] ||
  fail "no pins in /sys/fs/bpf/lockd/${instance}"
in_ns /usr/bin/lockctl health >"${work}/health" ||
  fail "lockctl health: $(cat "${work}/health")"
# shellcheck disable=SC2016  # expanded by the command lockctl runs
if ! in_ns /usr/bin/lockctl --lock_servers=pkg=198.18.0.1:20231/127.0.0.1:7451 \
  --client_id=1 --key_file=/etc/lockd/clients.keys \
  lock pkgtest/lock --timeout=10s -- \
  sh -c 'echo "$LOCKD_FENCE" >"$0"' "${work}/fence"; then
  fail "lockctl lock failed"
fi
[[ "$(cat "${work}/fence" 2>/dev/null)" =~ ^[0-9]+$ ]] ||
  fail "the locked command got no fence"
kill -TERM "${daemon_pid}"
status=0
timeout 20 tail --pid="${daemon_pid}" -f /dev/null || fail "lockd did not stop within 20 s"
wait "${daemon_pid}" || status=$?
daemon_pid=""
((status == 0)) || fail "lockd exited ${status} on SIGTERM: $(cat "${work}/lockd.log")"
grep -qx 'STOPPING=1' "${work}/notify" || fail "lockd did not notify STOPPING=1"
# A stop hands the pinned table to the next start (--keep_state).
[[ -n "$(ls -A "/sys/fs/bpf/lockd/${instance}" 2>/dev/null)" ]] ||
  fail "a stop left no pinned table for the next start"
ip -n "${ns}" link show dev "${veth}" | grep -q 'prog/xdp' &&
  fail "a stop left the XDP program attached"

# --- Killed: leftovers for purge ------------------------------------------------
# The operator's configuration now names this instance, namespace and
# interface, as /etc/lockd/lockd.conf would on a server.
printf -- '--instance=%s\n--netns=%s\n--interface=%s\n' \
  "${instance}" "${ns}" "${veth}" >>/etc/lockd/lockd.conf
start_lockd
kill -KILL "${daemon_pid}"
wait "${daemon_pid}" 2>/dev/null || true
daemon_pid=""
[[ -n "$(ls -A "/sys/fs/bpf/lockd/${instance}" 2>/dev/null)" ]] ||
  fail "a killed lockd left no pins"

# --- Purge: nothing left --------------------------------------------------------
dpkg_locked_retry dpkg --purge lockd || fail "dpkg --purge lockd failed"
installed=0
status="$(dpkg-query -W -f='${db:Status-Abbrev}' lockd 2>/dev/null || true)"
[[ -z "${status// /}" || "${status}" == "un "* || "${status}" == "pn "* ]] ||
  fail "lockd still known to dpkg after purge: '${status}'"
for path in "${package_files[@]}"; do
  [[ -d "${path}" && "${path}" != /etc/lockd && "${path}" != */lockd ]] &&
    continue # shared directories such as /usr/sbin
  [[ ! -e "${path}" ]] || fail "purge left ${path}"
done
for path in /etc/lockd /var/lib/lockd /usr/share/doc/lockd \
  "/sys/fs/bpf/lockd/${instance}" "/run/lockd/${instance}"; do
  [[ ! -e "${path}" ]] || fail "purge left ${path}"
done
if find /var/lib/systemd/deb-systemd-helper-enabled \
  /var/lib/systemd/deb-systemd-helper-masked -name 'lockd.service*' \
  2>/dev/null | grep -q .; then
  fail "purge left deb-systemd-helper state for lockd.service"
fi
ip -n "${ns}" link show dev "${veth}" | grep -q 'prog/xdp' &&
  fail "purge left lockd's XDP program on ${veth}"
for exe in /proc/[0-9]*/exe; do
  [[ "$(readlink "${exe}" 2>/dev/null)" != /usr/sbin/lockd* ]] ||
    fail "a lockd process still runs: ${exe%/exe}"
done

# --- The namespace goes too -------------------------------------------------------
stop_process "${listener_pid}"
listener_pid=""
ip netns delete "${ns}"
ip netns list | grep -q "^${ns}\b" && fail "namespace ${ns} left"
ip -o link show | grep -q "lkpk$$" && fail "veth lkpk$$* left"

if ((failures > 0)); then
  echo "deb_test: ${failures} failure(s)"
  exit 1
fi
echo "deb_test: installed, served, stopped and purged lockd cleanly"
