// The datapath's fixture table: every rule of docs/semantics.md that the XDP
// and TC programs implement, as map state before, a packet in, and the
// verdict, packets, lock table and counters that must come out.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/datapath/bpf_allowed.h"
#include "tests/datapath/fixture.h"
#include "tests/datapath/messages.h"

namespace lockd::testing {
namespace {

constexpr uint64_t kLock = 100;
constexpr uint64_t kOtherLock = 200;

Bytes WithIpOptions(Bytes frame) {
  constexpr size_t kIpOffset = 14, kIpLen = 20;
  frame.insert(frame.begin() + kIpOffset + kIpLen, 4, 0x01);  // 4 x NOP
  frame[kIpOffset] = 0x46;
  uint16_t total = (frame[kIpOffset + 2] << 8 | frame[kIpOffset + 3]) + 4;
  frame[kIpOffset + 2] = total >> 8;
  frame[kIpOffset + 3] = total & 0xff;
  return frame;
}

absl::Status FlagUserOwned(Datapath& datapath) {
  lockd_lock state{};
  uint64_t key = kLock;
  if (bpf_map_lookup_elem_flags(datapath.locks_fd(), &key, &state,
                                BPF_F_LOCK) != 0)
    return absl::InternalError("reading the lock entry");
  state.flags |= LOCKD_LOCK_USER_OWNED;
  if (bpf_map_update_elem(datapath.locks_fd(), &key, &state,
                          BPF_EXIST | BPF_F_LOCK) != 0)
    return absl::InternalError("writing the lock entry");
  return absl::OkStatus();
}

// As the daemon leaves a lock it took over: flagged, its records moved out.
absl::Status TakenOverWithRecords(Datapath& datapath) {
  if (absl::Status flagged = FlagUserOwned(datapath); !flagged.ok())
    return flagged;
  lockd_owner_key holder{kLock, 1};
  if (bpf_map_delete_elem(datapath.owners_fd(), &holder) != 0)
    return absl::InternalError("deleting the holder's record");
  return absl::OkStatus();
}

absl::Status LetLeasesLapse(Datapath&) {
  absl::SleepFor(absl::Milliseconds(5));  // leases in these fixtures: 1 ms
  return absl::OkStatus();
}

DatapathOptions ShortLeases() {
  DatapathOptions options;
  options.default_lease_ms = 1;
  return options;
}

std::vector<Fixture> Fixtures() {
  std::vector<Fixture> f;
  const Message x1 = Acquire(kLock, 1, LOCKD_MODE_EXCLUSIVE);
  const Message s1 = Acquire(kLock, 1, LOCKD_MODE_SHARED);
  const Message x2 = Acquire(kLock, 2, LOCKD_MODE_EXCLUSIVE);
  const Message s2 = Acquire(kLock, 2, LOCKD_MODE_SHARED);
  const Message x3 = Acquire(kLock, 3, LOCKD_MODE_EXCLUSIVE);
  const Message s3 = Acquire(kLock, 3, LOCKD_MODE_SHARED);
  const Message s4 = Acquire(kLock, 4, LOCKD_MODE_SHARED);

  // --- ACQUIRE -----------------------------------------------------------
  {
    Fixture t;
    t.name = "acquire a free lock exclusively";
    t.in = From(0, x1);
    t.verdict = XDP_TX;
    t.out = To(0, Granted(x1, 1));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 1}};
    t.pool_blocks = 0;
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_GRANT_IMMEDIATE, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "shared joins shared";
    t.setup = {From(0, s1)};
    t.in = From(1, s2);
    t.verdict = XDP_TX;
    t.out = To(1, Granted(s2, 2));
    t.locks = {{kLock, LOCKD_MODE_SHARED, {1, 2}, {}, 2}};
    t.owners = 2;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_GRANT_IMMEDIATE, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "exclusive waits behind shared";
    t.setup = {From(0, s1)};
    t.in = From(1, x2);
    t.verdict = XDP_TX;
    t.out = To(1, Queued(x2, 0));
    t.locks = {{kLock, LOCKD_MODE_SHARED, {1}, {2}, 1}};
    t.pool_blocks = 1;
    t.owners = 2;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_QUEUED, 1},
               {LOCKD_STAT_POOL_ALLOC, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "shared waits behind a queued exclusive (FIFO)";
    t.setup = {From(0, s1), From(1, x2)};
    t.in = From(2, s3);
    t.verdict = XDP_TX;
    t.out = To(2, Queued(s3, 1));
    t.locks = {{kLock, LOCKD_MODE_SHARED, {1}, {2, 3}, 1}};
    t.pool_blocks = 2;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_QUEUED, 1},
               {LOCKD_STAT_POOL_ALLOC, 1}};
    f.push_back(t);
  }
  {
    const Message nowait =
        Acquire(kLock, 2, LOCKD_MODE_SHARED, LOCKD_POLICY_NO_WAIT);
    Fixture t;
    t.name = "no-wait conflict is rejected and leaves nothing";
    t.setup = {From(0, x1)};
    t.in = From(1, nowait);
    t.verdict = XDP_TX;
    t.out = To(1, Answer(nowait, LOCKD_OP_REJECTED, LOCKD_STATUS_CONFLICT));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 1}};
    t.pool_blocks = 0;
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_REJECT_CONFLICT, 1}};
    f.push_back(t);
  }
  {
    const Message old_holder = Acquire(kLock, 10, LOCKD_MODE_EXCLUSIVE);
    const Message younger =
        Acquire(kLock, 20, LOCKD_MODE_EXCLUSIVE, LOCKD_POLICY_WAIT_DIE);
    Fixture t;
    t.name = "wait-die: a younger transaction dies";
    t.setup = {From(0, old_holder)};
    t.in = From(1, younger);
    t.verdict = XDP_TX;
    t.out = To(1, Answer(younger, LOCKD_OP_REJECTED, LOCKD_STATUS_DIE));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {10}, {}, 1}};
    t.pool_blocks = 0;
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_REJECT_DIE, 1}};
    f.push_back(t);
  }
  {
    const Message young_holder = Acquire(kLock, 20, LOCKD_MODE_EXCLUSIVE);
    const Message older =
        Acquire(kLock, 10, LOCKD_MODE_EXCLUSIVE, LOCKD_POLICY_WAIT_DIE);
    Fixture t;
    t.name = "wait-die: an older transaction waits";
    t.setup = {From(0, young_holder)};
    t.in = From(1, older);
    t.verdict = XDP_TX;
    t.out = To(1, Queued(older, 0));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {20}, {10}, 1}};
    t.pool_blocks = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_QUEUED, 1},
               {LOCKD_STAT_POOL_ALLOC, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "retransmitted acquire while holding: same grant and fence";
    t.setup = {From(0, x1)};
    t.in = From(0, x1);
    t.verdict = XDP_TX;
    t.out = To(0, Granted(x1, 1));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 1}};
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_ACQUIRE_DUP, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "retransmitted acquire while queued: no second entry";
    t.setup = {From(0, x1), From(1, x2)};
    t.in = From(1, x2);
    t.verdict = XDP_TX;
    t.out = To(1, Queued(x2, 0));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {2}, 1}};
    t.pool_blocks = 1;
    t.owners = 2;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_ACQUIRE_DUP, 1}};
    f.push_back(t);
  }
  {
    const Message upgrade =
        Acquire(kLock, 1, LOCKD_MODE_EXCLUSIVE, LOCKD_POLICY_WAIT, 2);
    Fixture t;
    t.name = "the only shared holder upgrades to exclusive";
    t.setup = {From(0, s1)};
    t.in = From(0, upgrade);
    t.verdict = XDP_TX;
    t.out = To(0, Granted(upgrade, 2));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 2}};
    t.stats = {
        {LOCKD_STAT_RX, 1}, {LOCKD_STAT_ACQUIRE, 1}, {LOCKD_STAT_UPGRADE, 1}};
    f.push_back(t);
  }
  {
    const Message upgrade =
        Acquire(kLock, 1, LOCKD_MODE_EXCLUSIVE, LOCKD_POLICY_WAIT, 2);
    Fixture t;
    t.name = "upgrade refused while another transaction shares";
    t.setup = {From(0, s1), From(1, s2)};
    t.in = From(0, upgrade);
    t.verdict = XDP_TX;
    t.out = To(
        0, Answer(upgrade, LOCKD_OP_REJECTED, LOCKD_STATUS_UPGRADE_CONFLICT));
    t.locks = {{kLock, LOCKD_MODE_SHARED, {1, 2}, {}, 2}};
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_REJECT_UPGRADE, 1}};
    f.push_back(t);
  }

  // --- RELEASE in XDP ----------------------------------------------------
  {
    Fixture t;
    t.name = "release with nobody waiting is answered by XDP";
    t.setup = {From(0, x1)};
    t.in = From(0, Release(kLock, 1));
    t.verdict = XDP_TX;
    t.out =
        To(0, Answer(Release(kLock, 1), LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 1));
    t.locks = {{kLock, LOCKD_MODE_NONE, {}, {}, 1}};
    t.owners = 0;
    t.stats = {
        {LOCKD_STAT_RX, 1}, {LOCKD_STAT_RELEASE, 1}, {LOCKD_STAT_RELEASED, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "retransmitted release gets RELEASED again";
    t.setup = {From(0, x1), From(0, Release(kLock, 1))};
    t.in = From(0, Release(kLock, 1));
    t.verdict = XDP_TX;
    t.out =
        To(0, Answer(Release(kLock, 1), LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 1));
    t.locks = {{kLock, LOCKD_MODE_NONE, {}, {}, 1}};
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_RELEASE_DUP, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "release by a non-holder is rejected and changes nothing";
    t.setup = {From(0, x1)};
    t.in = From(1, Release(kLock, 2));
    t.verdict = XDP_TX;
    t.out = To(1, Answer(Release(kLock, 2), LOCKD_OP_REJECTED,
                         LOCKD_STATUS_NOT_HOLDER));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 1}};
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_REJECT_NOT_HOLDER, 1}};
    f.push_back(t);
  }
  {
    const Message acquire =
        Acquire(kLock, 1, LOCKD_MODE_EXCLUSIVE, LOCKD_POLICY_WAIT, 5);
    Fixture t;
    t.name = "a release older than the acquire is stale: hold kept";
    t.setup = {From(0, acquire)};
    t.in = From(0, Release(kLock, 1, 4));
    t.verdict = XDP_TX;
    t.out = To(0, Answer(Release(kLock, 1, 4), LOCKD_OP_RELEASED));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 1}};
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_RELEASE_DUP, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "release that must wake waiters is left to TC by XDP";
    t.setup = {From(0, x1), From(1, x2)};
    t.in = From(0, Release(kLock, 1));
    t.verdict = XDP_PASS;
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {2}, 1}};
    t.stats = {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_RELEASE_TO_TC, 1}};
    f.push_back(t);
  }

  // --- RELEASE in TC: grants -------------------------------------------
  {
    Fixture t;
    t.name = "release grants the exclusive head only";
    t.setup = {From(0, x1), From(1, x2), From(2, x3)};
    t.hook = Hook::kTc;
    t.in = From(0, Release(kLock, 1));
    t.verdict = TC_ACT_REDIRECT;
    t.out =
        To(0, Answer(Release(kLock, 1), LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 1));
    t.sent = {To(1, Granted(x2, 2))};
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {2}, {3}, 2}};
    t.pool_blocks = 1;
    t.owners = 2;
    t.stats = {{LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_RELEASED, 1},
               {LOCKD_STAT_GRANT_FROM_QUEUE, 1},
               {LOCKD_STAT_GRANT_SENT, 1},
               {LOCKD_STAT_POOL_FREE, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "release grants the run of 8 shared waiters, stops at X";
    t.setup = {From(0, x1)};
    std::vector<uint64_t> shared_txns;
    for (int c = 1; c <= 8; ++c) {
      const Message s = Acquire(kLock, 1 + c, LOCKD_MODE_SHARED);
      t.setup.push_back(From(c, s));
      t.sent.push_back(To(c, Granted(s, c + 1)));
      shared_txns.push_back(1 + c);
    }
    t.setup.push_back(From(9, Acquire(kLock, 10, LOCKD_MODE_EXCLUSIVE)));
    t.hook = Hook::kTc;
    t.in = From(0, Release(kLock, 1));
    t.verdict = TC_ACT_REDIRECT;
    t.out =
        To(0, Answer(Release(kLock, 1), LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 1));
    t.locks = {{kLock, LOCKD_MODE_SHARED, shared_txns, {10}, 9}};
    t.pool_blocks = 1;
    t.stats = {{LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_RELEASED, 1},
               {LOCKD_STAT_GRANT_FROM_QUEUE, 8},
               {LOCKD_STAT_GRANT_SENT, 8},
               {LOCKD_STAT_POOL_FREE, 8}};
    f.push_back(t);
  }
  // 20 shared waiters: one run grants 16, then continues through a KICK.
  std::vector<Bytes> twenty_waiters = {From(0, x1)};
  std::vector<Bytes> grants_to_twenty;
  for (int c = 1; c <= 20; ++c) {
    const Message s = Acquire(kLock, 1 + c, LOCKD_MODE_SHARED);
    twenty_waiters.push_back(From(c, s));
    grants_to_twenty.push_back(To(c, Granted(s, c + 1)));
  }
  {
    Fixture t;
    t.name = "more compatible waiters than one run grants: KICK follows";
    t.setup = twenty_waiters;
    t.hook = Hook::kTc;
    t.in = From(0, Release(kLock, 1));
    t.verdict = TC_ACT_REDIRECT;
    t.out =
        To(0, Answer(Release(kLock, 1), LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 1));
    t.sent.assign(grants_to_twenty.begin(), grants_to_twenty.begin() + 16);
    t.sent.push_back(From(0, Kick(kLock, 1)));
    t.locks = {{kLock,
                LOCKD_MODE_SHARED,
                {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
                {18, 19, 20, 21},
                17}};
    t.pool_blocks = 4;
    t.stats = {{LOCKD_STAT_RELEASE, 1},           {LOCKD_STAT_RELEASED, 1},
               {LOCKD_STAT_GRANT_FROM_QUEUE, 16}, {LOCKD_STAT_GRANT_SENT, 16},
               {LOCKD_STAT_POOL_FREE, 16},        {LOCKD_STAT_KICK_SENT, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "KICK grants the rest and answers nobody";
    t.setup = twenty_waiters;
    t.setup.push_back(From(0, Release(kLock, 1)));
    t.hook = Hook::kTc;
    t.in = From(0, Kick(kLock, 1));
    t.verdict = TC_ACT_SHOT;
    t.out = grants_to_twenty.back();  // the last frame written into it
    t.sent.assign(grants_to_twenty.begin() + 16, grants_to_twenty.end());
    t.locks = {{kLock,
                LOCKD_MODE_SHARED,
                {2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                 12, 13, 14, 15, 16, 17, 18, 19, 20, 21},
                {},
                21}};
    t.pool_blocks = 0;
    t.stats = {{LOCKD_STAT_KICK, 1},
               {LOCKD_STAT_GRANT_FROM_QUEUE, 4},
               {LOCKD_STAT_GRANT_SENT, 4},
               {LOCKD_STAT_POOL_FREE, 4}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "a waiter's release cancels its wait; cancelled head unlinked";
    t.setup = {From(0, x1), From(1, x2), From(2, s3)};
    t.hook = Hook::kTc;
    t.in = From(1, Release(kLock, 2));
    t.verdict = TC_ACT_REDIRECT;
    t.out = To(1, Answer(Release(kLock, 2), LOCKD_OP_RELEASED));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {3}, 1}};
    t.pool_blocks = 1;
    t.owners = 2;
    t.stats = {{LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_CANCELLED, 1},
               {LOCKD_STAT_SKIPPED_CANCELLED, 1},
               {LOCKD_STAT_POOL_FREE, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "a cancelled exclusive waiter no longer blocks shared ones";
    t.setup = {From(0, x1), From(1, s2), From(2, x3), From(3, s4),
               From(2, Release(kLock, 3))};
    t.hook = Hook::kTc;
    t.in = From(0, Release(kLock, 1));
    t.verdict = TC_ACT_REDIRECT;
    t.out =
        To(0, Answer(Release(kLock, 1), LOCKD_OP_RELEASED, LOCKD_STATUS_OK, 1));
    t.sent = {To(1, Granted(s2, 2)), To(3, Granted(s4, 3))};
    t.locks = {{kLock, LOCKD_MODE_SHARED, {2, 4}, {}, 3}};
    t.pool_blocks = 0;
    t.stats = {{LOCKD_STAT_RELEASE, 1},           {LOCKD_STAT_RELEASED, 1},
               {LOCKD_STAT_GRANT_FROM_QUEUE, 2},  {LOCKD_STAT_GRANT_SENT, 2},
               {LOCKD_STAT_SKIPPED_CANCELLED, 1}, {LOCKD_STAT_POOL_FREE, 3}};
    f.push_back(t);
  }

  // --- Leases --------------------------------------------------------------
  {
    const Message renew = Renew(kLock, 1, 20000);
    Fixture t;
    t.name = "the holder renews its lease";
    t.setup = {From(0, x1)};
    t.in = From(0, renew);
    t.verdict = XDP_TX;
    Message renewed = Answer(renew, LOCKD_OP_RENEWED, LOCKD_STATUS_OK, 1);
    renewed.lease_ms = 20000;
    t.out = To(0, renewed);
    t.stats = {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_RENEW, 1}};
    f.push_back(t);
  }
  {
    const Message renew = Renew(kLock, 2, 0);
    Fixture t;
    t.name = "renew by a non-holder is rejected";
    t.setup = {From(0, x1)};
    t.in = From(1, renew);
    t.verdict = XDP_TX;
    t.out = To(1, Answer(renew, LOCKD_OP_REJECTED, LOCKD_STATUS_NOT_HOLDER));
    t.stats = {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_REJECT_NOT_HOLDER, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "release after the lease ran out is rejected";
    t.options = ShortLeases();
    t.setup = {From(0, x1)};
    t.prepare = LetLeasesLapse;
    t.in = From(0, Release(kLock, 1));
    t.verdict = XDP_TX;
    t.out = To(0, Answer(Release(kLock, 1), LOCKD_OP_REJECTED,
                         LOCKD_STATUS_LEASE_EXPIRED));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {}, 1}};
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_REJECT_EXPIRED, 1}};
    f.push_back(t);
  }
  {
    const Message renew = Renew(kLock, 1, 0);
    Fixture t;
    t.name = "renew after the lease ran out is rejected";
    t.options = ShortLeases();
    t.setup = {From(0, x1)};
    t.prepare = LetLeasesLapse;
    t.in = From(0, renew);
    t.verdict = XDP_TX;
    t.out = To(0, Answer(renew, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED));
    t.stats = {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_REJECT_EXPIRED, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "retransmitted acquire after the lease ran out is rejected";
    t.options = ShortLeases();
    t.setup = {From(0, x1)};
    t.prepare = LetLeasesLapse;
    t.in = From(0, x1);
    t.verdict = XDP_TX;
    t.out = To(0, Answer(x1, LOCKD_OP_REJECTED, LOCKD_STATUS_LEASE_EXPIRED));
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_REJECT_EXPIRED, 1}};
    f.push_back(t);
  }

  // --- Hand-off to user space ------------------------------------------
  {
    Fixture t;
    t.name = "full pool: the waiter is handed to user space";
    t.options.pool_capacity = 1;
    t.setup = {From(0, x1), From(1, x2)};
    t.in = From(2, x3);
    t.verdict = XDP_PASS;
    t.out = From(2, HandedOff(x3, LOCKD_HANDOFF_POOL_FULL));
    t.locks = {{kLock, LOCKD_MODE_EXCLUSIVE, {1}, {2}, 1}};
    t.pool_blocks = 1;
    t.owners = 2;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_POOL_ALLOC_FAILED, 1},
               {LOCKD_STAT_HANDOFF_POOL_FULL, 1}};
    f.push_back(t);
  }
  {
    const Message other = Acquire(kOtherLock, 2, LOCKD_MODE_EXCLUSIVE);
    Fixture t;
    t.name = "full lock table: the request is handed to user space";
    t.options.lock_capacity = 1;
    t.setup = {From(0, x1)};
    t.in = From(1, other);
    t.verdict = XDP_PASS;
    t.out = From(1, HandedOff(other, LOCKD_HANDOFF_TABLE_FULL));
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_HANDOFF_TABLE_FULL, 1}};
    f.push_back(t);
  }
  {
    const Message other = Acquire(kOtherLock, 2, LOCKD_MODE_EXCLUSIVE);
    Fixture t;
    t.name = "full owner table: the request is handed to user space";
    t.options.owner_capacity = 1;
    t.setup = {From(0, x1)};
    t.in = From(1, other);
    t.verdict = XDP_PASS;
    t.out = From(1, HandedOff(other, LOCKD_HANDOFF_OWNERS_FULL));
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_HANDOFF_OWNERS_FULL, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "acquire on a lock user space owns is handed over";
    t.setup = {From(0, x1)};
    t.prepare = FlagUserOwned;
    t.in = From(1, x2);
    t.verdict = XDP_PASS;
    t.out = From(1, HandedOff(x2, LOCKD_HANDOFF_USER_OWNED));
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_ACQUIRE, 1},
               {LOCKD_STAT_HANDOFF_USER_OWNED, 1}};
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "release on a lock user space owns is handed over";
    t.setup = {From(0, x1)};
    t.prepare = FlagUserOwned;
    t.in = From(0, Release(kLock, 1));
    t.verdict = XDP_PASS;
    t.out = From(0, HandedOff(Release(kLock, 1), LOCKD_HANDOFF_USER_OWNED));
    t.owners = 1;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_HANDOFF_USER_OWNED, 1}};
    f.push_back(t);
  }

  {
    Fixture t;
    t.name = "release for a taken-over lock without records goes up";
    t.setup = {From(0, x1)};
    t.prepare = TakenOverWithRecords;
    t.in = From(0, Release(kLock, 1));
    t.verdict = XDP_PASS;
    t.out = From(0, HandedOff(Release(kLock, 1), LOCKD_HANDOFF_USER_OWNED));
    t.owners = 0;
    t.stats = {{LOCKD_STAT_RX, 1},
               {LOCKD_STAT_RELEASE, 1},
               {LOCKD_STAT_HANDOFF_USER_OWNED, 1}};
    f.push_back(t);
  }
  {
    const Message renew = Renew(kLock, 1, 0);
    Fixture t;
    t.name = "renew for a taken-over lock without records goes up";
    t.setup = {From(0, x1)};
    t.prepare = TakenOverWithRecords;
    t.in = From(0, renew);
    t.verdict = XDP_PASS;
    t.out = From(0, HandedOff(renew, LOCKD_HANDOFF_USER_OWNED));
    t.stats = {{LOCKD_STAT_RX, 1}, {LOCKD_STAT_HANDOFF_USER_OWNED, 1}};
    f.push_back(t);
  }

  // --- Malformed and foreign traffic -------------------------------------
  const EncodedMessage good = Encode(x1);
  auto malformed = [&](std::string name, Bytes payload, lockd_stat counter) {
    Fixture t;
    t.name = std::move(name);
    t.in = BuildUdpFrame(ClientEndpoint(0), ServerEndpoint(), payload);
    t.verdict = XDP_DROP;
    t.owners = 0;
    t.stats = {{LOCKD_STAT_RX, 1}, {counter, 1}};
    f.push_back(t);
  };
  malformed("truncated message is dropped",
            Bytes(good.begin(), good.begin() + 20), LOCKD_STAT_MALFORMED);
  malformed("empty payload is dropped", Bytes(), LOCKD_STAT_MALFORMED);
  {
    Bytes oversized(good.begin(), good.end());
    oversized.push_back(0);
    malformed("oversized message is dropped", oversized, LOCKD_STAT_MALFORMED);
  }
  {
    Bytes bad_magic(good.begin(), good.end());
    bad_magic[0] ^= 0xff;
    malformed("wrong magic is dropped", bad_magic, LOCKD_STAT_MALFORMED);
  }
  {
    Bytes bad_version(good.begin(), good.end());
    bad_version[2] = LOCKD_VERSION + 1;
    malformed("other protocol version is dropped", bad_version,
              LOCKD_STAT_BAD_VERSION);
  }
  {
    Message reply = Granted(x1, 1);
    EncodedMessage e = Encode(reply);
    malformed("a reply sent to the server is dropped",
              Bytes(e.begin(), e.end()), LOCKD_STAT_MALFORMED);
  }
  {
    Message m = x1;
    m.mode = static_cast<lockd_mode>(7);
    EncodedMessage e = Encode(m);
    malformed("unknown mode is dropped", Bytes(e.begin(), e.end()),
              LOCKD_STAT_MALFORMED);
  }
  {
    Message m = x1;
    m.policy = static_cast<lockd_policy>(9);
    EncodedMessage e = Encode(m);
    malformed("unknown policy is dropped", Bytes(e.begin(), e.end()),
              LOCKD_STAT_MALFORMED);
  }
  {
    Message m = HandedOff(x1, LOCKD_HANDOFF_POOL_FULL);
    EncodedMessage e = Encode(m);
    malformed("a client may not set hand-off flags", Bytes(e.begin(), e.end()),
              LOCKD_STAT_MALFORMED);
  }
  {
    Fixture t;
    t.name = "UDP to another port passes untouched";
    t.in = BuildUdpFrame(ClientEndpoint(0), ServerEndpoint(53), good);
    t.verdict = XDP_PASS;
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "non-IP traffic passes untouched";
    t.in = From(0, x1);
    t.in[12] = 0x08;
    t.in[13] = 0x06;  // ARP
    t.verdict = XDP_PASS;
    f.push_back(t);
  }
  {
    Fixture t;
    t.name = "IPv4 with options goes to user space unchanged";
    t.in = WithIpOptions(From(0, x1));
    t.verdict = XDP_PASS;
    t.owners = 0;
    t.stats = {{LOCKD_STAT_RX, 1}};
    f.push_back(t);
  }
  return f;
}

class DatapathFixtureTest : public ::testing::TestWithParam<Fixture> {};

TEST_P(DatapathFixtureTest, Behaves) {
  SKIP_UNLESS_BPF_ALLOWED();
  absl::Status result = RunFixture(GetParam());
  EXPECT_TRUE(result.ok()) << result.message();
}

std::string FixtureName(const ::testing::TestParamInfo<Fixture>& info) {
  std::string name;
  for (char c : info.param.name) name += std::isalnum(c) ? c : '_';
  return absl::StrCat(info.index, "_", name);
}

INSTANTIATE_TEST_SUITE_P(Table, DatapathFixtureTest,
                         ::testing::ValuesIn(Fixtures()), FixtureName);

}  // namespace
}  // namespace lockd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockd::testing::CheckBpfAllowed(/*private_netns=*/true);
  return RUN_ALL_TESTS();
}
