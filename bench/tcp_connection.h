// TcpConnection: a non-blocking TCP client connection on an EventLoop that
// sends requests and takes their responses in order (pipelined), for the
// text protocols of the comparison servers (Redis RESP, etcd's HTTP/JSON
// gateway). The protocol is a Framer that finds where the first complete
// response ends.
#ifndef LOCKD_BENCH_TCP_CONNECTION_H_
#define LOCKD_BENCH_TCP_CONNECTION_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/event_loop.h"

namespace lockd::bench {

class TcpConnection {
 public:
  // Length of the complete response at the front of `buffer`; 0 while it is
  // incomplete; an error when it cannot be parsed.
  using Framer =
      std::function<absl::StatusOr<size_t>(absl::string_view buffer)>;
  // Called on the loop with one complete response (or the connection's
  // error: then no further callbacks come).
  using ResponseHandler =
      std::function<void(absl::StatusOr<absl::string_view>)>;

  // Connects (blocking) to ipv4:port and watches the socket on `loop`.
  static absl::StatusOr<std::unique_ptr<TcpConnection>> Connect(
      EventLoop* loop, const std::string& ipv4, uint16_t port, Framer framer);
  ~TcpConnection();
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // Queues `request`; `on_response` gets its response.
  void Send(std::string request, ResponseHandler on_response);

  // Sends `request` and waits for its response, before the loop runs (for
  // set-up such as leases and scripts). Nothing else may be in flight.
  absl::StatusOr<std::string> Call(const std::string& request,
                                   absl::Duration timeout);

 private:
  TcpConnection(EventLoop* loop, int fd, Framer framer)
      : loop_(loop), fd_(fd), framer_(std::move(framer)) {}
  void OnEvents(uint32_t events);
  void Write();
  bool Read();  // false once the connection failed
  void Fail(const absl::Status& status);

  EventLoop* loop_;
  int fd_;
  Framer framer_;
  std::string in_;
  std::string out_;
  bool want_write_ = false;
  bool failed_ = false;
  std::deque<ResponseHandler> handlers_;
};

}  // namespace lockd::bench

#endif  // LOCKD_BENCH_TCP_CONNECTION_H_
