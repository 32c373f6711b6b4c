// lockd's version, reported by Health and --version; the Debian package's
// version (packaging/version.bzl) carries the same upstream part.
#ifndef LOCKD_LOCKD_VERSION_H_
#define LOCKD_LOCKD_VERSION_H_

namespace lockd {

inline constexpr char kVersion[] = "0.2.0";

}  // namespace lockd

#endif  // LOCKD_LOCKD_VERSION_H_
