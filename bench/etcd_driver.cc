#include "bench/etcd_driver.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace lockd::bench {
namespace {

// The body of a complete 200 response; an error for any other status.
absl::StatusOr<absl::string_view> OkBody(absl::string_view response) {
  if (!absl::StartsWith(response, "HTTP/1.1 200")) {
    return absl::InternalError(absl::StrCat(
        "etcd answered: ", response.substr(0, response.find('\r'))));
  }
  const size_t body = response.find("\r\n\r\n");
  return response.substr(body + 4);
}

// The string value of "name" in a flat JSON object (etcd's answers have no
// escapes in the fields read here).
absl::StatusOr<std::string> JsonString(absl::string_view json,
                                       absl::string_view name) {
  const std::string pattern = absl::StrCat("\"", name, "\":\"");
  const size_t start = json.find(pattern);
  if (start == absl::string_view::npos) {
    return absl::InternalError(absl::StrCat("no ", name, " in ", json));
  }
  const size_t value = start + pattern.size();
  const size_t end = json.find('"', value);
  if (end == absl::string_view::npos) return absl::InternalError("bad JSON");
  return std::string(json.substr(value, end - value));
}

}  // namespace

absl::StatusOr<size_t> FrameHttpResponse(absl::string_view buffer) {
  const size_t headers_end = buffer.find("\r\n\r\n");
  if (headers_end == absl::string_view::npos) return 0;
  for (absl::string_view line :
       absl::StrSplit(buffer.substr(0, headers_end), "\r\n")) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos ||
        !absl::EqualsIgnoreCase(line.substr(0, colon), "content-length")) {
      continue;
    }
    size_t length = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(colon + 1)),
                          &length)) {
      return absl::InternalError("bad Content-Length");
    }
    const size_t total = headers_end + 4 + length;
    return buffer.size() >= total ? total : 0;
  }
  return absl::InternalError("HTTP response without Content-Length");
}

std::string EtcdDriver::Post(absl::string_view path,
                             absl::string_view body) const {
  return absl::StrCat(
      "POST ", path, " HTTP/1.1\r\nHost: ", options_.server, ":", options_.port,
      "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
      "\r\n\r\n", body);
}

absl::Status EtcdDriver::Connect(int sessions, DriverListener* listener) {
  listener_ = listener;
  sessions_.resize(sessions);
  for (SessionState& session : sessions_) {
    absl::StatusOr<std::unique_ptr<TcpConnection>> connection =
        TcpConnection::Connect(loop_, options_.server, options_.port,
                               FrameHttpResponse);
    if (!connection.ok()) return connection.status();
    session.connection = *std::move(connection);
    absl::StatusOr<std::string> granted = session.connection->Call(
        Post("/v3/lease/grant",
             absl::StrFormat("{\"TTL\":%d}", options_.lease_seconds)),
        absl::Seconds(10));
    if (!granted.ok()) return granted.status();
    absl::StatusOr<absl::string_view> body = OkBody(*granted);
    if (!body.ok()) return body.status();
    absl::StatusOr<std::string> lease = JsonString(*body, "ID");
    if (!lease.ok()) return lease.status();
    session.lease = *lease;
  }
  return absl::OkStatus();
}

void EtcdDriver::Acquire(int session, int slot, uint64_t /*txn_id*/,
                         uint64_t lock_id, lockd_mode /*mode*/) {
  ++requests_;
  const std::string name =
      absl::Base64Escape(absl::StrFormat("lock/%016x", lock_id));
  sessions_[session].connection->Send(
      Post("/v3/lock/lock",
           absl::StrCat("{\"name\":\"", name, "\",\"lease\":\"",
                        sessions_[session].lease, "\"}")),
      [this, session, slot](absl::StatusOr<absl::string_view> response) {
        absl::StatusOr<absl::string_view> body =
            response.ok() ? OkBody(*response) : response.status();
        absl::StatusOr<std::string> key =
            body.ok() ? JsonString(*body, "key") : body.status();
        if (!key.ok()) {
          ++errors_;
          listener_->OnReply(session, slot, Reply::kRejected);
          return;
        }
        std::vector<std::string>& keys = sessions_[session].keys;
        if (keys.size() <= static_cast<size_t>(slot)) keys.resize(slot + 1);
        keys[slot] = *std::move(key);
        listener_->OnReply(session, slot, Reply::kGranted);
      });
}

void EtcdDriver::Release(int session, int slot, uint64_t /*txn_id*/,
                         uint64_t /*lock_id*/) {
  ++requests_;
  sessions_[session].connection->Send(
      Post("/v3/lock/unlock",
           absl::StrCat("{\"key\":\"", sessions_[session].keys[slot], "\"}")),
      [this, session, slot](absl::StatusOr<absl::string_view> response) {
        if (!response.ok() || !OkBody(*response).ok()) ++errors_;
        listener_->OnReply(session, slot, Reply::kReleased);
      });
}

DriverCounters EtcdDriver::Counters() const {
  return {{"http_requests", requests_}, {"errors", errors_}};
}

}  // namespace lockd::bench
