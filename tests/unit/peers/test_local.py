"""This host's own entries in the peer table: container endpoints and a host that joined."""

from __future__ import annotations

from ipaddress import ip_address

from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.state import DriverState, EndpointRecord, NetworkRecord
from vxlan_evt.peers.local import local_endpoints

NET = "n" * 64
EP = "e" * 64
BRIDGE_MAC = "02:42:00:00:00:b1"
NETWORK = NetworkRecord(
    NET, {"VxlanId": "42", "SrcAddr": "10.99.0.1"}, 42, "vx-42", "br-42", 1450, 1450,
    gateways=("10.42.0.254/24",), host_addresses=("10.42.0.254/24",),
)  # fmt: skip
ENDPOINT = EndpointRecord(
    NET, EP, "vh1", "eth0", "02:42:0a:2a:00:02", address="10.42.0.2/24", address6="fd42::2/64"
)
STATE = DriverState({NET: NETWORK}, {EP: ENDPOINT})


def link(ifindex: int, name: str, master: int | None = None, mac: str = BRIDGE_MAC) -> LinkInfo:
    kind = "bridge" if name.startswith("br") else "vxlan"
    return LinkInfo(ifindex, name, kind, None, 1450, master, None, "UP", True, mac)


LINKS = {4: link(4, "br-42"), 3: link(3, "vx-42", master=4, mac="02:42:00:00:00:c1")}


def test_every_address_of_an_endpoint_is_a_peer() -> None:
    peers = local_endpoints(STATE, host="h1", advertise_address=None)
    assert {(str(p.ip), p.mac, str(p.vtep), p.container) for p in peers} == {
        ("10.42.0.2", ENDPOINT.mac, "10.99.0.1", EP[:12]),
        ("fd42::2", ENDPOINT.mac, "10.99.0.1", EP[:12]),
    }


def test_an_address_on_the_bridge_makes_the_host_a_member() -> None:
    addresses = {
        4: {(ip_address("10.42.0.254"), 24),  # our own local-scope gateway: not published
            (ip_address("10.42.0.200"), 24),  # put there by the operator: published
            (ip_address("fe80::1"), 64)},  # link-local: not published
        3: {(ip_address("10.42.0.201"), 24)},  # on a bridge port: unreachable, not published
    }  # fmt: skip
    peers = local_endpoints(STATE, host="h1", advertise_address=None, links=LINKS,
                            addresses=addresses)  # fmt: skip
    members = [p for p in peers if p.container == "host-br-42"]
    assert [(str(p.ip), p.mac, str(p.vtep), p.host) for p in members] == [
        ("10.42.0.200", BRIDGE_MAC, "10.99.0.1", "h1")
    ]


def test_a_network_without_a_vtep_publishes_no_member() -> None:
    no_vtep = NetworkRecord(NET, {"VxlanId": "42"}, 42, "vx-42", "br-42", 1450, 1450)
    peers = local_endpoints(
        DriverState({NET: no_vtep}), host="h1", advertise_address=None,
        links=LINKS, addresses={4: {(ip_address("10.42.0.200"), 24)}},
    )  # fmt: skip
    assert peers == []
