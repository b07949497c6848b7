"""On-demand resolution: which mode a device is in, what is idle, and the sweeper's bookkeeping."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest
import trio

from vxlan_evt.cli.main import build_parser, daemon_config
from vxlan_evt.kernel.usage import CLOCK_TICKS, FdbUsage, KernelUsage, NeighUsage, read_usage
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.entries import FdbEntry, NeighEntry
from vxlan_evt.model.events import L2Miss, L3Miss
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.model.state import NetworkRecord
from vxlan_evt.peers.table import PeerEndpoint
from vxlan_evt.resolve.ondemand import (
    OnDemand,
    Programmed,
    decode_ledger,
    device_mode,
    encode_ledger,
    entries_to_delete,
    idle_seconds,
    network_mode,
    plan_sweep,
    sweep_interval,
)
from vxlan_evt.resolve.resolver import Answer
from vxlan_evt.testing.fake_netlink import FakeNetlink, FakeWorker, RecordingEntries

MAC = "02:42:c0:a8:2a:02"
IP = IPv4Address("192.168.42.2")
IP6 = IPv6Address("fd42::2")
VTEP = IPv4Address("10.99.0.2")
NET = "n" * 64
PEER = PeerEndpoint(42, IP, MAC, VTEP)


def programmed(at: float = 0.0, ips: frozenset[Any] = frozenset({IP})) -> Programmed:
    return Programmed(7, "vx-42", 42, MAC, VTEP, ips, at, 1_700_000_000.0 + at)


def usage(fdb_used: float | None, neigh_used: float | None = None) -> KernelUsage:
    fdb = {(7, MAC): FdbUsage(frozenset({VTEP}), fdb_used, 0.0)} if fdb_used is not None else {}
    neigh: dict[tuple[int, IPAddress], NeighUsage] = {}
    if neigh_used is not None:
        neigh[(7, IP)] = NeighUsage(MAC, neigh_used, 0.0)
    return KernelUsage(fdb, neigh)


# --- modes ---------------------------------------------------------------------------------


def record(**generic: str) -> NetworkRecord:
    return NetworkRecord(NET, {"VxlanId": "42", **generic}, 42, "vx-42", "br-42", 1450, 1450)


@pytest.mark.parametrize(
    ("rec", "default", "mode"),
    [
        (None, "preprogram", "preprogram"),
        (None, "on-demand", "on-demand"),
        (record(), "on-demand", "on-demand"),
        (record(Resolve="on-demand"), "preprogram", "on-demand"),
        (record(Resolve="preprogram"), "on-demand", "preprogram"),
        (record(Resolve="bogus"), "on-demand", "on-demand"),  # hand-edited state: the default
    ],
)
def test_network_mode(rec: NetworkRecord | None, default: Any, mode: str) -> None:
    assert network_mode(rec, default) == mode


def test_device_mode_follows_the_owning_network_else_the_daemon() -> None:
    def vxlan(ifindex: int, alias: str | None) -> LinkInfo:
        return LinkInfo(ifindex, f"vx{ifindex}", "vxlan", 42, 1450, None, alias, "UP", True, None)

    links = {7: vxlan(7, f"vxlan-evt net={NET}"), 8: vxlan(8, None)}
    networks = {NET: record(Resolve="on-demand")}
    assert device_mode(7, links, networks, "preprogram") == "on-demand"
    assert device_mode(8, links, networks, "preprogram") == "preprogram"
    assert device_mode(99, links, networks, "on-demand") == "on-demand"


@pytest.mark.parametrize(("timeout", "interval"), [(300, 60.0), (3, 0.75), (0.1, 0.5), (1e6, 60.0)])
def test_sweep_interval_is_a_quarter_bounded(timeout: float, interval: float) -> None:
    assert sweep_interval(timeout) == interval


# --- idle decisions -------------------------------------------------------------------------


def test_idle_is_the_freshest_use_of_any_part() -> None:
    # A permanent neighbour entry's "used" does not move; the FDB entry's does.
    assert idle_seconds(programmed(), usage(fdb_used=2.0, neigh_used=400.0)) == 2.0
    assert idle_seconds(programmed(), usage(fdb_used=None, neigh_used=9.0)) == 9.0
    assert idle_seconds(programmed(), usage(None)) is None


def test_parts_rewritten_by_someone_else_do_not_count() -> None:
    elsewhere = KernelUsage(
        {(7, MAC): FdbUsage(frozenset({IPv4Address("10.99.0.9")}), 1.0, 1.0)},
        {(7, IP): NeighUsage("02:00:00:00:00:09", 1.0, 1.0)},
    )
    assert idle_seconds(programmed(), elsewhere) is None
    assert entries_to_delete(programmed(), elsewhere) == []


@pytest.mark.parametrize(
    ("fdb_used", "programmed_at", "evicted"),
    [
        (301.0, 0.0, True),  # unused for longer than the timeout
        (300.0, 0.0, True),  # exactly the timeout
        (299.0, 0.0, False),  # used recently
        (301.0, 100.0, False),  # programmed 300 s ago only at now=400: too young (clock skew)
    ],
)
def test_plan_sweep(fdb_used: float, programmed_at: float, evicted: bool) -> None:
    entry = programmed(at=programmed_at)
    plan = plan_sweep([entry], usage(fdb_used, 500.0), now=399.0, idle_timeout=300.0)
    assert plan.evict == ((entry,) if evicted else ())
    assert plan.gone == ()


def test_plan_sweep_forgets_what_the_kernel_no_longer_has() -> None:
    entry = programmed()
    plan = plan_sweep([entry], KernelUsage(), now=1000.0, idle_timeout=1.0)
    assert plan.gone == (entry,) and plan.evict == ()


def test_entries_to_delete_are_ours_only() -> None:
    entry = programmed(ips=frozenset({IP, IP6}))
    kernel = KernelUsage(
        {(7, MAC): FdbUsage(frozenset({VTEP}), 1.0, 1.0)},
        {(7, IP): NeighUsage(MAC, 1.0, 1.0), (7, IP6): NeighUsage("02:00:00:00:00:09", 1.0, 1.0)},
    )
    assert entries_to_delete(entry, kernel) == [FdbEntry(7, MAC, VTEP), NeighEntry(7, IP, MAC)]


def test_merging_a_later_answer_keeps_every_ip_unless_the_vtep_moved() -> None:
    first, second = programmed(0.0, frozenset({IP})), programmed(5.0, frozenset({IP6}))
    merged = first.merged(second)
    assert merged.ips == {IP, IP6} and merged.programmed_at == 5.0
    moved = Programmed(7, "vx-42", 42, MAC, IPv4Address("10.99.0.9"), frozenset({IP6}), 6.0, 0.0)
    assert first.merged(moved) == moved


# --- reading the kernel's ages ----------------------------------------------------------------


class Message(dict[str, Any]):
    def __init__(self, attrs: dict[str, Any], **header: Any) -> None:
        super().__init__(header)
        self.attrs = attrs

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)


def cacheinfo(used: int, updated: int) -> dict[str, int]:
    return {"ndm_confirmed": 0, "ndm_used": used, "ndm_updated": updated, "ndm_refcnt": 0}


class FakeIPRoute:
    def __init__(self, tables: dict[int, list[Message]]) -> None:
        self.tables = tables

    def get_neighbours(self, family: int) -> list[Message]:
        return self.tables.get(family, [])


def kernel(fdb_used: int, neigh_used: int = 40_000) -> FakeIPRoute:
    tick = int(CLOCK_TICKS)
    return FakeIPRoute(
        {
            socket.AF_BRIDGE: [
                # The device's own entry, its twin in the bridge FDB ("master"), another device.
                Message({"NDA_LLADDR": MAC.upper(), "NDA_DST": str(VTEP),
                         "NDA_CACHEINFO": cacheinfo(fdb_used * tick, 9 * tick)},
                        ifindex=7, flags=0x02),
                Message({"NDA_LLADDR": MAC, "NDA_CACHEINFO": cacheinfo(0, 0)}, ifindex=7, flags=0x04),
                Message({"NDA_LLADDR": MAC, "NDA_DST": "10.0.0.1",
                         "NDA_CACHEINFO": cacheinfo(0, 0)}, ifindex=8, flags=0x02),
                Message({"NDA_LLADDR": "33:33:00:00:00:01"}, ifindex=7, flags=0x02),
            ],
            socket.AF_INET: [
                Message({"NDA_DST": str(IP), "NDA_LLADDR": MAC,
                         "NDA_CACHEINFO": cacheinfo(neigh_used, neigh_used)}, ifindex=7),
                Message({"NDA_DST": "10.99.0.2", "NDA_LLADDR": MAC,
                         "NDA_CACHEINFO": cacheinfo(1, 1)}, ifindex=2),
            ],
        }
    )  # fmt: skip


def test_read_usage_takes_the_devices_own_entries_in_seconds() -> None:
    read = read_usage(kernel(fdb_used=3), [7])
    assert read.fdb == {(7, MAC): FdbUsage(frozenset({VTEP}), 3.0, 9.0)}
    used = 40_000 / CLOCK_TICKS
    assert read.neigh == {(7, IP): NeighUsage(MAC, used, used)}


# --- the tracker -----------------------------------------------------------------------------


def tracker(
    ipr: FakeIPRoute, mode: str = "on-demand", entries: RecordingEntries | None = None
) -> tuple[OnDemand, list[float], Metrics, RecordingEntries]:
    now, metrics = [1000.0], Metrics()
    worker = FakeWorker(FakeNetlink(ipr, entries))
    ondemand = OnDemand(
        worker,  # type: ignore[arg-type]
        metrics,
        lambda _ifindex: mode,  # type: ignore[arg-type, return-value]
        idle_timeout=5.0,
        clock=lambda: now[0],
    )
    return ondemand, now, metrics, worker.netlink.entries


async def test_only_on_demand_devices_are_tracked() -> None:
    ondemand, _, _, _ = tracker(kernel(0), mode="preprogram")
    await ondemand([(L3Miss(7, "vx-42", 42, IP), Answer(PEER, ()))])
    assert ondemand.tracked == {}


async def test_an_l2_answer_then_an_l3_answer_make_one_entry() -> None:
    ondemand, _, metrics, _ = tracker(kernel(0))
    await ondemand([(L2Miss(7, "vx-42", 42, MAC), Answer(PEER, ()))])
    await ondemand([(L3Miss(7, "vx-42", 42, IP), Answer(PEER, ()))])
    assert list(ondemand.tracked) == [(7, MAC)]
    assert ondemand.tracked[(7, MAC)].ips == {IP}
    assert ondemand.holds(7, MAC, VTEP) and not ondemand.holds(7, MAC, ip_address("10.0.0.9"))
    assert "vxlan_evt_ondemand_entries 1.0" in metrics.render().decode()


async def test_sweep_keeps_the_used_and_evicts_the_idle() -> None:
    ipr = kernel(fdb_used=1)
    ondemand, now, metrics, written = tracker(ipr)
    await ondemand([(L3Miss(7, "vx-42", 42, IP), Answer(PEER, ()))])
    now[0] += 10.0
    await ondemand.sweep_once()  # used a second ago: stays
    assert ondemand.tracked and written.calls == []
    rows = await ondemand.rows()
    assert rows[0]["idle_seconds"] == 1.0 and rows[0]["age_seconds"] == 10.0
    assert rows[0]["ips"] == [str(IP)] and rows[0]["vtep"] == str(VTEP)

    idle = FakeWorker(FakeNetlink(kernel(fdb_used=6)))
    ondemand.worker = idle  # type: ignore[assignment]
    result = await ondemand.sweep_once()
    assert [e.key for e in result.plan.evict] == [(7, MAC)]
    assert idle.netlink.entries.calls == [
        ("delete", FdbEntry(7, MAC, VTEP)),
        ("delete", NeighEntry(7, IP, MAC)),
    ]
    assert ondemand.tracked == {}
    assert await ondemand.rows() == []
    text = metrics.render().decode()
    assert "vxlan_evt_ondemand_evictions_total 1.0" in text
    assert "vxlan_evt_ondemand_entries 0.0" in text


async def test_a_failed_deletion_is_retried() -> None:
    refusing = RecordingEntries(refuse_deletes="busy")
    ondemand, now, metrics, _ = tracker(kernel(fdb_used=60), entries=refusing)
    await ondemand([(L3Miss(7, "vx-42", 42, IP), Answer(PEER, ()))])
    now[0] += 60.0
    result = await ondemand.sweep_once()
    assert result.failures and ondemand.tracked
    assert "vxlan_evt_ondemand_evictions_total 0.0" in metrics.render().decode()


async def test_entries_gone_from_the_kernel_are_forgotten_without_deleting() -> None:
    ondemand, _, metrics, written = tracker(FakeIPRoute({}))
    await ondemand([(L3Miss(7, "vx-42", 42, IP), Answer(PEER, ()))])
    result = await ondemand.sweep_once()
    assert result.plan.gone and not ondemand.tracked and written.calls == []
    assert "vxlan_evt_ondemand_evictions_total 0.0" in metrics.render().decode()


# --- the ledger survives a restart -----------------------------------------------------------


def test_ledger_round_trip_restarts_the_age() -> None:
    entry = programmed(at=5.0, ips=frozenset({IP, IP6}))
    (loaded,) = decode_ledger(encode_ledger([entry]), now=123.0)
    assert loaded == Programmed(7, "vx-42", 42, MAC, VTEP, frozenset({IP, IP6}), 123.0,
                                entry.programmed_wall)  # fmt: skip


async def test_tracker_saves_on_shutdown_and_loads_on_start(tmp_path: Path) -> None:
    path = tmp_path / "ondemand.json"
    first, _, _, _ = tracker(kernel(0))
    first.path = path
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await first([(L3Miss(7, "vx-42", 42, IP), Answer(PEER, ()))])
        nursery.cancel_scope.cancel()
    assert path.exists()
    second, _, metrics, _ = tracker(kernel(0))
    second.path = path
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        nursery.cancel_scope.cancel()
    assert list(second.tracked) == [(7, MAC)]
    assert "vxlan_evt_ondemand_entries 1.0" in metrics.render().decode()


async def test_a_damaged_ledger_is_ignored(tmp_path: Path) -> None:
    ondemand, _, _, _ = tracker(kernel(0))
    ondemand.path = tmp_path / "ondemand.json"
    ondemand.path.write_text("{not json")
    async with trio.open_nursery() as nursery:
        await nursery.start(ondemand.run)
        nursery.cancel_scope.cancel()
    assert ondemand.tracked == {}


# --- flags -----------------------------------------------------------------------------------


def test_resolve_and_idle_timeout_flags() -> None:
    parser = build_parser()
    config = daemon_config(parser.parse_args(["serve"]))
    assert (config.resolve, config.idle_timeout) == ("preprogram", 300.0)
    args = parser.parse_args(["serve", "--resolve", "on-demand", "--idle-timeout", "3"])
    assert (daemon_config(args).resolve, daemon_config(args).idle_timeout) == ("on-demand", 3.0)


@pytest.mark.parametrize("argv", [["--resolve", "lazy"], ["--idle-timeout", "0"],
                                  ["--idle-timeout", "x"], ["--idle-timeout", "nan"]])  # fmt: skip
def test_bad_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", *argv])
    assert "error" in capsys.readouterr().err
