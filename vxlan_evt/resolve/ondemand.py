"""On-demand resolution: entries programmed from misses, removed again once the kernel stops using them.

A network resolves `preprogram` (every peer's entries written up front and
kept: the first packet never misses) or `on-demand` (nothing up front; a
miss is answered and the answer is tracked here). The daemon's `--resolve`
is the default, a network's `Resolve` option overrides it; links the daemon
did not create follow the daemon's flag.

Idleness is the kernel's word, not a guess: `plan_sweep` (pure) compares
`idle_timeout` with the NDA_CACHEINFO ages `netlink.usage.read_usage` reads.
Reading and deleting happen in one worker job, so a write the resolver makes
in between (a fresh miss) is seen as fresh use, never deleted by mistake.
The ledger is saved in the state dir (at each sweep that changed it, and on
shutdown): after a restart, entries programmed before it are still evicted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import trio

from vxlan_evt.disk.atomicfile import write_atomic
from vxlan_evt.driver.options import parse_resolve_mode
from vxlan_evt.driver.plan import network_of_link
from vxlan_evt.kernel.usage import KernelUsage, read_usage
from vxlan_evt.kernel.worker import Netlink, NetlinkWorker
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.model.errors import InvalidOption
from vxlan_evt.model.events import L2Miss, L3Miss
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.model.modes import ResolveMode
from vxlan_evt.model.state import NetworkRecord
from vxlan_evt.resolve.resolver import Answer

log = logging.getLogger(__name__)

SWEEP_MIN, SWEEP_MAX = 0.5, 60.0


def network_mode(record: NetworkRecord | None, default: ResolveMode) -> ResolveMode:
    """A network's `Resolve` option, else the daemon's default (also for an unreadable value)."""
    text = record.generic_options.get("Resolve") if record is not None else None
    if not text:
        return default
    try:
        return parse_resolve_mode("Resolve", str(text))
    except InvalidOption:
        return default  # refused at CreateNetwork; only a hand-edited state file gets here


def device_mode(
    ifindex: int,
    links: Mapping[int, LinkInfo],
    networks: Mapping[str, NetworkRecord],
    default: ResolveMode,
) -> ResolveMode:
    """The mode of the network whose vxlan device `ifindex` is (its ifalias names it)."""
    return network_mode(network_of_link(ifindex, links, networks), default)


def sweep_interval(idle_timeout: float) -> float:
    """A quarter of the timeout, so an entry lives at most 1.25x it; bounded both ways."""
    return min(max(idle_timeout / 4, SWEEP_MIN), SWEEP_MAX)


@dataclass(frozen=True, slots=True)
class Programmed:
    """One remote MAC programmed from misses on one vxlan device, with the IPs that point at it."""

    ifindex: int
    ifname: str | None
    vni: int | None
    mac: str
    vtep: IPAddress
    ips: frozenset[IPAddress]
    programmed_at: float  # monotonic clock, for decisions
    programmed_wall: float  # time.time(), for people

    @property
    def key(self) -> tuple[int, str]:
        return (self.ifindex, self.mac)

    def merged(self, newer: Programmed) -> Programmed:
        """A later answer for the same MAC: keep every IP if the VTEP is unchanged."""
        if newer.vtep != self.vtep:
            return newer
        return replace(newer, ips=self.ips | newer.ips)


def programmed_from(miss: L2Miss | L3Miss, answer: Answer, now: float, wall: float) -> Programmed:
    ips = frozenset({answer.peer.ip}) if isinstance(miss, L3Miss) else frozenset()
    peer = answer.peer
    return Programmed(miss.ifindex, miss.ifname, miss.vni, peer.mac, peer.vtep, ips, now, wall)


def idle_seconds(entry: Programmed, usage: KernelUsage) -> float | None:
    """Seconds since the kernel last used any of the entry's parts; None if none is left.

    Only parts that are still ours count: an FDB entry pointing at our VTEP,
    neighbour entries pointing at our MAC.
    """
    ages = []
    fdb = usage.fdb.get(entry.key)
    if fdb is not None and entry.vtep in fdb.dsts:
        ages.append(fdb.used)
    for ip in entry.ips:
        neigh = usage.neigh.get((entry.ifindex, ip))
        if neigh is not None and neigh.mac == entry.mac:
            ages.append(neigh.used)
    return min(ages) if ages else None


def entries_to_delete(entry: Programmed, usage: KernelUsage) -> list[Entry]:
    """The kernel entries of `entry` that still say what we wrote (nothing else is touched)."""
    doomed: list[Entry] = []
    fdb = usage.fdb.get(entry.key)
    if fdb is not None and entry.vtep in fdb.dsts:
        doomed.append(FdbEntry(entry.ifindex, entry.mac, entry.vtep))
    for ip in sorted(entry.ips, key=lambda i: (i.version, i)):
        neigh = usage.neigh.get((entry.ifindex, ip))
        if neigh is not None and neigh.mac == entry.mac:
            doomed.append(NeighEntry(entry.ifindex, ip, entry.mac))
    return doomed


@dataclass(frozen=True, slots=True)
class SweepPlan:
    evict: tuple[Programmed, ...] = ()  # idle for the timeout: delete
    gone: tuple[Programmed, ...] = ()  # nothing of it left in the kernel: forget


def plan_sweep(
    tracked: Iterable[Programmed], usage: KernelUsage, *, now: float, idle_timeout: float
) -> SweepPlan:
    """Which entries to evict: unused by the kernel *and* programmed at least `idle_timeout` ago."""
    evict, gone = [], []
    for entry in tracked:
        idle = idle_seconds(entry, usage)
        if idle is None:
            gone.append(entry)
        elif idle >= idle_timeout and now - entry.programmed_at >= idle_timeout:
            evict.append(entry)
    return SweepPlan(tuple(evict), tuple(gone))


def encode_ledger(entries: Iterable[Programmed]) -> bytes:
    rows = [
        {"ifindex": e.ifindex, "ifname": e.ifname, "vni": e.vni, "mac": e.mac,
         "vtep": str(e.vtep), "ips": sorted(str(ip) for ip in e.ips),
         "programmed_at": e.programmed_wall}
        for e in sorted(entries, key=lambda e: e.key)
    ]  # fmt: skip
    return json.dumps(rows, indent=1).encode()


def decode_ledger(data: bytes, now: float) -> list[Programmed]:
    """Saved entries; their age restarts at `now` (a monotonic clock does not survive a restart),
    so each gets at least one full timeout after the daemon comes back."""
    return [
        Programmed(
            int(row["ifindex"]), row.get("ifname"), row.get("vni"), str(row["mac"]),
            ip_address(row["vtep"]), frozenset(ip_address(ip) for ip in row["ips"]),
            now, float(row["programmed_at"]),
        )
        for row in json.loads(data)
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class SweepResult:
    plan: SweepPlan
    failures: tuple[tuple[Entry, str], ...] = ()


def _sweep_job(
    netlink: Netlink, tracked: Sequence[Programmed], now: float, idle_timeout: float
) -> SweepResult:
    """Read, decide and delete in one go on the worker (writes cannot interleave)."""
    usage = read_usage(netlink.route, {e.ifindex for e in tracked})
    plan = plan_sweep(tracked, usage, now=now, idle_timeout=idle_timeout)
    doomed = [part for entry in plan.evict for part in entries_to_delete(entry, usage)]
    return SweepResult(plan, tuple(netlink.entries.delete(doomed)))


class OnDemand:
    """Tracks what misses programmed on on-demand devices; its `run` task evicts the idle."""

    def __init__(
        self,
        worker: NetlinkWorker,
        metrics: Metrics,
        mode_of: Callable[[int], ResolveMode],
        *,
        idle_timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        path: Path | None = None,
    ) -> None:
        self.worker = worker
        self.metrics = metrics
        self.mode_of = mode_of
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.path = path
        self.tracked: dict[tuple[int, str], Programmed] = {}
        self._dirty = False

    async def __call__(self, answered: Sequence[tuple[L2Miss | L3Miss, Answer]]) -> None:
        """The resolver's hook: remember answers written on on-demand devices."""
        for miss, answer in answered:
            self.register(miss, answer)

    def register(self, miss: L2Miss | L3Miss, answer: Answer) -> None:
        if self.mode_of(miss.ifindex) != "on-demand":
            return
        entry = programmed_from(miss, answer, self.clock(), time.time())
        before = self.tracked.get(entry.key)
        self.tracked[entry.key] = before.merged(entry) if before else entry
        self._dirty = True
        self.metrics.ondemand_entries.set(len(self.tracked))

    def holds(self, ifindex: int, mac: str, dst: IPAddress | None) -> bool:
        entry = self.tracked.get((ifindex, mac))
        return entry is not None and entry.vtep == dst

    async def rows(self) -> list[dict[str, Any]]:
        """For /ondemand: each tracked entry with its age and the kernel's idle time."""
        tracked = list(self.tracked.values())
        if not tracked:
            return []
        ifindexes = {e.ifindex for e in tracked}
        usage = await self.worker.call(lambda nl: read_usage(nl.route, ifindexes))
        now = self.clock()
        return [
            {
                "ifindex": e.ifindex,
                "ifname": e.ifname,
                "vni": e.vni,
                "mac": e.mac,
                "vtep": str(e.vtep),
                "ips": sorted(str(ip) for ip in e.ips),
                "programmed_at": e.programmed_wall,
                "age_seconds": round(now - e.programmed_at, 3),
                "idle_seconds": idle_seconds(e, usage),
                "idle_timeout": self.idle_timeout,
            }
            for e in sorted(tracked, key=lambda e: (e.ifindex, e.mac))
        ]

    async def sweep_once(self) -> SweepResult:
        tracked = tuple(self.tracked.values())
        if not tracked:
            return SweepResult(SweepPlan())
        now, timeout = self.clock(), self.idle_timeout
        result = await self.worker.call(lambda nl: _sweep_job(nl, tracked, now, timeout))
        failed = {(part.ifindex, part.mac) for part, _ in result.failures}
        for part, reason in result.failures:
            log.warning("on-demand eviction failed entry=%s: %s", part, reason)
        self._dirty = self._dirty or bool(result.plan.gone or result.plan.evict)
        for entry in result.plan.gone:
            if self.tracked.get(entry.key) is entry:
                del self.tracked[entry.key]
        for entry in result.plan.evict:
            if entry.key in failed:
                continue  # still tracked: the next sweep tries again
            if self.tracked.get(entry.key) is entry:  # not re-registered by a miss meanwhile
                del self.tracked[entry.key]
            self.metrics.ondemand_evictions.inc()
            log.info(
                "evicted idle on-demand entry ifname=%s vni=%s mac=%s vtep=%s ips=%s",
                entry.ifname,
                entry.vni,
                entry.mac,
                entry.vtep,
                ",".join(sorted(str(ip) for ip in entry.ips)) or "-",
            )
        self.metrics.ondemand_entries.set(len(self.tracked))
        return result

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            loaded = decode_ledger(self.path.read_bytes(), self.clock())
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ignoring damaged %s: %s", self.path, exc)
            return
        self.tracked = {entry.key: entry for entry in loaded}
        self.metrics.ondemand_entries.set(len(self.tracked))

    def _save(self, data: bytes) -> None:
        """Atomic replace; a lost ledger only means entries that are never evicted."""
        if self.path is not None:
            write_atomic(self.path, data)

    async def save_if_changed(self) -> None:
        if self._dirty and self.path is not None:
            self._dirty = False
            try:
                await trio.to_thread.run_sync(self._save, encode_ledger(self.tracked.values()))
            except BaseException:
                self._dirty = True  # try again at the next sweep
                raise

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep every `sweep_interval(idle_timeout)`; a failed sweep is logged and retried."""
        await trio.to_thread.run_sync(self._load)
        task_status.started()
        try:
            while True:
                await trio.sleep(sweep_interval(self.idle_timeout))
                try:
                    await self.sweep_once()
                    await self.save_if_changed()
                except Exception:  # a kernel or disk hiccup must not end eviction for good
                    log.exception("on-demand sweep failed; retrying next interval")
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.save_if_changed()
                except OSError as exc:
                    log.error("could not save %s: %s", self.path, exc)
