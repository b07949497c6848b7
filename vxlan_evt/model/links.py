"""The link record: what the listener and the planner know of one kernel link."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vxlan_evt.model.addresses import IPAddress

Address = tuple[IPAddress, int]  # (address, prefix length)


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """One kernel link as the kernel last described it: the decoder's link table names
    and classifies neighbour events with it, the planner checks names, VNIs and the
    ownership mark (`ifalias`) against it. None means the kernel did not say."""

    ifindex: int
    ifname: str
    kind: str | None = None
    vni: int | None = None
    mtu: int | None = None
    master: int | None = None
    ifalias: str | None = None
    operstate: str | None = None
    up: bool = False
    mac: str | None = None


@dataclass(frozen=True, slots=True)
class HostFacts:
    """A snapshot of the host's links, their addresses and the default-route devices."""

    links: Mapping[str, LinkInfo] = field(default_factory=dict)
    # By link name: the addresses on it, as "address/prefix" in ipaddress's spelling.
    addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    default_route_dev: str | None = None
    default_route_dev6: str | None = None
