"""A small async etcd v3 client over the JSON gateway (etcd 3.4), for trio via httpx.

Only HTTP, endpoint failover and the auth token live here; every document is
encoded and decoded by the pure `etcd.codec` (see it for the gateway's quirks).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
import trio

from vxlan_evt.etcd.codec import (
    Data,
    DeleteResult,
    EtcdError,
    EtcdUnauthenticated,
    EtcdUnavailable,
    Json,
    LeaseGrant,
    RangeResult,
    TxnResult,
    WatchBatch,
    _int,
    _revision,
    decode_answer,
    decode_delete,
    decode_error,
    decode_keepalive,
    decode_range,
    decode_stream_line,
    decode_txn,
    decode_watch_response,
    encode_put,
    encode_watch_create,
    key_range,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class WatchStream:
    """The batches of one open watch; `revision` is the last store revision seen (resume +1)."""

    def __init__(self, lines: AsyncIterator[str], revision: int) -> None:
        self.lines = lines
        self.revision = revision

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchBatch:
        while True:
            try:
                line = await anext(self.lines)
            except StopAsyncIteration:
                raise EtcdUnavailable("etcd: watch stream ended") from None
            except httpx.TransportError as exc:
                raise EtcdUnavailable(f"etcd: watch stream broke: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise EtcdError(f"etcd: watch stream unreadable: {exc!r}") from exc
            if line.strip():
                batch = decode_answer("watch", decode_watch_response, decode_stream_line(line))
                self.revision = max(self.revision, batch.revision)
                if batch.events:
                    return batch


class EtcdClient:
    """Async etcd v3 client; use as `async with EtcdClient([url, ...]) as etcd:`.

    Failover: a request goes to the endpoint that last worked; when it cannot connect
    there, the next one is tried. Writes are not retried once sent (a txn may have been
    applied) and fail with EtcdUnavailable; reads, keepalives and watches fail over on
    any transport error or "unavailable" answer. With `username`, a token from
    `/v3/auth/authenticate` goes in `Authorization`, renewed once when etcd rejects it.
    `tls` is (client cert, client key, CA bundle) file paths.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        tls: tuple[str, str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("EtcdClient needs at least one endpoint")
        self.endpoints = [url.rstrip("/") for url in endpoints]
        self.timeout = timeout
        self._current = 0
        self._credentials = (username, password or "") if username else None
        self._token: str | None = None
        verify: ssl.SSLContext | bool = True
        if tls is not None:
            verify = ssl.create_default_context(cafile=tls[2])
            verify.load_cert_chain(tls[0], tls[1])
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify)

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def range(self, key: Data, *, prefix: bool = False) -> RangeResult:
        body = key_range(key, prefix=prefix)
        doc = await self._post("/v3/kv/range", body, idempotent=True)
        return decode_answer("range", decode_range, doc)

    async def put(self, key: Data, value: Data, *, lease: int | None = None) -> int:
        """Store `value`; returns the new store revision."""
        doc = await self._post("/v3/kv/put", encode_put(key, value, lease=lease))
        return decode_answer("put", _revision, doc)

    async def delete(self, key: Data, *, prefix: bool = False) -> DeleteResult:
        doc = await self._post("/v3/kv/deleterange", key_range(key, prefix=prefix))
        return decode_answer("delete", decode_delete, doc)

    async def txn(
        self,
        compare: Sequence[Json] = (),
        success: Sequence[Json] = (),
        failure: Sequence[Json] = (),
    ) -> TxnResult:
        """Atomic if-then-else over `Compare.*` guards and `Op.*` ops: compare-and-swap."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        return decode_answer("txn", decode_txn, await self._post("/v3/kv/txn", body))

    async def compact(self, revision: int, *, physical: bool = True) -> None:
        """Drop history before `revision`; watches that start earlier get EtcdCompacted."""
        await self._post("/v3/kv/compaction", {"revision": str(revision), "physical": physical})

    async def lease_grant(self, ttl: int) -> LeaseGrant:
        doc = await self._post("/v3/lease/grant", {"TTL": str(ttl)})
        return decode_answer(
            "lease grant", lambda d: LeaseGrant(_int(d, "ID"), _int(d, "TTL")), doc
        )

    async def lease_keepalive_once(self, lease_id: int) -> int:
        """Refresh the lease once and return its TTL; call it every ~TTL/3 from one task.

        In gRPC this is a bidi stream, but the gateway answers one line per request object
        and ends the response when the request body ends: a plain POST of one `{"ID": ...}`
        is exactly one keepalive, with no stream left to manage.
        """
        doc = await self._post("/v3/lease/keepalive", {"ID": str(lease_id)}, idempotent=True)
        return decode_answer("keepalive", lambda d: decode_keepalive(d.get("result", d)), doc)

    async def lease_revoke(self, lease_id: int) -> None:
        """End the lease and delete its keys now, rather than at expiry."""
        await self._post("/v3/lease/revoke", {"ID": str(lease_id)})

    @asynccontextmanager
    async def watch(
        self, key: Data, *, prefix: bool = True, start_revision: int | None = None
    ) -> AsyncIterator[WatchStream]:
        """Open a watch; the block starts once etcd has `created` it, so no later change is missed.

        Iterating yields `WatchBatch`es (with prev_kv); it raises EtcdCompacted when
        `start_revision` is compacted and EtcdUnavailable when the stream breaks. An idle
        watch has no read timeout (etcd says nothing while nothing changes), so a silently
        partitioned server is noticed by the lease keepalive, not here.
        """
        body = encode_watch_create(key, prefix=prefix, start_revision=start_revision)
        response, stream = await self._authed(
            lambda headers: self._on_endpoints(
                lambda url: self._open_watch(url, body, headers), True
            )
        )
        try:
            yield stream
        finally:
            await _close(response, stream.lines)

    async def _open_watch(
        self, url: str, body: Json, headers: dict[str, str]
    ) -> tuple[httpx.Response, WatchStream]:
        """POST the create request and wait (bounded) for etcd's `created` answer."""
        timeout = httpx.Timeout(self.timeout, read=None)
        request = self._http.build_request(
            "POST", url + "/v3/watch", json=body, headers=headers, timeout=timeout
        )
        response = await self._http.send(request, stream=True)
        lines = response.aiter_lines()
        try:
            if response.status_code != 200:
                await response.aread()
                _decode_response(response)
            with trio.move_on_after(self.timeout):
                async for line in lines:
                    if line.strip():
                        result = decode_stream_line(line)
                        revision = decode_answer("watch", decode_watch_response, result).revision
                        if not result.get("created"):
                            raise EtcdError(f"etcd: unexpected first watch answer {line[:200]!r}")
                        return response, WatchStream(lines, revision)
            raise EtcdUnavailable(f"etcd: {url} did not create the watch")
        except BaseException:
            await _close(response, lines)
            raise

    async def _post(self, path: str, body: Json, *, idempotent: bool = False) -> Json:
        async def attempt(url: str, headers: dict[str, str]) -> Json:
            return _decode_response(await self._http.post(url + path, json=body, headers=headers))

        return await self._authed(
            lambda headers: self._on_endpoints(lambda url: attempt(url, headers), idempotent)
        )

    async def _authed(self, call: Callable[[dict[str, str]], Awaitable[T]]) -> T:
        """Run `call` with the auth header; when etcd rejects the token, log in again, once."""
        for attempt in (1, 2):
            if self._credentials is None:
                return await call({})
            if self._token is None:
                self._token = await self._on_endpoints(self._login, True)
            try:
                return await call({"Authorization": self._token})
            except EtcdUnauthenticated:
                self._token = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _login(self, url: str) -> str:
        assert self._credentials is not None
        name, password = self._credentials
        login = {"name": name, "password": password}
        response = await self._http.post(url + "/v3/auth/authenticate", json=login)
        return decode_answer("authenticate", lambda d: str(d["token"]), _decode_response(response))

    async def _on_endpoints(self, call: Callable[[str], Awaitable[T]], idempotent: bool) -> T:
        """Run `call(endpoint)` on the current endpoint, failing over as the class says."""
        failures: list[str] = []
        count = len(self.endpoints)
        for index in [(self._current + step) % count for step in range(count)]:
            url = self.endpoints[index]
            try:
                result = await call(url)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failures.append(f"{url}: {exc!r}")
            except EtcdUnavailable as exc:
                if not idempotent:
                    raise
                failures.append(f"{url}: {exc}")
            except httpx.TransportError as exc:
                if not idempotent:
                    raise EtcdUnavailable(f"etcd: {url} failed mid-request: {exc!r}") from exc
                failures.append(f"{url}: {exc!r}")
            except httpx.HTTPError as exc:  # a body that will not decode, a redirect loop
                raise EtcdError(f"etcd: {url}: {exc!r}") from exc
            else:
                if index != self._current:
                    log.info("etcd failover endpoint=%s", url)
                    self._current = index
                return result
        raise EtcdUnavailable("etcd: no endpoint answered: " + "; ".join(failures))


def _decode_response(response: httpx.Response) -> Json:
    """The JSON body of a good answer; an error answer raises its typed exception."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise EtcdError(f"etcd: HTTP {response.status_code}: {response.text[:200]!r}")
    if response.status_code != 200 or "error" in doc:
        raise decode_error(doc, response.status_code)
    return doc


async def _close(response: httpx.Response, lines: AsyncIterator[str] | None = None) -> None:
    """Close even while cancelled, or the pooled connection would leak.

    httpx streams through nested async generators; closing only the outer one leaves the
    inner ones suspended, and trio warns when they are collected (encode/httpx#3686). So
    after closing the connection, drain `lines`: the read error runs through every layer.
    """
    with trio.CancelScope(shield=True):
        await response.aclose()
        if lines is not None:
            with trio.move_on_after(1), contextlib.suppress(Exception):
                async for _ in lines:
                    pass
