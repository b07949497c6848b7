"""Write FDB and neighbour entries on vxlan devices, in batches, on the worker's IPRoute.

The pyroute2 trap (DESIGN.md): an FDB write without NTF_SELF and a permanent
state lands in the *bridge* FDB, not the vxlan device's. Every FDB write here
carries both.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink.rtnl import ndmsg

from vxlan_evt.resolver import EntryWrite, FdbReplace, NeighReplace

NTF_SELF = 0x02
NUD_PERMANENT = ndmsg.states["permanent"]
NUD_NOARP = ndmsg.states["noarp"]


def write_entries(ipr: Any, writes: Sequence[EntryWrite]) -> list[tuple[EntryWrite, str]]:
    """Apply every write; return the ones that failed with the kernel's reason."""
    failures: list[tuple[EntryWrite, str]] = []
    for write in writes:
        try:
            if isinstance(write, NeighReplace):
                ipr.neigh(
                    "replace",
                    ifindex=write.ifindex,
                    dst=str(write.ip),
                    lladdr=write.mac,
                    family=socket.AF_INET6 if write.ip.version == 6 else socket.AF_INET,
                    state=NUD_PERMANENT,
                )
            elif isinstance(write, FdbReplace):
                ipr.fdb(
                    "replace",
                    ifindex=write.ifindex,
                    lladdr=write.mac,
                    dst=str(write.vtep),
                    flags=NTF_SELF,
                    state=NUD_PERMANENT | NUD_NOARP,
                )
        except Exception as exc:  # one bad entry must not lose the others
            failures.append((write, str(exc)))
    return failures
