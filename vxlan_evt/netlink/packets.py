"""Send ARP replies / neighbour advertisements into containers after an L3 miss is programmed.

The I/O half of `vxlan_evt.arp`. One AF_PACKET socket (a trio socket, so no
thread) lives as long as the daemon. It is opened with protocol 0, so the
kernel never queues received frames on it; each frame names its interface
and ethertype in `sendto`. Which interfaces is decided purely by
`arp.answer_ports`: container-facing veth ends only, so an answer can never
reach the bridge, the vxlan device or the underlay.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import trio

from vxlan_evt.arp import answer_frame, answer_ports
from vxlan_evt.events import L2Miss, L3Miss
from vxlan_evt.metrics import Metrics
from vxlan_evt.netlink.decode import LinkInfo
from vxlan_evt.resolver import Answer

log = logging.getLogger(__name__)


class PacketSender:
    """A send-only raw packet socket; a context manager that closes it."""

    def __init__(self) -> None:
        self._sock = trio.socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)

    def __enter__(self) -> PacketSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    async def send(self, ifname: str, ethertype: int, frame: bytes) -> None:
        """Transmit `frame` as is on `ifname`; OSError if the link is gone or down."""
        await self._sock.sendto(frame, (ifname, ethertype))


@dataclass(slots=True)
class AnswerStatistics:
    sent: int = 0
    failed: int = 0
    no_port: int = 0


class ArpAnswerer:
    """The resolver's hook: tell the containers behind a bridge what was just programmed.

    `links` is the listener's live link table; `endpoint_ports` maps the
    vxlan device's ifindex to the host veth names of the daemon's endpoints
    on its network, or None for a link the daemon did not create.
    """

    def __init__(
        self,
        sender: PacketSender,
        links: Callable[[], Mapping[int, LinkInfo]],
        endpoint_ports: Callable[[int], Collection[str] | None],
        metrics: Metrics,
    ) -> None:
        self.sender = sender
        self.links = links
        self.endpoint_ports = endpoint_ports
        self.metrics = metrics
        self.stats = AnswerStatistics()

    async def __call__(self, answered: Sequence[tuple[L2Miss | L3Miss, Answer]]) -> None:
        for miss, answer in answered:
            if isinstance(miss, L3Miss):
                await self.answer(miss, answer)

    async def answer(self, miss: L3Miss, answer: Answer) -> None:
        """Send one answer on every chosen port; a failure is logged and counted, not raised."""
        family = f"ipv{miss.ip.version}"
        ports = answer_ports(self.links(), miss.ifindex, self.endpoint_ports(miss.ifindex))
        if not ports:
            self.stats.no_port += 1
            self.metrics.arp_answers.labels(family, "no_port").inc()
            log.debug("no container port to answer on ifname=%s ip=%s", miss.ifname, miss.ip)
            return
        ethertype, frame = answer_frame(answer.peer.mac, miss.ip)
        for port in ports:
            try:
                await self.sender.send(port, ethertype, frame)
            except OSError as exc:
                self.stats.failed += 1
                self.metrics.arp_answers.labels(family, "failed").inc()
                log.warning(
                    "answer not sent ifname=%s port=%s ip=%s: %s", miss.ifname, port, miss.ip, exc
                )
            else:
                self.stats.sent += 1
                self.metrics.arp_answers.labels(family, "sent").inc()
        log.debug("answered ifname=%s ip=%s ports=%s", miss.ifname, miss.ip, ",".join(ports))
