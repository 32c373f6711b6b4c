#!/usr/bin/env bash
# Assembles lockd's Debian package from built binaries and packaging/ with
# Debian's own tools, offline: dpkg-shlibdeps finds the library packages
# the binaries need, dpkg-gencontrol writes the control file (Installed-Size
# too), dpkg-deb --root-owner-group builds the archive (no fakeroot).
# Run by the //packaging:lockd_deb genrule:
#
#   build_deb.sh OUT.deb VERSION LOCKD LOCKCTL PACKAGING_DIR
set -euo pipefail

# Absolute: the script works in a directory of its own.
out="${PWD}/$1"
lockd="$(realpath "$3")"
lockctl="$(realpath "$4")"
src="$(realpath "$5")"
readonly out lockd lockctl src version="$2"

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

fail() {
  echo "build_deb: $*" >&2
  exit 1
}

for tool in dpkg-shlibdeps dpkg-gencontrol dpkg-parsechangelog dpkg-deb; do
  command -v "${tool}" >/dev/null ||
    fail "${tool} missing: install dpkg-dev (scripts/setup.sh does)"
done

mkdir -p "${work}/debian"
cp "${src}/debian/control" "${src}/debian/changelog" "${work}/debian/"
cd "${work}"

changelog_version="$(dpkg-parsechangelog -S Version)"
[[ "${changelog_version}" == "${version}" ]] ||
  fail "packaging/version.bzl says ${version}, debian/changelog ${changelog_version}"
[[ "$(dpkg --print-architecture)" == amd64 ]] ||
  fail "the package is declared amd64, this machine is $(dpkg --print-architecture)"
# Reproducible: every time stamp is the changelog entry's.
SOURCE_DATE_EPOCH="$(dpkg-parsechangelog -S Timestamp)"
export SOURCE_DATE_EPOCH

readonly root=debian/lockd
install -d "${root}/DEBIAN"
# Executables stripped as dh_strip does.
install -D -m 0755 "${lockd}" "${root}/usr/sbin/lockd"
install -D -m 0755 "${lockctl}" "${root}/usr/bin/lockctl"
strip --remove-section=.comment --remove-section=.note \
  "${root}/usr/sbin/lockd" "${root}/usr/bin/lockctl"
install -D -m 0644 "${src}/lockd.service" \
  "${root}/lib/systemd/system/lockd.service"
# Root only: it may hold the admin token.
install -D -m 0640 "${src}/lockd.conf" "${root}/etc/lockd/lockd.conf"
install -d "${root}/usr/share/man/man8" "${root}/usr/share/man/man1" \
  "${root}/usr/share/doc/lockd" "${root}/usr/share/lintian/overrides"
gzip -9n <"${src}/lockd.8" >"${root}/usr/share/man/man8/lockd.8.gz"
gzip -9n <"${src}/lockctl.1" >"${root}/usr/share/man/man1/lockctl.1.gz"
gzip -9n <"${src}/debian/changelog" \
  >"${root}/usr/share/doc/lockd/changelog.Debian.gz"
install -m 0644 "${src}/debian/copyright" "${root}/usr/share/doc/lockd/"
install -m 0644 "${src}/debian/lintian-overrides" \
  "${root}/usr/share/lintian/overrides/lockd"
install -m 0755 "${src}/debian/postinst" "${src}/debian/prerm" \
  "${src}/debian/postrm" "${root}/DEBIAN/"
install -m 0644 "${src}/debian/conffiles" "${root}/DEBIAN/"
find "${root}" -type f ! -path "${root}/DEBIAN/*" -exec chmod go-w {} +
find "${root}" -type d -exec chmod 0755 {} +

# Depends: the library packages of every library the binaries link, with
# the versions their symbols need (the installed packages' symbols files).
# Its warnings (libraries linked but unused) are the build's business.
dpkg-shlibdeps -e"${root}/usr/sbin/lockd" -e"${root}/usr/bin/lockctl" \
  2>shlibdeps.log || {
  cat shlibdeps.log >&2
  fail "dpkg-shlibdeps failed"
}
dpkg-gencontrol -plockd -P"${root}" 2>gencontrol.log || {
  cat gencontrol.log >&2
  fail "dpkg-gencontrol failed"
}
(cd "${root}" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' |
  LC_ALL=C sort | xargs md5sum) >"${root}/DEBIAN/md5sums"
chmod 0644 "${root}/DEBIAN/md5sums" "${root}/DEBIAN/control"

find "${root}" -exec touch --no-dereference --date="@${SOURCE_DATE_EPOCH}" {} +
dpkg-deb --root-owner-group -Zxz --build "${root}" "${work}/lockd.deb" >/dev/null
cp "${work}/lockd.deb" "${out}"
