#!/usr/bin/env python3
"""First ping to a new remote endpoint: on demand with the ARP answer, without it, pre-programmed.

    .venv/bin/python tools/bench/bench_first_ping.py --quick    # 20/20/3 trials, ~40 s
    .venv/bin/python tools/bench/bench_first_ping.py            # 50/50/5 trials, ~1 min
    .venv/bin/python tools/bench/bench_first_ping.py --modes answer --trials 200 \\
        --daemon-arg=--no-log-events

Needs root and `ping` (iputils). For each mode a fresh rig of four namespaces, all
`vxevt-b-*`, deleted on exit (also on Ctrl-C, SIGTERM or a failure) after the daemons:

    container A: eth0 10.42.16.1 + k/16 (k = 0..n)      container B: eth0 10.42.32.1 + k/16
        | veth from Join (vh*) on br-42                     | veth from Join on br-42
    host A: vx-42 on ul0 10.99.0.1  <-- veth underlay -->  host B: vx-42 on ul0 10.99.0.2

Each host runs the real `python -m vxlan_evt serve --peers FILE` (daemon defaults plus
the mode's flags); the network (VNI 42, l2miss l3miss proxy nolearning, no Group) and the
endpoint are made through the plugin API as Docker would, then the container end is moved
into the container netns. Each container then gets n more addresses: A's peers file lists
B's n+1 addresses, B's lists A's (one MAC per container, its host's VTEP).

Trial k pings `10.42.32.1+k` from `10.42.16.1+k` (`ping -c 1 -I ...`): a first ping in
both directions, since neither container nor either host has resolved that pair yet. A's
container must resolve B's address, and B's container must resolve A's address before it
can reply. The RTT is what ping reports, so it includes both waits. Trial 0 is a discarded
warm-up (shown), then trials run one at a time with --gap seconds between them.

Modes (both hosts alike):
* (c) preprogram: `-o Resolve=preprogram`; the bench waits until both hosts hold every
  peer's neighbour entry, so the containers' ARP requests are answered by vx-42's proxy.
  This is the reference;
* (a) answer: `-o Resolve=on-demand` with the ARP answer (`--arp-answer`, the default);
  each ARP request is an L3 miss that the daemon programs, then answers into the veth;
* (b) no-answer: `-o Resolve=on-demand --no-arp-answer`: programmed on the miss as Docker's
  overlay does, the container waits for its own ARP retry (~1 s per side). Fewer trials.

Output: RTT p50/p99/max/mean per mode; ratios (a)/(c) and (b)/(c); whether on-demand
first-ping p99 <= 10 ms is met; where the time goes; and what each daemon did (misses
answered, ARP answers sent, neighbour entries on vx-42), which shows that each mode took
the path it claims to. Where the time goes: a packet socket on A's underlay stamps (kernel
SO_TIMESTAMPNS) the encapsulated echo request going out and the reply coming in, which
splits the RTT into A's side and B's side. On demand, a netlink socket in each host netns
also stamps (on receipt, same clock) the L3 miss and the new neighbour entry on vx-42, which
cuts each side into miss -> entry (the daemon's answer) and entry -> packet out (the rest
of its write, the ARP answer, and the container sending its queued packet).
Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vxlan_evt.kernel.sockets import socket_in_netns
from vxlan_evt.kernel.wire import RTMGRP_NEIGH
from vxlan_evt.testing.bench.rig import (
    Daemon,
    Host,
    RigError,
    add_addresses,
    create_network,
    join,
    run_bench,
    two_hosts,
)
from vxlan_evt.testing.bench.stats import Summary, format_ms, format_table, ratio, summarize
from vxlan_evt.testing.bench.wire import AF_BRIDGE, VNI, VXLAN, parse_neigh_messages

HERE = Path(__file__).resolve().parent

TARGET_P99_MS = 10.0
WARMUP = 1
A_BASE = int(ipaddress.IPv4Address("10.42.16.1"))
B_BASE = int(ipaddress.IPv4Address("10.42.32.1"))
MAX_ADDRESSES = 4000  # 10.42.16.1 + 4000 stays below 10.42.32.1
MACS = {"a": "02:42:0a:2a:10:01", "b": "02:42:0a:2a:20:01"}
PING_WAIT_S = 10
ANSWERED = 'vxlan_evt_misses_total{result="answered",type="l3miss"}'
ARP_SENT = 'vxlan_evt_arp_answers_total{family="ipv4",result="sent"}'


@dataclass(frozen=True, slots=True)
class Mode:
    key: str  # command line name
    label: str  # (a), (b), (c)
    title: str
    resolve: str
    flags: tuple[str, ...]


MODES = {
    "preprogram": Mode("preprogram", "(c)", "pre-programmed (reference)", "preprogram", ()),
    "answer": Mode("answer", "(a)", "on demand + ARP answer", "on-demand", ("--arp-answer",)),
    "no-answer": Mode(
        "no-answer", "(b)", "on demand, no answer", "on-demand", ("--no-arp-answer",)
    ),
}


def address(side: str, k: int) -> str:
    """Address k of container A or B (k = 0 is the endpoint's own, from CreateEndpoint)."""
    if not 0 <= k < MAX_ADDRESSES:
        raise ValueError(f"address index {k} outside 0..{MAX_ADDRESSES - 1}")
    return str(ipaddress.IPv4Address((A_BASE if side == "a" else B_BASE) + k))


def write_peers(path: Path, side: str, count: int, vtep: str) -> Path:
    """The other container's `count` addresses, one MAC, behind its host's VTEP."""
    peers = [{"ip": address(side, k), "mac": MACS[side], "vtep": vtep} for k in range(count)]
    path.write_text(json.dumps({str(VNI): peers}))
    return path


_RTT = re.compile(r"time=([0-9.]+) ms")


def first_ping(host: Host, source: str, target: str) -> float | None:
    """RTT in ms of one echo from `source` to `target` in host's container; None if lost."""
    argv = host.container.exec_argv(
        "ping", "-n", "-c", "1", "-W", str(PING_WAIT_S), "-I", source, target
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PING_WAIT_S + 20)
    found = _RTT.search(done.stdout)
    return float(found.group(1)) if found else None


ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS on Linux
_TIMESPEC = struct.Struct("=qq")


def icmp_echo(frame: bytes) -> tuple[int, str, str] | None:
    """(ICMP type, inner source, inner destination) of a VXLAN-encapsulated echo (UDP 4789)."""
    try:
        if struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP or frame[23] != socket.IPPROTO_UDP:
            return None
        outer = 14 + (frame[14] & 0x0F) * 4
        if struct.unpack_from("!H", frame, outer + 2)[0] != 4789:
            return None
        inner = frame[outer + 16 :]  # UDP 8 + VXLAN 8
        if struct.unpack_from("!H", inner, 12)[0] != ETH_P_IP or inner[23] != socket.IPPROTO_ICMP:
            return None
        icmp = 14 + (inner[14] & 0x0F) * 4
        src, dst = socket.inet_ntoa(inner[26:30]), socket.inet_ntoa(inner[30:34])
        return inner[icmp], src, dst
    except (IndexError, struct.error):
        return None


class WireTap:
    """A thread noting the kernel time (SO_TIMESTAMPNS) at which each encapsulated echo
    request / reply first crosses host A's underlay `ul0`, in either direction."""

    def __init__(self, netns: str) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind(("ul0", ETH_P_ALL))
            return sock

        self._sock = socket_in_netns(netns, make)
        self._sock.settimeout(0.1)
        self.seen: dict[tuple[int, str, str], int] = {}  # (type, src, dst) -> realtime ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wiretap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            stamp = time.time_ns()
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                    stamp = seconds * 1_000_000_000 + nanoseconds
            echo = icmp_echo(data)
            if echo is not None:
                self.seen.setdefault(echo, stamp)

    def remote_ms(self, source: str, target: str) -> float | None:
        """Request out -> reply back on A's underlay: B's share of the RTT (with the wire)."""
        request = self.seen.get((8, source, target))
        reply = self.seen.get((0, target, source))
        return None if request is None or reply is None else (reply - request) / 1e6

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


class NeighTap:
    """A thread noting, on receipt (time.time_ns(), the clock of the kernel's packet stamps),
    the first L3 miss and the first new neighbour entry per IP on one vxlan device."""

    def __init__(self, netns: str, ifindex: int) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((0, RTMGRP_NEIGH))
            return sock

        self.ifindex = ifindex
        self._sock = socket_in_netns(netns, make)
        self._sock.settimeout(0.1)
        self.miss: dict[str, int] = {}
        self.entry: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neightap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: this trial's split is incomplete, nothing worse
                continue
            stamp = time.time_ns()
            for msg in parse_neigh_messages(data):
                if msg.ifindex != self.ifindex or msg.ip is None or msg.family == AF_BRIDGE:
                    continue
                if msg.kind == "miss":
                    self.miss.setdefault(msg.ip, stamp)
                elif msg.kind == "new":
                    self.entry.setdefault(msg.ip, stamp)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


STEPS = (
    "A miss -> entry",
    "A entry -> request out",
    "B request -> miss",
    "B miss -> entry",
    "B entry -> reply in",
    "rest",
)


def split(
    rtt: float, source: str, target: str, wire: WireTap, tap_a: NeighTap, tap_b: NeighTap
) -> dict[str, float] | None:
    """One on-demand trial cut at the misses, the entries and the packets on A's underlay (ms).

    "rest" = RTT - (reply in - A's miss): the ping's send -> A's miss, and the reply's way
    from A's underlay back to ping. None when a stamp is missing (pre-programmed: no miss).
    """
    stamps = (
        tap_a.miss.get(target), tap_a.entry.get(target), wire.seen.get((8, source, target)),
        tap_b.miss.get(source), tap_b.entry.get(source), wire.seen.get((0, target, source)),
    )  # fmt: skip
    if any(t is None for t in stamps):
        return None
    t = [v for v in stamps if v is not None]
    steps = [(t[i + 1] - t[i]) / 1e6 for i in range(5)]
    return dict(zip(STEPS, [*steps, rtt - (t[5] - t[0]) / 1e6], strict=True))


def neigh_count(host: Host) -> int:
    """Neighbour entries (any state) on the host's vx-42."""
    return len(host.netns.ip("neigh", "show", "dev", VXLAN).splitlines())


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RigError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class ModeResult:
    mode: Mode
    rtts: list[float]  # measured trials only
    lost: int
    warmup: list[float | None]
    answered: tuple[float, float]  # L3 misses answered during the trials, daemons A / B
    arp_sent: tuple[float, float]  # ARP answers sent during the trials, A / B
    neigh_before: tuple[int, int]  # neighbour entries on vx-42 before the trials, A / B
    neigh_after: tuple[int, int]
    local_ms: list[float]  # ping sent -> request on A's underlay (A's side, by difference)
    remote_ms: list[float]  # request out -> reply back on A's underlay (B's side + wire)
    steps: dict[str, list[float]]  # on demand: the trial cut at misses, entries, packets

    @property
    def summary(self) -> Summary | None:
        return summarize(self.rtts)


def run_mode(
    mode: Mode, trials: int, gap: float, workdir: Path, extra: Sequence[str]
) -> ModeResult:
    """One fresh rig, two daemons, WARMUP + `trials` first pings."""
    count = WARMUP + trials
    with contextlib.ExitStack() as stack:
        a, b = stack.enter_context(two_hosts())
        print(f"[{mode.key}] rig: {a.netns.name} {b.netns.name}", file=sys.stderr, flush=True)
        daemons: list[Daemon] = []
        for side, me, other in (("a", a, b), ("b", b, a)):
            home = workdir / mode.key / side
            home.mkdir(parents=True)
            other_side = "b" if side == "a" else "a"
            peers = write_peers(home / "peers.json", other_side, count, other.underlay_ip)
            daemon = Daemon(me.netns, home, "--peers", str(peers), *mode.flags, *extra)
            stack.callback(daemon.stop)  # before the namespaces go (LIFO)
            daemons.append(daemon)
            create_network(daemon, src_addr=me.underlay_ip, resolve=mode.resolve)
            join(daemon, me.container, side * 64, f"{address(side, 0)}/16", MACS[side])
            add_addresses(me.container, [f"{address(side, k)}/16" for k in range(1, count)])
        daemon_a, daemon_b = daemons
        if mode.resolve == "preprogram":
            wait_until(
                lambda: neigh_count(a) >= count and neigh_count(b) >= count,
                60,
                "pre-programmed neighbour entries",
            )
        for daemon in daemons:
            daemon.settle()
        before = [(d.metric(ANSWERED), d.metric(ARP_SENT)) for d in daemons]
        neigh_before = (neigh_count(a), neigh_count(b))
        rtts: list[float] = []
        warmup: list[float | None] = []
        local: list[float] = []
        remote: list[float] = []
        lost = 0
        tap = WireTap(a.netns.name)
        stack.callback(tap.close)
        tap_a = NeighTap(a.netns.name, a.netns.ifindex(VXLAN))
        stack.callback(tap_a.close)
        tap_b = NeighTap(b.netns.name, b.netns.ifindex(VXLAN))
        stack.callback(tap_b.close)
        steps: dict[str, list[float]] = {step: [] for step in STEPS}
        for k in range(count):
            rtt = first_ping(a, address("a", k), address("b", k))
            if k < WARMUP:
                warmup.append(rtt)
            elif rtt is None:
                lost += 1
            else:
                rtts.append(rtt)
                time.sleep(0.01)  # let the tap thread take the reply off its socket
                remote_ms = tap.remote_ms(address("a", k), address("b", k))
                if remote_ms is not None:
                    remote.append(remote_ms)
                    local.append(rtt - remote_ms)
                cut = split(rtt, address("a", k), address("b", k), tap, tap_a, tap_b)
                for step, ms in (cut or {}).items():
                    steps[step].append(ms)
            shown = "lost" if rtt is None else f"{rtt:.3f} ms"
            note = " (warm-up)" if k < WARMUP else ""
            print(f"[{mode.key}] trial {k:3d}: {shown}{note}", file=sys.stderr, flush=True)
            time.sleep(gap)
        for daemon in daemons:
            daemon.settle()
        after = [(d.metric(ANSWERED), d.metric(ARP_SENT)) for d in daemons]
        for daemon in (daemon_a, daemon_b):
            if "Traceback" in daemon.log_tail(100_000):
                print(f"[{mode.key}] warning: traceback in {daemon.log_path}", file=sys.stderr)
        return ModeResult(
            mode=mode,
            rtts=rtts,
            lost=lost,
            warmup=warmup,
            answered=(after[0][0] - before[0][0], after[1][0] - before[1][0]),
            arp_sent=(after[0][1] - before[0][1], after[1][1] - before[1][1]),
            neigh_before=neigh_before,
            neigh_after=(neigh_count(a), neigh_count(b)),
            local_ms=local,
            remote_ms=remote,
            steps=steps,
        )


def num(value: float) -> str:
    """Milliseconds for the report: 3 decimals below 1, 2 below 100, whole above."""
    if value < 1:
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def times(value: float) -> str:
    return f"{value:,.1f}x" if value < 100 else f"{value:,.0f}x"


def report(results: Sequence[ModeResult]) -> str:
    header = ["mode", "n", "p50", "p99", "max", "mean", "lost", "warm-up (discarded)"]
    rows = []
    for r in results:
        s = r.summary
        cells = [num(v) for v in (s.p50, s.p99, s.max, s.mean)] if s else ["-"] * 4
        warm = ", ".join("lost" if w is None else num(w) for w in r.warmup)
        rows.append([f"{r.mode.label} {r.mode.title}", str(len(r.rtts)), *cells, str(r.lost), warm])
    lines = [
        "First ping RTT, ms (each trial: a first ping to an address neither side has resolved):",
        format_table(header, rows),
        "",
    ]
    by_key = {r.mode.key: r for r in results}
    reference = by_key.get("preprogram")
    ref = reference.summary if reference else None
    for key in ("answer", "no-answer"):
        ours = by_key[key].summary if key in by_key else None
        if ours and ref:
            lines.append(
                f"{MODES[key].label} / (c): p50 {num(ours.p50)} / {num(ref.p50)} ms = "
                f"{times(ratio(ours.p50, ref.p50))}; p99 {num(ours.p99)} / {num(ref.p99)} ms = "
                f"{times(ratio(ours.p99, ref.p99))}"
            )
    answer = by_key.get("answer")
    if answer and answer.summary:
        p99 = answer.summary.p99
        met = p99 <= TARGET_P99_MS and answer.lost == 0
        lost = f", {answer.lost} lost" if answer.lost else ""
        lines.append(
            f'Target "on-demand first ping p99 <= {TARGET_P99_MS:g} ms": (a) p99 = {num(p99)} ms'
            f"{lost} -> {'MET' if met else 'NOT MET'}"
        )
    no_answer = by_key.get("no-answer")
    if answer and answer.summary and no_answer and no_answer.summary:
        saved = no_answer.summary.p50 - answer.summary.p50
        lines.append(f"The ARP answer saves {saved:,.0f} ms (p50) of an on-demand first ping.")
    header = ["mode", "A: ping -> request on underlay", "B: request -> reply on A's underlay"]
    rows = [
        [f"{r.mode.label} {r.mode.key}", format_ms(summarize(r.local_ms)),
         format_ms(summarize(r.remote_ms))]
        for r in results
    ]  # fmt: skip
    lines += [
        "",
        "Where the time goes, ms p50/p99/max (A resolves B's address, then B resolves A's):",
    ]
    lines.append(format_table(header, rows))
    rows = [
        [f"{r.mode.label} {r.mode.key}", *(format_ms(summarize(r.steps[step])) for step in STEPS)]
        for r in results
        if any(r.steps.values())
    ]
    if rows:
        lines += [
            "",
            "On demand, each trial cut at the L3 miss and the new neighbour entry on each host's"
            " vx-42 (netlink, stamped on receipt)",
            "and at the echo request/reply on A's underlay (kernel stamps); ms p50/p99/max:",
            format_table(["mode", *STEPS], rows),
        ]
    header = ["mode", "L3 misses answered A/B", "ARP answers sent A/B", "vx-42 neigh A/B"]
    rows = [
        [
            f"{r.mode.label} {r.mode.key}",
            "/".join(f"{v:.0f}" for v in r.answered),
            "/".join(f"{v:.0f}" for v in r.arp_sent),
            f"{r.neigh_before[0]}/{r.neigh_before[1]} before, "
            f"{r.neigh_after[0]}/{r.neigh_after[1]} after",
        ]
        for r in results
    ]
    lines += ["", "What the daemons did during the pings (warm-up included):"]
    lines.append(format_table(header, rows))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20/20/3 trials instead of 50/50/5")
    parser.add_argument("--trials", type=int, help="trials for (a) and (c) (default 50, quick 20)")
    parser.add_argument(
        "--slow-trials", type=int, help="trials for (b), ~2 s each (default 5, quick 3)"
    )
    parser.add_argument(
        "--modes",
        default="preprogram,answer,no-answer",
        help="comma-separated subset of preprogram,answer,no-answer (run in that order)",
    )
    parser.add_argument(
        "--gap", type=float, default=0.2, help="seconds between trials (default 0.2)"
    )
    parser.add_argument(
        "--daemon-arg", action="append", default=[], help="extra `serve` flag (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (daemon logs)")
    parser.add_argument(
        "--remove-stale", action="store_true", help="first delete leftover vxevt-b-* namespaces"
    )
    args = parser.parse_args(argv)
    args.trials = args.trials or (20 if args.quick else 50)
    args.slow_trials = args.slow_trials or (3 if args.quick else 5)
    args.mode_list = [m for m in args.modes.split(",") if m]
    unknown = set(args.mode_list) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    if max(args.trials, args.slow_trials) + WARMUP > MAX_ADDRESSES:
        parser.error(f"at most {MAX_ADDRESSES - WARMUP} trials")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def body(workdir: Path) -> str:
        results = []
        for key in ("preprogram", "answer", "no-answer"):
            if key in args.mode_list:
                trials = args.slow_trials if key == "no-answer" else args.trials
                results.append(run_mode(MODES[key], trials, args.gap, workdir, args.daemon_arg))
        return report(results)

    return run_bench("ping", args, body, needs=("ping",), footer=f"gap {args.gap:g} s; ")


if __name__ == "__main__":
    sys.exit(main())
