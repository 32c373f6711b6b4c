// The datapath's events (struct lockd_event, ring buffer "events"), read
// and handed to whoever handles each kind: growth to Segments, waiters to
// the expiry scheduler, notices for gRPC callers to their waiting calls.
#ifndef LOCKD_LOCKD_EVENTS_H_
#define LOCKD_LOCKD_EVENTS_H_

#include <functional>

#include "abi/lockd_abi.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct ring_buffer;

namespace lockd {

class EventReader {
 public:
  using Handler = std::function<void(const lockd_event&)>;

  // Reads the ring buffer behind `events_fd`.
  static absl::StatusOr<std::unique_ptr<EventReader>> Open(int events_fd,
                                                           Handler handler);
  ~EventReader();
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  // Handles the events there are, waiting up to `timeout` for the first.
  // Returns how many were handled.
  absl::StatusOr<int> Poll(absl::Duration timeout);
  // Handles the events there are without waiting.
  absl::StatusOr<int> Drain();

 private:
  EventReader() = default;
  static int OnEvent(void* self, void* data, size_t size);

  ring_buffer* ring_ = nullptr;
  Handler handler_;
};

}  // namespace lockd

#endif  // LOCKD_LOCKD_EVENTS_H_
