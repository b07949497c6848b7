"""The plan actions: what the driver asks the kernel edge to do, in order."""

from __future__ import annotations

from dataclasses import dataclass

from vxlan_evt.model.network import VxlanSpec


@dataclass(frozen=True, slots=True)
class CreateBridge:
    name: str
    mtu: int
    hardware_addr: str | None
    txqlen: int | None
    alias: str


@dataclass(frozen=True, slots=True)
class CreateVxlan:
    name: str
    spec: VxlanSpec
    vtep_dev: str | None
    mtu: int
    master: str
    alias: str


@dataclass(frozen=True, slots=True)
class CreateVeth:
    host_ifname: str
    container_ifname: str
    mtu: int
    mac: str
    master: str
    alias: str


@dataclass(frozen=True, slots=True)
class AddAddress:
    """Idempotent: an address already present is fine."""

    ifname: str
    cidr: str


@dataclass(frozen=True, slots=True)
class SetMaster:
    """Put an existing link of ours back on its bridge (the bridge was recreated)."""

    ifname: str
    master: str


@dataclass(frozen=True, slots=True)
class SetUp:
    ifname: str


@dataclass(frozen=True, slots=True)
class DeleteLink:
    """Delete `ifname` only if its ifalias still equals `alias` (checked at execution)."""

    ifname: str
    alias: str


Action = CreateBridge | CreateVxlan | CreateVeth | AddAddress | SetMaster | SetUp | DeleteLink
