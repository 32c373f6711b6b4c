#include "tests/scenarios/scenario.h"

#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lockd::testing {
namespace {

constexpr absl::string_view kSeparator = "----";

// A command line: its verb, key=value arguments and bare flags.
struct Command {
  std::string verb;
  std::map<std::string, std::string> args;
  std::vector<std::string> flags;

  bool Has(const std::string& key) const { return args.count(key) != 0; }
  bool Flag(const std::string& flag) const {
    for (const std::string& f : flags)
      if (f == flag) return true;
    return false;
  }
  absl::StatusOr<uint64_t> Number(const std::string& key,
                                  std::optional<uint64_t> fallback = {}) const {
    auto it = args.find(key);
    if (it == args.end()) {
      if (fallback) return *fallback;
      return absl::InvalidArgumentError(absl::StrCat(verb, ": needs ", key));
    }
    uint64_t value = 0;
    if (!absl::SimpleAtoi(it->second, &value))
      return absl::InvalidArgumentError(
          absl::StrCat(verb, ": ", key, "=", it->second, " is not a number"));
    return value;
  }
};

absl::StatusOr<Command> ParseCommand(const std::string& line) {
  Command c;
  for (absl::string_view word :
       absl::StrSplit(line, ' ', absl::SkipWhitespace())) {
    if (c.verb.empty()) {
      c.verb = std::string(word);
    } else if (auto eq = word.find('='); eq != absl::string_view::npos) {
      c.args[std::string(word.substr(0, eq))] =
          std::string(word.substr(eq + 1));
    } else {
      c.flags.emplace_back(word);
    }
  }
  if (c.verb.empty()) return absl::InvalidArgumentError("empty command");
  return c;
}

const char* ModeLetter(uint8_t mode) {
  return mode == LOCKD_MODE_SHARED      ? "S"
         : mode == LOCKD_MODE_EXCLUSIVE ? "X"
         : mode == LOCKD_MODE_NONE      ? "-"
                                        : "?";
}

absl::StatusOr<uint8_t> ParseMode(const std::string& text) {
  if (text == "S") return uint8_t{LOCKD_MODE_SHARED};
  if (text == "X") return uint8_t{LOCKD_MODE_EXCLUSIVE};
  uint64_t raw = 0;  // a number, for malformed requests
  if (absl::SimpleAtoi(text, &raw) && raw < 256) return uint8_t(raw);
  return absl::InvalidArgumentError(absl::StrCat("mode=", text));
}

absl::StatusOr<uint8_t> ParsePolicy(const std::string& text) {
  if (text == "wait") return uint8_t{LOCKD_POLICY_WAIT};
  if (text == "no_wait") return uint8_t{LOCKD_POLICY_NO_WAIT};
  if (text == "wait_die") return uint8_t{LOCKD_POLICY_WAIT_DIE};
  return absl::InvalidArgumentError(absl::StrCat("policy=", text));
}

// "GRANTED fence=3 lease=10000", "QUEUED pos=1", "REJECTED CONFLICT".
std::string FormatReply(const lockd_reply& r) {
  std::string out(OpcodeName(static_cast<lockd_opcode>(r.opcode)));
  if (r.status != LOCKD_STATUS_OK)
    absl::StrAppend(&out, " ", StatusName(static_cast<lockd_status>(r.status)));
  if (r.opcode == LOCKD_OP_GRANTED || r.opcode == LOCKD_OP_RELEASED ||
      r.opcode == LOCKD_OP_RENEWED)
    absl::StrAppend(&out, " fence=", r.fence);
  if (r.opcode == LOCKD_OP_GRANTED || r.opcode == LOCKD_OP_RENEWED)
    absl::StrAppend(&out, " lease=", r.lease_ms);
  if (r.opcode == LOCKD_OP_QUEUED) absl::StrAppend(&out, " pos=", r.queue_pos);
  return out;
}

// "to c=2 txn=2 GRANTED S fence=2 lease=10000".
std::string FormatNotice(const Notice& n) {
  std::string out = absl::StrCat("to c=", n.client, " txn=", n.reply.txn_id,
                                 " ", FormatReply(n.reply));
  if (n.reply.opcode == LOCKD_OP_GRANTED)
    absl::StrAppend(&out, " mode=", ModeLetter(n.reply.mode));
  return out;
}

const char* CtlResultName(uint32_t result) {
  switch (result) {
    case LOCKD_CTL_OK:
      return "OK";
    case LOCKD_CTL_NOT_FOUND:
      return "NOT_FOUND";
    case LOCKD_CTL_NOT_DUE:
      return "NOT_DUE";
    case LOCKD_CTL_RETRY:
      return "RETRY";
    case LOCKD_CTL_FENCE_MISMATCH:
      return "FENCE_MISMATCH";
    case LOCKD_CTL_NO_REPLY:
      return "NO_REPLY";
    default:
      return "BAD_OP";
  }
}

std::string FormatMembers(const std::vector<MemberDump>& members,
                          bool holders) {
  std::vector<std::string> parts;
  for (const MemberDump& m : members) {
    std::string part = absl::StrCat(m.txn_id, ":", ModeLetter(m.mode));
    if (holders) absl::StrAppend(&part, ":", m.fence);
    if (m.cancelled) absl::StrAppend(&part, ":cancelled");
    parts.push_back(part);
  }
  return absl::StrCat("[", absl::StrJoin(parts, " "), "]");
}

std::string FormatLock(const LockDump& d) {
  std::string min_txn =
      d.min_txn == kIdleMinTxn ? "-" : absl::StrCat(d.min_txn);
  if (d.min_dirty) absl::StrAppend(&min_txn, ":dirty");
  return absl::StrCat(ModeLetter(d.mode), " fence=", d.fence,
                      " min_txn=", min_txn,
                      " holders=", FormatMembers(d.holders, true),
                      " queue=", FormatMembers(d.queue, false));
}

// What one file run keeps between commands.
class Runner {
 public:
  explicit Runner(Driver& driver) : driver_(driver) {}

  absl::StatusOr<std::string> Run(const Command& c) {
    if (c.verb == "new") return New(c);
    if (c.verb == "acquire" || c.verb == "release" || c.verb == "renew" ||
        c.verb == "kick")
      return Send(c);
    if (c.verb == "retransmit") return Retransmit(c);
    if (c.verb == "replay") {
      absl::StatusOr<uint64_t> client = c.Number("c");
      absl::StatusOr<uint64_t> n = c.Number("n", 0);
      if (!client.ok()) return client.status();
      if (!n.ok()) return n.status();
      // Its reply is signed with whatever key signed the original.
      return Report(driver_.Replay(static_cast<int>(*client), *n),
                    std::nullopt);
    }
    if (c.verb == "key") return Key(c);
    if (c.verb == "expire-holder" || c.verb == "expire-waiter" ||
        c.verb == "force")
      return Control(c);
    if (c.verb == "sleep") {
      absl::StatusOr<uint64_t> ms = c.Number("ms");
      if (!ms.ok()) return ms.status();
      driver_.Sleep(absl::Milliseconds(*ms));
      return std::string("ok");
    }
    if (c.verb == "state") return State(c);
    if (c.verb == "table") {
      absl::StatusOr<TableDump> t = driver_.Table();
      if (!t.ok()) return t.status();
      return absl::StrCat("locks=", t->locks,
                          " queue_entries=", t->queue_entries);
    }
    if (c.verb == "counters") return Counters();
    return absl::InvalidArgumentError(absl::StrCat("unknown command ", c.verb));
  }

 private:
  absl::StatusOr<std::string> New(const Command& c) {
    ScenarioOptions o;
    absl::StatusOr<uint64_t> v;
    if ((v = c.Number("default_lease_ms", o.default_lease_ms)); !v.ok())
      return v.status();
    o.default_lease_ms = *v;
    if ((v = c.Number("max_lease_ms", o.max_lease_ms)); !v.ok())
      return v.status();
    o.max_lease_ms = *v;
    if ((v = c.Number("split_at", o.split_at)); !v.ok()) return v.status();
    o.split_at = *v;
    if ((v = c.Number("merge_at", o.merge_at)); !v.ok()) return v.status();
    o.merge_at = *v;
    if ((v = c.Number("quota", o.client_quota)); !v.ok()) return v.status();
    o.client_quota = static_cast<int32_t>(*v);
    if ((v = c.Number("fence_base", o.fence_base)); !v.ok()) return v.status();
    o.fence_base = *v;
    if ((v = c.Number("grace_ms", o.grace_ms)); !v.ok()) return v.status();
    o.grace_ms = static_cast<uint32_t>(*v);
    epoch_ = lockd_epoch_of(o.fence_base);
    keys_.clear();
    old_keys_.clear();
    next_seq_.clear();
    last_.clear();
    counters_ = {};
    if (absl::Status s = driver_.Reset(o); !s.ok()) return s;
    return std::string("ok");
  }

  absl::StatusOr<std::string> Send(const Command& c) {
    absl::StatusOr<uint64_t> client = c.Number("c");
    absl::StatusOr<uint64_t> lock = c.Number("lock");
    if (!client.ok()) return client.status();
    if (!lock.ok()) return lock.status();
    Message m;
    m.lock_id = *lock;
    if (c.verb == "kick") {
      m.opcode = LOCKD_OP_KICK;
      absl::StatusOr<uint64_t> hops = c.Number("hops", 0);
      if (!hops.ok()) return hops.status();
      m.queue_pos = static_cast<uint32_t>(*hops);
    } else {
      absl::StatusOr<uint64_t> txn = c.Number("txn");
      if (!txn.ok()) return txn.status();
      m.txn_id = *txn;
      m.opcode = c.verb == "acquire"   ? LOCKD_OP_ACQUIRE
                 : c.verb == "release" ? LOCKD_OP_RELEASE
                                       : LOCKD_OP_RENEW;
    }
    if (c.Has("mode")) {
      absl::StatusOr<uint8_t> mode = ParseMode(c.args.at("mode"));
      if (!mode.ok()) return mode.status();
      m.mode = static_cast<lockd_mode>(*mode);
    }
    if (c.Has("policy")) {
      absl::StatusOr<uint8_t> policy = ParsePolicy(c.args.at("policy"));
      if (!policy.ok()) return policy.status();
      m.policy = static_cast<lockd_policy>(*policy);
    }
    absl::StatusOr<uint64_t> lease = c.Number("lease", 0);
    absl::StatusOr<uint64_t> wait = c.Number("wait", 0);
    if (!lease.ok()) return lease.status();
    if (!wait.ok()) return wait.status();
    m.lease_ms = static_cast<uint32_t>(*lease);
    m.wait_ms = static_cast<uint32_t>(*wait);
    if (c.Has("reclaim")) {  // reclaim=FENCE: the hold's fence from before
      absl::StatusOr<uint64_t> fence = c.Number("reclaim");
      if (!fence.ok()) return fence.status();
      m.flags |= LOCKD_FLAG_RECLAIM;
      m.fence = *fence;
    }
    absl::StatusOr<uint64_t> id = c.Number("id", LOCKD_CLIENT_NONE);
    if (!id.ok()) return id.status();
    m.client_id = static_cast<uint32_t>(*id);
    uint64_t& next = next_seq_[*client];
    if (next == 0) next = 1;
    absl::StatusOr<uint64_t> seq = c.Number("seq", next);
    if (!seq.ok()) return seq.status();
    m.seq = *seq;
    if (m.seq >= next) next = m.seq + 1;
    sig_[*client] = c.Has("sig") ? c.args.at("sig") : "";
    last_[*client] = m;
    return Deliver(static_cast<int>(*client), m, false);
  }

  // Key version v of client `id`.
  static ClientKey ScenarioKey(uint32_t id, uint64_t v) {
    return ClientKey{0x5ce0a710000000ULL ^ (uint64_t{id} << 8) ^ v,
                     0x6b6579ULL + v * 0x9e3779b97f4a7c15ULL};
  }

  absl::StatusOr<std::string> Key(const Command& c) {
    absl::StatusOr<uint64_t> id = c.Number("id");
    absl::StatusOr<uint64_t> v = c.Number("v", 1);
    if (!id.ok()) return id.status();
    if (!v.ok()) return v.status();
    const ClientKey key = ScenarioKey(static_cast<uint32_t>(*id), *v);
    lockd_ctl ctl{};
    ctl.op = LOCKD_CTL_SET_KEY;
    ctl.req.client_id = static_cast<uint32_t>(*id);
    ctl.key[0] = key.k0;
    ctl.key[1] = key.k1;
    absl::StatusOr<ControlOutcome> out = driver_.Control(ctl);
    if (!out.ok()) return out.status();
    if (out->result != LOCKD_CTL_OK)
      return absl::StrCat("result=", CtlResultName(out->result));
    if (auto old = keys_.find(*id); old != keys_.end())
      old_keys_[*id] = old->second;
    keys_[*id] = key;
    return std::string("ok");
  }

  // The key client c's last request is signed with, if any.
  std::optional<ClientKey> SigningKey(int client, uint32_t id) {
    if (id == LOCKD_CLIENT_NONE) return std::nullopt;
    const std::string& sig = sig_[client];
    if (sig == "bad") return ScenarioKey(id, 0xbad);
    const std::map<uint64_t, ClientKey>& keys =
        sig == "old" ? old_keys_ : keys_;
    auto it = keys.find(id);
    return it == keys.end() ? ScenarioKey(id, 0) : it->second;
  }

  // A MAC as the client library checks it: under `key`, or without one
  // under the current key of the client the reply names.
  absl::Status CheckMac(const lockd_reply& r, const std::string& what,
                        std::optional<ClientKey> key) {
    if (!driver_.SignsReplies() || r.client_id == LOCKD_CLIENT_NONE)
      return absl::OkStatus();
    if (!key) {
      auto it = keys_.find(r.client_id);
      if (it != keys_.end()) key = it->second;
    }
    if (key && MessageMac(Encode(FromReply(r, epoch_)), *key) == r.mac)
      return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat(what, " is not signed with client ", r.client_id,
                     "'s key: ", FromReply(r, epoch_).ToString()));
  }

  absl::StatusOr<std::string> Retransmit(const Command& c) {
    absl::StatusOr<uint64_t> client = c.Number("c");
    if (!client.ok()) return client.status();
    auto it = last_.find(*client);
    if (it == last_.end())
      return absl::InvalidArgumentError("retransmit: nothing sent yet");
    Message m = it->second;
    m.flags |= LOCKD_FLAG_RETRANSMIT;
    // A signed copy needs a seq of its own: the window drops a seen one.
    if (m.client_id != LOCKD_CLIENT_NONE) m.seq = next_seq_[*client]++;
    const bool without_ticket =
        c.Has("ticket") && c.args.at("ticket") == "none";
    return Deliver(static_cast<int>(*client), m, without_ticket);
  }

  absl::StatusOr<std::string> Deliver(int client, const Message& m,
                                      bool without_ticket) {
    const std::optional<ClientKey> key = SigningKey(client, m.client_id);
    return Report(driver_.Request(client, m, without_ticket, key), key);
  }

  // `key`: the request's (its reply's MAC is checked under it; nullopt:
  // under the client's current key).
  absl::StatusOr<std::string> Report(const absl::StatusOr<Outcome>& out,
                                     std::optional<ClientKey> key) {
    if (!out.ok()) return out.status();
    std::vector<std::string> lines;
    lines.push_back(out->reply ? FormatReply(*out->reply) : "no reply");
    if (out->reply)
      if (absl::Status s = CheckMac(*out->reply, "the reply", key); !s.ok())
        return s;
    for (const Notice& n : out->notices) {
      if (absl::Status s = CheckMac(n.reply, "a notice", std::nullopt); !s.ok())
        return s;
      lines.push_back(FormatNotice(n));
    }
    return absl::StrJoin(lines, "\n");
  }

  absl::StatusOr<std::string> Control(const Command& c) {
    lockd_ctl ctl{};
    ctl.op = c.verb == "expire-holder"   ? LOCKD_CTL_EXPIRE_HOLDER
             : c.verb == "expire-waiter" ? LOCKD_CTL_EXPIRE_WAITER
                                         : LOCKD_CTL_FORCE_RELEASE;
    absl::StatusOr<uint64_t> lock = c.Number("lock");
    absl::StatusOr<uint64_t> txn = c.Number("txn");
    absl::StatusOr<uint64_t> fence = c.Number("fence", 0);
    if (!lock.ok()) return lock.status();
    if (!txn.ok()) return txn.status();
    if (!fence.ok()) return fence.status();
    ctl.req.lock_id = *lock;
    ctl.req.txn_id = *txn;
    ctl.req.fence = *fence;
    absl::StatusOr<ControlOutcome> out = driver_.Control(ctl);
    if (!out.ok()) return out.status();
    std::vector<std::string> lines = {
        absl::StrCat("result=", CtlResultName(out->result))};
    if (out->result == LOCKD_CTL_OK && ctl.op != LOCKD_CTL_EXPIRE_WAITER)
      lines[0] += absl::StrCat(" fence=", out->fence);
    for (const Notice& n : out->notices) lines.push_back(FormatNotice(n));
    return absl::StrJoin(lines, "\n");
  }

  absl::StatusOr<std::string> State(const Command& c) {
    absl::StatusOr<uint64_t> lock = c.Number("lock");
    if (!lock.ok()) return lock.status();
    absl::StatusOr<std::optional<LockDump>> d = driver_.State(*lock);
    if (!d.ok()) return d.status();
    return *d ? FormatLock(**d) : std::string("none");
  }

  absl::StatusOr<std::string> Counters() {
    absl::StatusOr<LockModel::Counters> now = driver_.Counters();
    if (!now.ok()) return now.status();
    std::vector<std::string> moved;
    for (uint32_t s = 0; s < LOCKD_STAT_COUNT; ++s) {
      if ((*now)[s] == counters_[s]) continue;
      moved.push_back(absl::StrCat(StatName(static_cast<lockd_stat>(s)), "=",
                                   (*now)[s] - counters_[s]));
    }
    counters_ = *now;
    return moved.empty() ? std::string("none") : absl::StrJoin(moved, " ");
  }

  Driver& driver_;
  std::map<uint64_t, uint64_t> next_seq_;
  std::map<uint64_t, Message> last_;
  std::map<uint64_t, std::string> sig_;     // of the last request: "",
                                            // "old" or "bad"
  std::map<uint64_t, ClientKey> keys_;      // by client id
  std::map<uint64_t, ClientKey> old_keys_;  // the key before a rotation
  LockModel::Counters counters_{};
  uint32_t epoch_ = lockd_epoch_of(0);  // of the table, in every reply
};

}  // namespace

absl::StatusOr<std::vector<ScenarioCase>> ParseScenario(
    const std::string& text) {
  std::vector<ScenarioCase> cases;
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (size_t i = 0; i < lines.size();) {
    const std::string& line = lines[i];
    if (line.empty() || line[0] == '#') {
      ++i;
      continue;
    }
    ScenarioCase c;
    c.line = static_cast<int>(i + 1);
    c.command = line;
    ++i;
    if (i >= lines.size() || lines[i] != kSeparator)
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", c.line, ": expected ", kSeparator, " after the command"));
    ++i;
    std::vector<std::string> expected;
    while (i < lines.size() && !lines[i].empty())
      expected.push_back(lines[i++]);
    c.expected = absl::StrJoin(expected, "\n");
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string RewriteScenario(const std::string& text,
                            const std::vector<std::string>& actual) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<std::string> out;
  size_t next = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    out.push_back(lines[i]);
    if (lines[i].empty() || lines[i][0] == '#' || i + 1 >= lines.size() ||
        lines[i + 1] != kSeparator)
      continue;
    out.push_back(std::string(kSeparator));
    ++i;
    while (i + 1 < lines.size() && !lines[i + 1].empty()) ++i;
    if (next < actual.size() && !actual[next].empty())
      out.push_back(actual[next]);
    ++next;
  }
  return absl::StrJoin(out, "\n");
}

absl::StatusOr<std::vector<std::string>> RunScenario(
    const std::vector<ScenarioCase>& cases, Driver& driver) {
  Runner runner(driver);
  std::vector<std::string> outputs;
  for (const ScenarioCase& c : cases) {
    absl::StatusOr<Command> command = ParseCommand(c.command);
    if (!command.ok()) return command.status();
    absl::StatusOr<std::string> out = runner.Run(*command);
    if (!out.ok())
      return absl::Status(out.status().code(),
                          absl::StrCat("line ", c.line, " (", c.command,
                                       "): ", out.status().message()));
    outputs.push_back(*out);
  }
  return outputs;
}

}  // namespace lockd::testing
