#!/usr/bin/env bash
# lintian on the package: no error and no warning (pedantic and
# informational tags too); the only overridden tags are the ones debian/lintian-overrides
# justifies. Prints lintian's full report.
set -euo pipefail

readonly deb="$1"
command -v lintian >/dev/null || {
  echo "FAIL: lintian missing: run scripts/setup.sh" >&2
  exit 1
}
# As root lintian says on stderr that it would rather not; 1: it found
# errors (judged below), 2 and up: it could not check.
status=0
report="$(lintian --pedantic --display-info --show-overrides --no-tag-display-limit \
  "${deb}" 2>"${TEST_TMPDIR:-/tmp}/lintian.err")" || status=$?
if ((status > 1)); then
  echo "FAIL: lintian exited ${status}: $(cat "${TEST_TMPDIR:-/tmp}/lintian.err")" >&2
  exit 1
fi
echo "${report:-lintian: nothing to report}"
if grep -E '^[EW]: ' <<<"${report}"; then
  echo "FAIL: lintian reports errors or warnings" >&2
  exit 1
fi
echo "lintian_test: no errors, no warnings"
