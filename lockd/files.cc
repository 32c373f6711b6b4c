#include "lockd/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockd {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

}  // namespace

absl::Status MakeDirs(const std::string& path) {
  for (size_t slash = 0; slash != std::string::npos;) {
    slash = path.find('/', slash + 1);
    const std::string prefix = path.substr(0, slash);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      return Errno("creating", prefix);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& contents) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("creating", tmp);
  bool ok = write(fd, contents.data(), contents.size()) ==
                static_cast<ssize_t>(contents.size()) &&
            fsync(fd) == 0;
  close(fd);
  if (!ok) return Errno("writing", tmp);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("renaming", tmp);
  return absl::OkStatus();
}

}  // namespace lockd
