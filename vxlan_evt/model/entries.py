"""The two kinds of kernel entry vxlan-evt writes on a vxlan device.

An FDB entry says behind which VTEP a MAC lives (`bridge fdb ... self dst VTEP`); a
neighbour entry says which MAC an IP has (`ip neigh ... lladdr MAC`). The resolver, the
pre-programming sync, on-demand eviction and the kernel's entry writer all speak them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vxlan_evt.model.addresses import IPAddress


@dataclass(frozen=True, slots=True)
class FdbEntry:
    ifindex: int
    mac: str
    dst: IPAddress


@dataclass(frozen=True, slots=True)
class NeighEntry:
    ifindex: int
    ip: IPAddress
    mac: str


Entry = FdbEntry | NeighEntry
