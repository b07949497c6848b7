"""After an L3 miss is programmed, send the waiting containers their ARP/NA answer.

The decisions (which frame, which ports) are pure, in `arp`; the socket is the
kernel edge's `PacketSender`. This glue counts what it sent and never raises into
the resolver: a failed answer only costs the container its ~1 s retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from vxlan_evt.kernel.packets import PacketSender
from vxlan_evt.model.events import L2Miss, L3Miss
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.resolve.arp import answer_frame, answer_ports
from vxlan_evt.resolve.resolver import Answer

log = logging.getLogger(__name__)


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
