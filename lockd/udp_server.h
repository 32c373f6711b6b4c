// The socket path: lock requests that reach the daemon's UDP socket rather
// than the fast path — every request when no fast path is attached, and
// IPv4 packets with options or fragments, which the XDP program passes up
// for the kernel to reassemble. Each runs through the control program on
// the one lock table, as a LOCAL member with the sender's address: its
// reply and later grants are sent from the socket.
#ifndef LOCKD_LOCKD_UDP_SERVER_H_
#define LOCKD_LOCKD_UDP_SERVER_H_

#include <atomic>
#include <thread>

#include "absl/status/status.h"
#include "lockd/daemon_counters.h"
#include "lockd/dispatcher.h"
#include "lockd/udp_socket.h"

namespace lockd {

class UdpServer {
 public:
  // All must outlive the server.
  UdpServer(UdpSocket* socket, Dispatcher* dispatcher, DaemonCounters* counters)
      : socket_(socket), dispatcher_(dispatcher), counters_(counters) {}
  ~UdpServer() { Stop(); }
  UdpServer(const UdpServer&) = delete;
  UdpServer& operator=(const UdpServer&) = delete;

  // Serves on a thread of its own until Stop.
  void Start();
  void Stop();

  // Serves one datagram (the thread's work; public for tests).
  void Serve(const Datagram& datagram);

 private:
  void Loop();

  UdpSocket* const socket_;
  Dispatcher* const dispatcher_;
  DaemonCounters* const counters_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_UDP_SERVER_H_
