"""Where IPAM allocations live: a JSON file on this host, or etcd shared by every host.

Both stores run the pure `ipam.plan_allocation` / `ipam.plan_release` and differ only in
how a decision is made atomic. Each store serialises its own calls with one lock, so a
host never races itself; in etcd, hosts race each other through compare-and-swap:

* `<prefix>ipam/<space>/<subnet>/<address>` → `{"host", "kind", "at"[, "holders"]}`,
  created with `Compare.absent(key)`; a lost race re-reads the scope (the txn's failure
  branch returns it) and plans again, a bounded number of times;
* `<prefix>ipam-pools/<host>/<pool-id>` → this host's RequestPool count (bookkeeping).

A release changes a record only if this host holds it, guarded by its mod_revision.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import trio

from vxlan_evt.disk.documents import load_document, save_document
from vxlan_evt.etcd.client import EtcdClient
from vxlan_evt.etcd.codec import Compare, KeyValue, Op, RangeResult
from vxlan_evt.ipam.allocation import (
    Allocation,
    AllocationContention,
    Kind,
    Pool,
    allocation_from_json,
    allocation_to_json,
    decode_allocation,
    encode_allocation,
    plan_allocation,
    plan_release,
)
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.defaults import DEFAULT_ETCD_PREFIX
from vxlan_evt.model.errors import SystemFailure

log = logging.getLogger(__name__)

Clock = Callable[[], str]
ReleaseOutcome = Literal["released", "absent", "foreign"]
IPAM_FILE_NAME = "ipam.json"
IPAM_FILE_VERSION = 1
MAX_ATTEMPTS = 32


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class IpamStore(Protocol):
    """What `IpamService` needs; `host` is who asks (recorded, and checked on release)."""

    async def allocate(
        self, pool: Pool, requested: IPAddress | None, kind: Kind, host: str
    ) -> IPAddress: ...

    async def release(self, pool: Pool, address: IPAddress, host: str) -> ReleaseOutcome: ...

    async def pool_refs(self, pool: Pool, host: str, delta: int) -> int:
        """Add `delta` to this host's reference count of the pool (never below 0); return it."""
        ...


# --------------------------------------------------------------------- local file


Addresses = dict[str, dict[IPAddress, Allocation]]  # scope → address → record
Refs = dict[str, dict[str, int]]  # pool ID → host → count


def encode_ipam_file(addresses: Addresses, refs: Refs) -> bytes:
    document = {
        "version": IPAM_FILE_VERSION,
        "refs": refs,
        "addresses": {
            scope: {str(ip): allocation_to_json(r) for ip, r in sorted(table.items())}
            for scope, table in sorted(addresses.items())
            if table
        },
    }
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def decode_ipam_file(data: bytes) -> tuple[Addresses, Refs]:
    """Parse `encode_ipam_file` output; a damaged file fails loudly, never resets silently."""
    try:
        document = json.loads(data)
        if document.get("version") != IPAM_FILE_VERSION:
            raise ValueError(f"unsupported version {document.get('version')!r}")
        addresses: Addresses = {
            scope: {ipaddress.ip_address(ip): allocation_from_json(r) for ip, r in table.items()}
            for scope, table in document["addresses"].items()
        }
        refs: Refs = {
            pool_id: {str(host): int(n) for host, n in hosts.items()}
            for pool_id, hosts in document["refs"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemFailure(f"IPAM file is damaged: {exc}") from exc
    return addresses, refs


def _no_allocations() -> tuple[Addresses, Refs]:
    return {}, {}


class LocalIpamStore:
    """Allocations of this host only, in `<state_dir>/ipam.json`; the default without etcd."""

    def __init__(self, state_dir: Path, *, clock: Clock = utc_now) -> None:
        self.path = state_dir / IPAM_FILE_NAME
        self.clock = clock
        self._lock = trio.Lock()
        self._loaded: tuple[Addresses, Refs] | None = None

    def _read(self) -> tuple[Addresses, Refs]:
        """A damaged file falls back to `ipam.json.bak` (one change older: an address given
        out since may be given again, which the log says); none usable stops loudly."""
        return load_document(self.path, decode_ipam_file, _no_allocations, "IPAM file").value

    async def _state(self) -> tuple[Addresses, Refs]:
        if self._loaded is None:
            self._loaded = await trio.to_thread.run_sync(self._read)
        return self._loaded

    async def _commit(self, addresses: Addresses, refs: Refs) -> None:
        """Write first, then adopt: a failed write leaves memory as the disk has it."""
        await trio.to_thread.run_sync(save_document, self.path, encode_ipam_file(addresses, refs))
        self._loaded = (addresses, refs)

    async def allocate(
        self, pool: Pool, requested: IPAddress | None, kind: Kind, host: str
    ) -> IPAddress:
        async with self._lock:
            addresses, refs = await self._state()
            table = addresses.get(pool.scope, {})
            plan = plan_allocation(pool, requested, kind, host, table, self.clock())
            table = {**table, plan.address: plan.record}
            await self._commit({**addresses, pool.scope: table}, refs)
            return plan.address

    async def release(self, pool: Pool, address: IPAddress, host: str) -> ReleaseOutcome:
        async with self._lock:
            addresses, refs = await self._state()
            table = dict(addresses.get(pool.scope, {}))
            record = table.get(address)
            if record is None:
                return "absent"
            decision = plan_release(record, host)
            if decision.action == "foreign":
                return "foreign"
            if decision.record is None:
                del table[address]
            else:
                table[address] = decision.record
            await self._commit({**addresses, pool.scope: table}, refs)
            return "released"

    async def pool_refs(self, pool: Pool, host: str, delta: int) -> int:
        async with self._lock:
            addresses, refs = await self._state()
            hosts = dict(refs.get(pool.pool_id, {}))
            current = hosts.get(host, 0)
            count = max(current + delta, 0)
            if count != current:
                if count:
                    hosts[host] = count
                else:
                    hosts.pop(host, None)
                new_refs = {k: v for k, v in refs.items() if k != pool.pool_id}
                if hosts:
                    new_refs[pool.pool_id] = hosts
                await self._commit(addresses, new_refs)
            return count


# --------------------------------------------------------------------------- etcd


def scope_prefix(prefix: str, pool: Pool) -> bytes:
    """Every allocation of the pool's scope; the trailing slash keeps /2 apart from /24."""
    return f"{prefix}ipam/{pool.scope}/".encode()


def address_key(prefix: str, pool: Pool, address: IPAddress) -> bytes:
    return scope_prefix(prefix, pool) + str(address).encode()


def refs_key(prefix: str, pool: Pool, host: str) -> bytes:
    return f"{prefix}ipam-pools/{host}/{pool.pool_id}".encode()


def decode_scope(
    prefix: str, pool: Pool, kvs: list[KeyValue]
) -> tuple[dict[IPAddress, Allocation], dict[IPAddress, int]]:
    """Records and mod_revisions by address, from a range of `scope_prefix`."""
    start = scope_prefix(prefix, pool)
    taken: dict[IPAddress, Allocation] = {}
    revisions: dict[IPAddress, int] = {}
    for kv in kvs:
        try:
            address = ipaddress.ip_address(kv.key[len(start) :].decode())
        except (ValueError, UnicodeDecodeError):
            log.warning("ipam skipping malformed key key=%r", kv.key)
            continue
        taken[address] = decode_allocation(kv.value)
        revisions[address] = kv.mod_revision
    return taken, revisions


class EtcdIpamStore:
    """Allocations shared by every host through etcd: two hosts never get one address."""

    def __init__(
        self,
        etcd: EtcdClient,
        prefix: str = DEFAULT_ETCD_PREFIX,
        *,
        clock: Clock = utc_now,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.etcd = etcd
        self.prefix = prefix
        self.clock = clock
        self.max_attempts = max_attempts
        self._lock = trio.Lock()

    async def allocate(
        self, pool: Pool, requested: IPAddress | None, kind: Kind, host: str
    ) -> IPAddress:
        start = scope_prefix(self.prefix, pool)
        async with self._lock:
            result = await self.etcd.range(start, prefix=True)
            taken, revisions = decode_scope(self.prefix, pool, result.kvs)
            for attempt in range(1, self.max_attempts + 1):
                plan = plan_allocation(pool, requested, kind, host, taken, self.clock())
                key = address_key(self.prefix, pool, plan.address)
                guard = (
                    Compare.absent(key)
                    if plan.previous is None
                    else Compare.mod_revision(key, revisions[plan.address])
                )
                txn = await self.etcd.txn(
                    compare=[guard],
                    success=[Op.put(key, encode_allocation(plan.record))],
                    failure=[Op.range(start, prefix=True)],
                )
                if txn.succeeded:
                    if attempt > 1:
                        log.info(
                            "ipam won after lost races pool=%s attempts=%d", pool.pool_id, attempt
                        )
                    return plan.address
                fresh = txn.responses[0]
                if not isinstance(fresh, RangeResult):
                    raise SystemFailure(f"etcd: unexpected txn answer {fresh!r}")
                taken, revisions = decode_scope(self.prefix, pool, fresh.kvs)
        raise AllocationContention(
            f"lost {self.max_attempts} races for an address in pool {pool.pool_id}: try again"
        )

    async def release(self, pool: Pool, address: IPAddress, host: str) -> ReleaseOutcome:
        key = address_key(self.prefix, pool, address)
        async with self._lock:
            for _ in range(self.max_attempts):
                kvs = (await self.etcd.range(key)).kvs
                if not kvs:
                    return "absent"
                decision = plan_release(decode_allocation(kvs[0].value), host)
                if decision.action == "foreign":
                    return "foreign"
                op = Op.delete(key) if decision.record is None else _put(key, decision.record)
                guard = Compare.mod_revision(key, kvs[0].mod_revision)
                if (await self.etcd.txn(compare=[guard], success=[op])).succeeded:
                    return "released"
        raise AllocationContention(f"could not release {address} in pool {pool.pool_id}")

    async def pool_refs(self, pool: Pool, host: str, delta: int) -> int:
        key = refs_key(self.prefix, pool, host)
        async with self._lock:
            for _ in range(self.max_attempts):
                kvs = (await self.etcd.range(key)).kvs
                current = _count(kvs[0].value) if kvs else 0
                count = max(current + delta, 0)
                if count == current:
                    return count
                guard = (
                    Compare.mod_revision(key, kvs[0].mod_revision) if kvs else Compare.absent(key)
                )
                op = Op.put(key, str(count)) if count else Op.delete(key)
                if (await self.etcd.txn(compare=[guard], success=[op])).succeeded:
                    return count
        raise AllocationContention(f"could not count references of pool {pool.pool_id}")


def _put(key: bytes, record: Allocation) -> dict[str, Any]:
    return Op.put(key, encode_allocation(record))


def _count(value: bytes) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        return 0
