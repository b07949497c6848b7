"""The peer table: per VNI, which IP and MAC live behind which VTEP.

Pure data. Backends (the static peers file now, etcd later) produce
`PeerEndpoint`s; the resolver looks misses up here. A table is immutable:
a change builds a new one, so readers never see half an update.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vxlan_evt.driver.options import normalise_mac
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.errors import InvalidOption

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PeerEndpoint:
    """One remote endpoint: its overlay IP and MAC, and the underlay VTEP it sits behind."""

    vni: int
    ip: IPAddress
    mac: str
    vtep: IPAddress
    source: str = "static"  # which backend said so
    host: str | None = None
    container: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "vni": self.vni,
            "ip": str(self.ip),
            "mac": self.mac,
            "vtep": str(self.vtep),
            "source": self.source,
            "host": self.host,
            "container": self.container,
        }


@dataclass(frozen=True, slots=True)
class PeerTable:
    endpoints: tuple[PeerEndpoint, ...] = ()
    _by_ip: Mapping[tuple[int, IPAddress], PeerEndpoint] = field(default_factory=dict, repr=False)
    _by_mac: Mapping[tuple[int, str], PeerEndpoint] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, endpoints: Iterable[PeerEndpoint]) -> PeerTable:
        """Index endpoints; a later entry for the same (VNI, IP) or (VNI, MAC) wins."""
        listed = tuple(endpoints)
        return cls(
            endpoints=listed,
            _by_ip={(e.vni, e.ip): e for e in listed},
            _by_mac={(e.vni, e.mac): e for e in listed},
        )

    def by_ip(self, vni: int, ip: IPAddress) -> PeerEndpoint | None:
        return self._by_ip.get((vni, ip))

    def by_mac(self, vni: int, mac: str) -> PeerEndpoint | None:
        return self._by_mac.get((vni, mac.lower()))

    def vteps(self, vni: int) -> set[IPAddress]:
        return {e.vtep for e in self.endpoints if e.vni == vni}

    def merged(self, other: PeerTable) -> PeerTable:
        return PeerTable.build((*self.endpoints, *other.endpoints))


def parse_peers_document(document: Any, *, source: str = "static") -> PeerTable:
    """`{"<VNI>": [{"ip": ..., "mac": ..., "vtep": ...}, ...]}`; every mistake is reported."""
    if not isinstance(document, dict):
        raise InvalidOption("peers file: the top level must map VNIs to lists of peers")
    problems: list[str] = []
    endpoints: list[PeerEndpoint] = []
    for raw_vni, peers in document.items():
        where = f"peers file: VNI {raw_vni!r}"
        try:
            vni = int(raw_vni)
            if not 0 <= vni <= 16_777_215:
                raise ValueError
        except ValueError:
            problems.append(f"{where} is not a VNI (an integer 0..16777215)")
            continue
        if not isinstance(peers, list):
            problems.append(f"{where} must be a list of peers")
            continue
        for position, peer in enumerate(peers):
            at = f"{where}, entry {position}"
            if not isinstance(peer, dict):
                problems.append(f"{at} must be an object with ip, mac, vtep")
                continue
            try:
                endpoints.append(peer_from_document(vni, peer, where=at, source=source))
            except InvalidOption as exc:
                problems.append(str(exc))
    if problems:
        raise InvalidOption("; ".join(problems))
    return PeerTable.build(endpoints)


PEER_KEYS = frozenset({"ip", "mac", "vtep", "host", "container"})


def peer_from_document(
    vni: int, document: Mapping[str, Any], *, where: str, source: str
) -> PeerEndpoint:
    """One peer from what a peers file or etcd says, checked the same way for both.

    Each field becomes an FDB or neighbour entry on every host of the segment, so what
    would misdirect traffic is refused, naming the field: a VTEP that is not a unicast
    address another host can route to (0.0.0.0, 127.x, multicast, link-local: the entry
    would send the segment's frames nowhere, or to this host itself), an overlay address
    that is not unicast, a MAC that is not unicast (all zeros is the flood entry).
    """
    problems: list[str] = []

    def check(parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except InvalidOption as exc:
            problems.append(str(exc))
            return None

    unknown = sorted(str(k) for k in set(document) - PEER_KEYS)
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(unknown)}")
    ip = check(lambda: _address(where, "ip", document.get("ip")))
    if ip is not None and (ip.is_unspecified or ip.is_multicast or ip.is_loopback):
        problems.append(f"{where}: ip {ip} is not a unicast address of a container")
    mac = check(lambda: normalise_mac(f"{where}: mac", str(document.get("mac", ""))))
    vtep = check(lambda: _address(where, "vtep", document.get("vtep")))
    why = _unroutable(vtep) if vtep is not None else None
    if why is not None:
        problems.append(f"{where}: vtep {vtep} is {why}; expected a host's underlay address")
    names: dict[str, str | None] = {}
    for key in ("host", "container"):
        value = document.get(key)
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= 255):
            problems.append(f"{where}: {key} must be a name (a short string), not {value!r:.40}")
        names[key] = value
    if problems or ip is None or mac is None or vtep is None:
        raise InvalidOption("; ".join(problems))
    return PeerEndpoint(
        vni=vni,
        ip=ip,
        mac=mac,
        vtep=vtep,
        source=source,
        host=names["host"],
        container=names["container"],
    )


def _unroutable(vtep: IPAddress) -> str | None:
    if vtep.is_unspecified:
        return "unspecified"
    if vtep.is_loopback:
        return "a loopback address"
    if vtep.is_multicast:
        return "multicast (a Group is a network option, not a peer)"
    if vtep.is_link_local:
        return "link-local"
    if isinstance(vtep, ipaddress.IPv4Address) and (vtep.is_reserved or vtep.packed == b"\xff" * 4):
        return "reserved or broadcast"
    return None


def _address(where: str, key: str, value: object) -> IPAddress:
    try:
        if not isinstance(value, str):
            raise ValueError
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidOption(f"{where}: {key} {value!r} is not an IP address") from None
