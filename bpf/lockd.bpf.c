/* lockd datapath entry points. Logic lives in bpf/lib/; this file only
 * turns lock-table results into packet verdicts.
 *
 * lockd_xdp   serves ACQUIRE, RENEW and RELEASEs that wake nobody, answering
 *             with XDP_TX. A release that must wake waiters needs several
 *             packets, which XDP cannot send: it passes that to lockd_tc.
 * lockd_tc    (clsact ingress) serves RELEASE and KICK: one GRANTED clone per
 *             woken waiter (an event for the daemon's gRPC callers), then
 *             the RELEASED reply, all by redirect.
 * lockd_ctl   never attached: the daemon runs it with BPF_PROG_TEST_RUN on
 *             a struct lockd_ctl (bpf/lib/control.h). */
#include "bpf/lib/common.h"
#include "bpf/lib/config.h"
#include "bpf/lib/control.h"
#include "bpf/lib/parse.h"
#include "bpf/lib/reply.h"
#include "bpf/lib/stats.h"

char LICENSE[] SEC("license") = "GPL";

/* This CPU's request and result, cleared. */
static __always_inline struct entry_scratch *entry_get(void) {
  __u32 zero = 0;
  struct entry_scratch *e = bpf_map_lookup_elem(&entry_scratch, &zero);
  if (e) __builtin_memset(e, 0, sizeof(*e));
  return e;
}

SEC("xdp")
int lockd_xdp(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct entry_scratch *e = entry_get();
  if (!e) return XDP_PASS;
  struct lockd_request *req = &e->req;
  struct lt_result *res = &e->res;
  enum parse_result parsed = parse_request(data, data_end, cfg_port, req);
  if (parsed == PARSE_NOT_OURS) return XDP_PASS;
  stat_inc(LOCKD_STAT_RX);
  if (parsed == PARSE_SLOW_PATH) return XDP_PASS;
  if (parsed == PARSE_MALFORMED) {
    stat_inc(LOCKD_STAT_MALFORMED);
    return XDP_DROP;
  }
  if (parsed == PARSE_BAD_VERSION) {
    stat_inc(LOCKD_STAT_BAD_VERSION);
    return XDP_DROP;
  }
  /* KICKs are TC's own, marked (lockd_tc checks): not authenticated here. */
  if (req->opcode != LOCKD_OP_KICK) {
    struct lockd_frame *f = data;
    if ((void *)(f + 1) > data_end) return XDP_ABORTED;
    enum auth_result auth = auth_request(FRAME_PART(f, msg), req, true, e->key);
    if (auth != AUTH_OK) {
      auth_count(auth);
      return XDP_DROP;
    }
  }

  __u64 now = bpf_ktime_get_ns();
  switch (req->opcode) {
    case LOCKD_OP_ACQUIRE:
      lt_acquire(req, now, res);
      break;
    case LOCKD_OP_RENEW:
      lt_renew(req, now, res);
      break;
    case LOCKD_OP_RELEASE:
      lt_release(req, now, false, res);
      break;
    default: /* KICK */
      res->verdict = LT_TO_TC;
      break;
  }

  struct lockd_frame *frame = data;
  if ((void *)(frame + 1) > data_end) return XDP_ABORTED;
  struct lockd_endpoint us, them;
  switch (res->verdict) {
    case LT_REPLY:
      reply_sign(&res->reply, e->key[0], e->key[1]);
      frame_dest(frame, &us);
      frame_source(frame, &them);
      frame_write(frame, &us, &them, &res->reply);
      return XDP_TX;
    case LT_TO_TC:
      return XDP_PASS;
    default: /* LT_SILENT */
      return XDP_DROP;
  }
}

/* Re-reads the frame after a helper that may have moved the packet, and
 * makes it private (a previous clone may still share its data). */
static __always_inline struct lockd_frame *tc_frame(struct __sk_buff *skb) {
  if (bpf_skb_pull_data(skb, sizeof(struct lockd_frame))) return NULL;
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct lockd_frame *frame = data;
  if ((void *)(frame + 1) > data_end) return NULL;
  return frame;
}

/* Sends this run's notices: a GRANTED clone of this packet per waiter, an
 * event per gRPC caller. */
static __always_inline void tc_send_notices(struct __sk_buff *skb,
                                            const struct lockd_endpoint *us,
                                            __u32 count) {
  __u32 zero = 0;
  struct lockd_notice_batch *batch = bpf_map_lookup_elem(&notice_batch, &zero);
  if (!batch) return;
  for (__u32 i = 0; i < LOCKD_MAX_GRANTS; i++) {
    if (i >= count) break;
    const struct lockd_notice *n = &batch->n[i];
    /* Signed whoever sends it: the daemon sends LOCAL members' notices by
     * its socket when they are UDP clients of the socket path. */
    notice_sign(&batch->n[i]);
    if (n->local) {
      event_local_notice(n);
      stat_inc(LOCKD_STAT_GRANT_LOCAL);
      continue;
    }
    struct lockd_frame *frame = tc_frame(skb);
    if (!frame) {
      stat_inc(LOCKD_STAT_GRANT_SEND_FAILED);
      continue;
    }
    frame_write(frame, us, &n->to, &n->reply);
    if (bpf_clone_redirect(skb, skb->ifindex, 0))
      stat_inc(LOCKD_STAT_GRANT_SEND_FAILED);
    else
      stat_inc(LOCKD_STAT_GRANT_SENT);
  }
}

/* Sends this packet, as a KICK for the same lock, back into our ingress. */
static __always_inline void tc_send_kick(struct __sk_buff *skb,
                                         const struct lockd_endpoint *us,
                                         const struct lockd_endpoint *them,
                                         const struct lockd_request *req,
                                         __u32 hops) {
  struct lockd_frame *frame = tc_frame(skb);
  if (frame) {
    struct lockd_reply kick = {
        .opcode = LOCKD_OP_KICK,
        .lock_id = req->lock_id,
        .queue_pos = hops,
    };
    /* Addressed like a request to us, so the parser accepts it; marked
     * ours. */
    frame_write(frame, them, us, &kick);
    skb->mark = LOCKD_KICK_MARK;
    long err = bpf_clone_redirect(skb, skb->ifindex, BPF_F_INGRESS);
    skb->mark = 0;
    if (err == 0) {
      stat_inc(LOCKD_STAT_KICK_SENT);
      return;
    }
  }
  stat_inc(LOCKD_STAT_KICK_SEND_FAILED);
  event_simple(LOCKD_EVENT_KICK_LOST, 0, req->lock_id, 0);
}

SEC("tc")
int lockd_tc(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct entry_scratch *e = entry_get();
  if (!e) return TC_ACT_OK;
  struct lockd_request *req = &e->req;
  struct lt_result *res = &e->res;
  /* Malformed packets were counted and dropped by XDP; without XDP they go
   * up to the daemon, which answers them. */
  if (parse_request(data, data_end, cfg_port, req) != PARSE_OK)
    return TC_ACT_OK;
  if (req->opcode != LOCKD_OP_RELEASE && req->opcode != LOCKD_OP_KICK)
    return TC_ACT_OK;

  struct lockd_frame *frame = data;
  if ((void *)(frame + 1) > data_end) return TC_ACT_OK;
  if (req->opcode == LOCKD_OP_KICK) {
    if (skb->mark != LOCKD_KICK_MARK) {
      stat_inc(LOCKD_STAT_FORGED_KICK);
      return TC_ACT_SHOT;
    }
  } else if (auth_request(FRAME_PART(frame, msg), req, false, e->key) !=
             AUTH_OK) {
    /* XDP checked it (and its seq) before passing it on: only a packet that
     * did not come through XDP gets here. */
    stat_inc(LOCKD_STAT_AUTH_FAILED);
    return TC_ACT_SHOT;
  }
  /* In the scratch, not on the stack: the merge a release may do needs
   * the room. */
  struct lockd_endpoint *us = &e->us, *them = &e->them;
  frame_dest(frame, us);
  frame_source(frame, them);

  __u64 now = bpf_ktime_get_ns();
  if (req->opcode == LOCKD_OP_RELEASE)
    lt_release(req, now, true, res);
  else
    lt_kick(req, now, res);
  tc_send_notices(skb, us, res->notices);
  if (res->kick)
    tc_send_kick(
        skb, us, them, req,
        req->opcode == LOCKD_OP_KICK && !res->progress ? req->hops + 1 : 1);
  if (res->verdict != LT_REPLY) return TC_ACT_SHOT;
  reply_sign(&res->reply, e->key[0], e->key[1]);
  frame = tc_frame(skb);
  if (!frame) return TC_ACT_SHOT;
  frame_write(frame, us, them, &res->reply);
  return bpf_redirect(skb->ifindex, 0);
}

/* The command travels in the test run's packet buffer and is worked on in
 * this CPU's scratch copy. */
SEC("xdp")
int lockd_ctl(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct lockd_ctl *ctl = bpf_map_lookup_elem(&ctl_scratch, &zero);
  struct entry_scratch *e = entry_get();
  if (!ctl || !e || bpf_xdp_load_bytes(ctx, 0, ctl, sizeof(*ctl)))
    return XDP_ABORTED;
  ctl_run(ctl, e);
  if (bpf_xdp_store_bytes(ctx, 0, ctl, sizeof(*ctl))) return XDP_ABORTED;
  return XDP_TX;
}
