from __future__ import annotations

from ipaddress import ip_address

from vxlan_evt.driver.options import parse_network_options
from vxlan_evt.peers.keys import (
    decode_endpoint,
    encode_endpoint,
    encode_network,
    endpoint_key,
    network_conflict,
    segment_settings,
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


def segment(**generic: str) -> dict[str, str]:
    return segment_settings(parse_network_options({"VxlanId": "42", **generic}).vxlan)


def test_only_segment_wide_settings_conflict_and_they_are_compared_parsed() -> None:
    published = encode_network(segment(Group="239.1.1.1", VtepDev="eth1", L3miss="true"))
    # Host-local options and spellings of the same value are no conflict.
    same = segment(Group="239.1.1.1", VtepDev="eth2", Proxy="1", Resolve="on-demand")
    assert network_conflict(42, same, published) is None
    assert network_conflict(42, segment(Port="4789", GBP="0"), encode_network(segment())) is None
    message = network_conflict(42, segment(Port="4790"), published, host="h2")
    assert message is not None and message.startswith(
        "VxlanId 42 is already used on host h2 with other settings: "
        "Group=(unicast) here but 239.1.1.1 there; Port=4790 here but 4789 there. "
    )


def test_a_different_subnet_is_a_conflict_and_garbage_is_not() -> None:
    published = encode_network(segment(), ["10.42.0.0/24"])
    assert network_conflict(42, segment(), published, subnets=["10.42.0.0/24"]) is None
    other = network_conflict(42, segment(), published, subnets=["10.43.0.0/24"])
    assert other is not None and "subnet 10.43.0.0/24 here but 10.42.0.0/24 there" in other
    assert network_conflict(42, segment(), b"[1, 2]") is None
    assert network_conflict(42, segment(), b"{not json") is None


def test_an_endpoint_with_a_malformed_mac_is_skipped() -> None:
    value = encode_endpoint(PEER).replace(PEER.mac.encode(), b"AA-BB-CC-DD-EE-FZ")
    assert decode_endpoint(b"/p/endpoints/42/h/c/10.42.0.2", value) is None
    spelled = encode_endpoint(PEER).replace(
        PEER.mac.encode(), PEER.mac.upper().replace(":", "-").encode()
    )
    decoded = decode_endpoint(b"/p/endpoints/42/h/c/10.42.0.2", spelled)
    assert decoded is not None and decoded.mac == PEER.mac
