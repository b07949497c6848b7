"""The observe API's tables: their names and what each one holds.

One list for both ends: the daemon serves exactly these (`/<name>`), the CLI offers a
verb of the same name with this text as its help, and a view renders each.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

OBSERVE_TABLES: Mapping[str, str] = MappingProxyType(
    {
        "networks": "networks this host's driver created (VNI, devices, MTU, options)",
        "endpoints": "container endpoints: veth names, MAC, addresses",
        "links": "kernel links with their vxlan settings and owning network/endpoint",
        "fdb": "FDB entries on vxlan devices and bridges (MAC -> VTEP), with their source",
        "neigh": "neighbour (ARP/ND) entries, with the network they belong to",
        "peers": "the peer table: which IP/MAC lives behind which VTEP, per VNI",
        "misses": "L2/L3 misses seen, answered and unanswered (most unanswered first)",
        "ondemand": "entries programmed on demand, with their idle time",
    }
)
