from __future__ import annotations

from ipaddress import ip_address

from vxlan_evt.peers.etcd_keys import (
    decode_endpoint,
    encode_endpoint,
    encode_network,
    endpoint_key,
    network_conflict,
    table_from,
)
from vxlan_evt.peers.table import PeerEndpoint

PEER = PeerEndpoint(
    42, ip_address("10.42.0.2"), "02:42:0a:2a:00:02", ip_address("192.0.2.2"), "etcd", "h2", "c2"
)


def test_endpoint_round_trip() -> None:
    key = endpoint_key("/vxlan-evt/v1/", PEER)
    assert key == f"/vxlan-evt/v1/endpoints/42/h2/c2/{PEER.ip}".encode()
    assert decode_endpoint(key, encode_endpoint(PEER)) == PEER


def test_malformed_endpoints_are_skipped() -> None:
    assert decode_endpoint(b"/p/endpoints/x/h/c", encode_endpoint(PEER)) is None
    assert decode_endpoint(b"/p/endpoints/42/h/c", b"{") is None
    assert decode_endpoint(b"/p/endpoints/42/h/c", b'{"ip": "nope"}') is None


def test_local_endpoints_win_over_what_etcd_says() -> None:
    stale = PeerEndpoint(42, PEER.ip, "02:00:00:00:00:01", ip_address("192.0.2.9"), "etcd")
    local = PeerEndpoint(42, PEER.ip, PEER.mac, ip_address("192.0.2.1"), "local")
    table = table_from({b"k": stale}, [local])
    assert table.by_ip(42, PEER.ip) == local


def test_network_conflicts_name_every_difference_but_ignore_host_local_options() -> None:
    published = encode_network({"VxlanId": "42", "Group": "239.1.1.1", "VtepDev": "eth1"})
    assert (
        network_conflict(42, {"VxlanId": "42", "Group": "239.1.1.1", "VtepDev": "eth2"}, published)
        is None
    )
    message = network_conflict(
        42, {"VxlanId": "42", "Port": "4790", "VtepDev": "eth1"}, published, host="h2"
    )
    assert message is not None and message.startswith(
        "VxlanId 42 is already used on host h2 with other settings: "
        "Group=(unset) here but 239.1.1.1 there; Port=4790 here but (unset) there. "
    )


def test_a_different_subnet_is_a_conflict_and_garbage_is_not() -> None:
    published = encode_network({"VxlanId": "42"}, ["10.42.0.0/24"])
    same = network_conflict(42, {"VxlanId": "42"}, published, subnets=["10.42.0.0/24"])
    assert same is None
    other = network_conflict(42, {"VxlanId": "42"}, published, subnets=["10.43.0.0/24"])
    assert other is not None and "subnet 10.43.0.0/24 here but 10.42.0.0/24 there" in other
    assert network_conflict(42, {"VxlanId": "42"}, b"[1, 2]") is None
    assert network_conflict(42, {"VxlanId": "42"}, b"{not json") is None
