"""The daemon's answers to the observe API: its state, the kernel's tables, the peers."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from vxlan_evt.driver.service import DriverService
from vxlan_evt.kernel.tables import read_kernel_tables, read_link_rows
from vxlan_evt.kernel.worker import NetlinkWorker
from vxlan_evt.model.addresses import ZERO_MAC
from vxlan_evt.model.events import Owner, attribute
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.model.modes import ResolveMode
from vxlan_evt.model.ownership import parse_alias
from vxlan_evt.model.tables import OBSERVE_TABLES
from vxlan_evt.peers.table import PeerTable
from vxlan_evt.resolve.bus import EventBus
from vxlan_evt.resolve.engine import EventEngine
from vxlan_evt.resolve.ondemand import OnDemand, network_mode

Table = Callable[[], Awaitable[list[dict[str, Any]]]]


def _owner_fields(alias: str | None) -> dict[str, Any]:
    owner = parse_alias(alias)
    return {
        "network_id": owner.network_id if owner else None,
        "endpoint_id": owner.endpoint_id if owner else None,
        "foreign": owner is None,
    }


class DaemonObserver:
    def __init__(
        self,
        service: DriverService,
        worker: NetlinkWorker,
        engine: EventEngine,
        metrics: Metrics,
        peers: Callable[[], PeerTable],
        netns: str | None = None,
        *,
        ondemand: OnDemand | None = None,
        default_resolve: ResolveMode = "preprogram",
    ) -> None:
        self.default_resolve = default_resolve  # the daemon's --resolve
        self.service = service
        self.worker = worker
        self.engine = engine
        self.bus: EventBus[Any] = engine.bus
        self._metrics = metrics
        self._peers = peers
        self._netns = netns
        self.ondemand = ondemand
        readers: dict[str, Table] = {
            "networks": self.networks,
            "endpoints": self.endpoints,
            "links": self.links,
            "fdb": self.fdb,
            "neigh": self.neigh,
            "peers": self.peers,
            "misses": self.misses,
            "ondemand": self.ondemand_entries,
        }
        # Exactly the tables the CLI knows: one list, in the model.
        if readers.keys() != OBSERVE_TABLES.keys():
            raise TypeError(f"observer tables {sorted(readers)} != {sorted(OBSERVE_TABLES)}")
        self.tables: Mapping[str, Table] = readers

    def metrics(self) -> bytes:
        return self._metrics.render()

    async def networks(self) -> list[dict[str, Any]]:
        rows = []
        for record in self.service.state.networks.values():
            row = dataclasses.asdict(record)
            row["options"] = row.pop("generic_options")
            row["scope"] = self.service.scope
            row["resolve"] = network_mode(record, self.default_resolve)
            row["degraded"] = self.service.degraded.get(record.network_id)  # why, or None
            rows.append(row)
        return rows

    async def endpoints(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(e) for e in self.service.state.endpoints.values()]

    async def links(self) -> list[dict[str, Any]]:
        # Its own socket in a thread: a client polling /links never queues behind, or
        # delays, the worker's Docker calls and entry writes.
        rows = await trio.to_thread.run_sync(read_link_rows)
        return [{**row, **_owner_fields(row["alias"])} for row in rows]

    async def _owned(self) -> tuple[dict[int | str, Owner], Any]:
        tables = await read_kernel_tables(self._netns)
        owned: dict[int | str, Owner] = {}
        for info in tables.links:
            owner = parse_alias(info.ifalias)
            if owner is not None:
                owned[info.ifindex] = (owner.network_id, owner.endpoint_id)
        return owned, tables

    async def fdb(self) -> list[dict[str, Any]]:
        owned, tables = await self._owned()
        table = self._peers()
        names = {info.ifindex: info.ifname for info in tables.links}
        rows = []
        for count, event in enumerate(tables.fdb, 1):
            if count % 1000 == 0:
                await trio.lowlevel.checkpoint()  # 100k entries: let Docker's calls in
            row = attribute(event, owned).to_dict()
            row["master"] = names.get(event.master) if event.master is not None else None
            peer = table.by_mac(event.vni, event.mac) if event.vni is not None else None
            if event.mac == ZERO_MAC:
                row["source"] = "flood"  # head-end replication to one VTEP (or the Group)
            elif event.master is not None:
                row["source"] = "bridge"  # the bridge's own table: port addresses, learned MACs
            elif int(event.mac[:2], 16) & 1:
                row["source"] = "multicast"  # group addresses the kernel subscribes to
            elif self.ondemand is not None and self.ondemand.holds(
                event.ifindex, event.mac, event.dst
            ):
                row["source"] = "on-demand"
            elif peer is not None and event.dst == peer.vtep:
                row["source"] = "peer"
            elif event.state in {"REACHABLE", "STALE"}:
                row["source"] = "learned"
            else:
                row["source"] = "other"
            rows.append(row)
        return rows

    async def neigh(self) -> list[dict[str, Any]]:
        owned, tables = await self._owned()
        return [attribute(event, owned).to_dict() for event in tables.neigh]

    async def peers(self) -> list[dict[str, Any]]:
        return [peer.to_dict() for peer in self._peers().endpoints]

    async def misses(self) -> list[dict[str, Any]]:
        return self.engine.misses.table()

    async def ondemand_entries(self) -> list[dict[str, Any]]:
        """Entries programmed from misses on on-demand devices, with age and kernel idle time."""
        return await self.ondemand.rows() if self.ondemand is not None else []
