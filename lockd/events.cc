#include "lockd/events.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockd {

absl::StatusOr<std::unique_ptr<EventReader>> EventReader::Open(
    int events_fd, Handler handler) {
  std::unique_ptr<EventReader> reader(new EventReader());
  reader->handler_ = std::move(handler);
  reader->ring_ =
      ring_buffer__new(events_fd, &EventReader::OnEvent, reader.get(), nullptr);
  if (reader->ring_ == nullptr)
    return absl::InternalError(
        absl::StrCat("opening the events ring buffer: ", strerror(errno)));
  return reader;
}

EventReader::~EventReader() {
  if (ring_ != nullptr) ring_buffer__free(ring_);
}

int EventReader::OnEvent(void* self, void* data, size_t size) {
  if (size < sizeof(lockd_event)) return 0;  // not ours: skip it
  lockd_event event;
  memcpy(&event, data, sizeof(event));
  static_cast<EventReader*>(self)->handler_(event);
  return 0;
}

absl::StatusOr<int> EventReader::Poll(absl::Duration timeout) {
  int n = ring_buffer__poll(
      ring_, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (n < 0 && n != -EINTR)
    return absl::InternalError(
        absl::StrCat("reading the events ring buffer: ", strerror(-n)));
  return n < 0 ? 0 : n;
}

absl::StatusOr<int> EventReader::Drain() {
  int n = ring_buffer__consume(ring_);
  if (n < 0)
    return absl::InternalError(
        absl::StrCat("reading the events ring buffer: ", strerror(-n)));
  return n;
}

}  // namespace lockd
