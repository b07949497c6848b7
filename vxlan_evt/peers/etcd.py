"""The etcd peer backend: publish this host's endpoints, watch everyone else's.

Each host holds a lease (TTL, kept alive); its host key and endpoint keys hang
on it, so a host that dies disappears from every other host's table when the
lease expires. The watch resumes from the last revision seen; on compaction
or any break it falls back to a full range. While etcd is unreachable the
cached table stays in force (the datapath keeps every programmed entry) and
the backend retries with capped exponential backoff.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping

import trio

from vxlan_evt.etcd.client import EtcdClient
from vxlan_evt.etcd.codec import EtcdCompacted, EtcdError
from vxlan_evt.peers.keys import (
    MalformedRecord,
    decode_endpoint,
    encode_endpoint,
    endpoint_key,
    endpoints_prefix,
    host_key,
    host_of_network_key,
    network_conflict,
    network_key,
    network_prefix,
    table_from,
)
from vxlan_evt.peers.table import PeerEndpoint, PeerTable

log = logging.getLogger(__name__)


class EtcdPeers:
    def __init__(
        self,
        client: EtcdClient,
        *,
        prefix: str,
        host: str,
        lease_ttl: int,
        local: Callable[[], list[PeerEndpoint]],
        local_networks: Callable[[], Mapping[int, bytes]] = dict,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.host = host
        self.lease_ttl = lease_ttl
        self.local = local
        self.local_networks = local_networks
        self.on_change = on_change  # called after every rebuild of the table
        self.connected = False
        self.malformed = 0  # records skipped since start
        self.table = PeerTable()
        self._remote: dict[bytes, PeerEndpoint] = {}
        self._published: dict[bytes, bytes] = {}
        self._local_changed = trio.Event()
        self._lease: int | None = None

    def local_changed(self) -> None:
        """This host's endpoints changed: publish soon, and refresh the table now."""
        self._local_changed.set()
        self._rebuild()

    def _rebuild(self) -> None:
        self.table = table_from(self._remote, self.local())
        self.on_change()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Never returns while the daemon runs; reports started after the first attempt."""
        backoff, started = 0.5, False
        while True:
            try:
                async with trio.open_nursery() as nursery:
                    lease = await self._connect()
                    nursery.start_soon(self._keepalive, lease)
                    nursery.start_soon(self._publisher, lease)
                    revision = await self._load_all()
                    if not started:
                        task_status.started()
                        started = True
                    backoff = 0.5
                    await self._watch(revision + 1)
            except* (EtcdError, OSError) as group:
                self.connected = False
                log.warning(
                    "etcd unavailable, keeping %d cached peers, retrying in %.1fs: %s",
                    len(self._remote),
                    backoff,
                    "; ".join(str(e) for e in group.exceptions),
                )
            except* Exception as group:
                # A bug or an answer nobody foresaw: the datapath must not lose its peers
                # over it. Keep the table, say what happened, and start over after a pause.
                self.connected = False
                log.error(
                    "etcd peer sync failed unexpectedly, keeping %d cached peers, retrying"
                    " in %.1fs",
                    len(self._remote),
                    backoff,
                    exc_info=group,
                )
            if not started:
                task_status.started()  # the daemon must start even when etcd is down
                started = True
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _connect(self) -> int:
        lease = (await self.client.lease_grant(self.lease_ttl)).lease_id
        self._published = {}
        await self.client.put(host_key(self.prefix, self.host), self.host.encode(), lease=lease)
        await self._publish(lease)
        if self._lease is not None and self._lease != lease:
            # Everything still wanted now hangs on the new lease; revoking the old one
            # deletes at once what went away while etcd was unreachable (no flap).
            with contextlib.suppress(EtcdError):
                await self.client.lease_revoke(self._lease)
        self._lease = lease
        self.connected = True
        log.info("etcd connected host=%s lease=%x ttl=%ds", self.host, lease, self.lease_ttl)
        return lease

    async def _keepalive(self, lease: int) -> None:
        while True:
            await trio.sleep(max(self.lease_ttl / 3, 0.5))
            ttl = await self.client.lease_keepalive_once(lease)
            if ttl <= 0:
                raise EtcdError(f"lease {lease:x} expired")

    async def _publisher(self, lease: int) -> None:
        while True:
            await self._local_changed.wait()
            self._local_changed = trio.Event()
            await self._publish(lease)

    async def _publish(self, lease: int) -> None:
        wanted = {endpoint_key(self.prefix, p): encode_endpoint(p) for p in self.local()}
        for vni, document in self.local_networks().items():
            wanted[network_key(self.prefix, vni, self.host)] = document
        for key, value in wanted.items():
            if self._published.get(key) != value:
                await self.client.put(key, value, lease=lease)
        for key in self._published.keys() - wanted.keys():
            await self.client.delete(key)
        self._published = wanted

    async def check_network(
        self, vni: int, settings: Mapping[str, str], subnets: Iterable[str]
    ) -> str | None:
        """Why this VNI may not be created with these settings here, or None if it may.

        Compares with what every other host published for the VNI. With etcd
        unreachable there is nothing to compare with: the network is allowed (and
        the reason logged) rather than blocking Docker until etcd is back.
        """
        try:
            result = await self.client.range(network_prefix(self.prefix, vni), prefix=True)
        except (EtcdError, OSError) as exc:
            log.warning(
                "etcd unreachable: VxlanId %d not checked against other hosts: %s", vni, exc
            )
            return None
        subnets = list(subnets)
        for kv in result.kvs:
            host = host_of_network_key(kv.key)
            if host == self.host:
                continue
            try:
                conflict = network_conflict(vni, settings, kv.value, subnets=subnets, host=host)
            except MalformedRecord as exc:
                log.warning("ignoring malformed etcd record %s: %s", _shown(kv.key), exc)
                continue
            if conflict is not None:
                return conflict
        return None

    async def _load_all(self) -> int:
        result = await self.client.range(endpoints_prefix(self.prefix), prefix=True)
        self._remote = {}
        for kv in result.kvs:
            self._remember(kv.key, kv.value)
        self._rebuild()
        return int(result.revision)

    def _remember(self, key: bytes, value: bytes) -> None:
        try:
            peer = decode_endpoint(key, value)
        except MalformedRecord as exc:
            self._remote.pop(key, None)  # what it said before no longer holds either
            self.malformed += 1
            log.warning("ignoring malformed etcd record %s: %s", _shown(key), exc)
            return
        if peer.host != self.host:
            self._remote[key] = peer

    async def _watch(self, start_revision: int) -> None:
        watch = self.client.watch(
            endpoints_prefix(self.prefix), prefix=True, start_revision=start_revision
        )
        try:
            async with watch as stream:
                async for batch in stream:
                    for event in batch.events:
                        if event.type == "DELETE":
                            self._remote.pop(event.kv.key, None)
                        else:
                            self._remember(event.kv.key, event.kv.value)
                    self._rebuild()
        except EtcdCompacted:
            log.info("etcd watch compacted; reloading everything")
            raise
        raise EtcdError("etcd watch ended")


def _shown(key: bytes) -> str:
    return repr(key.decode(errors="replace")[:200])
