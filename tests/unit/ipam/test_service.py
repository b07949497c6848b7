"""The IpamDriver.* handlers over the local file store, fed the bodies Docker sends.

Bodies are the JSON libnetwork's `ipams/remote` encodes (Go's encoding/json: every field,
`null` for a nil map, no body at all for a nil argument), decoded by `parse_body` as the
plugin API does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from vxlan_evt.driver.api import create_plugin_app
from vxlan_evt.driver.protocol import PLUGIN_CONTENT_TYPE, parse_body
from vxlan_evt.driver.service import DriverService
from vxlan_evt.driver.store import StateStore
from vxlan_evt.ipam.allocation import PoolExhausted
from vxlan_evt.ipam.service import IpamService
from vxlan_evt.ipam.store import IPAM_FILE_NAME, LocalIpamStore
from vxlan_evt.model.errors import Conflict, InvalidOption, SystemFailure
from vxlan_evt.testing.fake_kernel import FakeKernel

POOL_ID = "vxlan-local/10.42.0.0/24/10.42.0.128/25"
GATEWAY_OPTIONS = '{"RequestAddressType":"com.docker.network.gateway"}'


def make(tmp_path: Path, host: str = "h1") -> IpamService:
    return IpamService(LocalIpamStore(tmp_path, clock=lambda: "T"), host)


async def call(service: IpamService, method: str, body: str = "") -> dict[str, Any]:
    return await service.handlers[f"IpamDriver.{method}"](parse_body(body))


def pool_body(pool: str = "10.42.0.0/24", subpool: str = "10.42.0.128/25", v6: bool = False) -> str:
    v6_text = "true" if v6 else "false"
    return (
        f'{{"AddressSpace":"vxlan-local","Pool":"{pool}","SubPool":"{subpool}",'
        f'"Options":{{}},"V6":{v6_text}}}\n'
    )


def address_body(address: str = "", options: str = "null", pool_id: str = POOL_ID) -> str:
    return f'{{"PoolID":"{pool_id}","Address":"{address}","Options":{options}}}\n'


def release_body(address: str, pool_id: str = POOL_ID) -> str:
    return f'{{"PoolID":"{pool_id}","Address":"{address}"}}\n'


async def test_handshake_without_body(tmp_path: Path) -> None:
    service = make(tmp_path)
    assert await call(service, "GetCapabilities") == {"RequiresMACAddress": False}
    assert await call(service, "GetDefaultAddressSpaces") == {
        "LocalDefaultAddressSpace": "vxlan-local",
        "GlobalDefaultAddressSpace": "vxlan-global",
    }
    assert await call(service, "DiscoverNew", '{"DiscoveryType":1,"DiscoveryData":{}}') == {}
    assert await call(service, "DiscoverDelete", "") == {}


async def test_network_and_container_life_cycle(tmp_path: Path) -> None:
    service = make(tmp_path)
    # docker network create --ipam-driver vxlan --subnet 10.42.0.0/24
    #   --ip-range 10.42.0.128/25 --gateway 10.42.0.1
    assert await call(service, "RequestPool", pool_body()) == {
        "PoolID": POOL_ID,
        "Pool": "10.42.0.0/24",
        "Data": {},
    }
    gateway = await call(service, "RequestAddress", address_body("10.42.0.1", GATEWAY_OPTIONS))
    assert gateway == {"Address": "10.42.0.1/24", "Data": {}}
    # docker run (twice), then docker run --ip 10.42.0.50
    first = await call(service, "RequestAddress", address_body())
    mac = '{"com.docker.network.endpoint.macaddress":"02:42:0a:2a:00:80"}'
    second = await call(service, "RequestAddress", address_body("", mac))
    fixed = await call(service, "RequestAddress", address_body("10.42.0.50"))
    assert [first["Address"], second["Address"], fixed["Address"]] == [
        "10.42.0.128/24",
        "10.42.0.129/24",
        "10.42.0.50/24",
    ]
    # docker rm: the freed address is the lowest free again.
    assert await call(service, "ReleaseAddress", release_body("10.42.0.128")) == {}
    assert await call(service, "ReleaseAddress", release_body("10.42.0.128")) == {}
    again = await call(service, "RequestAddress", address_body())
    assert again["Address"] == "10.42.0.128/24"
    # docker network rm
    for address in ("10.42.0.128", "10.42.0.129", "10.42.0.50", "10.42.0.1"):
        await call(service, "ReleaseAddress", release_body(address))
    assert await call(service, "ReleasePool", f'{{"PoolID":"{POOL_ID}"}}') == {}
    assert await call(service, "ReleasePool", f'{{"PoolID":"{POOL_ID}"}}') == {}
    document = json.loads((tmp_path / IPAM_FILE_NAME).read_text())
    assert document == {"version": 1, "refs": {}, "addresses": {}}


async def test_allocations_survive_a_restart(tmp_path: Path) -> None:
    service = make(tmp_path)
    await call(service, "RequestPool", pool_body())
    await call(service, "RequestAddress", address_body("10.42.0.1", GATEWAY_OPTIONS))
    await call(service, "RequestAddress", address_body())
    document = json.loads((tmp_path / IPAM_FILE_NAME).read_text())
    assert document["refs"] == {POOL_ID: {"h1": 1}}
    assert document["addresses"] == {
        "vxlan-local/10.42.0.0/24": {
            "10.42.0.1": {"at": "T", "holders": ["h1"], "host": "h1", "kind": "gateway"},
            "10.42.0.128": {"at": "T", "host": "h1", "kind": "container"},
        }
    }
    # Docker does not replay RequestPool after a plugin restart: the PoolID is enough.
    restarted = make(tmp_path)
    answer = await call(restarted, "RequestAddress", address_body())
    assert answer["Address"] == "10.42.0.129/24"


async def test_a_damaged_file_falls_back_to_its_backup(tmp_path: Path) -> None:
    service = make(tmp_path)
    await call(service, "RequestPool", pool_body())
    await call(service, "RequestAddress", address_body())  # .128
    await call(service, "RequestAddress", address_body())  # .129: the backup holds .128
    (tmp_path / IPAM_FILE_NAME).write_bytes(b"\x00" * 64)  # a disk error
    restarted = make(tmp_path)
    answer = await call(restarted, "RequestAddress", address_body())
    assert answer["Address"] == "10.42.0.129/24"  # .128 still held, not given twice
    assert [n for n in os.listdir(tmp_path) if n.startswith(IPAM_FILE_NAME + ".damaged-")]


async def test_a_damaged_file_without_backup_is_refused_loudly(tmp_path: Path) -> None:
    (tmp_path / IPAM_FILE_NAME).write_text('{"version": 1, "addresses": []}')
    with pytest.raises(SystemFailure, match=r"IPAM file .* is damaged .* backup .* missing"):
        await call(make(tmp_path), "RequestAddress", address_body())


async def test_ipv6_pool(tmp_path: Path) -> None:
    service = make(tmp_path)
    answer = await call(service, "RequestPool", pool_body("fd00:42::/64", "", v6=True))
    assert answer == {"PoolID": "vxlan-local/fd00:42::/64", "Pool": "fd00:42::/64", "Data": {}}
    pool_id = answer["PoolID"]
    gateway = await call(service, "RequestAddress", address_body("", GATEWAY_OPTIONS, pool_id))
    first = await call(service, "RequestAddress", address_body("", "null", pool_id))
    assert (gateway["Address"], first["Address"]) == ("fd00:42::1/64", "fd00:42::2/64")


async def test_gateway_requested_twice_is_shared_and_counted(tmp_path: Path) -> None:
    service = make(tmp_path)
    await call(service, "RequestPool", pool_body())
    for _ in range(2):
        answer = await call(service, "RequestAddress", address_body("10.42.0.1", GATEWAY_OPTIONS))
        assert answer["Address"] == "10.42.0.1/24"
    await call(service, "ReleaseAddress", release_body("10.42.0.1"))
    with pytest.raises(Conflict, match=r"gateway of h1"):
        await call(service, "RequestAddress", address_body("10.42.0.1"))
    await call(service, "ReleaseAddress", release_body("10.42.0.1"))
    answer = await call(service, "RequestAddress", address_body("10.42.0.1"))
    assert answer["Address"] == "10.42.0.1/24"


async def test_another_hosts_address_is_not_released(tmp_path: Path) -> None:
    store = LocalIpamStore(tmp_path)
    mine, theirs = IpamService(store, "h1"), IpamService(store, "h2")
    await call(mine, "RequestAddress", address_body("10.42.0.9"))
    await call(theirs, "ReleaseAddress", release_body("10.42.0.9"))
    with pytest.raises(Conflict, match="container address of host h1"):
        await call(theirs, "RequestAddress", address_body("10.42.0.9"))


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("RequestPool", pool_body("", ""), "give the subnet explicitly"),
        ("RequestPool", pool_body("10.42.0.0/24", "10.43.0.0/24"), "not inside subnet"),
        ("RequestPool", '{"AddressSpace":"vxlan-local","Pool":"10.0.0.0/24","V6":"no"}', "V6"),
        ("RequestPool", '{"AddressSpace":"x","Pool":"10.0.0.0/24"}', "unknown address space"),
        ("RequestPool", '{"Pool":7}', "Pool must be a string"),
        ("RequestAddress", '{"Address":""}', "missing PoolID"),
        ("RequestAddress", address_body(pool_id="nope"), "unknown PoolID 'nope'"),
        ("RequestAddress", address_body("10.9.9.9"), "outside pool 10.42.0.0/24"),
        ("RequestAddress", address_body("10.42.0.255"), "broadcast address"),
        ("RequestAddress", address_body("", "[]"), "Options must be an object"),
        ("ReleaseAddress", f'{{"PoolID":"{POOL_ID}","Address":""}}', "missing Address"),
        ("ReleasePool", "{}", "missing PoolID"),
    ],
)
async def test_bad_requests_are_user_errors(
    tmp_path: Path, method: str, body: str, message: str
) -> None:
    with pytest.raises(InvalidOption, match=message):
        await call(make(tmp_path), method, body)


async def test_exhausted_range(tmp_path: Path) -> None:
    service = make(tmp_path)
    answer = await call(service, "RequestPool", pool_body("10.42.0.0/24", "10.42.0.252/30"))
    body = address_body("", "null", answer["PoolID"])
    got = [(await call(service, "RequestAddress", body))["Address"] for _ in range(3)]
    assert got == ["10.42.0.252/24", "10.42.0.253/24", "10.42.0.254/24"]
    with pytest.raises(PoolExhausted, match=r"ip-range 10\.42\.0\.252/30 of pool"):
        await call(service, "RequestAddress", body)


async def test_over_http_errors_are_docker_err(tmp_path: Path) -> None:
    """The same plugin app as the network driver, over the IPAM handlers."""
    app = create_plugin_app(make(tmp_path).handlers)
    client = app.test_client()
    response = await client.post("/IpamDriver.RequestPool", data=pool_body())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == PLUGIN_CONTENT_TYPE
    assert json.loads(await response.get_data())["PoolID"] == POOL_ID
    response = await client.post("/IpamDriver.RequestPool", data=pool_body("", ""))
    assert response.status_code == 400
    assert "--subnet 10.42.0.0/24" in json.loads(await response.get_data())["Err"]


async def test_one_socket_activates_as_both_drivers(tmp_path: Path) -> None:
    """The daemon serves the network and IPAM drivers on one socket: Activate names both."""
    driver = DriverService(FakeKernel(), StateStore(tmp_path / "driver"))
    app = create_plugin_app({**driver.handlers, **make(tmp_path).handlers})
    response = await app.test_client().post("/Plugin.Activate", data=b"")
    assert json.loads(await response.get_data()) == {"Implements": ["NetworkDriver", "IpamDriver"]}
    response = (
        await create_plugin_app(make(tmp_path).handlers)
        .test_client()
        .post("/Plugin.Activate", data=b"")
    )
    assert json.loads(await response.get_data()) == {"Implements": ["IpamDriver"]}
