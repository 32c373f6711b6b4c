#include "lockd/test_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockd {

absl::StatusOr<TestRunResult> TestRun(int prog_fd,
                                      absl::Span<const uint8_t> packet,
                                      const TestRunOptions& options) {
  TestRunResult result;
  // Room for programs that grow the packet (none do today).
  result.packet.resize(packet.size() + 256);
  __sk_buff skb_ctx{};
  skb_ctx.ifindex = options.ifindex;
  skb_ctx.mark = options.mark;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(),
              .data_out = result.packet.data(),
              .data_size_in = static_cast<uint32_t>(packet.size()),
              .data_size_out = static_cast<uint32_t>(result.packet.size()),
              .repeat = static_cast<int>(options.repeat));
  if (options.ifindex != 0) {
    opts.ctx_in = &skb_ctx;
    opts.ctx_size_in = sizeof(skb_ctx);
  }
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    int err = errno;
    return absl::Status(err == EPERM ? absl::StatusCode::kPermissionDenied
                                     : absl::StatusCode::kInternal,
                        absl::StrCat("BPF_PROG_TEST_RUN: ", strerror(err)));
  }
  result.verdict = opts.retval;
  result.packet.resize(opts.data_size_out);
  result.mean_duration_ns = opts.duration;
  return result;
}

}  // namespace lockd
