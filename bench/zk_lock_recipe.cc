#include "bench/zk_lock_recipe.h"

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace lockd::bench {
namespace {

constexpr size_t kSequenceDigits = 10;  // ZooKeeper's "%010d"

bool IsWriter(absl::string_view child) {
  return absl::StartsWith(child, kZkWritePrefix);
}

}  // namespace

absl::StatusOr<int64_t> ZkLockSequence(absl::string_view child) {
  absl::string_view digits;
  if (absl::StartsWith(child, kZkReadPrefix)) {
    digits = child.substr(kZkReadPrefix.size());
  } else if (absl::StartsWith(child, kZkWritePrefix)) {
    digits = child.substr(kZkWritePrefix.size());
  }
  int64_t sequence = 0;
  if (digits.size() != kSequenceDigits ||
      !absl::c_all_of(digits, absl::ascii_isdigit) ||
      !absl::SimpleAtoi(digits, &sequence)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a lock recipe child: ", child));
  }
  return sequence;
}

absl::StatusOr<ZkLockDecision> DecideZkLock(
    const std::vector<std::string>& children, absl::string_view ours) {
  absl::StatusOr<int64_t> our_sequence = ZkLockSequence(ours);
  if (!our_sequence.ok()) return our_sequence.status();
  const bool writer = IsWriter(ours);
  bool found = false;
  int64_t best = -1;  // the sequence number of the child to wait for
  const std::string* best_child = nullptr;
  for (const std::string& child : children) {
    absl::StatusOr<int64_t> sequence = ZkLockSequence(child);
    if (!sequence.ok()) return sequence.status();
    if (*sequence == *our_sequence) {
      if (child != ours) {
        return absl::InternalError(
            absl::StrCat("two children with one sequence: ", child));
      }
      found = true;
      continue;
    }
    // A writer waits for any predecessor, a reader only for writers.
    if (*sequence > *our_sequence || (!writer && !IsWriter(child))) continue;
    if (*sequence > best) {
      best = *sequence;
      best_child = &child;
    }
  }
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat(ours, " is not among the lock's children"));
  }
  ZkLockDecision decision;
  decision.holds = best_child == nullptr;
  if (best_child != nullptr) decision.watch = *best_child;
  return decision;
}

}  // namespace lockd::bench
