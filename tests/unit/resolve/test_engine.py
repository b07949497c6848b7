"""The event engine's decisions, with a recording stand-in for the netlink worker."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace

import trio
import trio.testing

from vxlan_evt.model.entries import FdbEntry, NeighEntry
from vxlan_evt.model.events import L2Miss, L3Miss, LinkEvent
from vxlan_evt.model.links import Address, LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.peers.table import PeerEndpoint, PeerTable
from vxlan_evt.resolve.bus import EventBus
from vxlan_evt.resolve.engine import EngineSettings, EventEngine, MissLedger
from vxlan_evt.testing.fake_netlink import FakeWorker

PEER = PeerEndpoint(
    vni=42,
    ip=ipaddress.ip_address("192.168.42.2"),
    mac="02:42:c0:a8:2a:02",
    vtep=ipaddress.ip_address("10.99.0.2"),
)
NET = "n" * 64


def link(ifindex: int, name: str, alias: str | None) -> LinkInfo:
    return LinkInfo(ifindex, name, "vxlan", 42, 1450, None, alias, "UNKNOWN", True, None)


LINKS = {7: link(7, "vx-42", f"vxlan-evt net={NET}"), 9: link(9, "vx-9", None)}


def make_engine(
    populate: bool = True,
    *,
    addresses: Mapping[int, Collection[Address]] = {},
    on_our_address_change: Callable[[], None] = lambda: None,
) -> tuple[EventEngine, FakeWorker]:
    worker = FakeWorker()
    engine = EventEngine(
        EventBus(),
        worker,  # type: ignore[arg-type]
        Metrics(),
        lambda: PeerTable.build([PEER]),
        EngineSettings(log_events=False, populate=populate),
        links=LINKS,
        addresses=addresses,
        on_our_address_change=on_our_address_change,
    )
    return engine, worker


def l3miss(ip: str, ifindex: int = 7) -> L3Miss:
    return L3Miss(ifindex, "vx-42", 42, ipaddress.ip_address(ip))


async def run_resolver_until_idle(engine: EventEngine, nursery: trio.Nursery) -> None:
    await nursery.start(engine.run_resolver)
    await trio.testing.wait_all_tasks_blocked()


async def test_a_burst_of_one_miss_is_answered_with_one_batch() -> None:
    engine, worker = make_engine()
    for _ in range(50):
        engine.on_event(l3miss("192.168.42.2"))
    async with trio.open_nursery() as nursery:
        await run_resolver_until_idle(engine, nursery)
        nursery.cancel_scope.cancel()
    assert worker.jobs == 1
    assert worker.netlink.entries.calls == [
        ("write", NeighEntry(7, ipaddress.ip_address("192.168.42.2"), PEER.mac)),
        ("write", FdbEntry(7, PEER.mac, ipaddress.ip_address("10.99.0.2"))),
    ]
    verdicts = [p.event for p in engine.bus.history() if p.event.type == "populate"]
    assert [(v.result, v.network_id, v.foreign) for v in verdicts] == [("answered", NET, False)]
    row = engine.misses.table()[0]
    assert (row["count"], row["answered"], row["unanswered"]) == (50, 1, 0)


async def test_unknown_addresses_are_unanswered_and_write_nothing() -> None:
    engine, worker = make_engine()
    engine.on_event(l3miss("192.168.42.99"))
    engine.on_event(L2Miss(7, "vx-42", 42, "02:00:00:00:00:99"))
    async with trio.open_nursery() as nursery:
        await run_resolver_until_idle(engine, nursery)
        nursery.cancel_scope.cancel()
    assert worker.netlink.entries.calls == []
    assert {r["subject"]: r["unanswered"] for r in engine.misses.table()} == {
        "192.168.42.99": 1,
        "02:00:00:00:00:99": 1,
    }


async def test_l2_miss_programs_only_the_fdb() -> None:
    engine, worker = make_engine()
    engine.on_event(L2Miss(7, "vx-42", 42, PEER.mac))
    async with trio.open_nursery() as nursery:
        await run_resolver_until_idle(engine, nursery)
        nursery.cancel_scope.cancel()
    assert worker.netlink.entries.calls == [
        ("write", FdbEntry(7, PEER.mac, ipaddress.ip_address("10.99.0.2")))
    ]


def test_populate_off_only_counts() -> None:
    engine, worker = make_engine(populate=False)
    engine.on_event(l3miss("192.168.42.2"))
    assert worker.jobs == 0
    assert engine.misses.table()[0]["unanswered"] == 1


def test_events_are_attributed_to_our_networks_and_foreign_otherwise() -> None:
    engine, _ = make_engine(populate=False)
    engine.on_event(l3miss("192.168.42.2", ifindex=7))
    engine.on_event(l3miss("192.168.42.2", ifindex=9))
    first, second = (p.event for p in engine.bus.history())
    assert (first.network_id, first.foreign) == (NET, False)
    assert (second.network_id, second.foreign) == (None, True)


def test_a_deleted_link_is_still_attributed_by_its_own_alias() -> None:
    engine, _ = make_engine()
    gone = LinkEvent("del", 11, "br-42", "bridge", None, 1450, None, f"vxlan-evt net={NET}", None)
    engine.on_event(gone)
    assert engine.bus.history()[-1].event.network_id == NET


def test_miss_ledger_evicts_the_least_recently_seen_row() -> None:
    ledger = MissLedger(limit=3)
    for ip in ("192.168.42.1", "192.168.42.2", "192.168.42.3"):
        ledger.seen(l3miss(ip))
    ledger.seen(l3miss("192.168.42.1"))  # seen again: now the freshest
    ledger.seen(l3miss("192.168.42.4"))  # evicts .2, the stalest
    assert {r["subject"]: r["count"] for r in ledger.table()} == {
        "192.168.42.1": 2,
        "192.168.42.3": 1,
        "192.168.42.4": 1,
    }


def test_a_change_on_an_owned_link_with_addresses_republishes_the_host() -> None:
    calls: list[None] = []
    engine, _ = make_engine(
        addresses={7: {(ipaddress.ip_address("10.42.0.200"), 24)}},
        on_our_address_change=lambda: calls.append(None),
    )
    change = LinkEvent("change", 7, "vx-42", "vxlan", 42, 1450, None, None, "UP", True,
                       "02:42:00:00:00:99", ("change",))  # fmt: skip
    engine.on_event(change)
    assert len(calls) == 1
    engine.on_event(replace(change, ifindex=9, ifname="vx-9"))  # foreign: nothing
    assert len(calls) == 1
