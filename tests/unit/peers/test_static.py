from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from vxlan_evt.model.errors import InvalidOption
from vxlan_evt.peers.static import StaticPeers, load_peers_file
from vxlan_evt.peers.table import parse_peers_document

GOOD = {"42": [{"ip": "10.42.0.2", "mac": "02:42:0A:2A:00:02", "vtep": "192.0.2.2"}]}


def test_parse_and_look_up() -> None:
    table = parse_peers_document(GOOD)
    peer = table.by_ip(42, ipaddress.ip_address("10.42.0.2"))
    assert peer is not None and peer.mac == "02:42:0a:2a:00:02"
    assert table.by_mac(42, "02:42:0A:2A:00:02") == peer
    assert table.by_ip(43, ipaddress.ip_address("10.42.0.2")) is None
    assert table.vteps(42) == {ipaddress.ip_address("192.0.2.2")}


def test_every_mistake_is_reported_at_once() -> None:
    document = {
        "forty-two": [],
        "7": {"ip": "x"},
        "8": [
            {"ip": "10.0.0.300", "mac": "02:00:00:00:00:01", "vtep": "192.0.2.1"},
            {"ip": "10.0.0.1", "mac": "ff:ff:ff:ff:ff:ff", "vtep": "192.0.2.1", "colour": 1},
            "nope",
        ],
    }
    with pytest.raises(InvalidOption) as error:
        parse_peers_document(document)
    message = str(error.value)
    for expected in (
        "VNI 'forty-two' is not a VNI",
        "VNI '7' must be a list",
        "ip '10.0.0.300' is not an IP address",
        "broadcast",
        "unknown keys colour",
        "entry 2 must be an object",
    ):
        assert expected in message


def test_json_and_toml_files(tmp_path: Path) -> None:
    json_file = tmp_path / "peers.json"
    json_file.write_text(json.dumps(GOOD))
    toml_file = tmp_path / "peers.toml"
    toml_file.write_text(
        '"42" = [{ ip = "10.42.0.2", mac = "02:42:0a:2a:00:02", vtep = "192.0.2.2" }]\n'
    )
    assert load_peers_file(json_file) == load_peers_file(toml_file)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match=r"peers file .*missing\.json: No such file"):
        load_peers_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InvalidOption, match=r"broken\.json: not valid"):
        load_peers_file(broken)


def test_a_bad_edit_keeps_the_old_table(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps(GOOD))
    changes: list[None] = []
    peers = StaticPeers(path, on_change=lambda: changes.append(None))
    assert len(peers.table.endpoints) == 1
    path.write_text('{"42": [{"ip": "nope"}]}')
    assert peers.reload_if_changed() is False
    assert len(peers.table.endpoints) == 1
    assert changes == []  # the table in force did not change
    more = {
        "42": [*GOOD["42"], {"ip": "10.42.0.3", "mac": "02:42:0a:2a:00:03", "vtep": "192.0.2.3"}]
    }
    path.write_text(json.dumps(more))
    assert peers.reload_if_changed() is True
    assert len(peers.table.endpoints) == 2
    assert len(changes) == 1
    assert peers.reload_if_changed() is False  # unchanged file: nothing to do
