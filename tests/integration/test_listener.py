"""The listener against a real kernel: two netns "hosts", real misses, a forced ENOBUFS.

The listener runs in this process; its sockets are created inside host A's namespace.
Every command runs in a worker thread so the listener keeps reading meanwhile, and every
wait is bounded by trio.fail_after.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from ipaddress import IPv4Address
from typing import TypeVar

import pytest
import trio

from vxlan_evt.kernel.decode import NetlinkDecoder
from vxlan_evt.kernel.listener import NetlinkListener, run_listener
from vxlan_evt.model.defaults import DEFAULT_NETLINK_RCVBUF
from vxlan_evt.model.events import Event, FdbEvent, L2Miss, L3Miss, LinkEvent, NeighEvent, Resync
from vxlan_evt.testing.netns import VxlanHost, two_hosts

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces"),
]

T = TypeVar("T")
WAIT = 10.0


class Collector:
    """The listener's callback: keeps every event and wakes waiters."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrived = trio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._arrived.set()
        self._arrived = trio.Event()

    def mark(self) -> int:
        return len(self.events)

    async def wait_for(
        self,
        kind: type[T],
        match: Callable[[T], bool] = lambda _: True,
        *,
        since: int = 0,
    ) -> T:
        """The first event of `kind` (at index >= since) that matches, waiting if needed."""
        seen = since
        with trio.fail_after(WAIT):
            while True:
                for event in self.events[seen:]:
                    if isinstance(event, kind) and match(event):
                        return event
                seen = len(self.events)
                await self._arrived.wait()


async def sh(fn: Callable[..., object], *args: str, check: bool = True) -> None:
    """Run a (blocking) netns helper command in a thread; the listener keeps reading."""
    await trio.to_thread.run_sync(partial(fn, *args, check=check))


@pytest.fixture
def hosts() -> Iterator[tuple[VxlanHost, VxlanHost]]:
    with two_hosts() as pair:
        yield pair


async def start(
    nursery: trio.Nursery, hosts: tuple[VxlanHost, VxlanHost], rcvbuf: int = DEFAULT_NETLINK_RCVBUF
) -> tuple[NetlinkListener, Collector]:
    collector = Collector()
    listener = await nursery.start(
        NetlinkListener(collector, netns=hosts[0].host.name, rcvbuf=rcvbuf).run
    )
    assert isinstance(listener, NetlinkListener)
    return listener, collector


@pytest.fixture
async def listening(
    hosts: tuple[VxlanHost, VxlanHost],
) -> AsyncIterator[tuple[NetlinkListener, Collector]]:
    async with trio.open_nursery() as nursery:
        yield await start(nursery, hosts)
        nursery.cancel_scope.cancel()


async def test_link_table_is_seeded_before_started(
    hosts: tuple[VxlanHost, VxlanHost], listening: tuple[NetlinkListener, Collector]
) -> None:
    a, _ = hosts
    listener, _ = listening
    vx = listener.links[a.ifindex("vx-42")]
    assert (vx.ifname, vx.kind, vx.vni, vx.master) == ("vx-42", "vxlan", 42, a.ifindex("br-42"))


async def test_a_given_decoder_is_the_one_seeded(hosts: tuple[VxlanHost, VxlanHost]) -> None:
    """The daemon hands `decoder.links` to others before the listener starts: same table."""
    a, _ = hosts
    decoder = NetlinkDecoder()
    links = decoder.links  # a live view, taken before anything was dumped
    async with trio.open_nursery() as nursery:
        listener = await nursery.start(
            NetlinkListener(Collector(), netns=a.host.name, decoder=decoder).run
        )
        assert listener.decoder is decoder
        assert links[a.ifindex("vx-42")].ifname == "vx-42"
        nursery.cancel_scope.cancel()


async def test_l3_miss_from_the_container(
    hosts: tuple[VxlanHost, VxlanHost], listening: tuple[NetlinkListener, Collector]
) -> None:
    a, b = hosts
    listener, events = listening
    await sh(a.container.exec, "ping", "-c1", "-W1", b.container_ip, check=False)
    miss = await events.wait_for(L3Miss, lambda e: e.ip == IPv4Address(b.container_ip))
    assert (miss.ifindex, miss.ifname, miss.vni) == (a.ifindex("vx-42"), "vx-42", 42)
    assert miss.seq > 0 and miss.timestamp > 0
    stats = listener.statistics()
    assert stats.events["l3miss"] >= 1 and stats.messages >= 1 and stats.enobufs == 0


async def test_l2_miss_for_an_unknown_mac(
    hosts: tuple[VxlanHost, VxlanHost], listening: tuple[NetlinkListener, Collector]
) -> None:
    a, _ = hosts
    _, events = listening
    unknown = "02:42:c0:a8:2a:99"
    await sh(a.container.ip, "neigh", "replace", "192.168.42.99", "lladdr", unknown, "dev", "eth0")
    await sh(a.container.exec, "ping", "-c1", "-W1", "192.168.42.99", check=False)
    miss = await events.wait_for(L2Miss)
    assert (miss.mac, miss.ifname, miss.vni) == (unknown, "vx-42", 42)


async def test_link_down_up_and_mtu(
    hosts: tuple[VxlanHost, VxlanHost], listening: tuple[NetlinkListener, Collector]
) -> None:
    a, _ = hosts
    listener, events = listening
    ifindex = a.ifindex("vx-42")

    def on_vx(e: LinkEvent) -> bool:
        return e.ifindex == ifindex

    since = events.mark()
    await sh(a.host.ip, "link", "set", "vx-42", "down")
    down = await events.wait_for(LinkEvent, lambda e: on_vx(e) and e.action == "down", since=since)
    assert not down.up and down.vni == 42
    await sh(a.host.ip, "link", "set", "vx-42", "up")
    await events.wait_for(LinkEvent, lambda e: on_vx(e) and e.action == "up", since=since)
    await sh(a.host.ip, "link", "set", "vx-42", "mtu", "1400")
    mtu = await events.wait_for(LinkEvent, lambda e: on_vx(e) and e.action == "mtu", since=since)
    assert mtu.mtu == 1400 and listener.links[ifindex].mtu == 1400


async def test_fdb_and_neigh_programming(
    hosts: tuple[VxlanHost, VxlanHost], listening: tuple[NetlinkListener, Collector]
) -> None:
    a, b = hosts
    _, events = listening
    await sh(
        a.host.bridge, "fdb", "add", b.container_mac, "dev", "vx-42",
        "dst", b.underlay_ip, "self", "permanent",
    )  # fmt: skip
    fdb = await events.wait_for(FdbEvent, lambda e: e.mac == b.container_mac)
    assert (fdb.action, fdb.dst, fdb.vni, fdb.flags) == (
        "add", IPv4Address(b.underlay_ip), 42, ("self",),
    )  # fmt: skip
    await sh(
        a.host.ip, "neigh", "add", b.container_ip, "lladdr", b.container_mac,
        "dev", "vx-42", "nud", "permanent",
    )  # fmt: skip
    neigh = await events.wait_for(NeighEvent, lambda e: e.ip == IPv4Address(b.container_ip))
    assert (neigh.action, neigh.mac, neigh.state, neigh.ifname) == (
        "add", b.container_mac, "PERMANENT", "vx-42",
    )  # fmt: skip


async def test_channel_emit_and_clean_cancellation(hosts: tuple[VxlanHost, VxlanHost]) -> None:
    a, _ = hosts
    send, receive = trio.open_memory_channel[Event](100)
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            listener = await nursery.start(partial(run_listener, send, netns=a.host.name))
            assert listener.statistics().rcvbuf >= 8 * 1024 * 1024
            await sh(a.host.ip, "link", "set", "vx-42", "alias", "vxlan-evt:test")
            async for event in receive:
                if isinstance(event, LinkEvent) and event.ifalias == "vxlan-evt:test":
                    break
            nursery.cancel_scope.cancel()


def fdb_burst(start: int, count: int, dst: str) -> list[str]:
    """`bridge -batch` lines adding `count` distinct vxlan FDB entries: a netlink flood."""
    macs = (f"02:aa:00:{i >> 8 & 255:02x}:{i & 255:02x}:01" for i in range(start, start + count))
    return [f"fdb add {mac} dev vx-42 dst {dst} self permanent" for mac in macs]


async def test_enobufs_leads_to_resync_and_listening_goes_on(
    hosts: tuple[VxlanHost, VxlanHost],
) -> None:
    a, b = hosts
    async with trio.open_nursery() as nursery:
        listener, events = await start(nursery, hosts, rcvbuf=1024)
        for burst in range(3):  # one burst of 2000 has always been enough; allow slack
            lines = fdb_burst(burst * 2000, 2000, b.underlay_ip)
            await trio.to_thread.run_sync(a.host.bridge_batch, lines)
            with trio.move_on_after(WAIT / 2):
                resync = await events.wait_for(Resync)
                break
        else:
            pytest.fail(f"no ENOBUFS after 3 bursts: {listener.statistics()}")
        assert resync.losses >= 1 and resync.total_losses >= 1 and resync.links >= 5
        stats = listener.statistics()
        assert stats.enobufs >= 1 and stats.resyncs >= 1 and stats.rcvbuf < 8192
        # Still listening: a later change arrives.
        since = events.mark()
        await sh(a.host.ip, "link", "set", "vx-42", "mtu", "1300")
        mtu = await events.wait_for(
            LinkEvent, lambda e: e.ifname == "vx-42" and e.mtu == 1300, since=since
        )
        assert mtu.action == "mtu" and mtu.seq > resync.seq
        nursery.cancel_scope.cancel()


async def test_a_storm_gets_at_most_one_resync_a_second_and_every_loss_is_counted(
    hosts: tuple[VxlanHost, VxlanHost],
) -> None:
    """Before: every ENOBUFS of a long storm cost its own full dumps, back to back."""
    a, b = hosts
    async with trio.open_nursery() as nursery:
        listener, events = await start(nursery, hosts, rcvbuf=1024)
        storm_ends = trio.current_time() + 3.5
        burst = 0
        while trio.current_time() < storm_ends:
            lines = fdb_burst(0, 1000, b.underlay_ip)
            if burst % 2:  # the same entries again, deleted: a flood that never grows
                lines = [line.replace("fdb add", "fdb del", 1) for line in lines]
            await trio.to_thread.run_sync(a.host.bridge_batch, lines)
            burst += 1
        # Losses of the storm's last second are covered by one more resync, when it is due.
        await events.wait_for(Resync, lambda r: r.total_losses == listener.statistics().enobufs)
        resyncs = [e for e in events.events if isinstance(e, Resync)]
        stats = listener.statistics()
        gaps = [
            later.timestamp - earlier.timestamp for earlier, later in itertools.pairwise(resyncs)
        ]
        assert stats.enobufs == sum(r.losses for r in resyncs) > len(resyncs) >= 2, stats
        assert min(gaps) >= 0.99, gaps
        assert stats.deferred >= 1
        assert resyncs[-1].total_losses == stats.enobufs
        nursery.cancel_scope.cancel()
