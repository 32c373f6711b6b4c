#include "bench/zk_driver.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/zk_lock_recipe.h"

namespace lockd::bench {
namespace {

// A watch's context is the slot and step it was set for, packed into the
// pointer: a watch may fire (with session events) after its slot moved on,
// so it must not own memory. The driver is the handle's context.
void* PackWatch(int session, int slot, uint32_t step) {
  return reinterpret_cast<void*>(
      (static_cast<uintptr_t>(session & 0xffff) << 48) |
      (static_cast<uintptr_t>(slot & 0xffff) << 32) | step);
}

}  // namespace

ZkDriver::~ZkDriver() {
  // Pending completions are called with ZCLOSING here; they only post to
  // inbox_, whose closures are dropped unrun with it.
  for (zhandle_t* handle : handles_) zookeeper_close(handle);
}

std::string ZkDriver::LockPath(uint64_t lock_id) const {
  return absl::StrFormat("%s/%016x", options_.root, lock_id);
}

absl::Status ZkDriver::Connect(int sessions, DriverListener* listener) {
  listener_ = listener;
  if (absl::Status attached = inbox_.Attach(); !attached.ok()) return attached;
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  const int handles =
      options_.handles > 0 ? std::min(options_.handles, sessions) : sessions;
  const std::string host = absl::StrCat(options_.server, ":", options_.port);
  for (int h = 0; h < handles; ++h) {
    zhandle_t* handle =
        zookeeper_init(host.c_str(), &SessionEvent, options_.session_timeout_ms,
                       nullptr, this, /*flags=*/0);
    if (handle == nullptr) return absl::ErrnoToStatus(errno, "zookeeper_init");
    handles_.push_back(handle);
  }
  sessions_.resize(sessions);
  for (int s = 0; s < sessions; ++s) {
    sessions_[s].handle = handles_[s % handles];
  }
  const absl::Time deadline = absl::Now() + options_.connect_timeout;
  for (zhandle_t* handle : handles_) {
    while (zoo_state(handle) != ZOO_CONNECTED_STATE) {
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("no ZooKeeper session with ", host, " after ",
                         absl::FormatDuration(options_.connect_timeout)));
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  const int rc =
      zoo_create(handles_.front(), options_.root.c_str(), nullptr, -1,
                 &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr, 0);
  if (rc != ZOK && rc != ZNODEEXISTS) {
    return absl::InternalError(
        absl::StrCat("creating ", options_.root, ": ", zerror(rc)));
  }
  return absl::OkStatus();
}

ZkDriver::Slot& ZkDriver::SlotOf(int session, int slot) {
  std::vector<Slot>& slots = sessions_[session].slots;
  if (slots.size() <= static_cast<size_t>(slot)) slots.resize(slot + 1);
  return slots[slot];
}

ZkDriver::Slot* ZkDriver::Current(const Ref& ref) {
  Slot& slot = SlotOf(ref.session, ref.slot);
  if (slot.step == ref.step) return &slot;
  ++stale_;
  return nullptr;
}

ZkDriver::Ref* ZkDriver::NewRef(int session, int slot) {
  ++requests_;
  return new Ref{this, session, slot, ++SlotOf(session, slot).step};
}

void ZkDriver::Acquire(int session, int slot, uint64_t /*txn_id*/,
                       uint64_t lock_id, lockd_mode mode) {
  Slot& s = SlotOf(session, slot);
  s.mode = mode;
  s.lock = LockPath(lock_id);
  s.node.clear();
  Create(session, slot);
}

void ZkDriver::Create(int session, int slot) {
  Slot& s = SlotOf(session, slot);
  s.phase = Phase::kCreating;
  const std::string prefix = absl::StrCat(
      s.lock, "/",
      s.mode == LOCKD_MODE_SHARED ? kZkReadPrefix : kZkWritePrefix);
  Ref* ref = NewRef(session, slot);
  if (const int rc = zoo_acreate(sessions_[session].handle, prefix.c_str(),
                                 nullptr, -1, &ZOO_OPEN_ACL_UNSAFE,
                                 ZOO_EPHEMERAL_SEQUENTIAL, &CreateDone, ref);
      rc != ZOK) {
    CreateDone(rc, nullptr, ref);
  }
}

void ZkDriver::Created(const Ref& ref, int rc, const std::string& path) {
  Slot* s = Current(ref);
  if (s == nullptr) return;
  if (rc == ZNONODE) {
    CreateParent(ref.session, ref.slot);
    return;
  }
  if (rc != ZOK) {
    Fail(ref.session, ref.slot, rc);
    return;
  }
  s->node = path;
  List(ref.session, ref.slot);
}

void ZkDriver::CreateParent(int session, int slot) {
  ++parent_creates_;
  Ref* ref = NewRef(session, slot);
  if (const int rc = zoo_acreate(
          sessions_[session].handle, SlotOf(session, slot).lock.c_str(),
          nullptr, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, &ParentDone, ref);
      rc != ZOK) {
    ParentDone(rc, nullptr, ref);
  }
}

void ZkDriver::ParentCreated(const Ref& ref, int rc) {
  if (Current(ref) == nullptr) return;
  if (rc == ZOK || rc == ZNODEEXISTS) {
    Create(ref.session, ref.slot);
  } else {
    Fail(ref.session, ref.slot, rc);
  }
}

void ZkDriver::List(int session, int slot) {
  Slot& s = SlotOf(session, slot);
  s.phase = Phase::kListing;
  ++lists_;
  Ref* ref = NewRef(session, slot);
  if (const int rc =
          zoo_aget_children(sessions_[session].handle, s.lock.c_str(),
                            /*watch=*/0, &ChildrenDone, ref);
      rc != ZOK) {
    ChildrenDone(rc, nullptr, ref);
  }
}

void ZkDriver::Listed(const Ref& ref, int rc,
                      const std::vector<std::string>& children) {
  Slot* s = Current(ref);
  if (s == nullptr) return;
  if (rc != ZOK) {
    Fail(ref.session, ref.slot, rc);
    return;
  }
  absl::StatusOr<ZkLockDecision> decision = DecideZkLock(
      children, absl::string_view(s->node).substr(s->lock.size() + 1));
  if (!decision.ok()) {
    fprintf(stderr, "zk: %s\n", decision.status().ToString().c_str());
    Fail(ref.session, ref.slot, ZSYSTEMERROR);
    return;
  }
  if (decision->holds) {
    s->phase = Phase::kHeld;
    listener_->OnReply(ref.session, ref.slot, Reply::kGranted);
    return;
  }
  Watch(ref.session, ref.slot, absl::StrCat(s->lock, "/", decision->watch));
}

void ZkDriver::Watch(int session, int slot, const std::string& path) {
  SlotOf(session, slot).phase = Phase::kWatching;
  ++watches_;
  Ref* ref = NewRef(session, slot);
  if (const int rc =
          zoo_awexists(sessions_[session].handle, path.c_str(), &WatchFired,
                       PackWatch(session, slot, ref->step), &ExistsDone, ref);
      rc != ZOK) {
    ExistsDone(rc, nullptr, ref);
  }
}

void ZkDriver::Existed(const Ref& ref, int rc) {
  Slot* s = Current(ref);
  if (s == nullptr || s->phase != Phase::kWatching) return;
  if (rc == ZOK) return;  // the watch is set: wait for it
  if (rc == ZNONODE) {
    // Gone before the watch was set (ZooKeeper keeps a watch for that
    // name's creation, which never comes, until the session ends).
    ++predecessor_gone_;
    ++relists_;
    List(ref.session, ref.slot);
    return;
  }
  Fail(ref.session, ref.slot, rc);
}

void ZkDriver::Fired(const Ref& ref, int /*type*/) {
  Slot* s = Current(ref);
  if (s == nullptr || s->phase != Phase::kWatching) return;
  // Deleted (or, never in this benchmark, changed): decide again.
  ++watches_fired_;
  ++relists_;
  List(ref.session, ref.slot);
}

void ZkDriver::Fail(int session, int slot, int rc) {
  ++errors_;
  fprintf(stderr, "zk: session %d slot %d: %s\n", session, slot, zerror(rc));
  Slot& s = SlotOf(session, slot);
  s.phase = Phase::kIdle;
  if (!s.node.empty()) {
    // Our child must not block the lock's other waiters.
    Ref* ref = NewRef(session, slot);
    if (const int delete_rc = zoo_adelete(
            sessions_[session].handle, s.node.c_str(), -1, &CleanupDone, ref);
        delete_rc != ZOK) {
      CleanupDone(delete_rc, ref);
    }
    s.node.clear();
  }
  listener_->OnReply(session, slot, Reply::kRejected);
}

void ZkDriver::Release(int session, int slot, uint64_t /*txn_id*/,
                       uint64_t /*lock_id*/) {
  Slot& s = SlotOf(session, slot);
  s.phase = Phase::kReleasing;
  Ref* ref = NewRef(session, slot);
  if (const int rc = zoo_adelete(sessions_[session].handle, s.node.c_str(), -1,
                                 &DeleteDone, ref);
      rc != ZOK) {
    DeleteDone(rc, ref);
  }
}

void ZkDriver::Deleted(const Ref& ref, int rc) {
  Slot* s = Current(ref);
  if (s == nullptr) return;
  if (rc != ZOK) {
    ++errors_;
    fprintf(stderr, "zk: deleting %s: %s\n", s->node.c_str(), zerror(rc));
  }
  s->phase = Phase::kIdle;
  s->node.clear();
  listener_->OnReply(ref.session, ref.slot, Reply::kReleased);
}

DriverCounters ZkDriver::Counters() const {
  return {{"zk_requests", requests_},
          {"zk_sessions", handles_.size()},
          {"lists", lists_},
          {"relists", relists_},
          {"watches", watches_},
          {"watches_fired", watches_fired_},
          {"predecessor_gone", predecessor_gone_},
          {"parent_creates", parent_creates_},
          {"session_events", session_events_},
          {"stale_answers", stale_},
          {"errors", errors_}};
}

// --- The C client's threads -------------------------------------------------

void ZkDriver::CreateDone(int rc, const char* path, const void* data) {
  std::unique_ptr<const Ref> ref(static_cast<const Ref*>(data));
  ref->driver->inbox_.Post(
      [ref = *ref, rc, path = std::string(rc == ZOK ? path : "")] {
        ref.driver->Created(ref, rc, path);
      });
}

void ZkDriver::ParentDone(int rc, const char* /*path*/, const void* data) {
  std::unique_ptr<const Ref> ref(static_cast<const Ref*>(data));
  ref->driver->inbox_.Post(
      [ref = *ref, rc] { ref.driver->ParentCreated(ref, rc); });
}

void ZkDriver::ChildrenDone(int rc, const String_vector* children,
                            const void* data) {
  std::unique_ptr<const Ref> ref(static_cast<const Ref*>(data));
  std::vector<std::string> names;
  if (rc == ZOK && children != nullptr) {
    names.assign(children->data, children->data + children->count);
  }
  ref->driver->inbox_.Post([ref = *ref, rc, names = std::move(names)] {
    ref.driver->Listed(ref, rc, names);
  });
}

void ZkDriver::ExistsDone(int rc, const Stat* /*stat*/, const void* data) {
  std::unique_ptr<const Ref> ref(static_cast<const Ref*>(data));
  ref->driver->inbox_.Post([ref = *ref, rc] { ref.driver->Existed(ref, rc); });
}

void ZkDriver::DeleteDone(int rc, const void* data) {
  std::unique_ptr<const Ref> ref(static_cast<const Ref*>(data));
  ref->driver->inbox_.Post([ref = *ref, rc] { ref.driver->Deleted(ref, rc); });
}

void ZkDriver::CleanupDone(int rc, const void* data) {
  std::unique_ptr<const Ref> ref(static_cast<const Ref*>(data));
  if (rc == ZOK || rc == ZNONODE) return;
  ref->driver->inbox_.Post([driver = ref->driver] { ++driver->errors_; });
}

void ZkDriver::WatchFired(zhandle_t* zh, int type, int /*state*/,
                          const char* /*path*/, void* context) {
  // Session events reach every watch too; SessionEvent counts them once.
  if (type == ZOO_SESSION_EVENT) return;
  auto* driver = static_cast<ZkDriver*>(const_cast<void*>(zoo_get_context(zh)));
  const auto packed = reinterpret_cast<uintptr_t>(context);
  const Ref ref{driver, static_cast<int>(packed >> 48),
                static_cast<int>((packed >> 32) & 0xffff),
                static_cast<uint32_t>(packed)};
  driver->inbox_.Post([ref, type] { ref.driver->Fired(ref, type); });
}

void ZkDriver::SessionEvent(zhandle_t* zh, int type, int state,
                            const char* /*path*/, void* /*context*/) {
  if (type != ZOO_SESSION_EVENT || state == ZOO_CONNECTED_STATE) return;
  auto* driver = static_cast<ZkDriver*>(const_cast<void*>(zoo_get_context(zh)));
  driver->inbox_.Post([driver] { ++driver->session_events_; });
}

}  // namespace lockd::bench
