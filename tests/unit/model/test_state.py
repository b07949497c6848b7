from __future__ import annotations

import pytest

from vxlan_evt.model.errors import SystemFailure
from vxlan_evt.model.state import (
    DriverState,
    EndpointRecord,
    NetworkRecord,
    decode_state,
    encode_state,
    new_instance,
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
    state = DriverState(instance=new_instance()).with_network(NETWORK).with_endpoint(ENDPOINT)
    assert decode_state(encode_state(state)) == state


def test_a_state_file_from_before_instances_has_none_yet() -> None:
    old = b'{"version": 1, "networks": {}, "endpoints": {}}'
    assert decode_state(old) == DriverState(instance="")


def test_without_network_drops_its_endpoints() -> None:
    state = DriverState(instance="0123456789abcdef").with_network(NETWORK).with_endpoint(ENDPOINT)
    assert state.without_network("n1") == DriverState(instance="0123456789abcdef")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[1]",
        b'{"version": 99}',
        b'{"version": 1, "networks": {"x": {"bogus": 1}}}',
        b'{"version": 1, "networks": [], "endpoints": {}}',
        b'{"version": 1, "networks": {}, "endpoints": {}, "instance": "../etc"}',
        b'{"version": 1, "networks": {}, "endpoints": {}, "instance": 7}',
    ],
)
def test_damaged_state_is_a_system_failure(data: bytes) -> None:
    with pytest.raises(SystemFailure, match="state file is damaged"):
        decode_state(data)
