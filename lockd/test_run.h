// BPF_PROG_TEST_RUN: runs a loaded XDP or TC program on a packet in memory,
// as the kernel would on receive. Used by unit tests and benchmarks.
#ifndef LOCKD_LOCKD_TEST_RUN_H_
#define LOCKD_LOCKD_TEST_RUN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace lockd {

struct TestRunResult {
  uint32_t verdict = 0;           // XDP_* or TC_ACT_* returned
  std::vector<uint8_t> packet;    // the packet after the program ran
  uint32_t mean_duration_ns = 0;  // kernel-measured, per repetition
};

struct TestRunOptions {
  uint32_t repeat = 1;
  // Interface the packet appears to arrive on (TC: skb->ifindex); 0 leaves
  // the kernel's default (loopback).
  uint32_t ifindex = 0;
  // TC: skb->mark as the packet arrives (with ifindex only).
  uint32_t mark = 0;
};

absl::StatusOr<TestRunResult> TestRun(int prog_fd,
                                      absl::Span<const uint8_t> packet,
                                      const TestRunOptions& options = {});

}  // namespace lockd

#endif  // LOCKD_LOCKD_TEST_RUN_H_
