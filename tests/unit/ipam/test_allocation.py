"""The pure IPAM core: pools and PoolIDs, which address next, gateway sharing, release."""

from __future__ import annotations

import ipaddress
import time

import pytest

from vxlan_evt.ipam.allocation import (
    DAMAGED,
    MAX_SCAN,
    AddressInUse,
    Allocation,
    Pool,
    PoolExhausted,
    address_kind,
    decode_allocation,
    encode_allocation,
    parse_address,
    parse_pool_id,
    parse_pool_request,
    plan_allocation,
    plan_release,
)
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.errors import Conflict, InvalidOption, UserError

AT = "2024-01-01T00:00:00Z"
V4 = parse_pool_request("vxlan-local", "10.42.0.0/24", "", False)
V4_RANGE = parse_pool_request("vxlan-local", "10.42.0.0/24", "10.42.0.128/25", False)
V6 = parse_pool_request("vxlan-global", "fd00:42::/64", "", True)


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def container(host: str = "h1") -> Allocation:
    return Allocation.new(host, "container", AT)


def gateway(*holders: str) -> Allocation:
    return Allocation(holders[0], "gateway", AT, holders)


def taken(*addresses: str, record: Allocation | None = None) -> dict[IPAddress, Allocation]:
    return {ip(a): record or container() for a in addresses}


def next_address(pool: Pool, table: dict[IPAddress, Allocation], limit: int = MAX_SCAN) -> str:
    return str(plan_allocation(pool, None, "container", "h1", table, AT, limit=limit).address)


# ------------------------------------------------------------------ pools and IDs


def test_pool_ids_are_deterministic_and_self_describing() -> None:
    assert V4.pool_id == "vxlan-local/10.42.0.0/24"
    assert V4_RANGE.pool_id == "vxlan-local/10.42.0.0/24/10.42.0.128/25"
    assert V6.pool_id == "vxlan-global/fd00:42::/64"
    for pool in (V4, V4_RANGE, V6):
        assert parse_pool_id(pool.pool_id) == pool
    again = parse_pool_request("vxlan-local", "10.42.0.0/24", "10.42.0.128/25", False)
    assert again.pool_id == V4_RANGE.pool_id


def test_pools_with_different_ranges_share_one_scope() -> None:
    assert V4.scope == V4_RANGE.scope == "vxlan-local/10.42.0.0/24"
    assert V4.range == V4.network
    assert str(V4_RANGE.range) == "10.42.0.128/25"


def test_empty_address_space_means_local_default() -> None:
    assert parse_pool_request("", "10.0.0.0/30", "", False).space == "vxlan-local"


@pytest.mark.parametrize(
    ("space", "pool", "subpool", "v6", "message"),
    [
        ("vxlan-local", "", "", False, "--subnet 10.42.0.0/24"),
        ("vxlan-local", "", "", True, "IPv6 subnet explicitly"),
        ("vxlan-local", "", "10.42.0.0/25", False, "does not choose pools"),
        ("default", "10.42.0.0/24", "", False, "unknown address space 'default'"),
        ("vxlan-local", "10.42.0.0/33", "", False, "not a subnet in CIDR form"),
        ("vxlan-local", "banana", "", False, "'banana' is not a subnet"),
        ("vxlan-local", "10.42.0.1/24", "", False, "did you mean 10.42.0.0/24?"),
        ("vxlan-local", "10.42.0.0/24", "", True, "IPv4 but Docker asked for an IPv6 pool"),
        ("vxlan-local", "fd00::/64", "", False, "IPv6 but Docker asked for an IPv4 pool"),
        ("vxlan-local", "10.42.0.0/31", "", False, "no usable address"),
        ("vxlan-local", "10.42.0.1/32", "", False, "no usable address"),
        ("vxlan-local", "fd00::/128", "", True, "no usable address"),
        ("vxlan-local", "10.42.0.0/24", "10.43.0.0/25", False, "not inside subnet"),
        ("vxlan-local", "10.42.0.0/24", "10.42.0.0/23", False, "not inside subnet"),
        ("vxlan-local", "10.42.0.0/24", "fd00::/64", False, "not inside subnet"),
        ("vxlan-local", "10.42.0.0/24", "10.42.0.129/25", False, "did you mean 10.42.0.128/25"),
        ("vxlan-local", "10.42.0.0/24", "10.42.0.255/32", False, "no usable address"),
        ("vxlan-local", "10.42.0.0/24", "10.42.0.0/32", False, "no usable address"),
    ],
)
def test_bad_pool_requests_say_what_to_do(
    space: str, pool: str, subpool: str, v6: bool, message: str
) -> None:
    with pytest.raises(InvalidOption, match=message.replace("?", r"\?")):
        parse_pool_request(space, pool, subpool, v6)


def test_tiny_pools_that_still_have_an_address() -> None:
    assert next_address(parse_pool_request("", "10.0.0.0/30", "", False), {}) == "10.0.0.1"
    assert next_address(parse_pool_request("", "fd00::/127", "", True), {}) == "fd00::1"
    edge = parse_pool_request("", "10.0.0.0/24", "10.0.0.254/31", False)
    assert next_address(edge, {}) == "10.0.0.254"


@pytest.mark.parametrize(
    "pool_id",
    [
        "",
        "vxlan-local",
        "vxlan-local/10.42.0.0",
        "other/10.42.0.0/24",
        "vxlan-local/10.42.0.0/24/10.42.0.128",
        "vxlan-local/not-an-ip/24",
        "vxlan-local/10.42.0.0/024",
        "vxlan-local/FD00::/64",
        "vxlan-local/10.42.0.1/24",
    ],
)
def test_unknown_pool_ids_are_refused(pool_id: str) -> None:
    with pytest.raises(InvalidOption, match="PoolID"):
        parse_pool_id(pool_id)


# ------------------------------------------------------------ requested addresses


def test_parse_address_accepts_plain_and_cidr_and_empty() -> None:
    assert parse_address(V4, "") is None
    assert parse_address(V4, "10.42.0.7") == ip("10.42.0.7")
    assert parse_address(V4, "10.42.0.7/24") == ip("10.42.0.7")
    assert parse_address(V6, "fd00:42::ffff:ffff:ffff:ffff") == ip("fd00:42::ffff:ffff:ffff:ffff")
    # A requested address may lie outside the ip-range: --ip-range limits automatic choice.
    assert parse_address(V4_RANGE, "10.42.0.5") == ip("10.42.0.5")


@pytest.mark.parametrize(
    ("pool", "value", "message"),
    [
        (V4, "10.43.0.1", "10.43.0.1 is outside pool 10.42.0.0/24"),
        (V4, "fd00:42::1", "outside pool"),
        (V6, "10.42.0.1", "outside pool fd00:42::/64"),
        (V4, "10.42.0.0", "10.42.0.0 is the network address of pool 10.42.0.0/24"),
        (V4, "10.42.0.255", "10.42.0.255 is the broadcast address of pool 10.42.0.0/24"),
        (V6, "fd00:42::", "network address"),
        (V4, "ten", "'ten' is not an IP address"),
    ],
)
def test_bad_requested_addresses(pool: Pool, value: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse_address(pool, value)


def test_address_kind_comes_from_docker_options() -> None:
    assert address_kind({"RequestAddressType": "com.docker.network.gateway"}) == "gateway"
    assert address_kind({"com.docker.network.endpoint.macaddress": "02:42:00:00:00:01"}) == (
        "container"
    )
    assert address_kind({}) == address_kind(None) == "container"


# ---------------------------------------------------------------- allocation


def test_lowest_free_address_skips_network_and_taken() -> None:
    assert next_address(V4, {}) == "10.42.0.1"
    assert next_address(V4, taken("10.42.0.1", "10.42.0.2", "10.42.0.4")) == "10.42.0.3"


def test_ip_range_restricts_automatic_allocation() -> None:
    assert next_address(V4_RANGE, {}) == "10.42.0.128"
    assert next_address(V4_RANGE, taken("10.42.0.1", "10.42.0.128")) == "10.42.0.129"


def test_broadcast_is_never_handed_out() -> None:
    small = parse_pool_request("", "10.0.0.0/30", "", False)
    assert next_address(small, taken("10.0.0.1")) == "10.0.0.2"
    with pytest.raises(PoolExhausted):
        next_address(small, taken("10.0.0.1", "10.0.0.2"))


def test_exhaustion_names_the_pool_and_range() -> None:
    full = taken(*(f"10.42.0.{n}" for n in range(128, 255)))
    with pytest.raises(PoolExhausted) as caught:
        next_address(V4_RANGE, full)
    message = str(caught.value)
    assert "ip-range 10.42.0.128/25 of pool vxlan-local/10.42.0.0/24" in message
    assert "(127 in use)" in message
    assert isinstance(caught.value, Conflict) and isinstance(caught.value, UserError)
    # The rest of the subnet is still free, for a requested address.
    plan = plan_allocation(V4_RANGE, ip("10.42.0.9"), "container", "h1", full, AT)
    assert str(plan.address) == "10.42.0.9"


def test_ipv6_allocates_from_the_start_and_never_enumerates_the_64() -> None:
    assert next_address(V6, {}) == "fd00:42::1"
    many = {ip(f"fd00:42::{n:x}"): container() for n in range(1, 20001)}
    started = time.monotonic()
    assert next_address(V6, many) == "fd00:42::4e21"
    assert time.monotonic() - started < 2.0
    # The last address of an IPv6 pool is usable (no broadcast).
    tiny = parse_pool_request("", "fd00::/126", "", True)
    assert next_address(tiny, taken("fd00::1", "fd00::2")) == "fd00::3"


def test_scan_limit_is_a_bound_not_an_enumeration() -> None:
    with pytest.raises(PoolExhausted, match="vxlan-global/fd00:42::/64"):
        next_address(V6, taken("fd00:42::1", "fd00:42::2"), limit=3)


def test_requested_address_is_honoured_when_free() -> None:
    plan = plan_allocation(V4, ip("10.42.0.77"), "container", "h2", {}, AT)
    assert (str(plan.address), plan.previous) == ("10.42.0.77", None)
    assert plan.record == Allocation("h2", "container", AT)


def test_requested_address_in_use_is_a_specific_error() -> None:
    table = taken("10.42.0.77", record=container("h3"))
    with pytest.raises(AddressInUse) as caught:
        plan_allocation(V4, ip("10.42.0.77"), "container", "h1", table, AT)
    assert str(caught.value) == (
        "address 10.42.0.77 is already in use in pool vxlan-local/10.42.0.0/24 "
        "(container address of host h3): choose another one or leave it out"
    )


def test_plan_refuses_unusable_requested_address() -> None:
    with pytest.raises(InvalidOption, match="not usable"):
        plan_allocation(V4, ip("10.42.0.255"), "container", "h1", {}, AT)


def test_gateway_is_shared_between_hosts() -> None:
    first = plan_allocation(V4, ip("10.42.0.1"), "gateway", "h1", {}, AT)
    assert first.record == Allocation("h1", "gateway", AT, ("h1",))
    table = {first.address: first.record}
    second = plan_allocation(V4, ip("10.42.0.1"), "gateway", "h2", table, AT)
    assert second.previous == first.record
    assert second.record.holders == ("h1", "h2")
    assert second.record.host == "h1"


def test_gateway_and_container_addresses_never_share() -> None:
    with pytest.raises(AddressInUse, match=r"\(gateway of h1, h2\)"):
        plan_allocation(
            V4, ip("10.42.0.1"), "container", "h3", {ip("10.42.0.1"): gateway("h1", "h2")}, AT
        )
    with pytest.raises(AddressInUse, match=r"gateway 10\.42\.0\.5 is already in use"):
        plan_allocation(V4, ip("10.42.0.5"), "gateway", "h1", taken("10.42.0.5"), AT)
    # Automatic container allocation steps over the gateway.
    assert next_address(V4, {ip("10.42.0.1"): gateway("h1")}) == "10.42.0.2"


def test_gateway_without_address_joins_the_existing_gateway() -> None:
    table = {ip("10.42.0.254"): gateway("h1"), **taken("10.42.0.1")}
    plan = plan_allocation(V4, None, "gateway", "h2", table, AT)
    assert str(plan.address) == "10.42.0.254"
    assert plan.record.holders == ("h1", "h2")


def test_gateway_without_address_and_none_yet_takes_lowest_free_of_range() -> None:
    plan = plan_allocation(V4_RANGE, None, "gateway", "h1", {}, AT)
    assert str(plan.address) == "10.42.0.128"
    assert plan.record == Allocation("h1", "gateway", AT, ("h1",))


# ------------------------------------------------------------------ release


def test_release_of_own_container_address_deletes() -> None:
    assert plan_release(container("h1"), "h1").action == "delete"


def test_release_never_touches_another_hosts_address() -> None:
    assert plan_release(container("h2"), "h1").action == "foreign"
    assert plan_release(gateway("h2", "h3"), "h1").action == "foreign"


def test_gateway_release_is_reference_counted() -> None:
    shared = gateway("h1", "h2", "h1")
    once = plan_release(shared, "h1")
    assert once.action == "update" and once.record is not None
    assert once.record.holders == ("h2", "h1") and once.record.host == "h1"
    twice = plan_release(once.record, "h1")
    assert twice.record is not None
    assert twice.record.holders == ("h2",) and twice.record.host == "h2"
    assert plan_release(twice.record, "h2").action == "delete"


# ------------------------------------------------------------------ records


def test_records_round_trip_through_json() -> None:
    for record in (container("h1"), gateway("h1", "h2")):
        assert decode_allocation(encode_allocation(record)) == record
    assert encode_allocation(container("h1")) == (
        b'{"at": "2024-01-01T00:00:00Z", "host": "h1", "kind": "container"}'
    )


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[]", b'{"kind": "container"}', b'{"host": "h", "kind": "x"}']
)
def test_damaged_records_still_hold_their_address(data: bytes) -> None:
    record = decode_allocation(data)
    assert record == DAMAGED
    assert plan_release(record, "h1").action == "foreign"


def test_gateway_record_without_holders_is_held_by_its_host() -> None:
    record = decode_allocation(b'{"host": "h1", "kind": "gateway"}')
    assert record == Allocation("h1", "gateway", "", ("h1",))
