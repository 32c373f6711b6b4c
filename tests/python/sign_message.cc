// Prints a message signed by the C++ library (EncodeSigned, abi/keys.h), so
// that //tests/python:keys_test compares the Python client's signing with it
// byte for byte:
//
//   sign_message <32 hex digits of the key> [<field>=<value>...]
//
// Fields are those of lockd::Message (abi/codec.h) by name, in decimal; the
// others are 0. Prints the 72 bytes as 144 hex digits.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "abi/codec.h"
#include "abi/keys.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace {

bool SetField(lockd::Message& m, const std::string& name, uint64_t value) {
  if (name == "opcode") {
    m.opcode = static_cast<lockd_opcode>(value);
  } else if (name == "mode") {
    m.mode = static_cast<lockd_mode>(value);
  } else if (name == "policy") {
    m.policy = static_cast<lockd_policy>(value);
  } else if (name == "status") {
    m.status = static_cast<uint8_t>(value);
  } else if (name == "flags") {
    m.flags = static_cast<uint8_t>(value);
  } else if (name == "client_id") {
    m.client_id = static_cast<uint32_t>(value);
  } else if (name == "lease_ms") {
    m.lease_ms = static_cast<uint32_t>(value);
  } else if (name == "wait_ms") {
    m.wait_ms = static_cast<uint32_t>(value);
  } else if (name == "queue_pos") {
    m.queue_pos = static_cast<uint32_t>(value);
  } else if (name == "seq") {
    m.seq = value;
  } else if (name == "lock_id") {
    m.lock_id = value;
  } else if (name == "txn_id") {
    m.txn_id = value;
  } else if (name == "fence") {
    m.fence = value;
  } else if (name == "ticket") {
    m.ticket = value;
  } else {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <32 hex digits> [<field>=<value>...]\n",
            argv[0]);
    return 2;
  }
  absl::StatusOr<lockd::ClientKey> key = lockd::ParseClientKey(argv[1]);
  if (!key.ok()) {
    fprintf(stderr, "sign_message: %s\n",
            std::string(key.status().message()).c_str());
    return 2;
  }
  lockd::Message message;
  for (int i = 2; i < argc; ++i) {
    const std::vector<std::string> parts =
        absl::StrSplit(argv[i], absl::MaxSplits('=', 1));
    uint64_t value = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &value) ||
        !SetField(message, parts[0], value)) {
      fprintf(stderr, "sign_message: not <field>=<value>: %s\n", argv[i]);
      return 2;
    }
  }
  for (const uint8_t byte : lockd::EncodeSigned(message, *key))
    printf("%02x", byte);
  printf("\n");
  return 0;
}
