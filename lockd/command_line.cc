#include "lockd/command_line.h"

#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

// absl has no short form of --help; -h is this flag.
ABSL_FLAG(bool, h, false, "the same as --help");

namespace lockd {
namespace {

// Flags defined outside absl's own sources are the program's.
bool IsProgramFlagFile(absl::string_view file) {
  return !absl::StrContains(file, "absl/");
}

}  // namespace

std::vector<char*> ParseCommandLineWithHelp(int argc, char* argv[],
                                            const char* version) {
  namespace internal = absl::flags_internal;
  absl::FlagsUsageConfig config;
  config.contains_help_flags = IsProgramFlagFile;
  config.contains_helpshort_flags = IsProgramFlagFile;
  if (version != nullptr)
    config.version_string = [version] { return std::string(version) + "\n"; };
  absl::SetFlagsUsageConfig(config);

  // What absl::ParseCommandLine does, with the usage flags left to us.
  std::vector<char*> positional = internal::ParseCommandLineImpl(
      argc, argv, internal::ArgvListAction::kRemoveParsedArgs,
      internal::UsageFlagsAction::kIgnoreUsage,
      internal::OnUndefinedFlag::kAbortIfUndefined);
  if (absl::GetFlag(FLAGS_h))
    internal::SetFlagsHelpMode(internal::HelpMode::kImportant);
  // -1: no usage flag given; 0 or 1 (absl's exit status): one was handled.
  if (internal::HandleUsageFlags(std::cout, absl::ProgramUsageMessage()) >= 0) {
    std::cout.flush();
    std::exit(0);
  }
  return positional;
}

bool AbslParseFlag(absl::string_view text, ByteSize* size, std::string* error) {
  std::string digits = absl::AsciiStrToUpper(text);
  for (absl::string_view unit : {"IB", "B"})
    if (absl::EndsWith(digits, unit)) {
      digits.resize(digits.size() - unit.size());
      break;
    }
  uint64_t scale = 1;
  if (!digits.empty()) {
    const char last = digits.back();
    scale = last == 'K'   ? uint64_t{1} << 10
            : last == 'M' ? uint64_t{1} << 20
            : last == 'G' ? uint64_t{1} << 30
                          : 1;
    if (scale != 1) digits.pop_back();
  }
  uint64_t value = 0;
  if (!absl::SimpleAtoi(digits, &value) || value == 0 ||
      value > UINT64_MAX / scale) {
    *error = "expected a positive size such as 256M, 1G or 65536";
    return false;
  }
  size->bytes = value * scale;
  return true;
}

std::string AbslUnparseFlag(ByteSize size) { return absl::StrCat(size.bytes); }

}  // namespace lockd
