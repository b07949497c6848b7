"""Three hosts' IPAM sharing one real etcd: concurrent allocation never hands out one address twice.

No root needed; every wait is bounded by trio.fail_after.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from vxlan_evt.etcd.client import EtcdClient
from vxlan_evt.ipam.allocation import parse_pool_id
from vxlan_evt.ipam.service import IpamService
from vxlan_evt.ipam.store import EtcdIpamStore, address_key, refs_key
from vxlan_evt.model.errors import Conflict
from vxlan_evt.testing.etcd import EtcdServer

WAIT = 30.0
PREFIX = "/vxlan-evt-test/"
HOSTS = ("h1", "h2", "h3")
POOL = '{"AddressSpace":"vxlan-local","Pool":"10.42.0.0/24","SubPool":"10.42.0.64/26","Options":{},"V6":false}'
POOL_ID = "vxlan-local/10.42.0.0/24/10.42.0.64/26"
GATEWAY = '{"PoolID":"%s","Address":"10.42.0.1","Options":{"RequestAddressType":"com.docker.network.gateway"}}'


@pytest.fixture
async def hosts(etcd_server: EtcdServer) -> AsyncIterator[dict[str, IpamService]]:
    """One IpamService per host, each with its own etcd client, as on separate machines."""
    clients = [EtcdClient([etcd_server.url]) for _ in HOSTS]
    try:
        yield {
            host: IpamService(EtcdIpamStore(client, PREFIX), host)
            for host, client in zip(HOSTS, clients, strict=True)
        }
    finally:
        for client in clients:
            await client.aclose()


async def call(service: IpamService, method: str, body: str) -> dict[str, Any]:
    return await service.handlers[f"IpamDriver.{method}"](json.loads(body))


def container(address: str = "") -> str:
    return f'{{"PoolID":"{POOL_ID}","Address":"{address}","Options":null}}'


def release(address: str) -> str:
    return f'{{"PoolID":"{POOL_ID}","Address":"{address}"}}'


async def test_three_hosts_allocate_concurrently_without_duplicates(
    hosts: dict[str, IpamService],
) -> None:
    got: dict[str, list[str]] = {host: [] for host in HOSTS}

    async def allocate(host: str) -> None:
        address = (await call(hosts[host], "RequestAddress", container()))["Address"]
        got[host].append(address)

    with trio.fail_after(WAIT):
        for host in HOSTS:
            assert (await call(hosts[host], "RequestPool", POOL))["PoolID"] == POOL_ID
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                for host in HOSTS:
                    nursery.start_soon(allocate, host)
    everything = [address for addresses in got.values() for address in addresses]
    assert all(len(addresses) == 20 for addresses in got.values())
    assert len(set(everything)) == 60
    # The lowest 60 addresses of the ip-range, every one inside it.
    assert sorted(everything) == sorted(f"10.42.0.{n}/24" for n in range(64, 124))

    # etcd holds one record per address, naming the host that got it.
    store = hosts["h1"].store
    assert isinstance(store, EtcdIpamStore)
    pool = parse_pool_id(POOL_ID)
    for host, addresses in got.items():
        for address in addresses:
            key = address_key(PREFIX, pool, ipaddress.ip_interface(address).ip)
            (kv,) = (await store.etcd.range(key)).kvs
            assert json.loads(kv.value)["host"] == host
            assert json.loads(kv.value)["kind"] == "container"
        (refs,) = (await store.etcd.range(refs_key(PREFIX, pool, host))).kvs
        assert refs.value == b"1"


async def test_release_frees_an_address_for_reuse(hosts: dict[str, IpamService]) -> None:
    h1, h2 = hosts["h1"], hosts["h2"]
    with trio.fail_after(WAIT):
        first = (await call(h1, "RequestAddress", container()))["Address"]
        second = (await call(h2, "RequestAddress", container()))["Address"]
        assert (first, second) == ("10.42.0.64/24", "10.42.0.65/24")
        # h2 cannot release h1's address; h1 can, and h2 then gets it.
        await call(h2, "ReleaseAddress", release("10.42.0.64"))
        assert (await call(h2, "RequestAddress", container()))["Address"] == "10.42.0.66/24"
        await call(h1, "ReleaseAddress", release("10.42.0.64"))
        await call(h1, "ReleaseAddress", release("10.42.0.64"))  # idempotent
        assert (await call(h2, "RequestAddress", container()))["Address"] == "10.42.0.64/24"
        with pytest.raises(Conflict, match="container address of host h2"):
            await call(h1, "RequestAddress", container("10.42.0.64"))


async def test_gateway_requested_by_all_three_is_shared(hosts: dict[str, IpamService]) -> None:
    with trio.fail_after(WAIT):
        answers: list[str] = []

        async def request_gateway(host: str) -> None:
            answer = await call(hosts[host], "RequestAddress", GATEWAY % POOL_ID)
            answers.append(answer["Address"])

        async with trio.open_nursery() as nursery:
            for host in HOSTS:
                nursery.start_soon(request_gateway, host)
        assert answers == ["10.42.0.1/24"] * 3

        store = hosts["h1"].store
        assert isinstance(store, EtcdIpamStore)
        key = address_key(PREFIX, parse_pool_id(POOL_ID), ipaddress.ip_address("10.42.0.1"))
        record = json.loads((await store.etcd.range(key)).kvs[0].value)
        assert record["kind"] == "gateway"
        assert sorted(record["holders"]) == sorted(HOSTS)

        # A container may not take it; it stays until its last holder releases it.
        with pytest.raises(Conflict, match="gateway of h1, h2, h3"):
            await call(hosts["h1"], "RequestAddress", container("10.42.0.1"))
        for host in ("h1", "h2"):
            await call(hosts[host], "ReleaseAddress", release("10.42.0.1"))
        assert json.loads((await store.etcd.range(key)).kvs[0].value)["holders"] == ["h3"]
        await call(hosts["h3"], "ReleaseAddress", release("10.42.0.1"))
        assert (await store.etcd.range(key)).kvs == []
