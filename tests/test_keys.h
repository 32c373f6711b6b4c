// Client keys for tests: a key file of test clients that test daemons load,
// deterministic keys so that every process of a test agrees, and the
// sequence numbers and client ids that keep each sender inside the server's
// replay window (docs/security.md).
#ifndef LOCKD_TESTS_TEST_KEYS_H_
#define LOCKD_TESTS_TEST_KEYS_H_

#include <cstdint>
#include <string>

#include "abi/keys.h"
#include "absl/status/statusor.h"

namespace lockd::testing {

// Test clients are 1..kTestClients; kTestClient is the default one.
inline constexpr uint32_t kTestClients = 64;
inline constexpr uint32_t kTestClient = 1;

// The key of test client `client_id` (never all zero).
ClientKey TestKey(uint32_t client_id);
// Test client `client_id` with its key; LOCKD_CLIENT_NONE: the
// unauthenticated sender.
ClientIdentity TestIdentity(uint32_t client_id);

// Writes the key file of every test client into `dir`; returns its path.
absl::StatusOr<std::string> WriteTestKeyFile(const std::string& dir);

// A test client id no other caller in this process got (from 2 on: 1 is
// kTestClient's); wraps after kTestClients.
uint32_t NextTestClientId();

// A sequence number above every one this process handed out before, and
// above those of earlier processes (abi/keys.h SeqSource).
uint64_t NextTestSeq();

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_TEST_KEYS_H_
