"""Pre-programming: the kernel entries the peer table wants, and the minimal writes to get there.

Pure. For every remote endpoint of a VNI that has a vxlan device here: an FDB
entry (MAC → VTEP) and a neighbour entry (IP → MAC), so the first packet
leaves without a miss. For networks without a multicast Group, one all-zeros
FDB entry per remote VTEP carries broadcast and unknown traffic (head-end
replication). Only entries this daemon wrote (`owned`) are ever deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vxlan_evt.model.addresses import ZERO_MAC, IPAddress
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.peers.table import PeerTable


@dataclass(frozen=True, slots=True)
class Device:
    """A vxlan device of one of our networks, as the pre-program sync needs it."""

    vni: int
    ifindex: int
    head_end_replication: bool  # no multicast Group: flood to each VTEP by unicast
    local_vteps: frozenset[IPAddress] = frozenset()
    # Pre-programmed: an FDB and a neighbour entry per remote endpoint. On demand those
    # come from misses, and only the flood entries (one per VTEP) are kept here.
    per_endpoint: bool = True


def desired_entries(table: PeerTable, devices: Iterable[Device]) -> set[Entry]:
    wanted: set[Entry] = set()
    for device in devices:
        for peer in table.endpoints if device.per_endpoint else ():
            if peer.vni != device.vni or peer.vtep in device.local_vteps:
                continue
            wanted.add(FdbEntry(device.ifindex, peer.mac, peer.vtep))
            wanted.add(NeighEntry(device.ifindex, peer.ip, peer.mac))
        if device.head_end_replication:
            for vtep in table.vteps(device.vni) - device.local_vteps:
                wanted.add(FdbEntry(device.ifindex, ZERO_MAC, vtep))
    return wanted


@dataclass(frozen=True, slots=True)
class SyncPlan:
    write: frozenset[Entry]
    delete: frozenset[Entry]

    def __bool__(self) -> bool:
        return bool(self.write or self.delete)


def plan_sync(desired: set[Entry], present: set[Entry], owned: set[Entry]) -> SyncPlan:
    """Write what is wanted and missing; delete what we wrote and nobody wants any more.

    A neighbour entry is keyed by (device, IP): one with another MAC is
    replaced by the write, so it is not deleted separately.
    """
    write = desired - present
    rewritten = {(e.ifindex, e.ip) for e in write if isinstance(e, NeighEntry)}
    delete = {
        e
        for e in (owned - desired) & present
        if not (isinstance(e, NeighEntry) and (e.ifindex, e.ip) in rewritten)
    }
    return SyncPlan(frozenset(write), frozenset(delete))
