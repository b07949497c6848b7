"""EtcdClient against a real etcd 3.4 (no root needed): KV, CAS, leases, watch, outages.

Every wait is bounded by trio.fail_after; blocking server control runs in a worker thread
so that watches keep being read meanwhile.
"""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from vxlan_evt.etcd.client import EtcdClient, WatchStream
from vxlan_evt.etcd.codec import (
    Compare,
    EtcdCompacted,
    EtcdError,
    EtcdLeaseNotFound,
    EtcdUnavailable,
    Op,
    PutResult,
    RangeResult,
    WatchBatch,
)
from vxlan_evt.testing.etcd import EtcdServer, free_port

WAIT = 10.0


async def next_batch(stream: WatchStream) -> WatchBatch:
    with trio.fail_after(WAIT):
        return await anext(stream)


async def test_put_range_prefix_delete(etcd_server: EtcdServer) -> None:
    async with EtcdClient([etcd_server.url]) as etcd:
        first = await etcd.put(b"/p/a", b"1")
        second = await etcd.put("/p/b", "2")
        await etcd.put(b"/pz", b"outside the prefix")
        assert second == first + 1

        one = await etcd.range(b"/p/a")
        assert [(kv.key, kv.value, kv.mod_revision) for kv in one.kvs] == [(b"/p/a", b"1", first)]
        assert one.revision >= second
        assert (await etcd.range(b"/p/missing")).kvs == []

        listed = await etcd.range(b"/p/", prefix=True)
        assert [kv.key for kv in listed.kvs] == [b"/p/a", b"/p/b"]

        assert (await etcd.delete(b"/p/", prefix=True)).deleted == 2
        assert (await etcd.delete(b"/p/a")).deleted == 0
        assert [kv.key for kv in (await etcd.range(b"/p", prefix=True)).kvs] == [b"/pz"]


async def test_compare_and_swap_has_exactly_one_winner(etcd_server: EtcdServer) -> None:
    async with EtcdClient([etcd_server.url]) as etcd:
        winners: list[str] = []

        async def allocate(name: str) -> None:
            key = b"/alloc/10.0.0.7"
            result = await etcd.txn(
                compare=[Compare.absent(key)],
                success=[Op.put(key, name)],
                failure=[Op.range(key)],
            )
            if result.succeeded:
                winners.append(name)
            else:
                (held,) = result.responses
                assert isinstance(held, RangeResult)
                assert held.kvs[0].value.decode() != name

        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                for index in range(20):
                    nursery.start_soon(allocate, f"host{index}")
        assert len(winners) == 1
        (kv,) = (await etcd.range(b"/alloc/10.0.0.7")).kvs
        assert kv.value.decode() == winners[0]

        # Update only if nobody changed it since we read it; a stale revision loses.
        swapped = await etcd.txn(
            [Compare.mod_revision(kv.key, kv.mod_revision)], [Op.put(kv.key, b"x")]
        )
        assert swapped.succeeded and swapped.responses == [PutResult(swapped.revision)]
        stale = await etcd.txn(
            [Compare.mod_revision(kv.key, kv.mod_revision)], [Op.put(kv.key, b"y")]
        )
        assert not stale.succeeded
        assert (await etcd.txn([Compare.value(kv.key, b"x")], [Op.delete(kv.key)])).succeeded
        assert (await etcd.range(kv.key)).kvs == []


async def test_lease_keepalive_expiry_and_revoke(etcd_server: EtcdServer) -> None:
    async with EtcdClient([etcd_server.url]) as etcd:
        lease, ttl = await etcd.lease_grant(2)
        assert ttl == 2
        await etcd.put(b"/lease/k", b"v", lease=lease)
        assert (await etcd.range(b"/lease/k")).kvs[0].lease == lease

        # Kept alive well past the TTL.
        deadline = trio.current_time() + 4
        while trio.current_time() < deadline:
            assert await etcd.lease_keepalive_once(lease) == 2
            await trio.sleep(0.5)
        assert (await etcd.range(b"/lease/k")).kvs

        # Left alone, it expires and takes its key along (etcd checks expiry every 500 ms).
        started = time.monotonic()
        async with etcd.watch(b"/lease/") as stream:
            (event,) = (await next_batch(stream)).events
        assert (event.type, event.kv.key) == ("DELETE", b"/lease/k")
        assert 1.0 < time.monotonic() - started < 5.0
        assert (await etcd.range(b"/lease/k")).kvs == []
        with pytest.raises(EtcdLeaseNotFound):
            await etcd.lease_keepalive_once(lease)
        with pytest.raises(EtcdLeaseNotFound):
            await etcd.put(b"/lease/k", b"v", lease=lease)

        # Revoke deletes at once.
        lease, _ = await etcd.lease_grant(60)
        await etcd.put(b"/lease/k2", b"v", lease=lease)
        await etcd.lease_revoke(lease)
        assert (await etcd.range(b"/lease/k2")).kvs == []
        with pytest.raises(EtcdLeaseNotFound):
            await etcd.lease_revoke(lease)


async def test_watch_sees_put_and_delete_quickly(etcd_server: EtcdServer) -> None:
    async with EtcdClient([etcd_server.url]) as etcd:
        before = await etcd.put(b"/w/old", b"0")
        async with etcd.watch(b"/w/", start_revision=before) as stream:
            replayed = await next_batch(stream)
            assert [(e.type, e.kv.key) for e in replayed.events] == [("PUT", b"/w/old")]

            latencies = []
            for value in (b"1", b"2"):
                sent = time.monotonic()
                revision = await etcd.put(b"/w/a", value)
                batch = await next_batch(stream)
                latencies.append(time.monotonic() - sent)
                (event,) = batch.events
                assert (event.type, event.kv.value, event.kv.mod_revision) == (
                    "PUT",
                    value,
                    revision,
                )
                assert stream.revision == revision
            assert event.prev_kv is not None and event.prev_kv.value == b"1"

            await etcd.put(b"/other", b"not watched")
            sent = time.monotonic()
            await etcd.delete(b"/w/a")
            (event,) = (await next_batch(stream)).events
            latencies.append(time.monotonic() - sent)
            assert event.type == "DELETE" and event.kv.key == b"/w/a"
            assert event.prev_kv is not None and event.prev_kv.value == b"2"
        # Generous bound for loaded CI machines; typically a few ms.
        assert max(latencies) < 0.5, latencies


async def test_watch_from_a_compacted_revision(etcd_server: EtcdServer) -> None:
    async with EtcdClient([etcd_server.url]) as etcd:
        first = await etcd.put(b"/c/a", b"1")
        latest = await etcd.put(b"/c/a", b"2")
        await etcd.compact(latest)
        async with etcd.watch(b"/c/", start_revision=first) as stream:
            with pytest.raises(EtcdCompacted) as caught:
                await next_batch(stream)
        assert caught.value.compact_revision == latest
        with pytest.raises(EtcdCompacted):
            await etcd.compact(first)
        # Watching from the compact revision itself works.
        async with etcd.watch(b"/c/", start_revision=latest) as stream:
            (event,) = (await next_batch(stream)).events
            assert event.kv.value == b"2"


async def test_outage_raises_unavailable_and_recovers(etcd_server: EtcdServer) -> None:
    async with EtcdClient([etcd_server.url], timeout=2.0) as etcd:
        await etcd.put(b"/o/a", b"1")
        async with etcd.watch(b"/o/") as stream:
            await trio.to_thread.run_sync(etcd_server.stop)
            with pytest.raises(EtcdUnavailable):
                await next_batch(stream)
        with pytest.raises(EtcdUnavailable, match="no endpoint answered"):
            await etcd.range(b"/o/a")
        with pytest.raises(EtcdUnavailable):
            await etcd.put(b"/o/a", b"2")
        with pytest.raises(EtcdUnavailable):
            async with etcd.watch(b"/o/"):
                pass

        await trio.to_thread.run_sync(etcd_server.start)
        assert (await etcd.range(b"/o/a")).kvs[0].value == b"1"

        # A crash (SIGKILL) breaks the watch stream mid-chunk: also EtcdUnavailable.
        async with etcd.watch(b"/o/") as stream:
            await trio.to_thread.run_sync(etcd_server.kill)
            with pytest.raises(EtcdUnavailable):
                await next_batch(stream)
        await trio.to_thread.run_sync(etcd_server.start)
        assert await etcd.put(b"/o/a", b"3") > 0


async def test_failover_to_the_next_endpoint(etcd_server: EtcdServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with EtcdClient([dead, etcd_server.url]) as etcd:
        assert await etcd.put(b"/f/a", b"1") > 0
        assert etcd.endpoints[1] == etcd_server.url
        async with etcd.watch(b"/f/") as stream:
            await etcd.put(b"/f/a", b"2")
            assert (await next_batch(stream)).events[0].kv.value == b"2"


async def test_auth_token_and_renewal(etcd_server: EtcdServer) -> None:
    async with httpx.AsyncClient(base_url=etcd_server.url) as http:
        for path, body in [
            ("/v3/auth/user/add", {"name": "root", "password": "secret"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/enable", {}),
        ]:
            (await http.post(path, json=body)).raise_for_status()

    async with EtcdClient([etcd_server.url]) as anonymous:
        with pytest.raises(EtcdError, match="user name is empty"):
            await anonymous.range(b"/a")
    async with EtcdClient([etcd_server.url], username="root", password="wrong") as wrong:
        with pytest.raises(EtcdError, match="authentication failed"):
            await wrong.range(b"/a")

    async with EtcdClient([etcd_server.url], username="root", password="secret") as etcd:
        await etcd.put(b"/auth/a", b"1")
        etcd._token = "expired.1"  # as if the simple token had timed out
        assert (await etcd.range(b"/auth/a")).kvs[0].value == b"1"
        etcd._token = "expired.2"
        async with etcd.watch(b"/auth/") as stream:
            await etcd.put(b"/auth/a", b"2")
            assert (await next_batch(stream)).events[0].kv.value == b"2"
        lease, _ = await etcd.lease_grant(10)
        assert await etcd.lease_keepalive_once(lease) == 10
