// Command-line parsing for lockd's binaries: absl::ParseCommandLine, except
// that asking for help succeeds. absl prints help and exits 1, knows no -h,
// and its --help lists only the flags of a file named after the binary (so
// none of lockd's, which are in main.cc).
#ifndef LOCKD_LOCKD_COMMAND_LINE_H_
#define LOCKD_LOCKD_COMMAND_LINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace lockd {

// Parses flags like absl::ParseCommandLine and returns the program name and
// the positional arguments. --help and -h print the usage message and every
// flag the program itself defines (not absl's) to stdout and exit 0; so do
// absl's other usage flags (--helpfull: absl's flags too, --help=SUBSTRING,
// --helpshort, --helppackage, --helpon, --helpmatch; --version,
// --only_check_args). A bad flag prints an error and exits 1, as in absl.
// `version`, when given, is what --version prints.
std::vector<char*> ParseCommandLineWithHelp(int argc, char* argv[],
                                            const char* version = nullptr);

// A flag's size in bytes: a number with an optional K, M or G suffix
// (powers of 1024; "256M", "256MiB", "1G", "65536").
struct ByteSize {
  uint64_t bytes = 0;
};
bool AbslParseFlag(absl::string_view text, ByteSize* size, std::string* error);
std::string AbslUnparseFlag(ByteSize size);

}  // namespace lockd

#endif  // LOCKD_LOCKD_COMMAND_LINE_H_
