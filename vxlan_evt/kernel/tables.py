"""Read the kernel's links, FDB and neighbour tables for the observe API.

Reads only, each on its own short-lived socket (writes stay with the one
`NetlinkWorker`). Decoding reuses `NetlinkDecoder`: a dump's RTM_NEWNEIGH
messages decode exactly like notifications, as "add" events.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio
from pyroute2 import IPRoute

from vxlan_evt.kernel.decode import NdMsg, NetlinkDecoder, parse_ndmsg
from vxlan_evt.kernel.sockets import dump, open_netlink_socket
from vxlan_evt.kernel.wire import (
    IFF_UP,
    NUD_PERMANENT,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_NEWNEIGH,
    TruncatedError,
    split_messages,
)
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.model.events import FdbEvent, NeighEvent
from vxlan_evt.model.links import LinkInfo


@dataclass(frozen=True, slots=True)
class KernelTables:
    links: list[LinkInfo]
    fdb: list[FdbEvent]
    neigh: list[NeighEvent]


async def read_kernel_tables(netns: str | None = None) -> KernelTables:
    raw = await trio.to_thread.run_sync(partial(open_netlink_socket, netns))
    with trio.socket.from_stdlib_socket(raw) as sock:
        link_chunks = await dump(sock, RTM_GETLINK, 1)
        fdb_chunks = await dump(sock, RTM_GETNEIGH, 2, family=socket.AF_BRIDGE)
        neigh_chunks = await dump(sock, RTM_GETNEIGH, 3)
    # Decoding 100k FDB entries takes seconds: off the event loop, which serves Docker.
    return await trio.to_thread.run_sync(
        decode_kernel_tables, link_chunks, fdb_chunks, neigh_chunks
    )


def decode_kernel_tables(
    link_chunks: list[bytes], fdb_chunks: list[bytes], neigh_chunks: list[bytes]
) -> KernelTables:
    decoder = NetlinkDecoder()
    decoder.load_links(link_chunks)
    fdb = [e for chunk in fdb_chunks for e in decoder.feed(chunk) if isinstance(e, FdbEvent)]
    neigh = [e for chunk in neigh_chunks for e in decoder.feed(chunk) if isinstance(e, NeighEvent)]
    return KernelTables(links=list(decoder.links.values()), fdb=fdb, neigh=neigh)


def read_link_rows() -> list[dict[str, Any]]:
    """`link_rows` on a pyroute2 socket of its own (blocking; run it in a thread), so the
    observe API never waits in, or delays, the netlink worker's queue of Docker calls and
    entry writes."""
    with IPRoute() as ipr:
        return link_rows(ipr)


async def read_permanent_entries(
    ifindexes: Collection[int], netns: str | None = None
) -> set[Entry]:
    """The permanent FDB entries with a remote (`self ... dst VTEP`) and neighbour entries
    of these devices, from two ndmsg dumps parsed by hand: no link dump, no pyroute2.

    The pre-program sync (resolve.peersync) reads this on every table change, so it must stay cheap on a
    host with thousands of links and entries.
    """
    wanted = set(ifindexes)
    if not wanted:
        return set()
    raw = await trio.to_thread.run_sync(partial(open_netlink_socket, netns))
    with trio.socket.from_stdlib_socket(raw) as sock:
        fdb_chunks = await dump(sock, RTM_GETNEIGH, 1, family=socket.AF_BRIDGE)
        neigh_chunks = await dump(sock, RTM_GETNEIGH, 2)
    return permanent_entries([*fdb_chunks, *neigh_chunks], wanted)


def permanent_entries(chunks: Iterable[bytes], ifindexes: Collection[int]) -> set[Entry]:
    """Pure: the permanent FDB entries with a remote and neighbour entries of `ifindexes`
    in RTM_GETNEIGH dump replies (AF_BRIDGE and AF_UNSPEC). Broken messages are skipped."""
    present: set[Entry] = set()
    for chunk in chunks:
        for nd in _ndmsgs(chunk):
            try:
                ip, mac = nd.ip(), nd.lladdr()
            except ValueError:
                continue
            if nd.ifindex not in ifindexes or not nd.state & NUD_PERMANENT or not ip or not mac:
                continue
            if nd.family == socket.AF_BRIDGE:
                present.add(FdbEntry(nd.ifindex, mac, ip))
            elif nd.family in (socket.AF_INET, socket.AF_INET6):
                present.add(NeighEntry(nd.ifindex, ip, mac))
    return present


def _ndmsgs(chunk: bytes) -> Iterator[NdMsg]:
    try:
        for header in split_messages(chunk):
            if header.msg_type == RTM_NEWNEIGH:
                try:
                    yield parse_ndmsg(header.data)
                except (ValueError, struct.error):
                    continue
    except TruncatedError:
        return


_VXLAN_FIELDS = {
    "IFLA_VXLAN_ID": "vni",
    "IFLA_VXLAN_PORT": "port",
    "IFLA_VXLAN_GROUP": "group",
    "IFLA_VXLAN_GROUP6": "group",
    "IFLA_VXLAN_LOCAL": "local",
    "IFLA_VXLAN_LOCAL6": "local",
    "IFLA_VXLAN_LINK": "dev",
    "IFLA_VXLAN_LEARNING": "learning",
    "IFLA_VXLAN_PROXY": "proxy",
    "IFLA_VXLAN_L2MISS": "l2miss",
    "IFLA_VXLAN_L3MISS": "l3miss",
    "IFLA_VXLAN_AGEING": "ageing",
    "IFLA_VXLAN_LIMIT": "limit",
}
_FLAGS = {"learning", "proxy", "l2miss", "l3miss"}


def link_rows(ipr: Any) -> list[dict[str, Any]]:
    """Every link with its vxlan settings, for the observe API (runs on the worker)."""
    messages = ipr.get_links()
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in messages}
    rows = []
    for message in messages:
        linkinfo = message.get_attr("IFLA_LINKINFO")
        kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else None
        vxlan: dict[str, Any] | None = None
        if kind == "vxlan":
            data = linkinfo.get_attr("IFLA_INFO_DATA")
            vxlan = {field: None for field in _VXLAN_FIELDS.values()}
            for attribute, value in data["attrs"] if data is not None else ():
                field = _VXLAN_FIELDS.get(attribute)
                if field is None:
                    continue
                if field == "dev":
                    value = names.get(value)
                elif field in _FLAGS:
                    value = bool(value)
                if value not in (None, "0.0.0.0", "::") or vxlan[field] is None:
                    vxlan[field] = value
        rows.append(
            {
                "ifindex": message["index"],
                "ifname": message.get_attr("IFLA_IFNAME"),
                "kind": kind,
                "vni": vxlan["vni"] if vxlan else None,
                "mtu": message.get_attr("IFLA_MTU"),
                "master": names.get(message.get_attr("IFLA_MASTER")),
                "operstate": message.get_attr("IFLA_OPERSTATE"),
                "up": bool(message["flags"] & IFF_UP),
                "alias": message.get_attr("IFLA_IFALIAS") or None,
                "vxlan": vxlan,
            }
        )
    return rows
