#!/usr/bin/env bash
# The packaged documentation against the binaries: every flag `lockd --help`
# lists is in lockd(8) and in lockd.conf, every flag and command of
# `lockctl --help` is in lockctl(1), and lockd accepts lockd.conf as it is.
#
#   docs_test.sh LOCKD LOCKCTL lockd.8 lockctl.1 lockd.conf
set -euo pipefail

readonly lockd="$1" lockctl="$2" lockd_man="$3" lockctl_man="$4" conf="$5"
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Flags a binary's --help lists (absl: "    --name (help); default: ...").
flags_of() {
  "$1" --help | sed -n 's/^    --\([a-z_0-9]*\) (.*/\1/p' | grep -vx h
}

mapfile -t lockd_flags < <(flags_of "${lockd}")
((${#lockd_flags[@]} > 10)) || fail "lockd --help lists too few flags"
for flag in "${lockd_flags[@]}"; do
  grep -q -- "\\\\-\\\\-${flag}" "${lockd_man}" || fail "lockd.8 lacks --${flag}"
  grep -q -- "--${flag}=" "${conf}" || fail "lockd.conf lacks --${flag}"
done

mapfile -t lockctl_flags < <(flags_of "${lockctl}")
((${#lockctl_flags[@]} > 5)) || fail "lockctl --help lists too few flags"
for flag in "${lockctl_flags[@]}"; do
  grep -q -- "\\\\-\\\\-${flag}" "${lockctl_man}" ||
    fail "lockctl.1 lacks --${flag}"
done
# Commands: the "Commands:" block of the usage message.
mapfile -t commands < <("${lockctl}" --help |
  sed -n '/^Commands:/,/^LOCK is/s/^  \([a-z]\+\)\( .*\)\?$/\1/p')
((${#commands[@]} >= 8)) || fail "lockctl --help lists too few commands"
for command in "${commands[@]}"; do
  grep -Eq "^\\.(B|BI|TP) \"?${command}\\b" "${lockctl_man}" ||
    fail "lockctl.1 lacks the command ${command}"
done

# lockd parses the configuration (only_check_args: parse, then exit 0).
"${lockd}" --flagfile="${conf}" --only_check_args ||
  fail "lockd rejects lockd.conf"

if ((failures > 0)); then
  echo "${failures} failure(s)"
  exit 1
fi
echo "docs_test: ${#lockd_flags[@]} lockd flags, ${#lockctl_flags[@]} lockctl flags, ${#commands[@]} commands documented"
