// Requests and the replies the datapath writes for them, as Message values
// and as frames between the test server and its clients: the vocabulary of
// the datapath tests and benchmarks.
#ifndef LOCKD_TESTS_DATAPATH_MESSAGES_H_
#define LOCKD_TESTS_DATAPATH_MESSAGES_H_

#include <cstdint>

#include "abi/codec.h"
#include "tests/datapath/packet.h"

namespace lockd::testing {

// The datapath's default lease (DatapathOptions::default_lease_ms).
inline constexpr uint32_t kDefaultLeaseMs = LOCKD_DEFAULT_LEASE_MS;

Message Acquire(uint64_t lock, uint64_t txn, lockd_mode mode,
                lockd_policy policy = LOCKD_POLICY_WAIT, uint32_t seq = 1);
// seq 2: after its acquire's, or the release would be stale.
Message Release(uint64_t lock, uint64_t txn, uint32_t seq = 2);
Message Renew(uint64_t lock, uint64_t txn, uint32_t lease_ms, uint32_t seq = 2);
Message Kick(uint64_t lock, uint32_t hops);

// The reply the datapath writes for `request`: its fields echoed, the epoch
// of a TestDatapath's table (fence base 0) in wait_ms, the fields a reply
// does not define zeroed.
Message Answer(const Message& request, lockd_opcode opcode,
               uint8_t status = LOCKD_STATUS_OK, uint64_t fence = 0);
Message Granted(const Message& request, uint64_t fence,
                uint32_t lease_ms = kDefaultLeaseMs);
Message Queued(const Message& request, uint32_t position);

// Frames from client `client` (ClientEndpoint) to the server, and back.
Bytes From(int client, const Message& m);
Bytes To(int client, const Message& m);

}  // namespace lockd::testing

#endif  // LOCKD_TESTS_DATAPATH_MESSAGES_H_
