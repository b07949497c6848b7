"""How long ago the kernel used each FDB and neighbour entry of some vxlan devices.

Runs on the netlink worker's IPRoute (`worker.call(lambda nl: read_usage(nl.route, ...))`).
The kernel reports the times in NDA_CACHEINFO as ages, not timestamps:
`ndm_used` / `ndm_updated` are clock_t ticks (USER_HZ) *since* the entry was
last used / changed, the figures `ip -s neigh` and `bridge -s fdb` print in
seconds. A vxlan FDB entry's `used` moves every time the device transmits to
that MAC; a permanent neighbour entry's does not (the ARP/ND proxy's lookups
leave it alone), so callers should take the freshest of the two.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from vxlan_evt.kernel.wire import NTF_SELF
from vxlan_evt.model.addresses import IPAddress

CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))  # USER_HZ: the unit of NDA_CACHEINFO


@dataclass(frozen=True, slots=True)
class FdbUsage:
    dsts: frozenset[IPAddress]  # remote VTEPs of this MAC (one message per remote)
    used: float  # seconds since the device last transmitted to the MAC
    updated: float


@dataclass(frozen=True, slots=True)
class NeighUsage:
    mac: str | None
    used: float
    updated: float


@dataclass(frozen=True, slots=True)
class KernelUsage:
    """Entry ages by key: FDB by (ifindex, mac), neighbours by (ifindex, ip)."""

    fdb: Mapping[tuple[int, str], FdbUsage] = field(default_factory=dict)
    neigh: Mapping[tuple[int, IPAddress], NeighUsage] = field(default_factory=dict)


def _ages(message: Any) -> tuple[float, float] | None:
    info = message.get_attr("NDA_CACHEINFO")
    if not info:
        return None
    return info["ndm_used"] / CLOCK_TICKS, info["ndm_updated"] / CLOCK_TICKS


def read_usage(ipr: Any, ifindexes: Collection[int]) -> KernelUsage:
    """The vxlan devices' own FDB entries (`self`, with a remote) and their neighbour entries."""
    wanted = set(ifindexes)
    fdb: dict[tuple[int, str], FdbUsage] = {}
    for message in ipr.get_neighbours(family=socket.AF_BRIDGE):
        mac, dst, ages = message.get_attr("NDA_LLADDR"), message.get_attr("NDA_DST"), _ages(message)
        if message["ifindex"] not in wanted or not message["flags"] & NTF_SELF:
            continue  # "master" entries on a vxlan port are the bridge's, not the device's
        if not mac or not dst or ages is None:
            continue
        key = (message["ifindex"], mac.lower())
        before = fdb.get(key)
        dsts = frozenset({ip_address(dst)}) | (before.dsts if before else frozenset())
        fdb[key] = FdbUsage(dsts, *ages)
    neigh: dict[tuple[int, IPAddress], NeighUsage] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        for message in ipr.get_neighbours(family=family):
            dst, ages = message.get_attr("NDA_DST"), _ages(message)
            if message["ifindex"] not in wanted or not dst or ages is None:
                continue
            mac = message.get_attr("NDA_LLADDR")
            neigh[(message["ifindex"], ip_address(dst))] = NeighUsage(
                mac.lower() if mac else None, *ages
            )
    return KernelUsage(fdb, neigh)
