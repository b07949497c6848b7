"""The listener's I/O edge: a trio netlink socket feeding the pure `NetlinkDecoder`.

Subscribes to RTNLGRP_LINK, RTNLGRP_NEIGH (link changes, ARP/ND, FDB, and the vxlan
L2/L3 miss requests, which the kernel sends on the NEIGH group) and the IPv4/IPv6 address
groups. The link and address tables are seeded by dumps taken *after* subscribing, so
nothing falls between dump and stream.

A miss storm can overflow the socket: the kernel then drops messages and the next recv
fails with ENOBUFS. We do not die: what is still queued (older than the loss) is decoded,
links and neighbours are dumped again, link differences come out as LinkEvents, and a
`Resync` event tells consumers to re-read their own state. A storm that overflows the
socket again and again gets at most one resync per `resync_interval` (the dumps cost far
more than the events they recover): losses in between are counted and listening goes on,
and the one resync that follows covers them all (`Resync.losses`).
"""

from __future__ import annotations

import errno
import itertools
import logging
import math
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TypeAlias

import trio

from vxlan_evt.kernel.decode import NetlinkDecoder
from vxlan_evt.kernel.sockets import dump, open_netlink_socket
from vxlan_evt.kernel.wire import (
    RECV_SIZE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)
from vxlan_evt.model.defaults import DEFAULT_NETLINK_RCVBUF, MIN_RESYNC_INTERVAL
from vxlan_evt.model.events import Event, Resync
from vxlan_evt.model.links import LinkInfo

log = logging.getLogger(__name__)

Emit: TypeAlias = Callable[[Event], object] | trio.abc.SendChannel[Event]


@dataclass(slots=True)
class ListenerStatistics:
    """A snapshot; `events` counts emitted events by type."""

    datagrams: int = 0
    messages: int = 0
    events: dict[str, int] = field(default_factory=dict)
    decode_problems: int = 0
    ignored: int = 0
    enobufs: int = 0
    resyncs: int = 0
    deferred: int = 0  # ENOBUFS that came too soon after a resync to get their own
    drained: int = 0
    links: int = 0
    rcvbuf: int = 0


class NetlinkListener:
    """Emit every decoded event to a callback (sync, must not block) or a send channel.

    With a channel, a slow consumer applies back-pressure: the socket fills up and that
    ends in ENOBUFS and a resync, which is the explicit loss policy. A callback such as
    `EventBus.publish` never blocks the socket.
    """

    def __init__(
        self,
        emit: Emit,
        *,
        netns: str | None = None,
        rcvbuf: int = DEFAULT_NETLINK_RCVBUF,
        groups: int = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
        clock: Callable[[], float] = time.time,
        drain_limit: int = 10_000,
        decoder: NetlinkDecoder | None = None,
        resync_interval: float = MIN_RESYNC_INTERVAL,
    ) -> None:
        self._emit = emit
        self._netns = netns
        self._rcvbuf = rcvbuf
        self._groups = groups
        self._drain_limit = drain_limit
        self._resync_interval = resync_interval
        # A given decoder (its own clock applies) lets the daemon share the live link
        # table with the objects it builds before the listener runs.
        self.decoder = decoder if decoder is not None else NetlinkDecoder(clock=clock)
        self._stats = ListenerStatistics()
        self._losses = 0
        self._dump_seq = itertools.count(1)

    @property
    def links(self) -> Mapping[int, LinkInfo]:
        """A copy of the link table (ifindex -> LinkInfo) as of now."""
        return dict(self.decoder.links)

    def statistics(self) -> ListenerStatistics:
        decoder = self.decoder.statistics()
        s = self._stats
        return ListenerStatistics(
            datagrams=s.datagrams,
            messages=decoder.messages,
            events=dict(s.events),
            decode_problems=decoder.problems,
            ignored=decoder.ignored,
            enobufs=s.enobufs,
            resyncs=s.resyncs,
            deferred=s.deferred,
            drained=s.drained,
            links=len(self.decoder.links),
            rcvbuf=s.rcvbuf,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[NetlinkListener] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe, seed the link table, report started(self), then listen until cancelled."""
        opener = partial(open_netlink_socket, self._netns)
        raw = await trio.to_thread.run_sync(
            partial(opener, groups=self._groups, rcvbuf=self._rcvbuf)
        )
        with trio.socket.from_stdlib_socket(raw) as events:
            request_raw = await trio.to_thread.run_sync(opener)
            with trio.socket.from_stdlib_socket(request_raw) as requests:
                self._stats.rcvbuf = raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                self.decoder.load_links(await dump(requests, RTM_GETLINK, next(self._dump_seq)))
                self.decoder.load_addresses(await dump(requests, RTM_GETADDR, next(self._dump_seq)))
                # ARP/ND only: the decoder needs them for add-vs-change, not the FDB.
                self.decoder.load_neighbours(
                    await dump(requests, RTM_GETNEIGH, next(self._dump_seq))
                )
                log.info(
                    "netlink listener started netns=%s rcvbuf=%d links=%d",
                    self._netns or "-",
                    self._stats.rcvbuf,
                    len(self.decoder.links),
                )
                task_status.started(self)
                await self._listen(events, raw, requests)

    async def _listen(
        self, events: trio.socket.SocketType, raw: socket.socket, requests: trio.socket.SocketType
    ) -> None:
        buffer = bytearray(RECV_SIZE)
        next_resync_at = -math.inf
        while True:
            size: int | None = None
            # With losses pending, wait for the next datagram only until a resync is due.
            with trio.move_on_at(next_resync_at if self._losses else math.inf):
                try:
                    size = await events.recv_into(buffer)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    self._lost()
                    if trio.current_time() < next_resync_at:
                        self._stats.deferred += 1
            if size is not None:
                await self._feed(bytes(memoryview(buffer)[:size]))
            if self._losses and trio.current_time() >= next_resync_at:
                await self._resync(raw, requests, buffer)
                next_resync_at = trio.current_time() + self._resync_interval

    def _lost(self) -> None:
        self._losses += 1
        self._stats.enobufs += 1

    async def _feed(self, data: bytes) -> None:
        self._stats.datagrams += 1
        for event in self.decoder.feed(data):
            await self._send(event)

    async def _send(self, event: Event) -> None:
        self._stats.events[event.type] = self._stats.events.get(event.type, 0) + 1
        if isinstance(self._emit, trio.abc.SendChannel):
            await self._emit.send(event)
        else:
            self._emit(event)

    async def _resync(
        self, raw: socket.socket, requests: trio.socket.SocketType, buffer: bytearray
    ) -> None:
        # What is still queued predates the loss: decode it first, in order, so that the
        # dump (newer) has the last word on the link table.
        drained = 0
        while drained < self._drain_limit:
            try:
                size = raw.recv_into(buffer, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._lost()
                continue
            drained += 1
            await self._feed(bytes(memoryview(buffer)[:size]))
            await trio.lowlevel.checkpoint()
        links = await dump(requests, RTM_GETLINK, next(self._dump_seq))
        for event in self.decoder.load_links(links, report_changes=True):
            await self._send(event)
        addresses = await dump(requests, RTM_GETADDR, next(self._dump_seq))
        for event in self.decoder.load_addresses(addresses, report_changes=True):
            await self._send(event)
        neighbours = await dump(requests, RTM_GETNEIGH, next(self._dump_seq))
        # Only counted (FDB state is the consumers'), but a fresh count says what they face.
        fdb = await dump(requests, RTM_GETNEIGH, next(self._dump_seq), socket.AF_BRIDGE)
        # Parsing a big FDB (100k entries) takes long: off the event loop, which keeps
        # serving Docker calls meanwhile. Only this task feeds the decoder.
        counts = await trio.to_thread.run_sync(self.decoder.load_neighbours, [*neighbours, *fdb])
        self._stats.resyncs += 1
        self._stats.drained += drained
        resync = Resync(
            self._losses,
            self._stats.enobufs,
            drained=drained,
            links=len(self.decoder.links),
            neighbours=counts.neighbours,
            fdb=counts.fdb,
        )
        log.warning(
            "netlink resync after ENOBUFS losses=%d total=%d deferred=%d drained=%d links=%d"
            " fdb=%d",
            resync.losses,
            resync.total_losses,
            self._stats.deferred,
            drained,
            resync.links,
            resync.fdb,
        )
        self._losses = 0
        await self._send(self.decoder.stamp(resync))


async def run_listener(
    emit: Emit,
    *,
    netns: str | None = None,
    rcvbuf: int = DEFAULT_NETLINK_RCVBUF,
    task_status: trio.TaskStatus[NetlinkListener] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a `NetlinkListener` until cancelled; `await nursery.start(...)` returns it."""
    await NetlinkListener(emit, netns=netns, rcvbuf=rcvbuf).run(task_status=task_status)
