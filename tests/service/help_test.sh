#!/usr/bin/env bash
# lockd and lockctl: --help, -h and --helpfull print usage to stdout and
# exit 0 (absl alone exits 1 and knows no -h); a bad flag exits non-zero.
set -euo pipefail

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# $1: binary, $2: a flag its help must list, $3: text of its usage message.
check_help() {
  local binary="$1" flag="$2" usage="$3" option output status
  for option in --help -h --helpfull; do
    status=0
    output="$("${binary}" "${option}" 2>&1)" || status=$?
    ((status == 0)) || fail "${binary} ${option} exited ${status}"
    [[ "${output}" == *"${usage}"* ]] ||
      fail "${binary} ${option} does not print the usage message"
    [[ "${output}" == *"--${flag} ("* ]] ||
      fail "${binary} ${option} does not list --${flag}"
  done
  status=0
  "${binary}" --no_such_flag >/dev/null 2>&1 || status=$?
  ((status != 0)) || fail "${binary} --no_such_flag exited 0"
}

check_help lockd/lockd interface "lockd --interface=IF"
check_help lockd/lockd netns "lockd --interface=IF"
check_help lockctl/lockctl server "Commands:"
check_help lockctl/lockctl lock_servers "lockctl lock"

if ((failures > 0)); then
  echo "${failures} failure(s)"
  exit 1
fi
echo "help: all checks passed"
