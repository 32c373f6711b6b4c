#include "bench/tcp_connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lockd::bench {

absl::StatusOr<std::unique_ptr<TcpConnection>> TcpConnection::Connect(
    EventLoop* loop, const std::string& ipv4, uint16_t port, Framer framer) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, ipv4.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad address ", ipv4));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  std::unique_ptr<TcpConnection> connection(
      new TcpConnection(loop, fd, std::move(framer)));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("connect ", ipv4, ":", port));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  TcpConnection* raw = connection.get();
  absl::Status watched = loop->Watch(
      fd, EPOLLIN, [raw](uint32_t events) { raw->OnEvents(events); });
  if (!watched.ok()) return watched;
  return connection;
}

TcpConnection::~TcpConnection() {
  loop_->Unwatch(fd_);
  close(fd_);
}

void TcpConnection::Send(std::string request, ResponseHandler on_response) {
  if (failed_) {
    on_response(absl::UnavailableError("connection failed"));
    return;
  }
  out_ += request;
  handlers_.push_back(std::move(on_response));
  Write();
}

void TcpConnection::Write() {
  while (!out_.empty()) {
    const ssize_t written = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EAGAIN) break;
      Fail(absl::ErrnoToStatus(errno, "send"));
      return;
    }
    out_.erase(0, static_cast<size_t>(written));
  }
  const bool want_write = !out_.empty();
  if (want_write != want_write_) {
    want_write_ = want_write;
    (void)loop_->Rewatch(fd_, want_write ? EPOLLIN | EPOLLOUT : EPOLLIN);
  }
}

bool TcpConnection::Read() {
  char buffer[16384];
  for (;;) {
    const ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
    if (got > 0) {
      in_.append(buffer, static_cast<size_t>(got));
      continue;
    }
    if (got < 0 && errno == EAGAIN) return true;
    Fail(got == 0 ? absl::UnavailableError("connection closed by the server")
                  : absl::ErrnoToStatus(errno, "recv"));
    return false;
  }
}

void TcpConnection::OnEvents(uint32_t events) {
  if (failed_) return;
  if (events & EPOLLOUT) Write();
  if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || !Read()) return;
  size_t consumed = 0;
  while (!handlers_.empty()) {
    absl::StatusOr<size_t> length =
        framer_(absl::string_view(in_).substr(consumed));
    if (!length.ok()) {
      Fail(length.status());
      return;
    }
    if (*length == 0) break;
    ResponseHandler handler = std::move(handlers_.front());
    handlers_.pop_front();
    handler(absl::string_view(in_).substr(consumed, *length));
    consumed += *length;
  }
  in_.erase(0, consumed);
}

void TcpConnection::Fail(const absl::Status& status) {
  failed_ = true;
  while (!handlers_.empty()) {
    ResponseHandler handler = std::move(handlers_.front());
    handlers_.pop_front();
    handler(status);
  }
}

absl::StatusOr<std::string> TcpConnection::Call(const std::string& request,
                                                absl::Duration timeout) {
  std::string response;
  bool done = false;
  absl::Status error;
  Send(request, [&](absl::StatusOr<absl::string_view> reply) {
    done = true;
    if (reply.ok()) {
      response = std::string(*reply);
    } else {
      error = reply.status();
    }
  });
  const absl::Time deadline = absl::Now() + timeout;
  while (!done) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("no response in time");
    }
    pollfd poll_fd{
        fd_, static_cast<short>(want_write_ ? POLLIN | POLLOUT : POLLIN), 0};
    if (poll(&poll_fd, 1,
             static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) < 0 &&
        errno != EINTR) {
      return absl::ErrnoToStatus(errno, "poll");
    }
    uint32_t events = 0;
    if (poll_fd.revents & POLLIN) events |= EPOLLIN;
    if (poll_fd.revents & POLLOUT) events |= EPOLLOUT;
    if (poll_fd.revents & (POLLERR | POLLHUP)) events |= EPOLLERR;
    OnEvents(events);
  }
  if (!error.ok()) return error;
  return response;
}

}  // namespace lockd::bench
