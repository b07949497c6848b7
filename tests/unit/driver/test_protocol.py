"""Docker's requests as the protocol layer reads them: IDs, MACs and bodies of any shape."""

from __future__ import annotations

import pytest

from vxlan_evt.driver.protocol import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRef,
    NetworkRef,
    parse_body,
)
from vxlan_evt.model.errors import UserError

NETWORK = "a" * 64
ENDPOINT = "0123456789abcdef" * 4
SWARM_NETWORK = "v7bwzy4s9j04c85b4f820npc6"  # swarm's network IDs: 25 base-36 characters


def endpoint(**interface: object) -> dict[str, object]:
    return {"NetworkID": NETWORK, "EndpointID": ENDPOINT, "Interface": interface}


@pytest.mark.parametrize(
    "bad",
    [
        "A" * 64,  # upper case: Docker never sends it, and names would not round-trip
        "a ep=" + "b" * 64,  # would read as network a, endpoint b in an ownership mark
        "a" * 20 + "\0" + "a" * 20,  # NUL: if_nametoindex raises ValueError
        "%d" * 10,
        "abc",  # too short to be unique in link names
        "a" * 65,
        "../../etc",
    ],
)
def test_ids_that_are_not_docker_ids_are_refused(bad: str) -> None:
    with pytest.raises(UserError, match="is not a Docker ID"):
        EndpointRef.from_json({"NetworkID": NETWORK, "EndpointID": bad})
    with pytest.raises(UserError, match=r"NetworkID .* is not a Docker ID"):
        NetworkRef.from_json({"NetworkID": bad})
    with pytest.raises(UserError, match="is not a Docker ID"):
        CreateEndpointRequest.from_json({"NetworkID": bad, "EndpointID": ENDPOINT})


def test_docker_and_swarm_ids_pass() -> None:
    ref = EndpointRef.from_json({"NetworkID": SWARM_NETWORK, "EndpointID": ENDPOINT})
    assert (ref.network_id, ref.endpoint_id) == (SWARM_NETWORK, ENDPOINT)
    assert CreateNetworkRequest.from_json({"NetworkID": NETWORK}).network_id == NETWORK


def test_an_id_of_another_type_or_missing_is_refused() -> None:
    with pytest.raises(UserError, match="NetworkID must be a string, got int"):
        NetworkRef.from_json({"NetworkID": 7})
    with pytest.raises(UserError, match="request is missing EndpointID"):
        EndpointRef.from_json({"NetworkID": NETWORK})


def test_a_long_bad_id_is_cut_in_the_message() -> None:
    with pytest.raises(UserError) as refused:
        NetworkRef.from_json({"NetworkID": "X" * 10_000})
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize(
    ("mac", "message"),
    [
        ("02:42:0a:00:00", "is not a MAC address"),
        ("02-42-0a-00-00-02", "is not a MAC address"),
        ("zz:42:0a:00:00:02", "is not a MAC address"),
        ("01:00:5e:00:00:01", "is a multicast address"),
    ],
)
def test_bad_macs_are_refused(mac: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CreateEndpointRequest.from_json(endpoint(MacAddress=mac))


def test_a_mac_is_normalised_and_optional() -> None:
    assert CreateEndpointRequest.from_json(endpoint(MacAddress="02:42:0A:00:00:02")).mac == (
        "02:42:0a:00:00:02"
    )
    assert CreateEndpointRequest.from_json(endpoint()).mac is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"NetworkID": ', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_bodies_are_user_errors(body: bytes, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_body(body)
