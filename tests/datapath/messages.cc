#include "tests/datapath/messages.h"

namespace lockd::testing {

Message Acquire(uint64_t lock, uint64_t txn, lockd_mode mode,
                lockd_policy policy, uint32_t seq) {
  Message m;
  m.opcode = LOCKD_OP_ACQUIRE;
  m.lock_id = lock;
  m.txn_id = txn;
  m.mode = mode;
  m.policy = policy;
  m.seq = seq;
  return m;
}

Message Release(uint64_t lock, uint64_t txn, uint32_t seq) {
  Message m;
  m.opcode = LOCKD_OP_RELEASE;
  m.lock_id = lock;
  m.txn_id = txn;
  m.seq = seq;
  return m;
}

Message Renew(uint64_t lock, uint64_t txn, uint32_t lease_ms, uint32_t seq) {
  Message m;
  m.opcode = LOCKD_OP_RENEW;
  m.lock_id = lock;
  m.txn_id = txn;
  m.lease_ms = lease_ms;
  m.seq = seq;
  return m;
}

Message Kick(uint64_t lock, uint32_t hops) {
  Message m;
  m.opcode = LOCKD_OP_KICK;
  m.lock_id = lock;
  m.queue_pos = hops;
  return m;
}

Message Answer(const Message& request, lockd_opcode opcode, uint8_t status,
               uint64_t fence) {
  Message m = request;
  m.opcode = opcode;
  m.status = status;
  m.flags = 0;
  m.fence = fence;
  m.ticket = 0;
  m.lease_ms = 0;
  m.wait_ms = lockd_epoch_of(0);
  m.queue_pos = 0;
  return m;
}

Message Granted(const Message& request, uint64_t fence, uint32_t lease_ms) {
  Message m = Answer(request, LOCKD_OP_GRANTED, LOCKD_STATUS_OK, fence);
  m.lease_ms = lease_ms;
  return m;
}

Message Queued(const Message& request, uint32_t position) {
  Message m = Answer(request, LOCKD_OP_QUEUED);
  m.queue_pos = position;
  return m;
}

Bytes From(int client, const Message& m) {
  return BuildFrame(ClientEndpoint(client), ServerEndpoint(), m);
}

Bytes To(int client, const Message& m) {
  return BuildFrame(ServerEndpoint(), ClientEndpoint(client), m);
}

}  // namespace lockd::testing
