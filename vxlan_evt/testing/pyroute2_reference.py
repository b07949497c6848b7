"""pyroute2's reading of link messages: the reference our hand-written parser is held to
(tests/unit/kernel/test_decode.py) and measured against (tools/bench/bench_link_dump.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from typing import Any

from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from vxlan_evt.kernel.wire import IFF_UP, RTM_DELLINK, RTM_NEWLINK
from vxlan_evt.model.links import LinkInfo


def pyroute2_link(message: Any, known: Mapping[int, LinkInfo]) -> LinkInfo:
    """One decoded ifinfmsg as a LinkInfo, read with pyroute2's `get_attr`; without
    IFLA_LINKINFO the kind and VNI `known` has for the link stay, as in our parser."""
    kind = vni = None
    linkinfo = message.get_attr("IFLA_LINKINFO")
    if linkinfo is not None:
        kind = linkinfo.get_attr("IFLA_INFO_KIND")
        data = linkinfo.get_attr("IFLA_INFO_DATA")
        if kind == "vxlan" and data is not None:
            vni = data.get_attr("IFLA_VXLAN_ID")
    elif message["index"] in known:
        kind, vni = known[message["index"]].kind, known[message["index"]].vni
    operstate = message.get_attr("IFLA_OPERSTATE")
    return LinkInfo(
        ifindex=message["index"],
        ifname=message.get_attr("IFLA_IFNAME"),
        kind=kind,
        vni=vni,
        mtu=message.get_attr("IFLA_MTU"),
        master=message.get_attr("IFLA_MASTER") or None,
        ifalias=message.get_attr("IFLA_IFALIAS") or None,
        operstate=None if operstate is None else str(operstate),
        up=bool(message["flags"] & IFF_UP),
        mac=message.get_attr("IFLA_ADDRESS"),
    )


def pyroute2_links(
    chunks: Iterable[bytes], known: Mapping[int, LinkInfo] | None = None
) -> list[LinkInfo | None]:
    """Every RTM_NEWLINK/RTM_DELLINK message in `chunks`, in order, through pyroute2's
    generic decoder (None for the bridge's AF_BRIDGE view of a port)."""
    marshal = MarshalRtnl()
    found: list[LinkInfo | None] = []
    for chunk in chunks:
        for message in marshal.parse(chunk):
            if message["header"]["type"] not in (RTM_NEWLINK, RTM_DELLINK):
                continue
            bridge_view = message["family"] == socket.AF_BRIDGE
            found.append(None if bridge_view else pyroute2_link(message, known or {}))
    return found
