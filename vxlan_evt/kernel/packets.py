"""A send-only raw packet socket, for ARP replies / neighbour advertisements into containers.

The kernel edge of the ARP answer: what to send and on which ports is decided in
`vxlan_evt.resolve` (`arp.answer_ports`: container-facing veth ends only, so an answer can
never reach the bridge, the vxlan device or the underlay). One AF_PACKET socket (a trio
socket, so no thread) lives as long as the daemon. It is opened with protocol 0, so the
kernel never queues received frames on it; each frame names its interface and ethertype
in `sendto`.
"""

from __future__ import annotations

import logging
import socket

import trio

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
