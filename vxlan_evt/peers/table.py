"""The peer table: per VNI, which IP and MAC live behind which VTEP.

Pure data. Backends (the static peers file now, etcd later) produce
`PeerEndpoint`s; the resolver looks misses up here. A table is immutable:
a change builds a new one, so readers never see half an update.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vxlan_evt.driver.options import normalise_mac
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.errors import InvalidOption


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
            unknown = sorted(set(peer) - {"ip", "mac", "vtep", "host", "container"})
            if unknown:
                problems.append(f"{at}: unknown keys {', '.join(unknown)}")
            try:
                endpoints.append(
                    PeerEndpoint(
                        vni=vni,
                        ip=_address(at, "ip", peer.get("ip")),
                        mac=normalise_mac(f"{at}: mac", str(peer.get("mac", ""))),
                        vtep=_address(at, "vtep", peer.get("vtep")),
                        source=source,
                        host=peer.get("host"),
                        container=peer.get("container"),
                    )
                )
            except InvalidOption as exc:
                problems.append(str(exc))
    if problems:
        raise InvalidOption("; ".join(problems))
    return PeerTable.build(endpoints)


def _address(where: str, key: str, value: object) -> IPAddress:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidOption(f"{where}: {key} {value!r} is not an IP address") from None
