#!/usr/bin/env bash
# Installs the Debian packages that lockd's build, tests and demo need, then
# checks that the kernel can run lockd, printing one line per check and
# stopping at the first thing missing. Idempotent: apt runs only when a
# package is missing. Needs root (apt, bpf(), network namespaces).
# --packages-only: install the packages, skip the kernel checks (enough to
# build, e.g. for scripts/build-deb.sh).
set -euo pipefail

packages_only=0
if [[ "${1:-}" == --packages-only ]]; then
  packages_only=1
fi

readonly PACKAGES=(
  # Build: Bazel with its host C++ toolchain, clang for the BPF programs.
  bazel-bootstrap g++ clang llvm
  # BPF: libbpf and skeletons; uapi headers such as linux/bpf.h.
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  # gRPC control plane.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # The Python client (python/lockd_client) and its tests.
  python3-grpcio python3-protobuf
  # C++ libraries, tests and benchmarks.
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  # The benchmarks' ZooKeeper driver (C client) and its test's server.
  libzookeeper-mt-dev zookeeper
  # Namespaces, veth, XDP attach, loss injection, NIC settings; bench tools.
  iproute2 nftables ethtool python3
  # Formatting checks.
  clang-format
  # The Debian package: dpkg-shlibdeps, dpkg-gencontrol, lintian, and
  # systemd-analyze to verify the unit (it opens the unit's man pages with
  # man); setpriv (util-linux) runs the packaged lockd with the unit's
  # capabilities in its test.
  dpkg-dev lintian systemd man-db util-linux
  # promtool checks lockd's /metrics in the tests; curl scrapes it.
  prometheus curl
)
# Packages that bring a system-wide service lockd's tests do not want
# running: stopped and disabled once installed.
readonly SERVICES=(prometheus)

fail() {
  echo "setup: FAILED: $*" >&2
  exit 1
}

pass() {
  echo "setup: ok: $*"
}

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

[[ "$(id -u)" -eq 0 ]] ||
  fail "running as root: lockd's tests load BPF programs and create network namespaces; run as root"
pass "running as root"

missing=()
for package in "${PACKAGES[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "${package}" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("${package}")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q ||
    fail "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    fail "apt-get install ${missing[*]} failed"
fi
for service in "${SERVICES[@]}"; do
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now "${service}" >/dev/null 2>&1 || true
  elif [[ -x "/etc/init.d/${service}" ]]; then
    "/etc/init.d/${service}" stop >/dev/null 2>&1 || true
    update-rc.d "${service}" disable >/dev/null 2>&1 || true
  fi
done
pass "${#PACKAGES[@]} Debian packages installed"
((packages_only == 0)) || exit 0

# ---------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------

if ! output="$(bpftool prog list 2>&1)"; then
  fail "bpf() syscall unusable (bpftool prog list: ${output}); need CONFIG_BPF_SYSCALL and CAP_BPF/CAP_SYS_ADMIN"
fi
pass "bpf() syscall usable"

[[ -r /sys/kernel/btf/vmlinux ]] ||
  fail "kernel BTF missing: /sys/kernel/btf/vmlinux not readable (need CONFIG_DEBUG_INFO_BTF=y)"
pass "kernel BTF present"

if [[ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]]; then
  mount -t bpf bpf /sys/fs/bpf ||
    fail "bpffs not mounted at /sys/fs/bpf and mounting it failed"
fi
pass "bpffs mounted at /sys/fs/bpf"

# Attaches trivial XDP and TC programs to a veth inside a throwaway
# namespace. Runs in a subshell so that its EXIT trap removes the namespace
# (and the veth pair with it) and the temp dir on every way out.
check_xdp_and_tc_on_veth() (
  # Interface names are limited to 15 characters.
  readonly namespace="lockd-setup-$$"
  readonly veth="lkset$$a"
  readonly veth_peer="lkset$$b"
  tmp_dir=""

  # shellcheck disable=SC2317  # reached through the EXIT trap
  cleanup() {
    ip netns delete "${namespace}" 2>/dev/null || true
    [[ -z "${tmp_dir}" ]] || rm -rf "${tmp_dir}"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  # Captures a failing step's own error message for the report.
  step() {
    local description="$1"
    shift
    local step_output
    step_output="$("$@" 2>&1)" || fail "${description}: ${step_output}"
  }

  tmp_dir="$(mktemp -d)"
  cat >"${tmp_dir}/pass.bpf.c" <<'EOF'
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
__attribute__((section("tc"), used)) int tc_pass(struct __sk_buff *skb) { return TC_ACT_OK; }
char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
  step "compiling a BPF program with clang -target bpf" \
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
    -c "${tmp_dir}/pass.bpf.c" -o "${tmp_dir}/pass.bpf.o"
  step "creating network namespace ${namespace}" ip netns add "${namespace}"
  step "creating veth pair ${veth}/${veth_peer} (need CONFIG_VETH)" \
    ip -n "${namespace}" link add "${veth}" type veth peer name "${veth_peer}"
  step "bringing up ${veth}" ip -n "${namespace}" link set dev "${veth}" up
  step "bringing up ${veth_peer}" ip -n "${namespace}" link set dev "${veth_peer}" up

  step "attaching an XDP program in native mode to ${veth}" \
    ip -n "${namespace}" link set dev "${veth}" xdpdrv obj "${tmp_dir}/pass.bpf.o" sec xdp
  ip -n "${namespace}" link show dev "${veth}" | grep -q 'prog/xdp' ||
    fail "XDP program attached to ${veth} but not reported by ip link"
  pass "XDP (native mode) attaches to a veth in a namespace"

  step "adding a clsact qdisc (need CONFIG_NET_CLS_ACT, CONFIG_NET_SCH_INGRESS)" \
    ip netns exec "${namespace}" tc qdisc add dev "${veth}" clsact
  step "attaching a TC BPF program (need CONFIG_NET_CLS_BPF)" \
    ip netns exec "${namespace}" tc filter add dev "${veth}" egress \
    bpf direct-action obj "${tmp_dir}/pass.bpf.o" sec tc
  pass "TC clsact BPF attaches to a veth in a namespace"
)

check_xdp_and_tc_on_veth
