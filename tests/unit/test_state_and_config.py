from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_evt.daemon.config import DaemonConfig, normalise_legacy_flags
from vxlan_evt.driver.store import StateStore
from vxlan_evt.model.errors import SystemFailure
from vxlan_evt.model.state import (
    DriverState,
    EndpointRecord,
    NetworkRecord,
    decode_state,
    encode_state,
)

NETWORK = NetworkRecord(
    network_id="n1",
    generic_options={"VxlanId": "42"},
    vni=42,
    vxlan_name="vx-42",
    bridge_name="br-42",
    vxlan_mtu=1450,
    bridge_mtu=1450,
    gateways=("10.42.0.254/24",),
    host_addresses=("10.42.0.254/24",),
    pools=("10.42.0.0/24",),
)
ENDPOINT = EndpointRecord(
    network_id="n1",
    endpoint_id="e1",
    host_ifname="vhe1",
    container_ifname="vce1",
    mac="02:42:0a:2a:00:02",
    address="10.42.0.2/24",
)


def test_state_round_trips() -> None:
    state = DriverState().with_network(NETWORK).with_endpoint(ENDPOINT)
    assert decode_state(encode_state(state)) == state


def test_without_network_drops_its_endpoints() -> None:
    state = DriverState().with_network(NETWORK).with_endpoint(ENDPOINT)
    assert state.without_network("n1") == DriverState()


@pytest.mark.parametrize(
    "data", [b"", b"{", b'{"version": 99}', b'{"version": 1, "networks": {"x": {"bogus": 1}}}']
)
def test_damaged_state_is_a_system_failure(data: bytes) -> None:
    with pytest.raises(SystemFailure, match="state file is damaged"):
        decode_state(data)


def test_store_saves_atomically_and_loads(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load() == DriverState()
    state = DriverState().with_network(NETWORK)
    store.save(state)
    assert store.load() == state
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["state.json"]
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "-scope", "global"], ["serve", "--scope", "global"]),
        (["serve", "-scope=global"], ["serve", "--scope=global"]),
        (["serve", "-vtepdev", "eth1", "-d"], ["serve", "--vtepdev", "eth1", "-d"]),
        (["serve", "--scope", "local"], ["serve", "--scope", "local"]),
    ],
)
def test_legacy_single_dash_flags(argv: list[str], expected: list[str]) -> None:
    assert normalise_legacy_flags(argv) == expected


def test_driver_name_is_the_socket_stem() -> None:
    assert DaemonConfig(plugin_socket=Path("/run/docker/plugins/vxlan.sock")).driver_name == "vxlan"
