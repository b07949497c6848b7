"""This host's own endpoints as peers, for publishing to other hosts."""

from __future__ import annotations

import ipaddress
import logging

from vxlan_evt.peers.table import PeerEndpoint
from vxlan_evt.state import DriverState

log = logging.getLogger(__name__)


def local_endpoints(
    state: DriverState, *, host: str, advertise_address: str | None
) -> list[PeerEndpoint]:
    """Every endpoint with an address; its VTEP is the network's SrcAddr or the advertised one.

    Endpoints of a network with neither cannot be reached by unicast from other
    hosts: they are left out (multicast Group networks still work by learning).
    """
    peers = []
    for endpoint in state.endpoints.values():
        network = state.networks.get(endpoint.network_id)
        if network is None:
            continue
        vtep = network.generic_options.get("SrcAddr") or advertise_address
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
