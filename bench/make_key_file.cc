// make_key_file: a lockd key file (abi/keys.h) of clients 1..--clients, each
// with a fresh random key, written to --out (mode 0600). scripts/bench.sh
// gives it to the lockd it starts (--key_file) and to the tools that speak
// to it as those clients.
#include <cstdio>
#include <map>
#include <string>

#include "abi/keys.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "lockd/files.h"

ABSL_FLAG(uint32_t, clients, 64, "Clients in the file: ids 1..clients.");
ABSL_FLAG(std::string, out, "", "Where to write the key file.");

namespace lockd::bench {
namespace {

absl::Status Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  std::map<uint32_t, ClientKey> keys;
  for (uint32_t id = 1; id <= absl::GetFlag(FLAGS_clients); ++id) {
    absl::StatusOr<std::string> hex = NewKeyHex();
    if (!hex.ok()) return hex.status();
    absl::StatusOr<ClientKey> key = ParseClientKey(*hex);
    if (!key.ok()) return key.status();
    keys[id] = *key;
  }
  return WriteFileAtomically(out, KeyFileText(keys));
}

}  // namespace
}  // namespace lockd::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "make_key_file --clients=N --out=PATH: a lockd key file of clients "
      "1..N with fresh random keys.");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = lockd::bench::Run();
  if (!status.ok()) {
    fprintf(stderr, "make_key_file: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
