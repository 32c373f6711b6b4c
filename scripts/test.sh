#!/usr/bin/env bash
# The one command that runs every test: installs and checks what lockd needs
# (scripts/setup.sh), runs `bazel test //...`, and ends with the line
# "N passed, N failed" counted over test targets. Exits non-zero on any
# failure. Extra arguments are passed to `bazel test` as flags.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

log="$(mktemp)"
trap 'rm -f "${log}"' EXIT

# --test_summary=short lists every test target with its result, which is
# what the counts below are read from; --keep_going still tests everything
# that builds when something else does not.
bazel_status=0
bazel test --color=no --curses=no --keep_going --test_output=errors \
  --test_summary=short "$@" //... 2>&1 | tee "${log}" ||
  bazel_status="${PIPESTATUS[0]}"

# Per-target result lines look like
#   //tests:codec_test          (cached) PASSED in 0.4s
#   //tests:grpc_smoke_test     FAILED in 1.2s
# Failures also show as FAILED TO BUILD, TIMEOUT, NO STATUS or INCOMPLETE.
# FLAKY means it passed on a retry, as Bazel's own exit status agrees.
readonly target='^//[^ ]+ +(\(cached\) )?'
passed="$(grep -cE "${target}(PASSED|FLAKY)" "${log}" || true)"
failed="$(grep -cE "${target}(FAILED|TIMEOUT|NO STATUS|INCOMPLETE)" "${log}" || true)"

if ((bazel_status != 0 && failed == 0)); then
  # Bazel failed before any target reported (e.g. a BUILD file error).
  echo "test: bazel test exited with status ${bazel_status} before reporting test results"
  failed=1
fi

echo "${passed} passed, ${failed} failed"
if ((failed > 0 || bazel_status != 0)); then
  exit 1
fi
