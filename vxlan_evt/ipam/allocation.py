"""Docker's remote IPAM, the pure half: pools, pool IDs, allocation records, which address next.

No I/O: the stores (`ipam.store`) read the taken addresses, ask `plan_allocation` what to
write, and write it atomically (a file, or an etcd compare-and-swap); on a lost race they
re-read and ask again. Rules, as Docker's built-in IPAM has them where it has one:

* a pool is always explicit (`--subnet`); `--ip-range` (SubPool) only narrows where
  *automatic* allocation looks, a requested address may be anywhere in the pool;
* the pool's network address, and for IPv4 its broadcast address, are never handed out;
* automatic allocation takes the lowest free address of the range; the scan skips only
  taken addresses, so it is O(taken), never O(range) (an IPv6 /64 is fine);
* the gateway is shared: every host of a segment asks for the same gateway, so asking for
  an address held *as gateway* succeeds and adds the host to its holders (a multiset,
  so release is reference counted).

Allocations are keyed by the pool's *scope* (address space + subnet), not by the PoolID:
hosts that give different `--ip-range`s for one subnet still share one set of addresses.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from vxlan_evt.model.addresses import IPAddress, IPNetwork
from vxlan_evt.model.errors import Conflict, InvalidOption, SystemFailure

Kind = Literal["gateway", "container"]

LOCAL_ADDRESS_SPACE = "vxlan-local"
GLOBAL_ADDRESS_SPACE = "vxlan-global"
ADDRESS_SPACES = (LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE)
REQUEST_ADDRESS_TYPE = "RequestAddressType"  # libnetwork ipamapi.RequestAddressType
GATEWAY_ADDRESS_TYPE = "com.docker.network.gateway"  # libnetwork netlabel.Gateway
MAX_SCAN = 1 << 20  # a safety net only: a scan takes at most (taken in range) + 2 steps


class AddressInUse(Conflict):
    """The requested address is held by a container, or by a gateway when a container asks."""


class PoolExhausted(Conflict):
    """No free address is left in the pool's allocation range."""


class AllocationContention(SystemFailure):
    """Other hosts won every race for an address, more times than the store retries."""


def _network(what: str, value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise InvalidOption(
                f"{what} {value!r} is not a subnet in CIDR form (e.g. 10.42.0.0/24)"
            ) from exc
        raise InvalidOption(f"{what} {value} has host bits set: did you mean {fixed}?") from exc


def _usable_count(network: IPNetwork) -> int:
    reserved = 2 if network.version == 4 else 1
    return max(network.num_addresses - reserved, 0)


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool as Docker asked for it; its ID spells it out, so the ID alone rebuilds it.

    Docker does not replay RequestPool after a plugin restart, yet goes on calling
    RequestAddress with the PoolID it got: a self-describing ID needs no pool table.
    """

    space: str
    network: IPNetwork
    subpool: IPNetwork | None = None

    @property
    def pool_id(self) -> str:
        suffix = f"/{self.subpool}" if self.subpool is not None else ""
        return f"{self.space}/{self.network}{suffix}"

    @property
    def scope(self) -> str:
        """What allocations are keyed by: hosts with different --ip-range still share it."""
        return f"{self.space}/{self.network}"

    @property
    def range(self) -> IPNetwork:
        """Where automatic allocation looks: the SubPool (--ip-range), else the pool."""
        return self.subpool if self.subpool is not None else self.network

    def usable(self, address: IPAddress) -> bool:
        """In the pool and neither its network address nor (IPv4) its broadcast address."""
        network = self.network
        if address.version != network.version or address not in network:
            return False
        if address == network.network_address:
            return False
        return not (network.version == 4 and address == network.broadcast_address)


def parse_pool_request(space: str, pool: str, subpool: str, v6: bool) -> Pool:
    """Validate RequestPool's fields; every refusal says what to pass instead."""
    space = space or LOCAL_ADDRESS_SPACE
    if space not in ADDRESS_SPACES:
        raise InvalidOption(
            f"unknown address space {space!r}: the vxlan IPAM driver serves "
            + " and ".join(ADDRESS_SPACES)
        )
    if not pool:
        family = "IPv6 " if v6 else ""
        example = "fd00:42::/64" if v6 else "10.42.0.0/24"
        raise InvalidOption(
            f"the vxlan IPAM driver does not choose pools: give the {family}subnet "
            f"explicitly, e.g. docker network create --ipam-driver vxlan --subnet {example}"
        )
    network = _network("subnet", pool)
    if v6 != (network.version == 6):
        raise InvalidOption(
            f"subnet {network} is IPv{network.version} but Docker asked for an "
            f"IPv{6 if v6 else 4} pool"
        )
    if _usable_count(network) == 0:
        raise InvalidOption(f"subnet {network} has no usable address: use a larger subnet")
    sub: IPNetwork | None = None
    if subpool:
        sub = _network("ip-range", subpool)
        if sub.version != network.version or not sub.subnet_of(network):  # type: ignore[arg-type]
            raise InvalidOption(f"ip-range {sub} is not inside subnet {network}")
        # Only the pool's network and broadcast addresses are unusable, so three steps decide.
        if next(_scan(Pool(space, network, sub), (), 3), None) is None:
            raise InvalidOption(f"ip-range {sub} has no usable address of subnet {network}")
    return Pool(space, network, sub)


def parse_pool_id(pool_id: str) -> Pool:
    """The inverse of `Pool.pool_id`: `<space>/<subnet>[/<ip-range>]`."""
    space, _, rest = pool_id.partition("/")
    parts = rest.split("/")
    try:
        if space not in ADDRESS_SPACES or len(parts) not in (2, 4):
            raise ValueError(pool_id)
        network = ipaddress.ip_network("/".join(parts[:2]))
        subpool = ipaddress.ip_network("/".join(parts[2:])) if len(parts) == 4 else None
    except ValueError:
        raise InvalidOption(
            f"unknown PoolID {pool_id!r}: expected <address space>/<subnet>[/<ip-range>]"
        ) from None
    pool = Pool(space, network, subpool)
    if pool.pool_id != pool_id:
        raise InvalidOption(f"PoolID {pool_id!r} is not in canonical form ({pool.pool_id})")
    return pool


def parse_address(pool: Pool, value: str) -> IPAddress | None:
    """A requested address (plain, or CIDR as some clients send it); empty means any."""
    if not value:
        return None
    try:
        address = ipaddress.ip_interface(value).ip
    except ValueError:
        raise InvalidOption(f"requested address {value!r} is not an IP address") from None
    if address.version != pool.network.version or address not in pool.network:
        raise InvalidOption(f"requested address {address} is outside pool {pool.network}")
    if address == pool.network.network_address:
        raise InvalidOption(f"{address} is the network address of pool {pool.network}")
    if not pool.usable(address):
        raise InvalidOption(f"{address} is the broadcast address of pool {pool.network}")
    return address


def address_kind(options: Mapping[str, str] | None) -> Kind:
    """Docker marks the gateway request with RequestAddressType in the options."""
    if options and options.get(REQUEST_ADDRESS_TYPE) == GATEWAY_ADDRESS_TYPE:
        return "gateway"
    return "container"


@dataclass(frozen=True, slots=True)
class Allocation:
    """Who holds an address; a gateway's `holders` lists each request (a multiset)."""

    host: str
    kind: Kind
    at: str
    holders: tuple[str, ...] = field(default=())

    @classmethod
    def new(cls, host: str, kind: Kind, at: str) -> Allocation:
        return cls(host, kind, at, (host,) if kind == "gateway" else ())

    def describe(self) -> str:
        if self.kind == "gateway":
            return f"gateway of {', '.join(sorted(set(self.holders))) or self.host}"
        return f"container address of host {self.host}"


DAMAGED = Allocation("?", "container", "")


def allocation_to_json(record: Allocation) -> dict[str, object]:
    document: dict[str, object] = {"host": record.host, "kind": record.kind, "at": record.at}
    if record.kind == "gateway":
        document["holders"] = list(record.holders)
    return document


def allocation_from_json(document: object) -> Allocation:
    """A stored record; a damaged one still holds its address (as a container, never shared)."""
    if not isinstance(document, dict):
        return DAMAGED
    try:
        host, kind, at = str(document["host"]), document["kind"], str(document.get("at", ""))
        if kind == "gateway":
            holders = tuple(str(h) for h in document.get("holders") or [host])
            return Allocation(host, "gateway", at, holders)
        if kind == "container":
            return Allocation(host, "container", at)
    except (KeyError, TypeError):
        pass
    return DAMAGED


def encode_allocation(record: Allocation) -> bytes:
    return json.dumps(allocation_to_json(record), sort_keys=True).encode()


def decode_allocation(data: bytes | str) -> Allocation:
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    return allocation_from_json(document)


@dataclass(frozen=True, slots=True)
class Plan:
    """Write `record` at `address`; `previous` is None to create, else the record to replace."""

    address: IPAddress
    record: Allocation
    previous: Allocation | None = None


def _scan(pool: Pool, taken: Container[IPAddress], limit: int) -> Iterator[IPAddress]:
    """Free usable addresses of the pool's range, lowest first, at most `limit` steps."""
    rng = pool.range
    first, last = int(rng.network_address), int(rng.broadcast_address)
    make = type(rng.network_address)
    for value in range(first, min(last, first + limit - 1) + 1):
        address = make(value)
        if pool.usable(address) and address not in taken:
            yield address


def plan_allocation(
    pool: Pool,
    requested: IPAddress | None,
    kind: Kind,
    host: str,
    taken: Mapping[IPAddress, Allocation],
    at: str,
    *,
    limit: int = MAX_SCAN,
) -> Plan:
    """Which address to claim next, given every address of the pool's scope already held."""
    if requested is not None:
        if not pool.usable(requested):
            raise InvalidOption(f"requested address {requested} is not usable in {pool.network}")
        held = taken.get(requested)
        if held is None:
            return Plan(requested, Allocation.new(host, kind, at))
        if kind == "gateway" and held.kind == "gateway":
            return Plan(requested, replace(held, holders=(*held.holders, host)), held)
        asked = "gateway" if kind == "gateway" else "address"
        raise AddressInUse(
            f"{asked} {requested} is already in use in pool {pool.pool_id} "
            f"({held.describe()}): choose another one or leave it out"
        )
    if kind == "gateway":
        gateways = sorted(ip for ip, r in taken.items() if r.kind == "gateway" and pool.usable(ip))
        if gateways:  # one segment, one gateway: join the one the first host chose
            held = taken[gateways[0]]
            return Plan(gateways[0], replace(held, holders=(*held.holders, host)), held)
    for address in _scan(pool, taken, limit):
        return Plan(address, Allocation.new(host, kind, at))
    in_use = sum(1 for ip in taken if ip in pool.range)
    where = f"ip-range {pool.subpool} of " if pool.subpool is not None else ""
    raise PoolExhausted(
        f"no free address left in {where}pool {pool.pool_id} ({in_use} in use): "
        "release some, or use a larger --subnet/--ip-range"
    )


@dataclass(frozen=True, slots=True)
class Release:
    """What releasing means for one record: delete it, replace it, or leave a foreign one."""

    action: Literal["delete", "update", "foreign"]
    record: Allocation | None = None


def plan_release(record: Allocation, host: str) -> Release:
    """A host releases only what it holds; a gateway goes when its last holder releases it."""
    if record.kind == "container":
        return Release("delete") if record.host == host else Release("foreign")
    if host not in record.holders:
        return Release("foreign")
    holders = list(record.holders)
    holders.remove(host)
    if not holders:
        return Release("delete")
    owner = record.host if record.host in holders else holders[0]
    return Release("update", replace(record, host=owner, holders=tuple(holders)))
