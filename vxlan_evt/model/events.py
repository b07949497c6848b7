"""What the netlink listener tells the rest of the daemon: small immutable event records.

Events are plain frozen dataclasses, like h11's: the decoder builds them from kernel
messages, the bus fans them out, the observe API streams `to_dict()` as NDJSON. `seq` and
`timestamp` are stamped by whoever emits the event (the decoder), so they are ordered per
listener. Attribution (which Docker network/endpoint owns the link) is not known to the
decoder; `attribute()` adds it later, purely, from the driver's state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar, Literal, TypeAlias, TypeVar

from vxlan_evt.model.addresses import IPAddress

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None

FdbAction: TypeAlias = Literal["add", "del"]
NeighAction: TypeAlias = Literal["add", "del", "change"]
LinkAction: TypeAlias = Literal["add", "del", "up", "down", "mtu", "master", "change"]

# Every `type` an event on the bus can have ("populate" is the engine's verdict on a miss).
EVENT_TYPES = (
    "l2miss", "l3miss", "fdb", "neigh", "link", "addr", "resync", "decode_problem", "populate",
)  # fmt: skip

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_LLADDR = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2})*$")  # ARP/ND on non-Ethernet links too
FDB_ACTIONS: frozenset[str] = frozenset({"add", "del"})
NEIGH_ACTIONS: frozenset[str] = frozenset({"add", "del", "change"})
LINK_ACTIONS: frozenset[str] = frozenset({"add", "del", "up", "down", "mtu", "master", "change"})
ADDR_ACTIONS: frozenset[str] = frozenset({"add", "del"})


def _check_mac(mac: str | None, pattern: re.Pattern[str] = _MAC) -> None:
    if mac is not None and not pattern.match(mac):
        raise ValueError(f"not a lower-case colon-separated MAC address: {mac!r}")


def _check_action(action: str, allowed: frozenset[str], what: str) -> None:
    if action not in allowed:
        raise ValueError(f"{what} action must be one of {sorted(allowed)}, not {action!r}")


def _json(value: object) -> JsonValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBase:
    """Fields every event has; keyword-only so subclasses keep positional payloads."""

    type: ClassVar[str] = "event"
    seq: int = 0
    timestamp: float = 0.0
    network_id: str | None = None
    endpoint_id: str | None = None
    foreign: bool = True

    def to_dict(self) -> dict[str, JsonValue]:
        """JSON-safe values (IPs as strings, tuples as lists), `type` first."""
        out: dict[str, JsonValue] = {"type": self.type}
        for f in fields(self):
            out[f.name] = _json(getattr(self, f.name))
        return out


@dataclass(frozen=True, slots=True)
class L2Miss(EventBase):
    """The vxlan device had no FDB entry for `mac`: tell it which VTEP has that MAC."""

    type: ClassVar[str] = "l2miss"
    ifindex: int
    ifname: str | None
    vni: int | None
    mac: str

    def __post_init__(self) -> None:
        _check_mac(self.mac)


@dataclass(frozen=True, slots=True)
class L3Miss(EventBase):
    """The vxlan device (proxy mode) had no neighbour entry for `ip`: answer with its MAC."""

    type: ClassVar[str] = "l3miss"
    ifindex: int
    ifname: str | None
    vni: int | None
    ip: IPAddress


@dataclass(frozen=True, slots=True)
class FdbEvent(EventBase):
    """A bridge-family neighbour entry: a vxlan FDB entry (`self`) or a bridge's (`master`).

    `vni` is the device's VNI; `remote_vni`/`port` only appear when an entry overrides
    the device's defaults. `flags` are iproute2 names ("self", "master", "extern_learn").
    """

    type: ClassVar[str] = "fdb"
    action: FdbAction
    ifindex: int
    ifname: str | None
    vni: int | None
    mac: str
    dst: IPAddress | None = None
    remote_vni: int | None = None
    port: int | None = None
    vlan: int | None = None
    flags: tuple[str, ...] = ()
    state: str = "NONE"
    master: int | None = None

    def __post_init__(self) -> None:
        _check_action(self.action, FDB_ACTIONS, "fdb")
        _check_mac(self.mac)


@dataclass(frozen=True, slots=True)
class NeighEvent(EventBase):
    """An ARP/ND entry appeared, changed or went away (`state` like "PERMANENT", "STALE")."""

    type: ClassVar[str] = "neigh"
    action: NeighAction
    ifindex: int
    ifname: str | None
    ip: IPAddress
    mac: str | None
    state: str
    vni: int | None = None
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_action(self.action, NEIGH_ACTIONS, "neigh")
        _check_mac(self.mac, _LLADDR)


@dataclass(frozen=True, slots=True)
class LinkEvent(EventBase):
    """A link appeared, went away or changed; `action` is the most important change.

    One kernel message can change several things at once (e.g. up and MTU): `changes`
    lists all of them in the order add/del, up/down, mtu, master, change.
    """

    type: ClassVar[str] = "link"
    action: LinkAction
    ifindex: int
    ifname: str | None
    kind: str | None
    vni: int | None
    mtu: int | None
    master: int | None
    ifalias: str | None
    operstate: str | None
    up: bool = False
    mac: str | None = None
    changes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_action(self.action, LINK_ACTIONS, "link")
        for change in self.changes:
            _check_action(change, LINK_ACTIONS, "link")


@dataclass(frozen=True, slots=True)
class AddrEvent(EventBase):
    """An IP address was put on a link or taken off it (`ip addr add/del`).

    On one of our bridges this is how a host joins its own segment: the address
    is published to other hosts like a container's.
    """

    type: ClassVar[str] = "addr"
    action: str
    ifindex: int
    ifname: str | None
    ip: IPAddress
    prefixlen: int

    def __post_init__(self) -> None:
        _check_action(self.action, ADDR_ACTIONS, "addr")


@dataclass(frozen=True, slots=True)
class Resync(EventBase):
    """Notifications were lost (ENOBUFS): the link table was re-read from a dump.

    Consumers must treat their own view of FDB/neigh/links as stale and re-read it;
    `losses` counts ENOBUFS errors since the previous resync (not lost messages:
    the kernel does not say how many it dropped).
    """

    type: ClassVar[str] = "resync"
    losses: int
    total_losses: int
    drained: int = 0
    links: int = 0
    neighbours: int = 0
    fdb: int = 0


@dataclass(frozen=True, slots=True)
class DecodeProblem(EventBase):
    """A message the decoder could not make sense of: recorded and counted, never raised."""

    type: ClassVar[str] = "decode_problem"
    reason: str
    msg_type: int
    raw_hex: str


Event: TypeAlias = (
    L2Miss | L3Miss | FdbEvent | NeighEvent | LinkEvent | AddrEvent | Resync | DecodeProblem
)
E = TypeVar("E", bound=EventBase)
Owner: TypeAlias = tuple[str, str | None]


def attribute(event: E, owned_links: Mapping[int | str, Owner]) -> E:
    """Mark an event as ours when its link is one we created; otherwise return it unchanged.

    `owned_links` maps ifindex or ifname to (network_id, endpoint_id or None). The link's
    own index/name wins over its bridge master (a container veth belongs to an endpoint,
    its bridge to the network).
    """
    keys: list[int | str] = []
    for name in ("ifindex", "ifname", "master"):
        value = getattr(event, name, None)
        if isinstance(value, int | str) and not isinstance(value, bool):
            keys.append(value)
    for key in keys:
        owner = owned_links.get(key)
        if owner is not None:
            network_id, endpoint_id = owner
            return replace(event, network_id=network_id, endpoint_id=endpoint_id, foreign=False)
    return event
