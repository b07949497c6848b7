"""Keep the kernel's FDB/neighbour entries in line with the peer table (pre-programming).

The I/O shell around `preprogram`: it runs at start, whenever the peer table
changes, and periodically (to repair entries someone deleted). It writes only
through the netlink worker and deletes only entries it wrote itself; that set
is persisted so a restarted daemon still knows what is its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from ipaddress import ip_address
from pathlib import Path

import trio

from vxlan_evt.disk.atomicfile import write_atomic
from vxlan_evt.driver.service import DriverService
from vxlan_evt.kernel.tables import read_kernel_tables, read_permanent_entries
from vxlan_evt.kernel.worker import NetlinkWorker
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.model.state import NetworkRecord
from vxlan_evt.peers.local import vtep_of
from vxlan_evt.peers.table import PeerTable
from vxlan_evt.resolve.preprogram import Device, SyncPlan, desired_entries, plan_sync

log = logging.getLogger(__name__)


def encode_entries(entries: set[Entry]) -> bytes:
    rows = [
        {"kind": "fdb", "ifindex": e.ifindex, "mac": e.mac, "dst": str(e.dst)}
        if isinstance(e, FdbEntry)
        else {"kind": "neigh", "ifindex": e.ifindex, "ip": str(e.ip), "mac": e.mac}
        for e in entries
    ]
    rows.sort(key=lambda r: (r["kind"], r["ifindex"], r.get("ip", ""), r["mac"], r.get("dst", "")))
    return json.dumps(rows, indent=1).encode()


def decode_entries(data: bytes) -> set[Entry]:
    entries: set[Entry] = set()
    for row in json.loads(data):
        if row["kind"] == "fdb":
            entries.add(FdbEntry(row["ifindex"], row["mac"], ip_address(row["dst"])))
        else:
            entries.add(NeighEntry(row["ifindex"], ip_address(row["ip"]), row["mac"]))
    return entries


class PeerSyncRequest:
    """Asks PeerSync for a sync soon; given to whoever changes the peer table or our networks.

    Re-armable, and created before PeerSync's own inputs (the peer backends ask too), so
    every change callback exists when the objects that call it are built.
    """

    def __init__(self) -> None:
        self._asked = trio.Event()

    def set(self) -> None:
        self._asked.set()

    def forget(self) -> None:
        """Drop the asks made so far: a sync that starts now answers them."""
        self._asked = trio.Event()

    async def wait(self) -> None:
        """Until someone asks; re-armed however it ends, so asks until now count as one."""
        try:
            await self._asked.wait()
        finally:
            self._asked = trio.Event()


class PeerSync:
    def __init__(
        self,
        service: DriverService,
        worker: NetlinkWorker,
        metrics: Metrics,
        peers: Callable[[], PeerTable],
        *,
        state_dir: Path,
        advertise_address: str | None = None,
        preprogram: Callable[[NetworkRecord], bool] = lambda _record: True,
        links: Callable[[], Mapping[int, LinkInfo]] | None = None,
        interval: float = 30.0,
        requests: PeerSyncRequest | None = None,
    ) -> None:
        self.service = service
        self.worker = worker
        self.metrics = metrics
        self.peers = peers
        self.preprogram = preprogram
        self.links = links  # the listener's live table; without it, every sync dumps links
        self.interval = interval
        self.advertise_address = advertise_address  # our VTEP where a network sets no SrcAddr
        self.path = state_dir / "programmed.json"
        self.owned: set[Entry] = set()
        self.last_plan = SyncPlan(frozenset(), frozenset())
        self.requests = requests if requests is not None else PeerSyncRequest()

    def _devices(self, links: dict[str, int]) -> list[Device]:
        devices = []
        for record in self.service.state.networks.values():
            ifindex = links.get(record.vxlan_name)
            if ifindex is None:
                continue
            devices.append(
                Device(
                    vni=record.vni,
                    ifindex=ifindex,
                    head_end_replication="Group" not in record.generic_options,
                    local_vteps=self._local_vteps(record),
                    per_endpoint=self.preprogram(record),
                )
            )
        return devices

    def _local_vteps(self, record: NetworkRecord) -> frozenset[IPAddress]:
        """Our own VTEP: the network's SrcAddr, else the address we advertise to others.
        Nothing may point there (our own endpoints are behind the bridge, not the VTEP)."""
        source = vtep_of(record, self.advertise_address)
        return frozenset({ip_address(source)}) if source else frozenset()

    async def _link_indexes(self) -> dict[str, int]:
        """Our networks' link names -> ifindex, from the listener's live table when it
        already knows every one of them (a link created a moment ago may not be there
        yet: then, and without a live table, from a dump)."""
        if self.links is not None:
            live = {info.ifname: info.ifindex for info in self.links().values()}
            if all(r.vxlan_name in live for r in self.service.state.networks.values()):
                return live
        tables = await read_kernel_tables()
        return {info.ifname: info.ifindex for info in tables.links}

    async def sync_once(self) -> SyncPlan:
        devices = self._devices(await self._link_indexes())
        ifindexes = {d.ifindex for d in devices}
        # Entries on devices that are gone are no longer ours; on a device switched to on
        # demand, the per-endpoint entries we wrote are no longer wanted and are removed.
        self.owned = {e for e in self.owned if e.ifindex in ifindexes}
        plan = plan_sync(
            desired_entries(self.peers(), devices),
            await read_permanent_entries(ifindexes),
            self.owned,
        )
        if plan:
            writes, deletes = list(plan.write), list(plan.delete)  # order does not matter
            failed = await self.worker.call(
                lambda nl: nl.entries.write(writes) + nl.entries.delete(deletes)
            )
            failed_entries = {entry for entry, _ in failed}
            for entry, reason in failed:
                log.warning("peer sync could not program %s: %s", entry, reason)
            # Everything we asked to write was absent when planned: if it landed, it is ours,
            # even when the answer was unclear. A failed delete stays ours to retry.
            self.owned = (self.owned | plan.write) - (plan.delete - failed_entries)
            await trio.to_thread.run_sync(self._save)
            log.info(
                "peer sync wrote=%d deleted=%d failed=%d", len(writes), len(deletes), len(failed)
            )
        self.last_plan = plan
        return plan

    def _load(self) -> None:
        try:
            self.owned = decode_entries(self.path.read_bytes())
        except FileNotFoundError:
            self.owned = set()
        except (ValueError, KeyError) as exc:
            log.error("ignoring damaged %s: %s", self.path, exc)
            self.owned = set()

    def _save(self) -> None:
        write_atomic(self.path, encode_entries(self.owned))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self._load)
        # The start-up sync answers every ask made before it (the state's own load, a
        # peers file read at start): without this a second full sync would follow at once.
        self.requests.forget()
        await self._sync_logged()
        task_status.started()
        while True:
            with trio.move_on_after(self.interval):
                await self.requests.wait()
            await self._sync_logged()

    async def _sync_logged(self) -> None:
        """A failed sync is logged and retried at the next change or interval: the daemon
        (plugin API, listener) must not go down for one bad peer or a busy kernel."""
        try:
            await self.sync_once()
        except Exception:
            log.exception("peer sync failed; retrying in at most %.0f s", self.interval)
