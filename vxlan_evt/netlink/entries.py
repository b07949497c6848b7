"""Write and delete FDB and neighbour entries on vxlan devices, on the worker's IPRoute.

The pyroute2 trap (DESIGN.md): an FDB write without NTF_SELF and a permanent
state lands in the *bridge* FDB, not the vxlan device's. Every FDB call here
carries both. The all-zeros MAC (flooding to one VTEP) is *appended*: there is
one such entry per remote VTEP.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from vxlan_evt.reconcile import ZERO_MAC, Entry, NeighEntry

NTF_SELF = 0x02
NUD_PERMANENT = ndmsg.states["permanent"]
NUD_NOARP = ndmsg.states["noarp"]


def _family(entry: NeighEntry) -> int:
    return socket.AF_INET6 if entry.ip.version == 6 else socket.AF_INET


def _write(ipr: Any, entry: Entry) -> None:
    if isinstance(entry, NeighEntry):
        ipr.neigh(
            "replace",
            ifindex=entry.ifindex,
            dst=str(entry.ip),
            lladdr=entry.mac,
            family=_family(entry),
            state=NUD_PERMANENT,
        )
    else:
        ipr.fdb(
            "append" if entry.mac == ZERO_MAC else "replace",
            ifindex=entry.ifindex,
            lladdr=entry.mac,
            dst=str(entry.dst),
            flags=NTF_SELF,
            state=NUD_PERMANENT | NUD_NOARP,
        )


def _delete(ipr: Any, entry: Entry) -> None:
    try:
        if isinstance(entry, NeighEntry):
            ipr.neigh("del", ifindex=entry.ifindex, dst=str(entry.ip), family=_family(entry))
        else:
            ipr.fdb(
                "del", ifindex=entry.ifindex, lladdr=entry.mac, dst=str(entry.dst), flags=NTF_SELF
            )
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENODEV):
            raise


def write_entries(ipr: Any, writes: Sequence[Entry]) -> list[tuple[Entry, str]]:
    """Apply every write; return the ones that failed with the kernel's reason."""
    return _each(ipr, writes, _write)


def delete_entries(ipr: Any, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
    """Delete every entry (gone already is fine); return the failures."""
    return _each(ipr, entries, _delete)


def _each(ipr: Any, entries: Sequence[Entry], apply: Any) -> list[tuple[Entry, str]]:
    failures: list[tuple[Entry, str]] = []
    for entry in entries:
        try:
            apply(ipr, entry)
        except Exception as exc:  # one bad entry must not lose the others
            failures.append((entry, str(exc)))
    return failures
