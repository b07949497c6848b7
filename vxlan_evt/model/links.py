"""The link record: what the listener and the planner know of one kernel link."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vxlan_evt.model.addresses import IPAddress

Address = tuple[IPAddress, int]  # (address, prefix length)


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What the decoder knows about one link: enough to name and classify neighbour events."""

    ifindex: int
    ifname: str | None
    kind: str | None
    vni: int | None
    mtu: int | None
    master: int | None
    ifalias: str | None
    operstate: str | None
    up: bool
    mac: str | None


@dataclass(frozen=True, slots=True)
class LinkFact:
    """What the planner needs to know of one existing link."""

    name: str
    index: int
    kind: str | None = None
    alias: str | None = None
    vni: int | None = None
    mtu: int = 1500
    master: int | None = None
    up: bool = False


@dataclass(frozen=True, slots=True)
class HostFacts:
    """A snapshot of the host's links and default-route devices."""

    links: Mapping[str, LinkFact] = field(default_factory=dict)
    default_route_dev: str | None = None
    default_route_dev6: str | None = None
