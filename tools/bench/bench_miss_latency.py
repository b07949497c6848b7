#!/usr/bin/env python3
"""Miss -> entries programmed: how fast the daemon answers an L3 miss, against a minimal reactor.

    /tmp/venv/bin/python tools/bench/bench_miss_latency.py --quick     # < 60 s
    /tmp/venv/bin/python tools/bench/bench_miss_latency.py             # 10 s per rate
    /tmp/venv/bin/python tools/bench/bench_miss_latency.py --rates 50,1000,5000 --duration 5 \\
        --daemon-arg=--no-log-events

Needs root. Builds one host netns (vx-42 with l2miss l3miss proxy nolearning on a veth
underlay, bridge br-42) and a container netns behind the bridge, all `vxevt-b-*`, and
deletes them on exit (also on Ctrl-C). From the container, `missgen.py` sends ARP
requests at a steady rate R, each for a different peer IP of the peers file, so each one
is a fresh L3 miss on vx-42. A netlink socket of ours in the host netns stamps
(CLOCK_MONOTONIC) the arrival of the miss notification and of the RTM_NEWNEIGH for the
neighbour entry (and the FDB entry) of that IP. Latency = notification time - send time.

Two answerers, one after the other, on the same rig, the tables flushed before each run:
* reference: `reactor.py`, a netlink loop writing lines into long-running
  `ip -force -batch -` and `bridge -force -batch -` processes;
* daemon: the real `python -m vxlan_evt serve --peers FILE` in the host netns (its
  own defaults: event log lines, ARP answers into the container's veth; vx-42 is a
  hand-made link, so nothing is pre-programmed and every request is a miss). Before
  each run the bench waits until the daemon has digested the flush's notifications.
The ratio is daemon / reference (above 1: the daemon is slower).

Output: latency to the neighbour entry (and to both entries) per rate; "lost" = no
answer seen by the end of the run (no notification for --idle seconds, at most 60 s
after the last request), in brackets those without even a miss notification. Then the
split send -> miss notification -> neighbour entry, as seen by our watcher thread (its
wake-up is in both parts, for both answerers), the answered rate, and the daemon's
own view: write batches and their time (/metrics), CPU per answered miss of its main
thread (listener, decoding, logging, resolver, HTTP) and of its other threads (the
netlink worker's pyroute2 calls), and misses dropped because its resolver queue was full.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from vxlan_evt.testing.bench.rig import MissRig, NeighWatcher, miss_rig, run_bench
from vxlan_evt.testing.bench.stats import (
    Summary,
    format_ms,
    format_table,
    ns_to_ms,
    ratio,
    summarize,
)
from vxlan_evt.testing.bench.wire import (
    AF_BRIDGE,
    parse_neigh_messages,
    peer_ip,
    peer_mac,
    write_peers_file,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

PYTHON = sys.executable
IDLE_S = 10.0  # a run ends when no notification came for this long after the last request,
CAP_S = 60.0  # or at the latest this long after it
WARMUP = 50


# --- watching the kernel ---------------------------------------------------------------------


@dataclass
class Seen:
    """First arrival (monotonic ns) of each notification kind, per peer IP."""

    miss: dict[str, int] = field(default_factory=dict)
    neigh: dict[str, int] = field(default_factory=dict)
    fdb: dict[str, int] = field(default_factory=dict)

    def add(self, t: int, data: bytes, ifindex: int, ip_of_mac: dict[str, str]) -> None:
        for msg in parse_neigh_messages(data):
            if msg.ifindex != ifindex:
                continue
            if msg.kind == "miss" and msg.ip is not None:
                self.miss.setdefault(msg.ip, t)
            elif msg.kind == "new" and msg.family == AF_BRIDGE and msg.mac in ip_of_mac:
                self.fdb.setdefault(ip_of_mac[msg.mac], t)
            elif msg.kind == "new" and msg.family != AF_BRIDGE and msg.ip is not None:
                self.neigh.setdefault(msg.ip, t)


# --- the answerers ---------------------------------------------------------------------------


class Answerer:
    """What answers the misses during a run: started before, stopped after."""

    name = "answerer"

    def stop(self) -> None:
        raise NotImplementedError

    def counters(self) -> dict[str, float]:
        return {}

    def settle(self) -> None:
        """Return once the answerer has digested what happened so far (e.g. a flush)."""


def _terminate(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Reference(Answerer):
    name = "reference"

    def __init__(self, rig: MissRig, peers: Path) -> None:
        argv = rig.host.exec_argv(PYTHON, str(HERE / "reactor.py"), "--peers", str(peers))
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            _terminate(self.process)
            raise RuntimeError("reference reactor did not start")

    def stop(self) -> None:
        _terminate(self.process)


_METRIC = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.eE+-]+|NaN|\+Inf)$")
WANTED = {
    "writes": "vxlan_evt_netlink_write_seconds_count",
    "write_seconds": "vxlan_evt_netlink_write_seconds_sum",
    "answered": 'vxlan_evt_misses_total{result="answered",type="l3miss"}',
    "dropped": "vxlan_evt_resolver_dropped_total",
    "enobufs": "vxlan_evt_netlink_enobufs_total",
    "arp_sent": 'vxlan_evt_arp_answers_total{family="ipv4",result="sent"}',
    "events": "vxlan_evt_events_total",  # summed over every type
}


def parse_metrics(text: str) -> dict[str, float]:
    """The few counters of `WANTED` from a Prometheus text page (absent ones are 0).

    A name without labels also matches the sum over all its labelled series.
    """
    values: dict[str, float] = {}
    for line in text.splitlines():
        found = _METRIC.match(line)
        if found:
            name = found.group(1)
            values[name] = float(found.group(2))
            family = name.split("{", 1)[0]
            if family != name:
                values[family] = values.get(family, 0.0) + float(found.group(2))
    return {key: values.get(name, 0.0) for key, name in WANTED.items()}


class Daemon(Answerer):
    name = "daemon"

    def __init__(self, rig: MissRig, peers: Path, workdir: Path, extra: Sequence[str]) -> None:
        self.api = workdir / "api.sock"
        self.log_path = workdir / "daemon.log"
        argv = rig.host.exec_argv(
            PYTHON, "-m", "vxlan_evt", "serve",
            "--plugin-socket", str(workdir / "plugins" / "vxlan.sock"),
            "--state-dir", str(workdir / "state"),
            "--api-socket", str(self.api),
            "--peers", str(peers),
            *extra,
        )  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            start_new_session=True,
        )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _get(self, resource: str) -> str:
        transport = httpx.HTTPTransport(uds=str(self.api))
        with httpx.Client(transport=transport, timeout=10.0) as client:
            response = client.get(f"http://observe/{resource}")
        response.raise_for_status()
        return response.text

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited early, see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError, OSError):
                self._get("healthz")
                return
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s, see {self.log_path}")

    def counters(self) -> dict[str, float]:
        return {**parse_metrics(self._get("metrics")), **self.cpu()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) of the whole process and of its main thread."""
        ticks = os.sysconf("SC_CLK_TCK")
        pid = self.process.pid  # `ip netns exec` execs python: same pid

        def seconds(path: str) -> float:
            with open(path) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

        try:
            return {
                "cpu_total": seconds(f"/proc/{pid}/stat"),
                "cpu_main": seconds(f"/proc/{pid}/task/{pid}/stat"),
            }
        except OSError:
            return {}

    def settle(self, quiet: float = 0.3, timeout: float = 60.0) -> None:
        """Wait until the daemon's event count stands still for `quiet` seconds.

        A flush of N entries is 2N notifications the daemon decodes and logs;
        without this the next run would measure that backlog too.
        """
        deadline = time.monotonic() + timeout
        last = -1.0
        while time.monotonic() < deadline:
            events = parse_metrics(self._get("metrics"))["events"]
            if events == last:
                return
            last = events
            time.sleep(quiet)

    def stop(self) -> None:
        _terminate(self.process)
        self._log.close()


# --- one run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    answerer: str
    rate: float
    sent: int
    neigh_ms: Summary | None
    both_ms: Summary | None
    kernel_ms: Summary | None  # send -> miss notification
    answer_ms: Summary | None  # miss notification -> neighbour entry
    lost: int  # no neighbour + FDB answer seen by the end of the run
    lost_no_miss: int  # ... of which the watcher saw no miss notification either
    answer_rate: float  # answered / (last answer - first request), per second
    achieved_rate: float
    counters: dict[str, float]


def run_once(
    rig: MissRig,
    watcher: NeighWatcher,
    answerer: Answerer,
    rate: float,
    count: int,
    idle: float = IDLE_S,
) -> RunResult:
    """Flush vx-42, send `count` misses at `rate`, wait for the answers, measure."""
    rig.flush_entries()
    time.sleep(0.2)
    answerer.settle()
    before = answerer.counters()
    cursor = len(watcher.records)
    argv = rig.container.exec_argv(
        PYTHON, str(HERE / "missgen.py"), "--rate", str(rate), "--count", str(count)
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=count / rate + 60)
    if done.returncode != 0:
        raise RuntimeError(f"missgen failed: {done.stderr.strip()}")
    sent_ns: list[int] = json.loads(done.stdout)["sent_ns"]
    ips = [peer_ip(i) for i in range(count)]
    ip_of_mac = {peer_mac(i): peer_ip(i) for i in range(count)}
    seen = Seen()
    now = time.monotonic()
    idle_since, cap = now, now + CAP_S
    while True:
        records = watcher.records[cursor:]
        cursor += len(records)
        for t, data in records:
            seen.add(t, data, rig.vxlan_ifindex, ip_of_mac)
        now = time.monotonic()
        if records:
            idle_since = now
        complete = len(seen.neigh) >= count and len(seen.fdb) >= count
        if complete or now - idle_since > idle or now > cap:
            break
        time.sleep(0.05)
    after = answerer.counters()
    neigh, both, kernel, answer = [], [], [], []
    for ip, sent in zip(ips, sent_ns, strict=True):
        if ip in seen.neigh:
            neigh.append(seen.neigh[ip] - sent)
            if ip in seen.miss:
                answer.append(seen.neigh[ip] - seen.miss[ip])
        if ip in seen.neigh and ip in seen.fdb:
            both.append(max(seen.neigh[ip], seen.fdb[ip]) - sent)
        if ip in seen.miss:
            kernel.append(seen.miss[ip] - sent)
    span = (sent_ns[-1] - sent_ns[0]) / 1e9 if count > 1 else 0.0
    answered = {ip for ip in ips if ip in seen.neigh and ip in seen.fdb}
    last = max((max(seen.neigh[ip], seen.fdb[ip]) for ip in answered), default=sent_ns[0])
    answer_span = (last - sent_ns[0]) / 1e9
    return RunResult(
        answerer=answerer.name,
        rate=rate,
        sent=count,
        neigh_ms=summarize(ns_to_ms(neigh)),
        both_ms=summarize(ns_to_ms(both)),
        kernel_ms=summarize(ns_to_ms(kernel)),
        answer_ms=summarize(ns_to_ms(answer)),
        lost=count - len(answered),
        lost_no_miss=sum(ip not in seen.miss for ip in ips if ip not in answered),
        answer_rate=len(answered) / answer_span if answer_span > 0 else 0.0,
        achieved_rate=(count - 1) / span if span > 0 else 0.0,
        counters={k: after[k] - before.get(k, 0.0) for k in after},
    )


# --- the whole benchmark ---------------------------------------------------------------------


@contextlib.contextmanager
def answering(answerer: Answerer) -> Iterator[Answerer]:
    try:
        yield answerer
    finally:
        answerer.stop()


def measure(
    rig: MissRig,
    watcher: NeighWatcher,
    answerer: Answerer,
    rates: Sequence[float],
    duration: float,
    idle: float,
) -> list[RunResult]:
    """A discarded warm-up, then one run per rate."""
    with answering(answerer):
        run_once(rig, watcher, answerer, 200.0, WARMUP)
        results = []
        for rate in rates:
            count = max(int(rate * duration), 20)
            result = run_once(rig, watcher, answerer, rate, count, idle)
            print(
                f"  {answerer.name:9} {rate:>6g}/s n={count:<6} "
                f"neigh p50/p99/max {format_ms(result.neigh_ms)} ms  lost {result.lost}"
                f" ({result.lost_no_miss} without a miss notification)",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
        return results


def report(reference: Sequence[RunResult], daemon: Sequence[RunResult]) -> str:
    """The comparison table, the one-line verdict per rate, and where the time goes."""
    rows = []
    for ref, ours in zip(reference, daemon, strict=True):
        p50 = ratio(ours.neigh_ms.p50, ref.neigh_ms.p50) if ours.neigh_ms and ref.neigh_ms else 0
        p99 = ratio(ours.neigh_ms.p99, ref.neigh_ms.p99) if ours.neigh_ms and ref.neigh_ms else 0
        rows.append(
            [
                f"{ref.rate:g}",
                f"{ref.sent}",
                format_ms(ref.neigh_ms),
                format_ms(ours.neigh_ms),
                f"{p50:.2f}x/{p99:.2f}x",
                format_ms(ref.both_ms),
                format_ms(ours.both_ms),
                f"{ref.lost} ({ref.lost_no_miss})/{ours.lost} ({ours.lost_no_miss})",
            ]
        )
    header = [
        "rate/s", "n", "reference neigh", "daemon neigh", "ratio p50/p99",
        "reference neigh+fdb", "daemon neigh+fdb", "lost (no miss seen) ref/daemon",
    ]  # fmt: skip
    lines = [
        "L3 miss -> entry programmed, ms (p50/p99/max), each request a fresh miss:",
        format_table(header, rows),
        "",
    ]
    for ref, ours in zip(reference, daemon, strict=True):
        if ours.neigh_ms and ref.neigh_ms:
            lines.append(
                f"{ref.rate:>6g}/s: daemon p50/p99 {ours.neigh_ms.p50:.2f}/{ours.neigh_ms.p99:.2f} ms"
                f" vs reference p50/p99 {ref.neigh_ms.p50:.2f}/{ref.neigh_ms.p99:.2f} ms"
                f" -> ratio {ratio(ours.neigh_ms.p50, ref.neigh_ms.p50):.2f}x"
                f"/{ratio(ours.neigh_ms.p99, ref.neigh_ms.p99):.2f}x"
            )
    lines += ["", "Where the time goes (ms, p50/p99/max):"]
    rows = [
        [
            f"{ref.rate:g}",
            f"{ref.achieved_rate:.0f}/{ours.achieved_rate:.0f}",
            f"{ref.answer_rate:.0f}/{ours.answer_rate:.0f}",
            format_ms(ref.kernel_ms),
            format_ms(ours.kernel_ms),
            format_ms(ref.answer_ms),
            format_ms(ours.answer_ms),
        ]
        for ref, ours in zip(reference, daemon, strict=True)
    ]
    header = [
        "rate/s", "sent/s ref/daemon", "answered/s ref/daemon", "send->miss ref",
        "send->miss daemon", "miss->neigh ref", "miss->neigh daemon",
    ]  # fmt: skip
    lines += [format_table(header, rows), "", "Inside the daemon (its /metrics and /proc):"]
    rows = []
    for ours in daemon:
        c = ours.counters
        writes, answered = c.get("writes", 0.0), c.get("answered", 0.0)
        main_cpu = c.get("cpu_main", 0.0)
        other_cpu = c.get("cpu_total", 0.0) - main_cpu
        rows.append(
            [
                f"{ours.rate:g}",
                f"{answered:.0f}",
                f"{writes:.0f}",
                f"{answered / writes:.1f}" if writes else "-",
                f"{1000 * c.get('write_seconds', 0.0) / writes:.2f}" if writes else "-",
                f"{1000 * main_cpu / answered:.2f}/{1000 * other_cpu / answered:.2f}"
                if answered
                else "-",
                f"{c.get('dropped', 0.0):.0f}/{c.get('enobufs', 0.0):.0f}",
            ]
        )
    header = [
        "rate/s", "answered", "write batches", "misses/batch", "ms/batch",
        "CPU ms/miss main/threads", "dropped/enobufs",
    ]  # fmt: skip
    lines.append(format_table(header, rows))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="2 s per rate (< 60 s in all)")
    parser.add_argument(
        "--rates", default="50,200,1000", help="comma-separated miss rates per second"
    )
    parser.add_argument("--duration", type=float, help="seconds per rate (default 10, quick 2)")
    parser.add_argument(
        "--daemon-arg", action="append", default=[], help="extra `serve` flag (repeatable)"
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=IDLE_S,
        help="end a run when no notification came for this long after the last request "
        f"(default {IDLE_S:g} s; runs end at the latest {CAP_S:g} s after it)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work dir (daemon log, peers file)"
    )
    parser.add_argument(
        "--remove-stale", action="store_true", help="first delete leftover vxevt-b-* namespaces"
    )
    args = parser.parse_args(argv)
    args.rate_list = [float(r) for r in args.rates.split(",") if r]
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    count = max(max(int(r * args.duration), 20) for r in args.rate_list)

    def body(workdir: Path) -> str:
        peers = write_peers_file(workdir / "peers.json", max(count, WARMUP))
        with miss_rig() as rig:
            watcher = NeighWatcher(rig.host.name, rcvbuf=64 << 20)
            try:
                print(f"rig: host {rig.host.name}, container {rig.container.name}", file=sys.stderr)
                plan = (args.rate_list, args.duration, args.idle)
                reference = measure(rig, watcher, Reference(rig, peers), *plan)
                daemon = measure(rig, watcher, Daemon(rig, peers, workdir, args.daemon_arg), *plan)
            finally:
                watcher.close()
            if watcher.overflows:
                print(f"warning: watcher socket overflowed {watcher.overflows}x", file=sys.stderr)
        return report(reference, daemon)

    return run_bench("miss", args, body)


if __name__ == "__main__":
    sys.exit(main())
