"""Answer L2/L3 misses from the peer table: which kernel entries to write.

Pure. An L3 miss (who has IP?) is answered with the neighbour entry *and* the
FDB entry, so the next packet leaves at once; an L2 miss (where is MAC?)
with the FDB entry. A miss the table cannot answer yields no writes and is
counted by the caller. This host's own endpoints (source "local", or anything
behind one of the device's own VTEPs) are never an answer: they sit behind the
bridge, and an entry pointing at our own VTEP would send their traffic back into
our own vxlan device.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.peers.table import PeerEndpoint, PeerTable


@dataclass(frozen=True, slots=True)
class Answer:
    peer: PeerEndpoint
    writes: tuple[Entry, ...]


def _ours(peer: PeerEndpoint, local_vteps: Collection[IPAddress]) -> bool:
    return peer.source == "local" or peer.vtep in local_vteps


def answer_l3_miss(
    table: PeerTable,
    *,
    vni: int,
    ifindex: int,
    ip: IPAddress,
    local_vteps: Collection[IPAddress] = (),
) -> Answer | None:
    peer = table.by_ip(vni, ip)
    if peer is None or _ours(peer, local_vteps):
        return None
    return Answer(
        peer,
        (NeighEntry(ifindex, peer.ip, peer.mac), FdbEntry(ifindex, peer.mac, peer.vtep)),
    )


def answer_l2_miss(
    table: PeerTable,
    *,
    vni: int,
    ifindex: int,
    mac: str,
    local_vteps: Collection[IPAddress] = (),
) -> Answer | None:
    peer = table.by_mac(vni, mac)
    if peer is None or _ours(peer, local_vteps):
        return None
    return Answer(peer, (FdbEntry(ifindex, peer.mac, peer.vtep),))
