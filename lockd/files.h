// Small filesystem helpers for the daemon's pins and state.
#ifndef LOCKD_LOCKD_FILES_H_
#define LOCKD_LOCKD_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace lockd {

// mkdir -p, mode 0700.
absl::Status MakeDirs(const std::string& path);

// Replaces `path` with `contents` so that readers see the old or the new
// file, never a part (write to a temporary, fsync, rename).
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& contents);

}  // namespace lockd

#endif  // LOCKD_LOCKD_FILES_H_
