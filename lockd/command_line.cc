#include "lockd/command_line.h"

#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
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

std::vector<char*> ParseCommandLineWithHelp(int argc, char* argv[]) {
  namespace internal = absl::flags_internal;
  absl::FlagsUsageConfig config;
  config.contains_help_flags = IsProgramFlagFile;
  config.contains_helpshort_flags = IsProgramFlagFile;
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

}  // namespace lockd
