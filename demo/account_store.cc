#include "demo/account_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lockd::demo {
namespace {

// An open account file, flock()ed until destroyed.
class LockedFile {
 public:
  static absl::StatusOr<LockedFile> Open(const std::string& path, int flags,
                                         int operation) {
    const int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) return absl::ErrnoToStatus(errno, path);
    LockedFile file(fd, path);
    while (flock(fd, operation) != 0) {
      if (errno != EINTR) return absl::ErrnoToStatus(errno, path);
    }
    return file;
  }
  LockedFile(LockedFile&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}
  LockedFile(const LockedFile&) = delete;
  LockedFile& operator=(const LockedFile&) = delete;
  LockedFile& operator=(LockedFile&&) = delete;
  ~LockedFile() {
    if (fd_ >= 0) close(fd_);  // also drops the flock
  }

  absl::StatusOr<AccountRecord> ReadRecord() const {
    char buffer[64];
    const ssize_t got = pread(fd_, buffer, sizeof(buffer) - 1, 0);
    if (got < 0) return absl::ErrnoToStatus(errno, path_);
    const absl::string_view text =
        absl::StripTrailingAsciiWhitespace(absl::string_view(buffer, got));
    const std::vector<absl::string_view> fields =
        absl::StrSplit(text, absl::MaxSplits(' ', 1));
    AccountRecord record;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &record.balance) ||
        !absl::SimpleAtoi(fields[1], &record.fence))
      return absl::DataLossError(
          absl::StrCat(path_, ": not \"<balance> <fence>\": \"", text, "\""));
    return record;
  }

  absl::Status WriteRecord(const AccountRecord& record) const {
    const std::string text =
        absl::StrFormat("%d %d\n", record.balance, record.fence);
    if (pwrite(fd_, text.data(), text.size(), 0) !=
            static_cast<ssize_t>(text.size()) ||
        ftruncate(fd_, static_cast<off_t>(text.size())) != 0)
      return absl::ErrnoToStatus(errno, absl::StrCat("writing ", path_));
    return absl::OkStatus();
  }

 private:
  LockedFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_;
  std::string path_;
};

}  // namespace

std::string AccountStore::PathOf(int account) const {
  return absl::StrFormat("%s/account-%03d", directory_, account);
}

absl::Status AccountStore::Create(int accounts, int64_t balance) const {
  std::error_code error;
  std::filesystem::create_directories(directory_, error);
  if (error)
    return absl::InternalError(
        absl::StrCat("creating ", directory_, ": ", error.message()));
  for (int account = 0; account < accounts; ++account) {
    absl::StatusOr<LockedFile> file =
        LockedFile::Open(PathOf(account), O_RDWR | O_CREAT, LOCK_EX);
    if (!file.ok()) return file.status();
    if (absl::Status written = file->WriteRecord({balance, 0}); !written.ok())
      return written;
  }
  return absl::OkStatus();
}

absl::StatusOr<AccountRecord> AccountStore::Read(int account) const {
  absl::StatusOr<LockedFile> file =
      LockedFile::Open(PathOf(account), O_RDONLY, LOCK_SH);
  if (!file.ok()) return file.status();
  return file->ReadRecord();
}

absl::Status AccountStore::Write(int account, int64_t balance,
                                 uint64_t fence) const {
  absl::StatusOr<LockedFile> file =
      LockedFile::Open(PathOf(account), O_RDWR, LOCK_EX);
  if (!file.ok()) return file.status();
  absl::StatusOr<AccountRecord> stored = file->ReadRecord();
  if (!stored.ok()) return stored.status();
  if (fence <= stored->fence)
    return absl::FailedPreconditionError(
        absl::StrCat(PathOf(account), ": refused a write with fence ", fence,
                     ": it was last written with fence ", stored->fence,
                     ", so the writer's lock has passed to a newer holder"));
  return file->WriteRecord({balance, fence});
}

}  // namespace lockd::demo
