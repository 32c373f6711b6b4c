#!/usr/bin/env python3
"""Turns the runs of scripts/bench.sh into bench/out/results.json, plots
(gnuplot, PNG, committed in docs/img/ and shown inline) and
docs/benchmarks.md. Every figure in the document comes from the runs' JSON;
the only hand-written text is the --reading file."""

import argparse
import datetime
import json
import os
import platform
import subprocess

REFERENCE = "lockd"  # the fast path: every ratio is against it
# Yardsticks of lockd rather than other lock services: not in the verdicts.
YARDSTICKS = ("xdp-reflect", "lockd-open")
SYSTEMS = {
    "lockd": "lockd, fast path (XDP/TC), policy WAIT, UDP, every request signed",
    "lockd-open": "the same, unsigned (client 0) from a subnet opened to "
                  "unauthenticated requests (`--open_subnets`, labs only): lockd "
                  "without authentication, the yardstick of what it costs",
    "lockd-user": "the same daemon with the fast path off (`--interface=`): "
                  "every request reaches the daemon's socket and runs through the "
                  "control program on the same kernel table, same UDP protocol",
    "lockd-nowait": "lockd fast path, policy NO_WAIT (DINT-Lock behaviour: a "
                    "conflict is rejected, the transaction aborts and retries)",
    "lockd-grpc": "lockd through its gRPC LockService (blocking Acquire, WAIT): "
                  "the daemon runs each request through the control program, in "
                  "the same kernel FIFO as UDP clients",
    "lockd-grpc-health": "the same gRPC calls driven the same way, each an "
                         "AdminService.Health call with nothing behind it: what "
                         "gRPC alone costs (the yardstick of lockd-grpc)",
    "xdp-reflect": "`xdp_reflect` (bpf/baseline.bpf.c) natively on the server veth: "
                   "answers every request with GRANTED and keeps no lock "
                   "(the physical ceiling); sent the same signed 72-byte requests",
    "redis": "Redis: `SET key token NX PX 10000`, a busy lock polled again after "
             "random exponential backoff (20 us .. 2 ms), release by an owner-checking "
             "Lua script (EVALSHA); exclusive only",
    "etcd": "etcd v3: one lease per session, `/v3/lock/lock` and `/v3/lock/unlock` "
            "through the HTTP/JSON gateway; exclusive only; data dir on tmpfs",
    "zk": "ZooKeeper, standalone, data dir on tmpfs, locked as Apache Curator's "
          "recipes do (InterProcessMutex, InterProcessReadWriteLock) through the C "
          "client libzookeeper_mt: an acquire creates an EPHEMERAL|SEQUENTIAL "
          "`read-`/`write-` child of the lock's znode and holds, or sets an exists "
          "watch on the one child it waits for (a writer: its immediate "
          "predecessor; a reader: the nearest preceding writer); release deletes "
          "the child. Shared AND exclusive: the workload's modes, as lockd takes "
          "them. One ZooKeeper session per load generator thread",
}
WORKLOADS = {
    "uniform": "1M locks, uniform, 5-10 locks/txn, 20 % exclusive (DINT)",
    "zipf09_x0": "1M locks, Zipf 0.9, 5-10 locks/txn, 0 % exclusive",
    "zipf09_x10": "1M locks, Zipf 0.9, 5-10 locks/txn, 10 % exclusive",
    "zipf09_x50": "1M locks, Zipf 0.9, 5-10 locks/txn, 50 % exclusive",
    "zipf099_x0": "1M locks, Zipf 0.99, 5-10 locks/txn, 0 % exclusive",
    "zipf099_x10": "1M locks, Zipf 0.99, 5-10 locks/txn, 10 % exclusive",
    "zipf099_x50": "1M locks, Zipf 0.99, 5-10 locks/txn, 50 % exclusive",
    "hot1": "hot set of 1 lock, 1 exclusive lock/txn",
    "hot10": "hot set of 10 locks, 1 exclusive lock/txn",
    "hot100": "hot set of 100 locks, 1 exclusive lock/txn",
    "hot1000": "hot set of 1000 locks, 1 exclusive lock/txn",
    "hot10000": "hot set of 10000 locks, 1 exclusive lock/txn",
}
MIB = 1024 * 1024
# One colour per system in the plots (gnuplot's own cycle has 8).
PLOT_COLORS = ["#9400d3", "#009e73", "#56b4e9", "#e69f00", "#f0e442", "#0072b2",
               "#e51e10", "#000000", "#8b4513", "#808080", "#ff69b4", "#00ced1"]


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(command):
        try:
            return subprocess.run(command, capture_output=True, text=True,
                                  check=False).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "not installed"

    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") *
                            os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "redis": version(["redis-server", "--version"]),
        "etcd": version(["etcd", "--version"]),
        "zookeeper": "ZooKeeper " + version(
            ["dpkg-query", "-W", "-f", "${Version}\n", "zookeeper"]),
    }


def closed(runs):
    # The churn runs share one server; they have their own section.
    return [r for r in runs if r["mode"] == "closed" and
            not r["system"].startswith("lockd-churn-")]


def index(runs):
    return {(r["system"], r["workload"]): r for r in closed(runs)}


def ratio(value, reference):
    return value / reference if reference else None


def server_rss_mib(run):
    processes = run["memory"]["processes"]
    return max((p["rss_peak_kib"] for p in processes), default=0) / 1024


def maps_mib(run):
    """BPF map memory at the run's peak: lockd's own account (segments
    included) for lockd, the sampled maps' memlock for the reflector."""
    lockd = run["memory"].get("lockd")
    if lockd:
        return lockd["peak"]["total_bytes"] / MIB
    maps = run["memory"]["maps"]
    return sum(m["memlock_peak"] for m in maps) / MIB if maps else None


def prealloc_summary(prealloc):
    maps = {m["name"]: m for m in prealloc["maps"]}
    locks = prealloc["locks"]
    slots = prealloc["waiter_slots_per_lock"]
    return {
        "locks": locks,
        "waiter_slots_per_lock": slots,
        "dint_bytes_per_lock": maps["dint_slots"]["memlock"] / locks,
        "fixed_bytes_per_lock": maps["fixed_locks"]["memlock"] / locks,
        "fixed_bytes_per_waiter_slot": maps["fixed_waiters"]["memlock"] / (locks * slots),
        "fixed_total_mib": (maps["fixed_locks"]["memlock"] +
                            maps["fixed_waiters"]["memlock"]) / MIB,
        "maps": prealloc["maps"],
        "pool_segments": prealloc.get("pool_segments", []),
    }


def fmt(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def workload_tables(runs, systems):
    by = index(runs)
    lines = []
    for workload in WORKLOADS:
        present = [s for s in systems if (s, workload) in by]
        if not present:
            continue
        ref = by.get((REFERENCE, workload))
        lines += [f"### {workload}: {WORKLOADS[workload]}", "",
                  "| system | sessions | locks/s | txn/s (attempts) | goodput (commits/s) | "
                  "x lockd goodput | abort rate | retries/commit | grant p50 us | "
                  "p99 us | p99.9 us | Jain | server RSS MiB | BPF maps MiB | load before |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for system in present:
            r = by[(system, workload)]
            g = r["grant_latency"]
            lines.append(
                f'| {system} | {r["sessions"]} | {fmt(r["locks_per_s"])} | '
                f'{fmt(r["txn_attempts_per_s"])} | {fmt(r["goodput_txn_per_s"])} | '
                f'{fmt_ratio(ratio(r["goodput_txn_per_s"], ref["goodput_txn_per_s"]) if ref else None)} | '
                f'{r["abort_rate"]:.3f} | {r["retries_per_commit"]:.2f} | '
                f'{fmt(g["p50_us"])} | {fmt(g["p99_us"])} | {fmt(g["p999_us"])} | '
                f'{r["jain_fairness"]:.3f} | {fmt(server_rss_mib(r), 1)} | '
                f'{fmt(maps_mib(r), 1)} | {r["loadavg_before"]:.1f} |')
        lines.append("")
    return lines


def ratio_matrix(runs, systems):
    by = index(runs)
    others = [s for s in systems if s != REFERENCE]
    lines = ["| workload | lockd goodput (commits/s) | " +
             " | ".join(others) + " |",
             "|---|---|" + "---|" * len(others)]
    verdicts = []
    for workload in WORKLOADS:
        ref = by.get((REFERENCE, workload))
        if not ref:
            continue
        cells = []
        for system in others:
            r = by.get((system, workload))
            if not r:
                cells.append("-")
                continue
            x = ratio(r["goodput_txn_per_s"], ref["goodput_txn_per_s"])
            cells.append(fmt_ratio(x))
            if system not in YARDSTICKS and x is not None:
                verdicts.append((workload, system, x))
        lines.append(f'| {workload} | {fmt(ref["goodput_txn_per_s"])} | ' +
                     " | ".join(cells) + " |")
    return lines, verdicts


def open_loop_table(runs):
    rows = sorted((r for r in runs if r["mode"] == "open"),
                  key=lambda r: (r["workload"], r["offered_txn_per_s"], r["system"]))
    if not rows:
        return []
    lines = ["| system | workload | offered txn/s | goodput commits/s | dropped arrivals | "
             "txn latency p50 us | p99 us | p99.9 us | grant p50 us | grant p99 us |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, g = r["txn_latency"], r["grant_latency"]
        lines.append(
            f'| {r["system"]} | {r["workload"]} | {fmt(r["offered_txn_per_s"])} | '
            f'{fmt(r["goodput_txn_per_s"])} | {r["arrivals_dropped"]:,} | '
            f'{fmt(t["p50_us"])} | {fmt(t["p99_us"])} | {fmt(t["p999_us"])} | '
            f'{fmt(g["p50_us"])} | {fmt(g["p99_us"])} |')
    return lines


def memory_section(runs, prealloc, churn_bench):
    lines = []
    if prealloc:
        p = prealloc
        lines += [
            f'A preallocated fixed-slot table sized for the worst case, measured '
            f'by creating the BPF ARRAY maps (bench/prealloc_memory.cc) for '
            f'{p["locks"]:,} locks and reading their memlock:', "",
            "| map | value bytes | entries | memlock MiB | bytes per entry |",
            "|---|---|---|---|---|"]
        for m in p["maps"]:
            lines.append(f'| {m["name"]} | {m["value_size"]} | {m["max_entries"]:,} | '
                         f'{m["memlock"] / MIB:,.1f} | {m["memlock"] / m["max_entries"]:.1f} |')
        lines.append("")
        if churn_bench:
            per_lock = churn_bench["memory_before_drain_bytes"] / churn_bench["live"]
            fixed = (p["fixed_bytes_per_lock"] +
                     p["waiter_slots_per_lock"] * p["fixed_bytes_per_waiter_slot"])
            lines += [
                f'lockd under churn (churn_bench, {churn_bench["live"]:,} locks live): '
                f'{per_lock:,.0f} B of kernel memory per live lock, all maps counted, '
                f'and nothing for a lock that is not live; the fixed table '
                f'{fixed:,.0f} B for every lock it could ever hold '
                f'({p["fixed_total_mib"]:,.0f} MiB for {p["locks"]:,} locks, up front), '
                f'DINT-Lock\'s queue-less slot {p["dint_bytes_per_lock"]:.0f} B.', ""]
    lines += ["Servers' resident memory (largest VmRSS sampled during the run), in MiB, "
              "and lockd's kernel memory (its maps, segments included, as lockd "
              "accounts for them) at the run's peak:", "",
              "| system | workload | RSS at start | RSS peak | BPF maps MiB peak |",
              "|---|---|---|---|---|"]
    for r in closed(runs):
        if r["workload"] not in ("uniform", "hot1"):
            continue
        for p in r["memory"]["processes"]:
            lines.append(f'| {r["system"]} | {r["workload"]} | '
                         f'{p["rss_start_kib"] / 1024:.1f} | {p["rss_peak_kib"] / 1024:.1f} | '
                         f'{fmt(maps_mib(r), 1)} |')
    lines.append("")
    return lines


def load_json(path):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def datapath_section(dp, dp_no):
    if not dp:
        return []
    no = {o["id"]: o for o in (dp_no or {}).get("operations", [])}
    lines = [f'`bench/datapath_bench.cc`: the kernel\'s own duration of one '
             f'BPF_PROG_TEST_RUN (repeat=1) per operation, {dp["iterations"]:,} '
             f'runs each, pinned to one CPU, beside an empty XDP program measured '
             f'in the same run (kernel {dp["kernel"]}). Pool segments '
             f'preallocated (lockd\'s choice), and BPF_F_NO_PREALLOC for '
             f'comparison:', "",
             "| operation | program | median ns | p90 ns | x empty | "
             "NO_PREALLOC median ns | p90 ns |",
             "|---|---|---|---|---|---|---|"]
    for o in dp["operations"]:
        n = no.get(o["id"])
        lines.append(f'| {o["operation"]} | {o["program"]} | {o["median_ns"]} | '
                     f'{o["p90_ns"]} | {o["ratio_to_empty"]:.2f} | '
                     f'{n["median_ns"] if n else "-"} | {n["p90_ns"] if n else "-"} |')
    lines += ["", f'The empty program in one call of repeat={dp["empty_repeat"]["repeat"]}: '
              f'{dp["empty_repeat"]["ns_per_run"]} ns per run; the rest of its '
              f'repeat=1 figure is the framing of one test run, in every figure '
              f'alike. TC figures include each GRANTED clone\'s transmit on lo and '
              f'its loopback receive.', ""]
    return lines


def pool_choice_lines(prealloc):
    if not prealloc or not prealloc.get("pool_segments"):
        return []
    lines = ["Pool segments (HASH of `struct lockd_block`, 96 B values), their "
             "memlock as the kernel charges it, empty and full "
             "(`bench/prealloc_memory.cc`):", "",
             "| allocation | capacity | blocks in it | memlock KiB | bytes per block |",
             "|---|---|---|---|---|"]
    for p in prealloc["pool_segments"]:
        per = p["memlock"] / p["filled"] if p["filled"] else None
        lines.append(f'| {"preallocated" if p["prealloc"] else "NO_PREALLOC"} | '
                     f'{p["capacity"]:,} | {p["filled"]:,} | {p["memlock"] / 1024:,.0f} | '
                     f'{fmt(per)} |')
    return lines + [""]


def idle_lines(idle):
    if not idle:
        return []
    m = idle["memory"]
    return [f'A fresh lockd with default flags, idle: {int(m["total_bytes"]) / MIB:.2f} '
            f'MiB of BPF maps (fixed maps {int(m["fixed_bytes"]) / MIB:.2f} MiB, lock '
            f'table {int(m["table_bytes"]) / MIB:.2f} MiB in {m["table_segments"]} '
            f'segments, pool {int(m["pool_bytes"]) / MIB:.2f} MiB for '
            f'{int(m["pool_capacity_blocks"]):,} blocks), against a budget of '
            f'{int(m["budget_bytes"]) / MIB:.0f} MiB.', ""]


def churn_lines(runs, churn_bench):
    rows = sorted((r for r in runs if r["system"].startswith("lockd-churn-")),
                  key=lambda r: r["system"])
    lines = []
    if rows:
        first = rows[0]["locks_per_s"]
        lines += [f'One lockd with default flags, the uniform workload (1M lock ids) '
                  f'in {len(rows)} runs of {rows[0]["duration_s"]} s back to back, '
                  f'no warm-up: lock-id churn through the network.', "",
                  "| run | locks/s | x first run | rejected | grant p50 us | p99 us | "
                  "locks in the table at the end | kernel memory MiB peak | at the end |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            rejected = sum(v for k, v in r["driver_counters"].items()
                           if k.startswith("rejected_"))
            mem = r["memory"].get("lockd", {})
            lines.append(
                f'| {r["system"][len("lockd-churn-"):]} | {fmt(r["locks_per_s"])} | '
                f'{r["locks_per_s"] / first:.2f} | {rejected:,} | '
                f'{fmt(r["grant_latency"]["p50_us"])} | {fmt(r["grant_latency"]["p99_us"])} | '
                f'{mem.get("end", {}).get("locks", "-")} | '
                f'{fmt(mem.get("peak", {}).get("total_bytes", 0) / MIB, 2)} | '
                f'{fmt(mem.get("end", {}).get("total_bytes", 0) / MIB, 2)} |')
        lines.append("")
    if churn_bench:
        c = churn_bench
        lines += [f'In the kernel alone (`bench/churn_bench.cc`, XDP through '
                  f'BPF_PROG_TEST_RUN): {c["distinct"]:,} distinct lock ids, each '
                  f'acquired and released once {c["live"]:,} newer ones are held, '
                  f'{c["requests_per_s"]:,.0f} requests/s with the syscall. Locks in '
                  f'the table / locks live, at worst: {c["worst_table_to_live"]:.3f}. '
                  f'{c["lock_created"]:,} locks created and {c["lock_freed"]:,} freed, '
                  f'{c["splits"]:,} bucket splits and {c["merges"]:,} merges, '
                  f'{c["unanswered"]:,} requests unanswered while a segment was added, '
                  f'{c["no_capacity_table"]:,} refused. Kernel memory with '
                  f'{c["live"]:,} locks live: {c["memory_before_drain_bytes"] / MIB:.2f} '
                  f'MiB; after the drain: {c["memory_end_bytes"] / MIB:.2f} MiB.', ""]
    return lines


def burst_lines(burst):
    if not burst:
        return []
    b = burst
    after = b["memory_after_drain_bytes"]
    settled = next((i for i, m in enumerate(after)
                    if m <= 2 * b["memory_idle_bytes"]), None)
    return [f'`bench/burst.cc` against a fresh lockd: {b["waiters"]:,} waiters (10x '
            f'the pool\'s first segment) on {b["locks"]} held locks, sent as fast as '
            f'one socket sends: queued in {b["burst_seconds"]:.2f} s, '
            f'{b["queued"]:,} QUEUED, {b["refused"]:,} refused; {b["pool_wait"]:,} '
            f'requests went unanswered while a pool segment was being added '
            f'(retransmitted after 50 ms); {b["pool_segments_added"]} pool segments '
            f'added in all, {b["growth_refused"]} refused by the budget. Kernel '
            f'memory: idle {b["memory_idle_bytes"] / MIB:.2f} MiB, peak '
            f'{b["memory_peak_bytes"] / MIB:.2f} MiB; after the drain '
            f'(' + ", ".join(f'{m / MIB:.2f}' for m in after) + ' MiB, one second '
            f'apart): within 2x of idle after '
            f'{settled if settled is not None else "more than " + str(len(after))} s.', ""]


FUZZ_LEFT = {
    "locks": "locks in the table",
    "pool_live_blocks": "pool blocks live",
    "ended_memos": "remembered endings",
    "clients_added": "client records added",
    "locks_created": "locks created",
    "pool_blocks_allocated": "pool blocks allocated",
    "requests_served": "requests served",
}


def loss_lines(loss):
    if not loss:
        return ["Not measured in this run.", ""]
    first = loss[0]
    base = next((r for r in loss if r["loss_percent"] == 0), None)

    def rel(run, key):
        return fmt_ratio(ratio(run[key], base[key])) if base else "-"

    lines = [f"`bench/loss_latency.sh` (which `scripts/bench.sh` runs; alone: "
             f"`bench/loss_latency.sh --duration={first['seconds']:.0f}s`): "
             "`bench/client_latency.cc` "
             f"through the C++ client library, {first['threads']} threads running "
             f"one-lock transactions (WAIT, EXCLUSIVE, held {first['hold_us']:.0f} us) "
             f"on {first['locks']} hot locks of one fresh lockd, so that many grants "
             "come from a queue, for "
             f"{first['seconds']:.0f} s per loss rate; that share of the packets is "
             "dropped at random both ways in the client namespace (nftables). Grant "
             "latency runs from the ACQUIRE's first transmission to the GRANTED the "
             "library took: retransmissions, probes of queued requests and lost "
             "GRANTED packets included. Ratios are against the 0 % run of the same "
             "invocation; retransmissions count the probes of queued requests too.",
             "",
             "| loss | commits/s | ratio | grant p50 (us) | ratio | grant p99 (us) | "
             "ratio | p99.9 (us) | retransmissions |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in loss:
        lines.append(f"| {r['loss_percent']} % | {fmt(r['commits_per_s'])} | "
                     f"{rel(r, 'commits_per_s')} | {fmt(r['grant_p50_us'])} | "
                     f"{rel(r, 'grant_p50_us')} | {fmt(r['grant_p99_us'])} | "
                     f"{rel(r, 'grant_p99_us')} | {fmt(r['grant_p999_us'])} | "
                     f"{fmt(r['udp_retransmissions'])} |")
    return lines + [""]


def fuzz_unauthenticated_lines(fuzz):
    if not fuzz:
        return []
    f = fuzz
    left = f["left"]
    dropped = f["dropped"]
    accounted = sum(v for k, v in dropped.items() if k != "rx")
    return [f'`bench/fuzz.cc` against a fresh lockd with a key file and no '
            f'`--open_subnets`: {f["packets"]:,} packets from senders without a '
            f'key, sent in {f["send_seconds"]:.1f} s: random well-formed requests, '
            f'unsigned (client 0) or under random client ids (known to lockd or '
            f'not) with random MACs; replays of the {f["captured"]} signed requests '
            f'a key holder sent just before (taking and releasing locks), and '
            f'copies of them with a byte changed; about 30 % malformed. The daemon '
            f'used {100 * f["daemon_cpu_sending"]:.0f} % of a core meanwhile (the '
            f'datapath drops them in the kernel). What they left in lockd, all of '
            f'which must be 0 (-1: not read):', "",
            "| " + " | ".join(FUZZ_LEFT[k] for k in left) + " |",
            "|" + "---|" * len(left),
            "| " + " | ".join(f"{v:,}" for v in left.values()) + " |", "",
            "How lockd dropped them (its counters, over the packets): " +
            ", ".join(f'{k} {v:,}' for k, v in dropped.items()) +
            f'; {accounted:,} of {dropped["rx"]:,} received accounted for.', ""]


def fuzz_signed_lines(fuzz):
    if not fuzz:
        return []
    f = fuzz["signed"]
    if f["empty_after_seconds"] >= 0:
        emptied = f'the table was empty after {f["empty_after_seconds"]:.0f} s'
    elif "locks_at_end" in f:
        emptied = (f'the table was not empty when the watch ended after '
                   f'{f["watched_seconds"]:.0f} s: {f["locks_at_end"]:,} locks left')
    else:
        emptied = 'the table was not empty when the watch ended'
    return [f'`bench/fuzz.cc` again, on the same lockd (`--max_lease_ms=2000`): '
            f'{f["packets"]:,} random requests signed by one client, often for '
            f'stale or unknown owners, in {f["send_seconds"]:.1f} s, the daemon '
            f'using {100 * f["daemon_cpu_sending"]:.0f} % of a core meanwhile; '
            f'{f["reject_quota"]:,} were refused at the client\'s quota. They left '
            f'{f["locks_after"]:,} locks in the table; listing them all page by '
            f'page (as `lockctl locks` does) took {f["list_seconds"]:.3f} s. As '
            f'their leases and waits ended, {emptied} (the daemon at '
            f'{100 * f["daemon_cpu_settling"]:.0f} % of a core meanwhile), and the '
            f'idle daemon used {100 * fuzz["daemon_cpu_idle"]:.1f} % of a core.', ""]


def auth_lines(dp, runs, fuzz):
    lines = []
    if dp and dp.get("auth_cost"):
        ops = {o["id"]: o for o in dp["operations"]}
        lines += ["Per request in the kernel (`bench/datapath_bench.cc`, medians of "
                  "the rows in the table below): the same request from client 0 on "
                  "an open subnet, and signed by a client with a key (its MAC "
                  "checked, its seq taken by the client's replay window, the reply "
                  "signed):", "",
                  "| request | client 0, open subnet ns | signed ns | authentication ns |",
                  "|---|---|---|---|"]
        for a in dp["auth_cost"]:
            lines.append(f'| {a["request"]} | {ops[a["unsigned_id"]]["median_ns"]} | '
                         f'{ops[a["signed_id"]]["median_ns"]} | {a["delta_ns"]:+} |')
        lines += ["", f'Dropping a request whose MAC is forged costs '
                  f'{ops["forged_xdp"]["median_ns"]} ns of kernel time, a replayed '
                  f'one (MAC right, seq seen) {ops["replayed_xdp"]["median_ns"]} ns.',
                  ""]
    by = index(runs)
    for workload in WORKLOADS:
        signed, open_ = by.get((REFERENCE, workload)), by.get(("lockd-open", workload))
        if not (signed and open_):
            continue
        lines.append(
            f'- {workload}, end to end: lockd signed {fmt(signed["locks_per_s"])} '
            f'locks/s = {signed["locks_per_s"] / open_["locks_per_s"]:.2f} of '
            f'lockd-open\'s {fmt(open_["locks_per_s"])}; grant p50 '
            f'{fmt(signed["grant_latency"]["p50_us"])} us vs '
            f'{fmt(open_["grant_latency"]["p50_us"])} us, p99 '
            f'{fmt(signed["grant_latency"]["p99_us"])} us vs '
            f'{fmt(open_["grant_latency"]["p99_us"])} us (load before the runs '
            f'{signed["loadavg_before"]:.1f} vs {open_["loadavg_before"]:.1f}).')
    if lines and lines[-1]:
        lines.append("")
    lines += fuzz_unauthenticated_lines(fuzz)
    return lines


def grpc_lines(runs):
    by = index(runs)
    lines = []
    for workload in ("uniform", "hot1"):
        g = by.get(("lockd-grpc", workload))
        e = by.get(("etcd", workload))
        h = by.get(("lockd-grpc-health", workload))
        if not g:
            continue
        parts = [f'- {workload}: lockd-grpc {fmt(g["locks_per_s"])} locks/s']
        if e:
            parts.append(f'{g["locks_per_s"] / e["locks_per_s"]:.2f}x etcd '
                         f'({fmt(e["locks_per_s"])})')
        if h:
            parts.append(f'{g["locks_per_s"] / h["locks_per_s"]:.2f} of the same calls '
                         f'as Health RPCs ({fmt(h["locks_per_s"])})')
        lines.append("; ".join(parts) + ".")
    return lines + [""] if lines else []


def verdict_lines(verdicts):
    wins = [v for v in verdicts if v[2] < 1]
    losses = [v for v in verdicts if v[2] >= 1]
    lines = ["**Where lockd's fast path loses** (another system's goodput is at "
             "least lockd's):", ""]
    lines += [f"- {w}: {s} {x:.2f}x lockd" for w, s, x in sorted(losses, key=lambda v: -v[2])] \
        or ["- nowhere in this run"]
    lines += ["", "**Where it wins** (the other system's goodput as a fraction of lockd's; "
              "the smallest margins first):", ""]
    lines += [f"- {w}: {s} {x:.2f}x lockd" for w, s, x in sorted(wins, key=lambda v: -v[2])]
    lines.append("")
    return lines


def reflect_lines(runs):
    by = index(runs)
    lines = []
    for workload in WORKLOADS:
        ref = by.get(("xdp-reflect", workload))
        lockd = by.get((REFERENCE, workload))
        if ref and lockd:
            lines.append(
                f'- {workload}: lockd {fmt(lockd["locks_per_s"])} locks/s = '
                f'{lockd["locks_per_s"] / ref["locks_per_s"]:.2f} of the reflector\'s '
                f'{fmt(ref["locks_per_s"])}; grant p50 {fmt(lockd["grant_latency"]["p50_us"])} us '
                f'vs {fmt(ref["grant_latency"]["p50_us"])} us.')
    return lines + [""] if lines else []


def plot(runs, systems, plot_dir, data_dir):
    by = index(runs)
    workloads = [w for w in WORKLOADS if any((s, w) in by for s in systems)]
    shown = [s for s in systems if any((s, w) in by for w in workloads)]
    data_path = os.path.join(data_dir, "goodput.dat")
    with open(data_path, "w") as data:
        data.write("workload " + " ".join(shown) + "\n")
        for w in workloads:
            cells = [str(by[(s, w)]["goodput_txn_per_s"]) if (s, w) in by else "?"
                     for s in shown]
            data.write(w + " " + " ".join(cells) + "\n")
    lat_path = os.path.join(data_dir, "grant_p99.dat")
    with open(lat_path, "w") as data:
        data.write("workload " + " ".join(shown) + "\n")
        for w in workloads:
            cells = [str(by[(s, w)]["grant_latency"]["p99_us"]) if (s, w) in by else "?"
                     for s in shown]
            data.write(w + " " + " ".join(cells) + "\n")
    pngs = []
    for name, path, ylabel in (
            ("goodput", data_path, "committed transactions/s (log)"),
            ("grant_p99", lat_path, "grant latency p99, us (log)")):
        png = os.path.join(plot_dir, name + ".png")
        columns = ", ".join(
            f"'{path}' using {i + 2}:xtic(1) title columnheader({i + 2}) "
            f"lc rgb '{PLOT_COLORS[i % len(PLOT_COLORS)]}'"
            for i in range(len(shown)))
        script = f"""
set terminal pngcairo size 1400,600 noenhanced
set output '{png}'
set style data histograms
set style histogram cluster gap 1
set style fill solid 0.9 border -1
set logscale y
set ylabel '{ylabel}'
set xtics rotate by -30
set key outside right top
set grid ytics
set datafile missing '?'
plot {columns}
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        pngs.append(png)
    return pngs


def build_text(mode, runs):
    """The compilation mode of the binaries the run started, and what the load
    generator says of its own compilation."""
    text = (f"binaries built with `bazel build -c {mode}` (compilation mode {mode}: "
            "load generator, lockd, reflect server, prealloc_memory; BPF objects "
            "always clang -O2)")
    optimized = {r.get("loadgen_optimized") for r in runs} - {None}
    if optimized == {True}:
        text += ", the load generator reports it was compiled optimized"
    elif optimized:
        text += (", **but the load generator reports it was compiled without "
                 "optimization in some runs**")
    return text


def warmup_text(runs):
    """The warm-ups of the closed-loop runs, ZooKeeper's (the JVM's JIT) apart."""
    def seconds(system_runs):
        values = sorted({r["warmup_s"] for r in system_runs if "warmup_s" in r})
        return "/".join(f"{v:g}" for v in values) or "?"
    others = [r for r in closed(runs) if r["system"] != "zk"]
    zk = [r for r in closed(runs) if r["system"] == "zk"]
    text = f"a {seconds(others)} s warm-up"
    if zk:
        text += (f" (ZooKeeper: {seconds(zk)} s, for the JVM's JIT to compile the "
                 "server's hot paths: in trials, after a 1 s warm-up it made 30-50 % "
                 "fewer locks/s)")
    return text


def image(png, markdown, alt):
    """A markdown image link to `png`, relative to the document."""
    path = os.path.relpath(png, os.path.dirname(os.path.abspath(markdown)))
    return f"![{alt}]({path})"


ZK_COUNTERS = ("zk_sessions", "zk_requests", "lists", "relists", "watches",
               "watches_fired", "predecessor_gone", "parent_creates",
               "session_events", "errors")


def zk_counter_table(runs):
    """What ZooKeeper's recipe did per run, from the zk driver's counters."""
    rows = [r for r in runs if r["system"] == "zk"]
    if not rows:
        return []
    lines = ["ZooKeeper's recipe at work: the zk driver's counters over the whole "
             "run (warm-up and drain included, so per-lock figures are approximate). "
             "`relists` are the recipe's retries: a waiter lists the lock's children "
             "again after its watched node went (`watches_fired`) or was gone before "
             "the watch was set (`predecessor_gone`). `parent_creates`: lock znodes "
             "created lazily (CONTAINER nodes, as Curator's).", "",
             "| workload | mode | offered txn/s | " + " | ".join(ZK_COUNTERS) + " |",
             "|---|---|---|" + "---|" * len(ZK_COUNTERS)]
    for r in rows:
        c = r.get("driver_counters", {})
        lines.append(f'| {r["workload"]} | {r["mode"]} | '
                     f'{fmt(r["offered_txn_per_s"]) if r["mode"] == "open" else "-"} | ' +
                     " | ".join(fmt(c.get(k)) for k in ZK_COUNTERS) + " |")
    return lines + [""]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", required=True)
    parser.add_argument("--prealloc")
    parser.add_argument("--command", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--plot_dir", required=True,
                        help="where the PNG plots go (docs/img: committed)")
    parser.add_argument("--data_dir",
                        help="where the plots' data go (default: beside --results)")
    parser.add_argument("--reading")
    parser.add_argument("--build_mode", default="fastbuild")
    for extra in ("datapath", "datapath_noprealloc", "churn_bench", "idle", "burst",
                  "fuzz"):
        parser.add_argument("--" + extra)
    parser.add_argument("--loss", help="bench/loss_latency.sh --json output")
    args = parser.parse_args()

    with open(args.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    prealloc = None
    if args.prealloc and os.path.exists(args.prealloc):
        with open(args.prealloc) as f:
            prealloc = prealloc_summary(json.load(f))
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in runs)]
    dp = load_json(args.datapath)
    dp_no = load_json(args.datapath_noprealloc)
    churn_bench = load_json(args.churn_bench)
    idle = load_json(args.idle)
    burst = load_json(args.burst)
    fuzz = load_json(args.fuzz)
    loss = []
    if args.loss and os.path.exists(args.loss):
        with open(args.loss) as f:
            loss = [json.loads(line) for line in f if line.strip()]
    ratio_lines, verdicts = ratio_matrix(runs, systems)
    host = machine()
    results = {
        "command": args.command,
        "build_mode": args.build_mode,
        "machine": host,
        "runs": runs,
        "prealloc": prealloc,
        "datapath": dp,
        "datapath_noprealloc": dp_no,
        "churn_bench": churn_bench,
        "idle": idle,
        "burst": burst,
        "fuzz": fuzz,
        "loss": loss,
        "goodput_vs_lockd": [{"workload": w, "system": s, "ratio": x}
                             for w, s, x in verdicts],
    }
    with open(args.results, "w") as f:
        json.dump(results, f, indent=1)
    pngs = plot(runs, systems, args.plot_dir,
                args.data_dir or os.path.dirname(os.path.abspath(args.results)))
    goodput_png, grant_png = pngs

    first = runs[0] if runs else {}
    lines = [
        "# Benchmarks: lockd side by side",
        "",
        "<!-- Generated by bench/report.py from bench/out/results.json; do not "
        "edit by hand: rerun the command below. -->",
        "",
        f"Produced by `{args.command}` on {host['date']}: {host['nproc']} cores "
        f"({host['cpu']}), {host['memory_gib']} GiB, kernel {host['kernel']}; "
        f"{build_text(args.build_mode, runs)}; {host['redis']}; "
        f"{host['etcd'].replace(chr(10), ' ')}; {host['zookeeper']}.",
        f"Each closed-loop run: {first.get('duration_s', '?')} s measured after "
        f"{warmup_text(runs)}, {first.get('threads', '?')} load generator threads. "
        "Everything (load generator, servers, kernel fast path) shares the same 2 "
        "cores, so absolute figures are low and noisy; compare ratios.",
        "",
        "Plots: " + ", ".join(f"`docs/img/{os.path.basename(p)}`" for p in pngs) +
        " (committed with this document), shown below beside their tables.",
        "",
        "## Set-up",
        "",
        "The load generator (`bench/loadgen.cc`) runs in a client network namespace "
        "and talks over one veth pair to the servers in a server namespace "
        "(198.18.0.1). Sessions are multiplexed on two epoll threads. Each session "
        "runs strict-2PL transactions: it acquires the transaction's locks one "
        "after the other in lock id order, and releases all of them once all are "
        "held (no hold time): a commit. A rejection (NO_WAIT conflict) aborts the "
        "attempt: the held locks are released and the same transaction is retried "
        "after a random exponential backoff (20 us doubling to 2 ms). Grant latency "
        "is from sending an acquire to holding the lock (queueing and polling "
        "included). Jain's index is over the sessions' commits in the measured "
        "window. Memory: VmRSS of the server process sampled every 250 ms, and "
        "the kernel's memlock of lockd's BPF maps.",
        "",
        "Lock modes: lockd and ZooKeeper take every lock in the workload's mode, "
        "shared or exclusive. Redis and etcd have no shared lock and take every lock "
        "exclusively, so on workloads with shared locks they serialize what lockd "
        "and ZooKeeper let share.",
        "",
        "| system | what |",
        "|---|---|",
    ]
    lines += [f"| {s} | {SYSTEMS[s]} |" for s in systems]
    lines += ["", "lockd runs with default flags (a fresh server for each run, "
              "`--keep_state=false`) and a key file of fresh client keys "
              "(`bench/make_key_file.cc`): each load generator session signs its "
              "requests as a client of its own (`bench/signer.h`), lockd-open "
              "excepted. Its memory follows the live locks and waiters "
              "within the default 256 MiB budget. Redis, etcd and ZooKeeper are Debian's "
              "packages, run in the server namespace only; ZooKeeper standalone "
              "(`bench/zk_server.sh`: heap at most 1 GiB, no admin server), started "
              "afresh for each run as etcd is.", "",
              "## Goodput against lockd's fast path", "",
              "Committed transactions/s of each system divided by lockd's fast path "
              "(WAIT) on the same workload; above 1.00x the other system is better.", ""]
    lines += ratio_lines
    lines += ["", image(goodput_png, args.markdown,
                        "Committed transactions/s per workload and system, log scale")]
    lines += ["", "lockd's fast path as a fraction of the XDP reflector (the same "
              "packets, answered without any lock state):", ""]
    lines += reflect_lines(runs)
    lines += ["The gRPC LockService against etcd, and against the same calls as "
              "trivial Health RPCs driven the same way:", ""]
    lines += grpc_lines(runs)
    lines += verdict_lines(verdicts)
    lines += ["## What authentication costs", ""]
    lines += auth_lines(dp, runs, fuzz)
    lines += ["## Every closed-loop run", "",
              "`load before` is the 1-minute load average when the run started; the "
              "benchmark itself accounts for about 2-3 (two load generator threads and "
              "the server). Higher means other work shared the 2 cores during the run.",
              "", image(grant_png, args.markdown,
                        "Grant latency p99 per workload and system, log scale"), ""]
    lines += workload_tables(runs, systems)
    lines += zk_counter_table(runs)
    ol = open_loop_table(runs)
    if ol:
        lines += ["## Open loop (fixed offered rate, Poisson arrivals)", "",
                  "Latency counts from the arrival, so a server that falls behind shows "
                  "it as queueing (arrivals finding the bounded queue full are dropped).", ""]
        lines += ol + [""]
    lines += ["## Packet loss", ""]
    lines += loss_lines(loss)
    lines += ["## Memory follows use", ""]
    lines += idle_lines(idle)
    lines += ["### Lock-id churn", ""]
    lines += churn_lines(runs, churn_bench)
    lines += ["### A burst of waiters", ""]
    lines += burst_lines(burst)
    lines += ["### After random requests of a key holder", ""]
    lines += fuzz_signed_lines(fuzz)
    lines += ["### Against fixed slots", ""]
    lines += memory_section(runs, prealloc, churn_bench)
    lines += ["## The kernel fast path, per operation", ""]
    lines += datapath_section(dp, dp_no)
    lines += pool_choice_lines(prealloc)
    if args.reading and os.path.exists(args.reading):
        with open(args.reading) as f:
            lines += [f.read().rstrip(), ""]
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
