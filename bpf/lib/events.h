/* Events to the daemon through the "events" ring buffer. A full ring loses
 * the event and counts it (event_lost); every event is a hint the daemon can
 * also recover by reading the maps. */
#ifndef LOCKD_BPF_LIB_EVENTS_H_
#define LOCKD_BPF_LIB_EVENTS_H_

#include "bpf/lib/maps.h"
#include "bpf/lib/stats.h"

/* Waking the daemon costs the sending CPU an interrupt (irq_work): only
 * events the daemon must act on at once wake it (forced: a quiet event
 * before it may have left the consumer behind, which would mute the adaptive
 * wakeup); WAITING, a hint for deadlines of milliseconds at least, waits for
 * the daemon's next look (at most its poll interval). */
static __always_inline void event_emit(const struct lockd_event *ev) {
  __u64 flags =
      ev->type == LOCKD_EVENT_WAITING ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
  if (bpf_ringbuf_output(&events, (void *)ev, sizeof(*ev), flags))
    stat_inc(LOCKD_STAT_EVENT_LOST);
}

static __always_inline void event_simple(__u32 type, __u32 arg, __u64 lock_id,
                                         __u64 time_ns) {
  struct lockd_event ev = {
      .type = type, .arg = arg, .lock_id = lock_id, .time_ns = time_ns};
  event_emit(&ev);
}

static __always_inline void event_local_notice(const struct lockd_notice *n) {
  struct lockd_event ev = {.type = LOCKD_EVENT_LOCAL_NOTICE,
                           .lock_id = n->reply.lock_id};
  __builtin_memcpy(&ev.notice, n, sizeof(*n));
  event_emit(&ev);
}

#endif /* LOCKD_BPF_LIB_EVENTS_H_ */
