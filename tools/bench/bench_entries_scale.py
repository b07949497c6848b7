#!/usr/bin/env python3
"""Kernel entries per host at 10k remote endpoints: pre-programmed vs on demand with 1% in use.

    .venv/bin/python tools/bench/bench_entries_scale.py --quick    # 2k endpoints, ~30 s
    .venv/bin/python tools/bench/bench_entries_scale.py            # 10k endpoints, ~1 min
    .venv/bin/python tools/bench/bench_entries_scale.py --endpoints 50000 --vteps 500 \\
        --daemon-arg=--no-log-events

Needs root. One peers file: --endpoints remote endpoints on VNI 42 (IP 10.42.0.10 + i,
MAC 02:bb:..., spread round-robin over --vteps remote VTEPs 10.99.1.1, 10.99.1.2, ...).
For each mode a fresh host netns and a container netns behind its bridge, all
`vxevt-b-*`, deleted on exit (also on Ctrl-C, SIGTERM or a failure) after the daemon:

    container: eth0 10.42.255.254/16 (from Join)  -- vh* on br-42 <- vx-42 on ul0
    host: ul0 10.99.0.1/16 <-> ul1 (both ends here: encapsulated frames end on ul1)

The real `python -m vxlan_evt serve --peers FILE` runs in the host netns; the network
(l2miss l3miss proxy nolearning, no Group: head-end replication) and the endpoint are made
through the plugin API as Docker would. Modes (the network's Resolve option):

* preprogram: every endpoint's FDB + neighbour entry is written up front. Time to
  programmed = from just before CreateNetwork until a netlink socket of ours in the host
  netns has seen the RTM_NEWNEIGH of the last of them on vx-42;
* on-demand: nothing up front; an entry is written on a miss and removed when idle.

Then 1% of the endpoints (--in-use, default 1% of --endpoints) are put in use: the container
sends one ARP request for each (`missgen.py`, --rate per second). With on-demand each is an
L3 miss that the daemon programs (send -> both entries seen: per-miss latency); with
preprogram vx-42's proxy answers them. After the daemon is idle again the entries on vx-42
are counted from dumps: FDB = `bridge fdb show dev vx-42` lines with `self` and `dst`
(per-endpoint, and all-zeros flood entries), neighbour = `ip neigh show dev vx-42` lines.
Also the daemon's RSS (VmRSS, after start and at the end) and CPU time.

Reference, same run: `bridge -batch` + `ip -batch` writing the same entries into a
hand-made vx-42 in a netns of its own (time from spawn to exit), next to the daemon's time
to programmed. Ratios: on-demand / preprogram for entries and RSS; daemon / reference for
the time. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vxlan_evt.testing.bench.rig import (
    Daemon,
    NeighWatcher,
    Netns,
    RigError,
    add_loop_underlay,
    add_vxlan,
    create_network,
    join,
    run,
    run_bench,
)
from vxlan_evt.testing.bench.stats import format_ms, format_table, ratio, summarize
from vxlan_evt.testing.bench.wire import (
    AF_BRIDGE,
    CONTAINER_IP,
    CONTAINER_MAC,
    MAX_PEERS,
    VNI,
    VXLAN,
    parse_neigh_messages,
    peer_ip,
    peer_mac,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

PYTHON = sys.executable
ZERO_MAC = "00:00:00:00:00:00"
VTEP_BASE = int(ipaddress.IPv4Address("10.99.1.1"))
ANSWERED = 'vxlan_evt_misses_total{result="answered",type="l3miss"}'
SETTLE_S = 0.3


def vtep(index: int, vteps: int) -> str:
    """The remote VTEP of endpoint `index`: round-robin over 10.99.1.1 .. 10.99.1.0 + vteps."""
    return str(ipaddress.IPv4Address(VTEP_BASE + index % vteps))


def used_fdb(index: int, vteps: int) -> tuple[str, str]:
    """The FDB entry (MAC, dst) endpoint `index` needs."""
    return peer_mac(index), vtep(index, vteps)


def write_peers(path: Path, endpoints: int, vteps: int) -> Path:
    peers = [
        {"ip": peer_ip(i), "mac": peer_mac(i), "vtep": vtep(i, vteps)} for i in range(endpoints)
    ]
    path.write_text(json.dumps({str(VNI): peers}))
    return path


# --- watching the kernel ---------------------------------------------------------------------


@dataclass
class Seen:
    """First RTM_NEWNEIGH (monotonic ns) per neighbour IP and per FDB (MAC, dst) on one device."""

    ifindex: int
    neigh: dict[str, int] = field(default_factory=dict)
    fdb: dict[tuple[str, str | None], int] = field(default_factory=dict)
    cursor: int = 0

    def update(self, watcher: NeighWatcher) -> None:
        records = watcher.records[self.cursor :]
        self.cursor += len(records)
        for t, data in records:
            for msg in parse_neigh_messages(data):
                if msg.kind != "new" or msg.ifindex != self.ifindex:
                    continue
                if msg.family == AF_BRIDGE and msg.mac is not None:
                    self.fdb.setdefault((msg.mac, msg.ip), t)  # ip: the NDA_DST, a VTEP
                elif msg.family != AF_BRIDGE and msg.ip is not None:
                    self.neigh.setdefault(msg.ip, t)


FdbKey = tuple[str, str | None]


def wait_seen(
    seen: Seen, watcher: NeighWatcher, ips: Sequence[str], fdbs: Sequence[FdbKey], timeout: float
) -> bool:
    """Until every IP's neighbour entry and every FDB entry was seen; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        seen.update(watcher)
        if all(ip in seen.neigh for ip in ips) and all(key in seen.fdb for key in fdbs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# --- counting ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    fdb_endpoints: int  # `self` entries with a dst, per MAC
    fdb_flood: int  # all-zeros `self` entries (head-end replication)
    neigh: int  # every neighbour entry on vx-42
    neigh_permanent: int

    @property
    def total(self) -> int:
        return self.fdb_endpoints + self.fdb_flood + self.neigh


def count_entries(host: Netns) -> Counts:
    fdb = [
        line
        for line in host.bridge("fdb", "show", "dev", VXLAN).splitlines()
        if " self" in line and " dst " in line
    ]
    neigh = host.ip("neigh", "show", "dev", VXLAN).splitlines()
    flood = sum(line.startswith(ZERO_MAC) for line in fdb)
    return Counts(
        fdb_endpoints=len(fdb) - flood,
        fdb_flood=flood,
        neigh=len(neigh),
        neigh_permanent=sum("PERMANENT" in line for line in neigh),
    )


# --- one mode ------------------------------------------------------------------------------------


@dataclass
class ModeResult:
    mode: str
    programmed_s: float | None  # CreateNetwork -> last pre-programmed entry seen
    create_s: float  # the CreateNetwork call itself
    idle_s: float  # CreateNetwork -> the daemon's event count stands still (+-SETTLE_S)
    before_use: Counts
    after_use: Counts
    miss_ms: list[float]  # on demand: ARP request sent -> both entries seen
    unanswered: int  # in-use endpoints without both entries after the wait
    misses_answered: float
    rss_start_kib: int
    rss_end_kib: int
    cpu_s: float  # daemon CPU from CreateNetwork until idle after the in-use phase
    overflows: int


def run_mode(mode: str, args: argparse.Namespace, peers: Path, workdir: Path) -> ModeResult:
    with contextlib.ExitStack() as stack:
        host = Netns("host")
        stack.callback(host.close)
        container = Netns("ct")
        stack.callback(container.close)
        print(f"[{mode}] rig: {host.name} {container.name}", file=sys.stderr, flush=True)
        add_loop_underlay(host, "10.99.0.1/16")
        watcher = NeighWatcher(host.name, rcvbuf=256 << 20)
        stack.callback(watcher.close)
        daemon = Daemon(host, workdir / mode, "--peers", str(peers), *args.daemon_arg)
        stack.callback(daemon.stop)
        daemon.settle()
        rss_start = daemon.rss_kib()
        cpu_start = daemon.cpu_seconds()

        started = time.monotonic_ns()
        create_network(daemon, src_addr="10.99.0.1", resolve=mode)
        create_s = (time.monotonic_ns() - started) / 1e9
        seen = Seen(host.ifindex(VXLAN))
        programmed_s: float | None = None
        if mode == "preprogram":
            ips = [peer_ip(i) for i in range(args.endpoints)]
            fdbs = [used_fdb(i, args.vteps) for i in range(args.endpoints)]
            fdbs += [
                (ZERO_MAC, vtep(j, args.vteps)) for j in range(min(args.vteps, args.endpoints))
            ]
            if not wait_seen(seen, watcher, ips, fdbs, args.timeout):
                print(f"[{mode}] not every entry seen within {args.timeout:g} s", file=sys.stderr)
            else:
                last = max([seen.neigh[ip] for ip in ips] + [seen.fdb[key] for key in fdbs])
                programmed_s = (last - started) / 1e9
                print(f"[{mode}] programmed in {programmed_s:.3f} s", file=sys.stderr, flush=True)
        daemon.settle(quiet=SETTLE_S)
        idle_s = (time.monotonic_ns() - started) / 1e9 - SETTLE_S
        join(daemon, container, "c" * 64, f"{CONTAINER_IP}/16", CONTAINER_MAC)
        daemon.settle()
        before = count_entries(host)
        print(f"[{mode}] before use: {before}", file=sys.stderr, flush=True)

        # 1% in use: one ARP request per in-use endpoint from the container.
        answered_before = daemon.metric(ANSWERED)
        argv = container.exec_argv(
            PYTHON, str(HERE / "missgen.py"), "--rate", str(args.rate), "--count", str(args.in_use)
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RigError(f"missgen failed: {done.stderr.strip()}")
        sent_ns: list[int] = json.loads(done.stdout)["sent_ns"]
        used_ips = [peer_ip(i) for i in range(args.in_use)]
        used_fdbs = [used_fdb(i, args.vteps) for i in range(args.in_use)]
        miss_ms: list[float] = []
        unanswered = 0
        if mode == "on-demand":
            wait_seen(seen, watcher, used_ips, used_fdbs, 30.0)
            for ip, key, sent in zip(used_ips, used_fdbs, sent_ns, strict=True):
                if ip in seen.neigh and key in seen.fdb:
                    miss_ms.append((max(seen.neigh[ip], seen.fdb[key]) - sent) / 1e6)
                else:
                    unanswered += 1
        daemon.settle()
        after = count_entries(host)
        print(f"[{mode}] after use: {after}", file=sys.stderr, flush=True)
        if "Traceback" in daemon.log_tail(1_000_000):
            print(f"[{mode}] warning: traceback in {daemon.log_path}", file=sys.stderr)
        return ModeResult(
            mode=mode,
            programmed_s=programmed_s,
            create_s=create_s,
            idle_s=idle_s,
            before_use=before,
            after_use=after,
            miss_ms=miss_ms,
            unanswered=unanswered,
            misses_answered=daemon.metric(ANSWERED) - answered_before,
            rss_start_kib=rss_start,
            rss_end_kib=daemon.rss_kib(),
            cpu_s=daemon.cpu_seconds() - cpu_start,
            overflows=watcher.overflows,
        )


def run_reference(endpoints: int, vteps: int) -> tuple[float, float, int]:
    """(bridge -batch seconds, ip -batch seconds, entries) into a hand-made vx-42."""
    ns = Netns("ref")
    try:
        add_vxlan(ns, bridge=False)
        fdb = [
            f"fdb replace {peer_mac(i)} dev {VXLAN} dst {vtep(i, vteps)} self permanent\n"
            for i in range(endpoints)
        ]
        fdb += [
            f"fdb append {ZERO_MAC} dev {VXLAN} dst {vtep(j, vteps)} self permanent\n"
            for j in range(min(vteps, endpoints))
        ]
        neigh = [
            f"neigh replace {peer_ip(i)} lladdr {peer_mac(i)} dev {VXLAN} nud permanent\n"
            for i in range(endpoints)
        ]
        started = time.perf_counter()
        run(["bridge", "-n", ns.name, "-batch", "-"], input="".join(fdb))
        bridge_s = time.perf_counter() - started
        started = time.perf_counter()
        run(["ip", "-n", ns.name, "-batch", "-"], input="".join(neigh))
        ip_s = time.perf_counter() - started
        counts = count_entries(ns)
        return bridge_s, ip_s, counts.total
    finally:
        ns.close()


# --- report --------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, results: dict[str, ModeResult], reference: tuple[float, float, int]
) -> str:
    pre, ond = results.get("preprogram"), results.get("on-demand")
    lines = [
        f"Kernel entries on vx-42 with {args.endpoints:,} remote endpoints on VNI {VNI} behind "
        f"{args.vteps} VTEPs, {args.in_use} ({100 * args.in_use / args.endpoints:.3g}%) in use:",
    ]
    header = ["", *(r.mode for r in results.values())]
    if pre and ond:
        header.append("on-demand / preprogram")

    def row(name: str, values: list[float], fmt: str = "{:,.0f}") -> list[str]:
        cells = [fmt.format(v) for v in values]
        if pre and ond:
            cells.append(f"{ratio(values[-1], values[0]):.4f}" if values[0] else "-")
        return [name, *cells]

    rs = list(results.values())
    rows = [
        row("FDB entries, per endpoint (self, dst)", [r.after_use.fdb_endpoints for r in rs]),
        row("FDB entries, all-zeros flood", [r.after_use.fdb_flood for r in rs]),
        row("neighbour entries", [r.after_use.neigh for r in rs]),
        row("  of them PERMANENT", [r.after_use.neigh_permanent for r in rs]),
        row("total entries", [r.after_use.total for r in rs]),
        row("total before any use", [r.before_use.total for r in rs]),
        row("daemon RSS after start, MiB", [r.rss_start_kib / 1024 for r in rs], "{:.1f}"),
        row("daemon RSS at the end, MiB", [r.rss_end_kib / 1024 for r in rs], "{:.1f}"),
        row("daemon CPU, s", [r.cpu_s for r in rs], "{:.2f}"),
        row("L3 misses answered (in-use phase)", [r.misses_answered for r in rs]),
    ]
    lines += [format_table(header, rows), ""]
    if pre and ond:
        lines.append(
            f"Entries per host: preprogram {pre.after_use.total:,} vs on-demand "
            f"{ond.after_use.total:,} -> on demand holds "
            f"{ratio(ond.after_use.total, pre.after_use.total):.2%} of them "
            f"({ratio(pre.after_use.total, ond.after_use.total):,.0f}x fewer)."
        )
    bridge_s, ip_s, ref_entries = reference
    if pre is not None and pre.programmed_s is not None:
        ref_s = bridge_s + ip_s
        lines.append(
            f"Time to programmed (preprogram, {pre.after_use.fdb_endpoints + pre.after_use.fdb_flood:,}"
            f" FDB + {pre.after_use.neigh:,} neighbour entries): daemon {pre.programmed_s:.3f} s"
            f" from CreateNetwork (the call itself {pre.create_s:.3f} s) vs reference"
            f" bridge -batch + ip -batch {ref_s:.3f} s ({bridge_s:.3f} + {ip_s:.3f},"
            f" {ref_entries:,} entries) -> ratio {ratio(pre.programmed_s, ref_s):.2f}x"
        )
        lines.append(
            f"The daemon was busy (its event count moving: the notifications of its own writes)"
            f" until {pre.idle_s:.1f} s (+-{SETTLE_S:g} s) after CreateNetwork."
        )
    elif pre is not None:
        lines.append("Time to programmed: the daemon did not program every entry in time.")
    if ond is not None:
        lines.append(
            f"On demand, ARP request -> both entries, ms p50/p99/max: {format_ms(summarize(ond.miss_ms))}"
            f" ({len(ond.miss_ms)} answered, {ond.unanswered} not, at {args.rate:g}/s)"
        )
    overflows = sum(r.overflows for r in rs)
    if overflows:
        lines.append(f"warning: our netlink watcher overflowed {overflows}x (timings incomplete)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 endpoints instead of 10,000")
    parser.add_argument("--endpoints", type=int, help="remote endpoints (default 10000)")
    parser.add_argument("--vteps", type=int, default=100, help="remote VTEPs (default 100)")
    parser.add_argument("--in-use", type=int, help="endpoints put in use (default 1%%)")
    parser.add_argument("--rate", type=float, default=50.0, help="ARP requests/s (default 50)")
    parser.add_argument(
        "--modes", default="preprogram,on-demand", help="comma-separated, default both"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="max seconds for pre-programming"
    )
    parser.add_argument(
        "--daemon-arg", action="append", default=[], help="extra `serve` flag (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (daemon logs)")
    parser.add_argument(
        "--remove-stale", action="store_true", help="first delete leftover vxevt-b-* namespaces"
    )
    args = parser.parse_args(argv)
    args.endpoints = args.endpoints or (2000 if args.quick else 10_000)
    args.in_use = args.in_use or max(args.endpoints // 100, 1)
    args.mode_list = [m for m in args.modes.split(",") if m]
    if set(args.mode_list) - {"preprogram", "on-demand"}:
        parser.error("modes: preprogram, on-demand")
    if not 0 < args.endpoints <= MAX_PEERS or not 0 < args.in_use <= args.endpoints:
        parser.error(f"need 0 < --in-use <= --endpoints <= {MAX_PEERS}")
    if not 0 < args.vteps <= 250:
        parser.error("--vteps must be within 1..250")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def body(workdir: Path) -> str:
        peers = write_peers(workdir / "peers.json", args.endpoints, args.vteps)
        results = {}
        for mode in ("preprogram", "on-demand"):
            if mode in args.mode_list:
                results[mode] = run_mode(mode, args, peers, workdir)
        reference = run_reference(args.endpoints, args.vteps)
        return report(args, results, reference)

    return run_bench("scale", args, body)


if __name__ == "__main__":
    sys.exit(main())
