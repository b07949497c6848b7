"""Carry out the driver's link plans on the kernel with pyroute2.

Synchronous on purpose: these functions run inside `NetlinkWorker`'s thread,
on the `IPRoute` it owns. A plan either applies whole or is rolled back: the
links a failed plan created are deleted again before the error is raised, so
a refused CreateNetwork leaves nothing behind.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from vxlan_evt.kernel.decode import parse_addresses, parse_links
from vxlan_evt.kernel.sockets import dump_blocking, open_netlink_socket
from vxlan_evt.kernel.wire import RTM_GETADDR, RTM_GETLINK
from vxlan_evt.kernel.worker import NetlinkWorker
from vxlan_evt.model.errors import SystemFailure
from vxlan_evt.model.links import HostFacts
from vxlan_evt.model.plan import (
    Action,
    AddAddress,
    CreateBridge,
    CreateVeth,
    CreateVxlan,
    DeleteLink,
    SetMaster,
    SetUp,
)

log = logging.getLogger(__name__)

# Current kernels read an ageing of 0 as "use the 300 s default" (checked on 6.18, both at
# create and at changelink), so NoAge asks for the longest ageing there is: 2**32-1 s.
NO_AGEING_SECONDS = 2**32 - 1


def _default_route_dev(ipr: Any, family: int, names: dict[int, str]) -> str | None:
    for route in ipr.get_default_routes(family=family):
        oif = route.get_attr("RTA_OIF")
        if oif in names:
            return names[oif]
    return None


def read_link_dump(msg_type: int = RTM_GETLINK) -> list[bytes]:
    """A whole RTM_GETLINK (or RTM_GETADDR) dump, blocking, on a socket of its own in the
    current network namespace (the worker's); `decode` reads it ~50x faster than pyroute2."""
    with open_netlink_socket() as sock:
        sock.settimeout(10.0)
        return dump_blocking(sock, msg_type, 1)


def read_host_facts(ipr: Any) -> HostFacts:
    """Snapshot every link (with kind, VNI, ownership mark), the addresses on them and the
    default-route devices."""
    links = parse_links(read_link_dump())
    names = {link.ifindex: link.ifname for link in links.values()}
    addresses = parse_addresses(read_link_dump(RTM_GETADDR))
    return HostFacts(
        links={link.ifname: link for link in links.values()},
        addresses={
            names[ifindex]: frozenset(f"{ip}/{prefix}" for ip, prefix in found)
            for ifindex, found in addresses.items()
            if ifindex in names
        },
        default_route_dev=_default_route_dev(ipr, socket.AF_INET, names),
        default_route_dev6=_default_route_dev(ipr, socket.AF_INET6, names),
    )


def _index(_ipr: Any, name: str) -> int:
    """The ifindex by name with one ioctl in this thread's netns (the worker's), instead of
    pyroute2's `link_lookup`, which dumps and decodes every link on the host."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise SystemFailure(f"link {name!r} vanished while being configured") from None


def _vxlan_attributes(ipr: Any, action: CreateVxlan) -> dict[str, Any]:
    spec = action.spec
    attrs: dict[str, Any] = {
        "vxlan_id": spec.vni,
        "vxlan_port": spec.port,
        "vxlan_learning": int(spec.learning),
        "vxlan_proxy": int(spec.proxy),
        "vxlan_rsc": int(spec.rsc),
        "vxlan_l2miss": int(spec.l2miss),
        "vxlan_l3miss": int(spec.l3miss),
    }
    if action.vtep_dev is not None:
        attrs["vxlan_link"] = _index(ipr, action.vtep_dev)
    if spec.src_addr is not None:
        attrs["vxlan_local6" if spec.src_addr.version == 6 else "vxlan_local"] = str(spec.src_addr)
    if spec.group is not None:
        attrs["vxlan_group6" if spec.group.version == 6 else "vxlan_group"] = str(spec.group)
    if spec.ttl is not None:
        attrs["vxlan_ttl"] = spec.ttl
    if spec.tos is not None:
        attrs["vxlan_tos"] = spec.tos
    if spec.noage:
        attrs["vxlan_ageing"] = NO_AGEING_SECONDS
    elif spec.age is not None:
        attrs["vxlan_ageing"] = spec.age
    if spec.limit is not None:
        attrs["vxlan_limit"] = spec.limit
    if spec.port_low is not None and spec.port_high is not None:
        attrs["vxlan_port_range"] = {"low": spec.port_low, "high": spec.port_high}
    if spec.gbp:
        attrs["vxlan_gbp"] = True
    return attrs


def _optional(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _apply_one(ipr: Any, action: Action, created: list[str]) -> None:
    match action:
        case CreateBridge():
            ipr.link(
                "add",
                ifname=action.name,
                kind="bridge",
                **_optional(address=action.hardware_addr, txqlen=action.txqlen),
            )
            created.append(action.name)
            # Set after creation so the kernel treats it as chosen by the user
            # and stops lowering it to the smallest port's MTU.
            ipr.link("set", index=_index(ipr, action.name), mtu=action.mtu, ifalias=action.alias)
        case CreateVxlan():
            ipr.link(
                "add",
                ifname=action.name,
                kind="vxlan",
                mtu=action.mtu,
                master=_index(ipr, action.master),
                **_vxlan_attributes(ipr, action),
                **_optional(address=action.spec.hardware_addr, txqlen=action.spec.txqlen),
            )
            created.append(action.name)
            ipr.link("set", index=_index(ipr, action.name), ifalias=action.alias)
        case CreateVeth():
            ipr.link(
                "add",
                ifname=action.host_ifname,
                kind="veth",
                mtu=action.mtu,
                master=_index(ipr, action.master),
                peer={"ifname": action.container_ifname, "mtu": action.mtu, "address": action.mac},
            )
            created.append(action.host_ifname)
            ipr.link("set", index=_index(ipr, action.host_ifname), ifalias=action.alias)
        case AddAddress():
            address, _, prefix = action.cidr.partition("/")
            try:
                ipr.addr(
                    "add", index=_index(ipr, action.ifname), address=address, prefixlen=int(prefix)
                )
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
        case SetMaster():
            ipr.link("set", index=_index(ipr, action.ifname), master=_index(ipr, action.master))
        case SetUp():
            ipr.link("set", index=_index(ipr, action.ifname), state="up")
        case DeleteLink():
            delete_owned_link(ipr, action.ifname, action.alias)


def delete_owned_link(ipr: Any, ifname: str, alias: str) -> bool:
    """Delete `ifname` if it still carries our mark `alias`; gone already is fine."""
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        return False
    message = ipr.get_links(found[0])[0]
    if (message.get_attr("IFLA_IFALIAS") or "") != alias:
        log.warning("not deleting %s: its ifalias is no longer ours", ifname)
        return False
    try:
        ipr.link("del", index=found[0])
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise
    return True


def _describe(action: Action) -> str:
    name = getattr(action, "name", None) or getattr(action, "host_ifname", None)
    return f"{type(action).__name__}({name or getattr(action, 'ifname', '')})"


def apply_actions(ipr: Any, actions: Sequence[Action]) -> None:
    """Apply a plan in order; on any failure delete what this plan created, then raise
    (the kernel's refusals as SystemFailure, anything else as it is)."""
    created: list[str] = []
    for action in actions:
        try:
            _apply_one(ipr, action, created)
        except Exception as exc:
            for name in reversed(created):
                try:
                    found = ipr.link_lookup(ifname=name)
                    if found:
                        ipr.link("del", index=found[0])
                except NetlinkError:
                    log.exception("rollback: could not delete %s", name)
            if not isinstance(exc, NetlinkError | OSError | SystemFailure):
                raise
            detail = exc.args[1] if isinstance(exc, NetlinkError) and len(exc.args) > 1 else exc
            raise SystemFailure(f"kernel refused {_describe(action)}: {detail}") from exc


class NetlinkKernel:
    """The real `Kernel` of the driver service: jobs run on the worker's IPRoute."""

    def __init__(self, worker: NetlinkWorker) -> None:
        self.worker = worker

    async def read_facts(self) -> HostFacts:
        facts: HostFacts = await self.worker.call(lambda nl: read_host_facts(nl.route))
        return facts

    async def apply(self, actions: Sequence[Action]) -> None:
        await self.worker.call(lambda nl: apply_actions(nl.route, actions))
