// lockd's /metrics endpoint: a minimal HTTP/1.1 server for Prometheus
// scrapes. GET /metrics answers 200 with what `render` returns (the text
// exposition format), anything else 404; one request per connection.
// Loopback by default (--metrics_listen): the metrics name locks and
// clients' activity.
#ifndef LOCKD_LOCKD_METRICS_HTTP_H_
#define LOCKD_LOCKD_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace lockd {

class MetricsHttpServer {
 public:
  using Render = std::function<std::string()>;

  // Listens on `address` ("127.0.0.1:9464"; port 0: any) and serves on a
  // thread of its own until destroyed.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, Render render);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }
  uint64_t scrapes() const { return scrapes_.load(); }

 private:
  MetricsHttpServer(int fd, int port, Render render)
      : fd_(fd), port_(port), render_(std::move(render)) {}
  void Serve();
  void Answer(int connection);

  const int fd_;
  const int port_;
  const Render render_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> scrapes_{0};
  std::thread thread_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_METRICS_HTTP_H_
