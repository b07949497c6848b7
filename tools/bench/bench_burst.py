#!/usr/bin/env python3
"""Burst programming: 10k FDB + 10k neighbour entries, the daemon's writer against iproute2's batch mode.

    /tmp/venv/bin/python tools/bench/bench_burst.py --quick       # one round, < 60 s
    /tmp/venv/bin/python tools/bench/bench_burst.py               # three rounds, medians
    /tmp/venv/bin/python tools/bench/bench_burst.py --count 2000 --rounds 5

Needs root. One throwaway netns `vxevt-b-burst-*` with vx-42 (vxlan 42 on a veth
underlay), deleted on exit (also on Ctrl-C). Each round, the vxlan device's tables
start empty and end with exactly `count` `self permanent` FDB entries and `count`
PERMANENT neighbour entries, checked with `bridge fdb show` / `ip neigh show`:

* ours: `netlink.entries.write(writes)` (the daemon's batched `EntryWriter`), in one
  call through `NetlinkWorker.call` under trio (the thread hop included), in a process running
  inside the netns; the writes are interleaved (neigh, fdb) per peer, as the resolver
  and the pre-programmer produce them. Timed around the `call`.
* reference: `bridge -batch -` with `count` `fdb replace ... self permanent` lines, then
  `ip -batch -` with `count` `neigh replace ... nud permanent` lines; each timed from
  spawn to exit (process start-up included, so the reference is, if anything, slowed).
* for scale (not the daemon's path): the same writes hand-encoded with `struct`
  (wire.encode_*), 64 requests per sendmsg on one netlink socket, an ACK asked for
  only on the last of each 64 (errors come back regardless); encoding included.

Prints entries/s (both kinds together) for each and the ratio ours/reference (below 1:
ours is slower).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vxlan_evt.kernel.wire import SO_RCVBUFFORCE
from vxlan_evt.testing.bench.rig import Netns, add_vxlan, handle_sigterm, remove_stale, run
from vxlan_evt.testing.bench.stats import format_table, median, rate, ratio
from vxlan_evt.testing.bench.wire import (
    REMOTE_VTEP,
    VXLAN,
    encode_fdb_replace,
    encode_neigh_replace,
    parse_acks,
    peer_ip,
    peer_mac,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


PIPELINE = 64  # requests per sendmsg for the hand-encoded writer


@dataclass(frozen=True, slots=True)
class Round:
    ours_s: float
    bridge_s: float
    ip_s: float
    encoded_s: float

    @property
    def reference_s(self) -> float:
        return self.bridge_s + self.ip_s


# --- inside the netns: the daemon's writer path ------------------------------------------------


def inner_ours(count: int, ifindex: int) -> dict[str, Any]:
    """Write 2 x `count` entries through NetlinkWorker.call(EntryWriter.write); time the call."""
    import trio

    from vxlan_evt.kernel.worker import NetlinkWorker
    from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry

    vtep = ipaddress.ip_address(REMOTE_VTEP)
    writes: list[Entry] = []
    for i in range(count):
        writes.append(NeighEntry(ifindex, ipaddress.ip_address(peer_ip(i)), peer_mac(i)))
        writes.append(FdbEntry(ifindex, peer_mac(i), vtep))
    result: dict[str, Any] = {}

    async def go() -> None:
        worker = NetlinkWorker()
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await worker.call(lambda nl: None)  # the worker thread exists before timing
            started = time.perf_counter()
            failures = await worker.call(lambda nl: nl.entries.write(writes))
            result["seconds"] = time.perf_counter() - started
            result["failures"] = [f"{entry}: {reason}" for entry, reason in failures[:5]]
            result["failed"] = len(failures)
            nursery.cancel_scope.cancel()

    trio.run(go)
    return result


def inner_encoded(count: int, ifindex: int) -> dict[str, Any]:
    """Write 2 x `count` hand-encoded requests, pipelined; time encoding + sending + ACKs.

    Only the last request of each sendmsg asks for an ACK; a failed request is
    answered with its error anyway, and the kernel handles requests in order, so
    the last ACK means the whole batch is done.
    """
    peers = [(peer_ip(i), peer_mac(i)) for i in range(count)]  # as ours: built before timing
    started = time.perf_counter()
    requests: list[bytes] = []
    for i, (ip, mac) in enumerate(peers):
        seq = 2 * i + 1
        ack = seq % PIPELINE == 0
        requests.append(encode_neigh_replace(seq, ifindex, ip, mac, ack=ack))
        ack = (seq + 1) % PIPELINE == 0 or seq + 1 == 2 * count
        requests.append(encode_fdb_replace(seq + 1, ifindex, mac, REMOTE_VTEP, ack=ack))
    errors: dict[int, int] = {}
    last = 2 * count
    done = False
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        sock.bind((0, 0))

        def drain(block: bool) -> None:
            nonlocal done
            flags = 0 if block else socket.MSG_DONTWAIT
            while True:
                try:
                    data = sock.recv(1 << 20, flags)
                except BlockingIOError:
                    return
                for seq, code in parse_acks(data):
                    if code:
                        errors[seq] = code
                    done |= seq == last
                flags = socket.MSG_DONTWAIT

        for at in range(0, len(requests), PIPELINE):
            sock.send(b"".join(requests[at : at + PIPELINE]))
            drain(block=False)
        while not done:
            drain(block=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "failed": len(errors), "failures": list(errors.items())[:5]}


# --- outside: orchestration --------------------------------------------------------------------


class BurstError(RuntimeError):
    """A round did not leave exactly the expected entries."""


def counts(ns: Netns) -> tuple[int, int]:
    """(self FDB entries, PERMANENT neighbour entries) of vx-42."""
    fdb = ns.bridge("fdb", "show", "dev", VXLAN)
    neigh = ns.ip("neigh", "show", "dev", VXLAN)
    return (
        sum(" self" in line for line in fdb.splitlines()),
        sum("PERMANENT" in line for line in neigh.splitlines()),
    )


def flush(ns: Netns) -> None:
    ns.bridge("fdb", "flush", "dev", VXLAN, "self")
    ns.ip("neigh", "flush", "dev", VXLAN, "nud", "all")
    if counts(ns) != (0, 0):
        raise BurstError(f"vx-42 not empty after flush: {counts(ns)}")


def verify(ns: Netns, count: int, what: str) -> None:
    fdb, neigh = counts(ns)
    if (fdb, neigh) != (count, count):
        raise BurstError(f"{what}: expected {count} FDB and {count} neigh, got {fdb} and {neigh}")


def run_inner(ns: Netns, mode: str, count: int, ifindex: int) -> float:
    """Run this script with `--inner-<mode>` inside the netns; the seconds it measured."""
    argv = ns.exec_argv(
        sys.executable, str(Path(__file__).resolve()), f"--inner-{mode}",
        "--count", str(count), "--ifindex", str(ifindex),
    )  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    if done.returncode != 0:
        raise BurstError(f"{mode} failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    if result["failed"]:
        raise BurstError(f"{mode}: {result['failed']} writes failed, e.g. {result['failures']}")
    return float(result["seconds"])


def timed(argv: list[str], lines: str) -> float:
    started = time.perf_counter()
    run(argv, input=lines)
    return time.perf_counter() - started


def run_reference(ns: Netns, count: int) -> tuple[float, float]:
    fdb = "".join(
        f"fdb replace {peer_mac(i)} dev {VXLAN} dst {REMOTE_VTEP} self permanent\n"
        for i in range(count)
    )
    neigh = "".join(
        f"neigh replace {peer_ip(i)} lladdr {peer_mac(i)} dev {VXLAN} nud permanent\n"
        for i in range(count)
    )
    bridge_s = timed(["bridge", "-n", ns.name, "-batch", "-"], fdb)
    ip_s = timed(["ip", "-n", ns.name, "-batch", "-"], neigh)
    return bridge_s, ip_s


def one_round(ns: Netns, count: int, ifindex: int, number: int) -> Round:
    flush(ns)
    ours = run_inner(ns, "ours", count, ifindex)
    verify(ns, count, "ours")
    flush(ns)
    bridge_s, ip_s = run_reference(ns, count)
    verify(ns, count, "reference")
    flush(ns)
    encoded = run_inner(ns, "encoded", count, ifindex)
    verify(ns, count, "encoded")
    result = Round(ours, bridge_s, ip_s, encoded)
    print(
        f"  round {number}: ours {ours:.3f} s, reference {result.reference_s:.3f} s "
        f"(bridge {bridge_s:.3f} + ip {ip_s:.3f}), hand-encoded {encoded:.3f} s; "
        f"each left exactly {count} FDB + {count} neigh entries",
        file=sys.stderr,
        flush=True,
    )
    return result


def report(rounds: Sequence[Round], count: int) -> str:
    entries = 2 * count
    ours = median([r.ours_s for r in rounds])
    reference = median([r.reference_s for r in rounds])
    bridge = median([r.bridge_s for r in rounds])
    ip = median([r.ip_s for r in rounds])
    encoded = median([r.encoded_s for r in rounds])
    rows = [
        ["ours: EntryWriter.write via NetlinkWorker.call", f"{ours:.3f}", f"{rate(entries, ours):,.0f}"],
        ["reference: bridge -batch + ip -batch", f"{reference:.3f}", f"{rate(entries, reference):,.0f}"],
        ["  bridge -batch (fdb only)", f"{bridge:.3f}", f"{rate(count, bridge):,.0f}"],
        ["  ip -batch (neigh only)", f"{ip:.3f}", f"{rate(count, ip):,.0f}"],
        [f"for scale: struct-encoded, {PIPELINE}/sendmsg", f"{encoded:.3f}", f"{rate(entries, encoded):,.0f}"],
    ]  # fmt: skip
    verdict = ratio(rate(entries, ours), rate(entries, reference))
    return "\n".join(
        [
            f"Burst: {count} FDB + {count} neighbour entries on vx-42, "
            f"median of {len(rounds)} round(s):",
            format_table(["writer", "seconds", "entries/s"], rows),
            "",
            f"ours {rate(entries, ours):,.0f} entries/s vs reference "
            f"{rate(entries, reference):,.0f} entries/s -> ratio ours/reference {verdict:.3f}"
            f" ({1 / verdict:.1f}x slower)"
            if verdict < 1
            else f"ours/reference {verdict:.2f}",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one round (< 60 s)")
    parser.add_argument("--count", type=int, default=10_000, help="entries of each kind")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument(
        "--remove-stale", action="store_true", help="first delete leftover vxevt-b-* namespaces"
    )
    parser.add_argument("--inner-ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inner-encoded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ifindex", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.inner_ours:
        json.dump(inner_ours(args.count, args.ifindex), sys.stdout)
        return 0
    if args.inner_encoded:
        json.dump(inner_encoded(args.count, args.ifindex), sys.stdout)
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    handle_sigterm()
    if args.remove_stale:
        print(f"removed: {remove_stale() or 'nothing'}", file=sys.stderr)
    started = time.monotonic()
    try:
        ns = Netns("burst")
        try:
            ifindex = add_vxlan(ns, bridge=False)
            rounds = [one_round(ns, args.count, ifindex, n + 1) for n in range(args.rounds)]
        finally:
            ns.close()
    except KeyboardInterrupt:
        print("interrupted; namespace removed", file=sys.stderr)
        return 130
    print(report(rounds, args.count))
    print(f"\n{os.cpu_count()} CPUs; took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
