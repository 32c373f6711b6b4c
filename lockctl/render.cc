#include "lockctl/render.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "abi/codec.h"
#include "abi/lockd_abi.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace lockd::lockctl {
namespace {

// Left-aligned columns two spaces apart, under upper-case headers.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) {
    rows_.push_back(std::move(headers));
  }

  void AddRow(std::vector<std::string> cells) {
    rows_.push_back(std::move(cells));
  }

  std::string Render() const {
    std::vector<size_t> widths;
    for (const std::vector<std::string>& row : rows_) {
      widths.resize(std::max(widths.size(), row.size()));
      for (size_t i = 0; i < row.size(); ++i) {
        widths[i] = std::max(widths[i], row[i].size());
      }
    }
    std::string out;
    for (const std::vector<std::string>& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        absl::StrAppend(&line, row[i],
                        std::string(widths[i] - row[i].size(), ' '), "  ");
      }
      // The padding of the last column would only trail.
      absl::StrAppend(&out, absl::StripTrailingAsciiWhitespace(line), "\n");
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;  // headers first
};

std::string ModeText(v1::Mode mode) {
  return std::string(ModeName(static_cast<lockd_mode>(mode)));
}

std::string PolicyText(v1::Policy policy) {
  return std::string(PolicyName(static_cast<lockd_policy>(policy)));
}

std::string Millis(int64_t ms) {
  return absl::FormatDuration(absl::Milliseconds(ms));
}

std::string LeaseLeft(int64_t lease_left_ms) {
  // An expired hold still blocks others until the sweep ends it.
  if (lease_left_ms < 0)
    return absl::StrCat("expired ", Millis(-lease_left_ms), " ago");
  return Millis(lease_left_ms);
}

std::string Bytes(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 20))
    return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (uint64_t{1} << 10))
    return absl::StrFormat("%.1f KiB", static_cast<double>(bytes) / (1 << 10));
  return absl::StrCat(bytes, " B");
}

std::string Fill(uint64_t used, uint64_t capacity) {
  if (capacity == 0) return absl::StrCat(used);
  return absl::StrFormat(
      "%d / %d (%.1f%%)", used, capacity,
      100.0 * static_cast<double>(used) / static_cast<double>(capacity));
}

}  // namespace

absl::StatusOr<LockArgument> ParseLockArgument(absl::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError(
        "a lock is a decimal id, a 0x-hex id or a name; got nothing");
  }
  LockArgument lock;
  absl::string_view hex = text;
  if (absl::ConsumePrefix(&hex, "0x") || absl::ConsumePrefix(&hex, "0X")) {
    if (absl::SimpleHexAtoi(hex, &lock.id)) return lock;
  } else if (absl::SimpleAtoi(text, &lock.id)) {
    return lock;
  }
  lock.name = std::string(text);
  lock.id = LockIdForName(text);
  return lock;
}

std::string FormatLockId(uint64_t lock_id) {
  return absl::StrFormat("0x%016x", lock_id);
}

std::string RenderLocksTable(const v1::ListLocksResponse& locks) {
  Table table({"LOCK", "MODE", "HOLDERS", "WAITERS", "FENCE"});
  for (const v1::LockSummary& lock : locks.locks()) {
    table.AddRow({FormatLockId(lock.lock_id()), ModeText(lock.mode()),
                  absl::StrCat(lock.holders()), absl::StrCat(lock.queue_len()),
                  absl::StrCat(lock.fence())});
  }
  return table.Render();
}

std::string RenderLock(const v1::GetLockResponse& lock,
                       absl::string_view name) {
  const v1::LockSummary& summary = lock.summary();
  std::string out = absl::StrCat("lock ", FormatLockId(summary.lock_id()));
  if (!name.empty()) absl::StrAppend(&out, " (\"", name, "\")");
  absl::StrAppend(&out, "\nmode ", ModeText(summary.mode()), ", fence ",
                  summary.fence(), "\n\nholders:\n");
  Table holders({"TXN", "MODE", "FENCE", "LEASE LEFT", "CLIENT"});
  for (const v1::Holder& holder : lock.holders()) {
    holders.AddRow({absl::StrCat(holder.txn_id()), ModeText(holder.mode()),
                    absl::StrCat(holder.fence()),
                    LeaseLeft(holder.lease_left_ms()),
                    holder.client_address()});
  }
  absl::StrAppend(&out, holders.Render(), "\nqueue (head first):\n");
  Table queue({"POS", "TXN", "MODE", "POLICY", "WAITED", "CLIENT"});
  int position = 0;
  for (const v1::Waiter& waiter : lock.queue()) {
    // A cancelled waiter stays linked until it reaches the head.
    queue.AddRow({absl::StrCat(++position),
                  absl::StrCat(waiter.txn_id(),
                               waiter.cancelled() ? " (cancelled)" : ""),
                  ModeText(waiter.mode()), PolicyText(waiter.policy()),
                  Millis(waiter.wait_time_ms()), waiter.client_address()});
  }
  absl::StrAppend(&out, queue.Render());
  return out;
}

std::string RenderStats(const v1::GetStatsResponse& stats) {
  // A protobuf map has no order; people look counters up by name.
  std::vector<std::pair<std::string, uint64_t>> counters(
      stats.counters().begin(), stats.counters().end());
  std::sort(counters.begin(), counters.end());
  Table table({"COUNTER", "VALUE"});
  for (const auto& [name, value] : counters) {
    table.AddRow({name, absl::StrCat(value)});
  }
  return absl::StrCat(table.Render(), "\n", RenderMemory(stats.memory()));
}

std::string RenderMemory(const v1::MemoryUsage& memory) {
  Table table({"MEMORY", "USE"});
  table.AddRow(
      {"total", absl::StrCat(Bytes(memory.total_bytes()), " of ",
                             Bytes(memory.budget_bytes()), " budget")});
  table.AddRow({"lock table",
                absl::StrCat(Bytes(memory.table_bytes()), " in ",
                             memory.table_segments(), " segments (depth ",
                             memory.table_depth(), ")",
                             memory.table_at_budget() ? ", at budget" : "")});
  table.AddRow({"wait-queue pool",
                absl::StrCat(Bytes(memory.pool_bytes()), " in ",
                             memory.pool_segments(), " segments",
                             memory.pool_at_budget() ? ", at budget" : "")});
  table.AddRow({"pool blocks", Fill(memory.pool_live_blocks(),
                                    memory.pool_capacity_blocks())});
  table.AddRow({"fixed maps", Bytes(memory.fixed_bytes())});
  table.AddRow({"locks", absl::StrCat(memory.locks())});
  return table.Render();
}

std::string RenderHealth(const v1::HealthResponse& health) {
  Table table({"HEALTH", ""});
  table.AddRow({"serving", health.serving() ? "yes" : "no"});
  table.AddRow(
      {"fast path", health.datapath_attached()
                        ? absl::StrCat("on (", health.interface(), ", XDP ",
                                       health.xdp_mode(), ")")
                        : "off"});
  table.AddRow({"udp port", absl::StrCat(health.udp_port())});
  table.AddRow({"uptime", Millis(health.uptime_ms())});
  table.AddRow(
      {"restored from the previous run", health.restored() ? "yes" : "no"});
  table.AddRow({"epoch", absl::StrCat(health.epoch())});
  table.AddRow({"grace period left", health.grace_left_ms()
                                         ? Millis(health.grace_left_ms())
                                         : "none (serving every request)"});
  if (!health.version().empty()) table.AddRow({"version", health.version()});
  return table.Render();
}

std::string RenderClients(const v1::ListClientsResponse& response) {
  Table table({"CLIENT", "HOLDS+WAITS", "KEY", "LAST SEQ"});
  for (const v1::ClientSummary& c : response.clients()) {
    table.AddRow({c.client_id() == LOCKD_CLIENT_NONE
                      ? "0 (unauthenticated)"
                      : absl::StrCat(c.client_id()),
                  absl::StrCat(c.members()),
                  c.client_id() == LOCKD_CLIENT_NONE ? "-"
                  : c.rotating()                     ? "rotating"
                                                     : "set",
                  absl::StrCat(c.last_seq())});
  }
  return table.Render();
}

absl::StatusOr<std::string> RenderJson(
    const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print ",
                                            message.GetTypeName(),
                                            " as JSON: ", status.ToString()));
  }
  return json;
}

}  // namespace lockd::lockctl
