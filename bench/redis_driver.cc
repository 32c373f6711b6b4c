#include "bench/redis_driver.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lockd::bench {
namespace {

constexpr char kReleaseScript[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

std::string LockKey(uint64_t lock_id) {
  return absl::StrFormat("lock:%016x", lock_id);
}

std::string Token(uint64_t txn_id) { return absl::StrFormat("%016x", txn_id); }

}  // namespace

std::string EncodeRespCommand(const std::vector<std::string>& args) {
  std::string out = absl::StrCat("*", args.size(), "\r\n");
  for (const std::string& arg : args) {
    absl::StrAppend(&out, "$", arg.size(), "\r\n", arg, "\r\n");
  }
  return out;
}

absl::StatusOr<size_t> FrameRespReply(absl::string_view buffer) {
  const size_t line_end = buffer.find("\r\n");
  if (line_end == absl::string_view::npos) return 0;
  switch (buffer[0]) {
    case '+':
    case '-':
    case ':':
      return line_end + 2;
    case '$': {
      int64_t length = 0;
      if (!absl::SimpleAtoi(buffer.substr(1, line_end - 1), &length)) {
        return absl::InternalError("bad RESP bulk length");
      }
      if (length < 0) return line_end + 2;  // nil
      const size_t total = line_end + 2 + static_cast<size_t>(length) + 2;
      return buffer.size() >= total ? total : 0;
    }
    default:
      return absl::InternalError(
          absl::StrCat("unexpected RESP reply: ", buffer.substr(0, line_end)));
  }
}

absl::Status RedisDriver::Connect(int sessions, DriverListener* listener) {
  listener_ = listener;
  for (int s = 0; s < sessions; ++s) {
    absl::StatusOr<std::unique_ptr<TcpConnection>> connection =
        TcpConnection::Connect(loop_, options_.server, options_.port,
                               FrameRespReply);
    if (!connection.ok()) return connection.status();
    connections_.push_back(*std::move(connection));
  }
  absl::StatusOr<std::string> sha = connections_.front()->Call(
      EncodeRespCommand({"SCRIPT", "LOAD", kReleaseScript}), absl::Seconds(5));
  if (!sha.ok()) return sha.status();
  // "$40\r\n<sha>\r\n"
  const size_t start = sha->find("\r\n");
  if (sha->empty() || (*sha)[0] != '$' || start == std::string::npos) {
    return absl::InternalError(absl::StrCat("SCRIPT LOAD answered ", *sha));
  }
  release_sha_ = sha->substr(start + 2, sha->size() - start - 4);
  return absl::OkStatus();
}

void RedisDriver::Acquire(int session, int slot, uint64_t txn_id,
                          uint64_t lock_id, lockd_mode /*mode*/) {
  TrySet(session, slot, txn_id, lock_id, 0);
}

void RedisDriver::TrySet(int session, int slot, uint64_t txn_id,
                         uint64_t lock_id, int attempt) {
  ++commands_;
  connections_[session]->Send(
      EncodeRespCommand({"SET", LockKey(lock_id), Token(txn_id), "NX", "PX",
                         absl::StrCat(options_.lease_ms)}),
      [this, session, slot, txn_id, lock_id,
       attempt](absl::StatusOr<absl::string_view> reply) {
        if (reply.ok() && absl::StartsWith(*reply, "+OK")) {
          listener_->OnReply(session, slot, Reply::kGranted);
          return;
        }
        if (!reply.ok() || !absl::StartsWith(*reply, "$-1")) {
          ++errors_;
          listener_->OnReply(session, slot, Reply::kRejected);
          return;
        }
        ++busy_polls_;
        loop_->At(NowNanos() + options_.backoff.Draw(rng_, attempt + 1),
                  [=] { TrySet(session, slot, txn_id, lock_id, attempt + 1); });
      });
}

void RedisDriver::Release(int session, int slot, uint64_t txn_id,
                          uint64_t lock_id) {
  ++commands_;
  connections_[session]->Send(
      EncodeRespCommand(
          {"EVALSHA", release_sha_, "1", LockKey(lock_id), Token(txn_id)}),
      [this, session, slot](absl::StatusOr<absl::string_view> reply) {
        if (!reply.ok() || absl::StartsWith(*reply, "-")) {
          ++errors_;
        } else if (absl::StartsWith(*reply, ":0")) {
          ++release_not_owner_;  // the lease ran out and someone else holds it
        }
        listener_->OnReply(session, slot, Reply::kReleased);
      });
}

DriverCounters RedisDriver::Counters() const {
  return {{"redis_commands", commands_},
          {"busy_polls", busy_polls_},
          {"release_not_owner", release_not_owner_},
          {"errors", errors_}};
}

}  // namespace lockd::bench
