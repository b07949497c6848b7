from __future__ import annotations

import json
from ipaddress import ip_address

import pytest

from vxlan_evt.driver.options import parse_network_options
from vxlan_evt.peers.keys import (
    MalformedRecord,
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


KEY = b"/p/endpoints/42/h2/c2/10.42.0.2"


def record(**changes: object) -> bytes:
    document = json.loads(encode_endpoint(PEER))
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"/p/endpoints/x/h2/c2/10.42.0.2", encode_endpoint(PEER), "the key is not"),
        (b"/p/endpoints/42/h2/c2", encode_endpoint(PEER), "the key is not"),
        (b"/p/endpoints/16777216/h2/c2/10.42.0.2", encode_endpoint(PEER), "the key is not"),
        (b"/p/endpoints/\xff/h2", encode_endpoint(PEER), "the key is not"),
        (KEY, b"{", "not JSON"),
        (KEY, b"\xff\xfe", "not JSON"),
        (KEY, b"[" * 100_000 + b"]" * 100_000, "over 65536"),
        (KEY, b"[" * 30_000 + b"]" * 30_000, "not JSON"),  # nested past the recursion limit
        (KEY, b'["a"]', "not a JSON object but list"),
        (KEY, b'{"ip": "nope"}', "ip 'nope' is not an IP address"),
        (KEY, record(ip=4), "ip 4 is not an IP address"),
        (KEY, record(vtep="0.0.0.0"), "vtep 0.0.0.0 is unspecified"),
        (KEY, record(vtep="127.0.0.1"), "vtep 127.0.0.1 is a loopback address"),
        (KEY, record(vtep="::1"), "loopback"),
        (KEY, record(vtep="239.1.1.1"), "multicast"),
        (KEY, record(vtep="169.254.0.1"), "link-local"),
        (KEY, record(vtep="255.255.255.255"), "broadcast"),
        (KEY, record(vtep="192.0.2.2%eth0"), "not an IP address"),
        (KEY, record(ip="224.0.0.1"), "not a unicast address"),
        (KEY, record(mac="00:00:00:00:00:00"), "all zeros"),  # the flood entry
        (KEY, record(mac="01:00:5e:00:00:01"), "multicast"),
        (KEY, record(host=["h2"]), "host must be a name"),
        (KEY, record(container="x" * 300), "container must be a name"),
        (KEY, record(colour=1), "unknown keys colour"),
        (KEY, record(host="h3"), "its key 'h2'"),  # one host cannot speak for another
        (b"/p/endpoints/42/h2/c2/10.42.0.9", encode_endpoint(PEER), "ip 10.42.0.2, its key"),
    ],
)
def test_a_malformed_record_is_refused_saying_why(key: bytes, value: bytes, reason: str) -> None:
    with pytest.raises(MalformedRecord) as error:
        decode_endpoint(key, value)
    assert reason in str(error.value)
    assert len(str(error.value)) < 400  # a hostile record cannot flood the log


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
    for garbage, reason in [
        (b"[1, 2]", "not a JSON object"),
        (b"{not json", "not JSON"),
        (b'{"settings": ["Port"]}', "settings must map"),
        (b'{"settings": {"Port": 4789}}', "settings must map"),
        (b'{"subnets": [1]}', "subnets must be a list of strings"),
        (b'{"subnets": "10.0.0.0/8"}', "subnets must be a list of strings"),
    ]:
        with pytest.raises(MalformedRecord, match=reason):
            network_conflict(42, segment(), garbage)


def test_an_endpoint_with_a_malformed_mac_is_skipped() -> None:
    value = encode_endpoint(PEER).replace(PEER.mac.encode(), b"AA-BB-CC-DD-EE-FZ")
    with pytest.raises(MalformedRecord, match="is not a MAC address"):
        decode_endpoint(KEY, value)
    spelled = encode_endpoint(PEER).replace(
        PEER.mac.encode(), PEER.mac.upper().replace(":", "-").encode()
    )
    assert decode_endpoint(KEY, spelled).mac == PEER.mac
