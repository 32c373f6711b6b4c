#!/usr/bin/env bash
# Builds lockd's Debian package from this tree: installs what the build
# needs (scripts/setup.sh --packages-only, as root), builds
# //packaging:lockd_deb with -c opt (Bazel, offline) and copies the package
# to dist/ (or to the directory given as $1). Prints the package's path.
#
#   scripts/build-deb.sh            # dist/lockd_<version>_amd64.deb
#   sudo dpkg -i dist/lockd_*_amd64.deb
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly out_dir="${1:-dist}"

if [[ "$(id -u)" -eq 0 ]]; then
  scripts/setup.sh --packages-only >&2
else
  for tool in bazel dpkg-shlibdeps dpkg-gencontrol; do
    command -v "${tool}" >/dev/null || {
      echo "build-deb: ${tool} missing: run scripts/setup.sh as root first" >&2
      exit 1
    }
  done
fi

bazel build -c opt //packaging:lockd_deb >&2
deb="$(bazel cquery -c opt --output=starlark \
  --starlark:expr='target.files.to_list()[0].path' \
  //packaging:lockd_deb 2>/dev/null)"
[[ -f "${deb}" ]] || {
  echo "build-deb: bazel built no package (${deb})" >&2
  exit 1
}
mkdir -p "${out_dir}"
target="${out_dir}/$(basename "${deb}")"
rm -f "${target}"
cp "${deb}" "${target}"
chmod 0644 "${target}"
realpath "${target}"
