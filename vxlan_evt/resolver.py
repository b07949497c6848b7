"""Answer L2/L3 misses from the peer table: which kernel entries to write.

Pure. An L3 miss (who has IP?) is answered with the neighbour entry *and* the
FDB entry, so the next packet leaves at once; an L2 miss (where is MAC?)
with the FDB entry. A miss the table cannot answer yields no writes and is
counted by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from vxlan_evt.peers.table import IPAddress, PeerEndpoint, PeerTable


@dataclass(frozen=True, slots=True)
class NeighReplace:
    """`ip neigh replace IP lladdr MAC dev IFINDEX nud permanent`."""

    ifindex: int
    ip: IPAddress
    mac: str


@dataclass(frozen=True, slots=True)
class FdbReplace:
    """`bridge fdb replace MAC dev IFINDEX dst VTEP self permanent`."""

    ifindex: int
    mac: str
    vtep: IPAddress


EntryWrite = NeighReplace | FdbReplace


@dataclass(frozen=True, slots=True)
class Answer:
    peer: PeerEndpoint
    writes: tuple[EntryWrite, ...]


def answer_l3_miss(table: PeerTable, *, vni: int, ifindex: int, ip: IPAddress) -> Answer | None:
    peer = table.by_ip(vni, ip)
    if peer is None:
        return None
    return Answer(
        peer,
        (NeighReplace(ifindex, peer.ip, peer.mac), FdbReplace(ifindex, peer.mac, peer.vtep)),
    )


def answer_l2_miss(table: PeerTable, *, vni: int, ifindex: int, mac: str) -> Answer | None:
    peer = table.by_mac(vni, mac)
    if peer is None:
        return None
    return Answer(peer, (FdbReplace(ifindex, peer.mac, peer.vtep),))
