"""This host's own endpoints as peers, for publishing to other hosts."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection, Mapping

from vxlan_evt.model.links import Address, LinkInfo
from vxlan_evt.model.state import DriverState, NetworkRecord
from vxlan_evt.peers.table import PeerEndpoint

log = logging.getLogger(__name__)


def vtep_of(record: NetworkRecord, advertise_address: str | None) -> str | None:
    """This host's VTEP on a network: its SrcAddr, else the address advertised to others."""
    return record.generic_options.get("SrcAddr") or advertise_address


def local_endpoints(
    state: DriverState,
    *,
    host: str,
    advertise_address: str | None,
    links: Mapping[int, LinkInfo] | None = None,
    addresses: Mapping[int, Collection[Address]] | None = None,
) -> list[PeerEndpoint]:
    """Every endpoint with an address; its VTEP is the network's SrcAddr or the advertised one.

    Endpoints of a network with neither cannot be reached by unicast from other
    hosts: they are left out (multicast Group networks still work by learning).
    With the kernel's `links` and `addresses`, the host itself is an endpoint too
    for every address an operator put on a network's bridge (see `host_members`).
    """
    peers = host_members(
        state, host=host, advertise_address=advertise_address,
        links=links or {}, addresses=addresses or {},
    )  # fmt: skip
    for endpoint in state.endpoints.values():
        network = state.networks.get(endpoint.network_id)
        if network is None:
            continue
        vtep = vtep_of(network, advertise_address)
        if vtep is None:
            continue
        for cidr in (endpoint.address, endpoint.address6):
            if cidr:
                peers.append(
                    PeerEndpoint(
                        vni=network.vni,
                        ip=ipaddress.ip_interface(cidr).ip,
                        mac=endpoint.mac,
                        vtep=ipaddress.ip_address(vtep),
                        source="local",
                        host=host,
                        container=endpoint.endpoint_id[:12],
                    )
                )
    return peers


def host_members(
    state: DriverState,
    *,
    host: str,
    advertise_address: str | None,
    links: Mapping[int, LinkInfo],
    addresses: Mapping[int, Collection[Address]],
) -> list[PeerEndpoint]:
    """The host joins a segment by putting an address on the network's bridge (or on its
    vxlan device when that is not a bridge port): that address, with the interface's MAC,
    is published like a container's. Addresses vxlan-evt put there itself (the local-scope
    gateway, the same on every host) and IPv6 link-local ones are not.
    """
    by_name = {info.ifname: info for info in links.values()}
    members = []
    for record in state.networks.values():
        vtep = vtep_of(record, advertise_address)
        if vtep is None:
            continue
        for info in _joinable_links(record, by_name):
            for ip, _prefixlen in sorted(addresses.get(info.ifindex, ()), key=str):
                if ip in _own_addresses(record) or ip.is_link_local or info.mac is None:
                    continue
                members.append(
                    PeerEndpoint(
                        vni=record.vni, ip=ip, mac=info.mac, vtep=ipaddress.ip_address(vtep),
                        source="local", host=host, container=f"host-{info.ifname}",
                    )
                )  # fmt: skip
    return members


def _joinable_links(record: NetworkRecord, by_name: Mapping[str, LinkInfo]) -> list[LinkInfo]:
    bridge, vxlan = by_name.get(record.bridge_name), by_name.get(record.vxlan_name)
    joinable = [bridge] if bridge is not None else []
    if vxlan is not None and vxlan.master is None:
        joinable.append(vxlan)
    return joinable


def _own_addresses(record: NetworkRecord) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return {ipaddress.ip_interface(cidr).ip for cidr in record.host_addresses}
